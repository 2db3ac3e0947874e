"""A real ``gptstore server`` process per test module, administered through the real CLI.

``store`` starts the server on a free loopback port with a fresh data directory and small
thresholds (LFS from 256 KiB, multipart from 1 MiB in 256 KiB parts, bodies up to 4 MiB, pages
of 3), then adds users and tokens with ``gptstore server … user add / org add / token create``:

    alice (write + read tokens), bob (write), carol (write); org acme = alice + carol
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gptstore.testing import KiB, SMALL, StoreServer, admin, free_port, start_store  # noqa: F401  (re-exported)

@pytest.fixture(scope="module", autouse=True)
def every_backend(backend: str):
    """Every module here runs once per backend pair (gptstore.testing.BACKENDS): the ``store``
    fixture and the stores a test starts itself with ``start_store`` alike."""
    from gptstore.testing import default_backend

    with default_backend(backend):
        yield backend


@pytest.fixture(scope="module")
def store(store_server: StoreServer) -> StoreServer:
    return store_server


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
