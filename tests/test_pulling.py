"""pull (gptstore.pulling.pull, behind gptstore.pull) ends with the verification load makes: downloads are not read twice,
damaged blobs already in the library are fetched again, and each warning is shown once."""

import json
import logging
import shutil

import pytest

import gptstore
from gptstore import integrity
from gptstore.library import Library
from gptstore.packaging import package
from gptstore.pulling import pull

WARNING = "authenticity warning: acme/tiny:1.0.0 is not signed (no gptstore.sig)"


@pytest.fixture
def store(tiny_gpt, tmp_path):
    """A store (a library on disk) holding acme/tiny:1.0.0, unsigned."""
    root = tmp_path / "store"
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    Library(root).publish(tiny_gpt)
    return root


@pytest.fixture
def hashed(monkeypatch):
    """The files the integrity layer hashes (downloads are hashed by the blob writer instead)."""
    seen = []
    real = integrity.hash_file

    def counting(path, **kwargs):
        seen.append(path.name)
        return real(path, **kwargs)

    monkeypatch.setattr(integrity, "hash_file", counting)
    return seen


def _damage_blob(library, sha256):
    """Rot a blob in place (what a write through a snapshot link did before blobs were read-only)."""
    blob = library.blobs.path(sha256)
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))


def test_a_pull_is_verified_without_reading_its_downloads_again(store, hashed):
    result = pull("acme/tiny", store=str(store))
    assert result.fetched_files == len(result.model.manifest.files) and hashed == []
    assert [c.name for c in result.checks] == ["integrity", "authenticity", "safety"]
    assert all(c.ok for c in result.checks) and result.warnings == [WARNING]
    assert gptstore.verify("acme/tiny").integrity.hashed == 0  # load will trust the stamps pull recorded
    again = pull("acme/tiny", store=str(store))
    assert again.fetched_files == 0 and hashed == []


def test_pull_fetches_again_a_blob_that_rotted_in_the_library(store, run_cli):
    assert run_cli("pull", "acme/tiny:1.0.0", "--store", str(store)).exit_code == 0
    library = Library()
    model = library.get("acme/tiny:1.0.0")
    weights = model.manifest.file("model.safetensors")
    _damage_blob(library, weights.sha256)
    assert run_cli("verify", "acme/tiny", "--full").exit_code == 1

    result = pull("acme/tiny:1.0.0", store=str(store))
    assert (result.fetched_files, result.repaired_files, result.fetched_bytes) == (1, 1, weights.size)
    assert run_cli("verify", "acme/tiny", "--full").exit_code == 0
    assert integrity.check_integrity(model.path, model.manifest, mode="full").ok


def test_the_cli_pull_says_what_it_fetched_again(store, run_cli):
    assert run_cli("pull", "acme/tiny:1.0.0", "--store", str(store)).exit_code == 0
    library = Library()
    _damage_blob(library, library.get("acme/tiny").manifest.file("config.json").sha256)
    again = run_cli("pull", "acme/tiny:1.0.0", "--store", str(store))
    assert again.exit_code == 0 and ": 1 files" in again.output, again.output
    assert ", 1 damaged file fetched again; verified" in again.output, again.output
    assert run_cli("verify", "acme/tiny", "--full").exit_code == 0
    clean = run_cli("pull", "acme/tiny:1.0.0", "--store", str(store), "--json")
    assert json.loads(clean.output)[0]["repaired_files"] == 0


def test_the_cli_pull_counts_every_damaged_file(store, run_cli):
    assert run_cli("pull", "acme/tiny:1.0.0", "--store", str(store)).exit_code == 0
    library = Library()
    manifest = library.get("acme/tiny").manifest
    for name in ("config.json", "tokenizer.json"):
        _damage_blob(library, manifest.file(name).sha256)
    again = run_cli("pull", "acme/tiny:1.0.0", "--store", str(store))
    assert again.exit_code == 0 and ", 2 damaged files fetched again; verified" in again.output, again.output


def test_a_damaged_blob_shared_with_another_model_is_repaired_for_both(store, tiny_gpt, tmp_path):
    library = Library()
    other = tmp_path / "other"
    shutil.copytree(tiny_gpt, other)
    (other / "generation_config.json").write_text('{"max_new_tokens": 7}')
    package(other, name="acme/other", version="0.1.0")
    mine = library.publish(other)
    shared = mine.manifest.file("model.safetensors").sha256
    _damage_blob(library, shared)
    result = pull("acme/tiny", store=str(store))  # a new model that shares the rotten blob
    assert result.repaired_files == 1
    assert gptstore.verify("acme/other", full=True).ok  # its snapshot was rebuilt on the good blob


def test_a_snapshot_file_replaced_by_hand_is_restored_without_a_download(store):
    result = pull("acme/tiny", store=str(store))
    target = result.model.path / "tokenizer.json"
    target.unlink()
    target.write_text("{}")  # the blob is intact; only the snapshot differs
    again = pull("acme/tiny", store=str(store))
    assert (again.fetched_files, again.repaired_files) == (0, 0)
    assert gptstore.verify("acme/tiny", full=True).ok


def test_pull_and_load_show_a_warning_once(store, caplog):
    with caplog.at_level(logging.WARNING):
        pull("acme/tiny", store=str(store))
    assert [r.getMessage() for r in caplog.records] == [WARNING]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert pull("acme/tiny", store=str(store), warn=False).warnings == [WARNING]
    assert caplog.records == []
    Library().remove("acme/tiny")
    with caplog.at_level(logging.WARNING):  # pulled, then verified by load: one operation, one line
        with gptstore.load("acme/tiny", store=str(store), device="cpu") as model:
            assert model.checks[1].note == WARNING
    assert [r.getMessage() for r in caplog.records] == [WARNING]
