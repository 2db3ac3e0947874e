"""Shared test setup. The gptstore pytest plugin (gptstore.testing) isolates GPTSTORE_HOME."""

from __future__ import annotations

import importlib.util

import pytest


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


#: where ``hf://`` (the default store) points in tests: a closed local port, so that no test
#: reaches huggingface.co; a test of hf:// sets HF_ENDPOINT to its own local server
NO_HUB = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _isolated_hf_home(hf_home, monkeypatch):
    """Our tests talk to real Hub-compatible servers: keep the Hugging Face cache per test, and
    point hf:// at nothing (:data:`NO_HUB`) with no HF token and no offline switch set."""
    monkeypatch.setenv("HF_ENDPOINT", NO_HUB)
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "GPTSTORE_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return hf_home


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items) and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
