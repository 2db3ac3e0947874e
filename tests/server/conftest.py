"""A real ``gptstore server`` process per test module, administered through the real CLI.

``store`` starts the server on a free loopback port with a fresh data directory and small
thresholds (LFS from 256 KiB, multipart from 1 MiB in 256 KiB parts, bodies up to 4 MiB, pages
of 3), then adds users and tokens with ``gptstore server … user add / org add / token create``:

    alice (write + read tokens), bob (write), carol (write); org acme = alice + carol
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx
import pytest

CLI = [sys.executable, "-c", "from gptstore.cli.main import main; main()"]
KiB = 1024
SMALL = ["--lfs-threshold", str(256 * KiB), "--multipart-threshold", str(1024 * KiB),
         "--part-size", str(256 * KiB), "--max-body", str(4096 * KiB), "--page-size", "3"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def admin(data: Path, *args: str) -> str:
    """Run ``gptstore server --data DATA ARGS`` in-process through click; returns stdout."""
    from click.testing import CliRunner

    from gptstore.cli.main import cli

    result = CliRunner().invoke(cli, ["server", "--data", str(data), *args])
    assert result.exit_code == 0, f"{args}: {result.output}"
    return result.stdout.strip()


@dataclass
class StoreServer:
    data: Path
    log: Path
    args: list[str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*CLI, "server", "--data", str(self.data), "--port", str(self.port),
                                          "--log-level", "warning", *self.args],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/models", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, like a crash or an OOM kill."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def admin(self, *args: str) -> str:
        return admin(self.data, *args)

    def api(self, user: str | None = "alice", scope: str = "write"):
        from huggingface_hub import HfApi

        token = self.tokens[f"{user}:{scope}"] if user else False
        return HfApi(endpoint=self.url, token=token)

    def http(self, user: str | None = None, scope: str = "write") -> httpx.Client:
        headers = {"authorization": f"Bearer {self.tokens[f'{user}:{scope}']}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def start_store(root: Path, args: list[str] = SMALL) -> StoreServer:
    server = StoreServer(root / "data", root / "server.log", list(args))
    server.admin("user", "add", "alice")
    server.admin("user", "add", "bob")
    server.admin("user", "add", "carol")
    server.admin("org", "add", "acme", "--member", "alice", "--member", "carol")
    for user, scope in [("alice", "write"), ("alice", "read"), ("bob", "write"), ("carol", "write")]:
        server.tokens[f"{user}:{scope}"] = server.admin("token", "create", user, "--scope", scope)
    server.start()
    return server


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreServer]:
    server = start_store(tmp_path_factory.mktemp("store"))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def xet_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients talk LFS, not Xet, unless a test turns Xet back on (protocol §4)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


@pytest.fixture
def hf_cache(tmp_path: Path) -> Path:
    """A fresh Hugging Face cache dir (huggingface_hub reads HF_HUB_CACHE only at import)."""
    return tmp_path / "hf-cache"


@pytest.fixture(scope="module")
def tiny_package(tiny_gpt_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GPT with a model card and a gptstore.json for alice/tiny 1.0.0."""
    from gptstore.packaging import package

    root = tmp_path_factory.mktemp("package") / "tiny"
    shutil.copytree(tiny_gpt_dir, root)
    (root / "README.md").write_text("---\nlicense: mit\ntags:\n- poetry\n---\n# Tiny\nA tiny poet.\n")
    package(root, name="alice/tiny", version="1.0.0", description="A tiny poet that writes haiku",
            tags=["haiku", "poetry"], license="mit", provider={"name": "Alice Labs"})
    return root
