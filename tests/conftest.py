"""Shared test setup. The gptstore pytest plugin (gptstore.testing) isolates GPTSTORE_HOME."""

from __future__ import annotations

import importlib.util

import pytest


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.fixture(autouse=True)
def _isolated_hf_home(hf_home):
    """Our tests talk to real Hub-compatible servers: keep the Hugging Face cache per test."""
    return hf_home


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items) and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
