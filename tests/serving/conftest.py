"""A real ``gptstore serve`` process over a library of three tiny published models."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gptstore.testing import free_port, publish_copy

MODELS = ("acme/one", "acme/two", "acme/three")
CLI = [sys.executable, "-c", "from gptstore.cli.main import main; main()"]


@dataclass
class Serve:
    home: Path
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, key: str = "unused"):
        from openai import OpenAI

        return OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=60)

    def http(self, key: str | None = None):
        import httpx

        return httpx.Client(base_url=self.url, timeout=60,
                            headers={"authorization": f"Bearer {key}"} if key else {})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_serve(home: Path, *args: str, env: dict[str, str] | None = None) -> Serve:
    """``gptstore serve ARGS`` on a free loopback port, GPTSTORE_HOME=home, no plugins unless
    ``env`` says otherwise; waits until it answers."""
    import httpx

    port = free_port()
    log = home.parent / f"serve-{port}.log"
    environment = {**os.environ, "GPTSTORE_HOME": str(home), "GPTSTORE_LOAD_PLUGINS": "",
                   "HF_HUB_OFFLINE": "1", **(env or {})}
    environment.pop("GPTSTORE_STORE", None)
    with open(log, "ab") as out:
        proc = subprocess.Popen([*CLI, "serve", "--port", str(port), "--log-level", "warning", *args],
                                stdout=out, stderr=subprocess.STDOUT, env=environment)
    server = Serve(home, proc, port, log)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gptstore serve exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"gptstore serve did not start:\n{log.read_text()}")


@pytest.fixture(scope="module")
def served_home(tiny_gpt_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GPTSTORE_HOME with acme/one, acme/two, acme/three (1.0.0, also :latest)."""
    root = tmp_path_factory.mktemp("serve")
    home = root / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GPTSTORE_HOME", str(home))
        for i, name in enumerate(MODELS):
            publish_copy(tiny_gpt_dir, root / f"pkg{i}", name)
    return home


@pytest.fixture
def in_served_home(served_home: Path, gptstore_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process reads the served home (usage log, Model.generate) for one test."""
    monkeypatch.setenv("GPTSTORE_HOME", str(served_home))
    return served_home
