"""gptstore's pytest plugin (entry point ``pytest11``): fixtures for gptstore and its plugins.

Every test gets an isolated ``GPTSTORE_HOME`` and Hugging Face cache under ``tmp_path``. Fixtures:

- ``gptstore_home`` — the isolated home (a :class:`pathlib.Path`);
- ``tiny_gpt_dir`` — a tiny GPT-2-shaped model directory, built once per test run (read-only);
- ``tiny_gpt`` — a fresh, writable copy of it for one test;
- ``register_plugin`` — ``register_plugin(obj, name=None)`` registers a throw-away plugin for
  the length of the test;
- ``run_cli`` — ``run_cli("list", "--json")`` runs the ``gptstore`` CLI in-process and returns
  the click ``Result``.

And :func:`tree_state` — ``{relative path: sha256}`` of a directory, to assert that a failed
operation left the library exactly as it was.

Nothing heavy is imported until a fixture that needs it runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

import pytest


def tree_state(root: Path) -> dict[str, str]:
    """``{relative path: sha256 of content}`` of every file under ``root`` (lock files excluded)."""
    import hashlib

    root = Path(root)
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".lock"}


@pytest.fixture(autouse=True)
def gptstore_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "gptstore-home"
    monkeypatch.setenv("GPTSTORE_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("GPTSTORE_STORE", raising=False)
    monkeypatch.delenv("GPTSTORE_TOKEN", raising=False)
    monkeypatch.delenv("GPTSTORE_DEBUG", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_gpt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 model directory (random init, BPE tokenizer on stdlib docstrings). Do not modify."""
    from .training.tiny import build_tiny_gpt

    return build_tiny_gpt(tmp_path_factory.mktemp("tiny-gpt") / "model", seed=0)


@pytest.fixture
def tiny_gpt(tiny_gpt_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny model for one test."""
    target = tmp_path / "tiny-gpt"
    shutil.copytree(tiny_gpt_dir, target)
    return target


@pytest.fixture
def register_plugin() -> Any:
    """``register_plugin(obj, name=None)``: register a plugin until the test ends."""
    from . import plugins

    names: list[str] = []

    def register(obj: object, name: str | None = None) -> str:
        name = name or f"test-plugin-{len(names)}-{id(obj)}"
        plugins.register(obj, name=name)
        names.append(name)
        return name

    yield register
    for name in names:
        plugins.unregister(name)


@pytest.fixture
def run_cli() -> Callable[..., Any]:
    """Run the gptstore CLI in-process: ``run_cli("list", "--json", input=None)``."""
    from click.testing import CliRunner

    from .cli.main import cli

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None):
        runner = CliRunner()
        return runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False,
                             standalone_mode=True)

    return run
