"""The scripts in examples/ run as they are, each in a temporary library of its own."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: examples that need a plugin: skipped where it is not installed
NEEDS = {"lora_adapter.py": "gptstore_peft"}


def runnable(name: str) -> bool:
    return name not in NEEDS or importlib.util.find_spec(NEEDS[name]) is not None


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Run every example at once (one thread each, so two cores run two examples)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GPTSTORE_HOME": str(tmp_path_factory.mktemp("unused-home")),
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    running = {path.name: subprocess.Popen([sys.executable, str(path)], cwd=tmp_path_factory.mktemp(path.stem),
                                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for path in sorted(EXAMPLES.glob("*.py")) if runnable(path.name)}
    done = {}
    try:
        for name, process in running.items():
            stdout, stderr = process.communicate(timeout=180)
            done[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return done


def test_every_example_is_listed_in_the_readme():
    readme = (EXAMPLES / "README.md").read_text()
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert {"provider_pipeline.py", "sdk_quickstart.py"} <= set(scripts)
    assert [name for name in scripts if f"`{name}`" not in readme] == []


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_runs(outputs, name):
    if not runnable(name):
        pytest.skip(f"needs {NEEDS[name]}")
    done = outputs[name]
    assert done.returncode == 0, f"{name} failed:\n{done.stderr[-3000:]}"
    assert done.stdout.strip()


@pytest.mark.slow
def test_sdk_quickstart_output(outputs):
    done = outputs["sdk_quickstart.py"]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("loaded <gptstore.Model example/tiny:1.0.0 sha256:")
    for strategy in ("greedy", "beam", "sample"):
        line = next(line for line in lines if line.strip().startswith(f"{strategy}:"))
        assert "tokens/s)" in line and f"{strategy}: ''" not in line
    assert any(line.startswith("batch: [") for line in lines)
    assert any(line.startswith("stream: ") for line in lines)
    assert any(line.startswith("usage: example/tiny:1.0.0 5 calls") and "USD" in line for line in lines)
    assert "warning" not in done.stderr.lower()  # signed and trusted: no authenticity warning


@pytest.mark.slow
def test_provider_pipeline_output(outputs):
    done = outputs["provider_pipeline.py"]
    out = done.stdout
    for step in ("base:", "finetune:", "eval:", "package:", "sign:", "publish:", "verify:", "next:"):
        assert f"\n{step}" in f"\n{out}", step
    assert "holds" in out and "0.02 USD/1k tokens" in out and "acme/cli-docs:1.0.0" in out
    verify = [line for line in out.splitlines() if line.startswith("verify:")]
    assert len(verify) == 3 and all(" ok: " in line for line in verify)
    assert "policy require" in out
