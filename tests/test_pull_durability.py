"""The durability order of a pull's small files (see gptstore.fsutil.durable_batch and the
gptstore.library docstring): manifest, signature, snapshot, stamps are written without an fsync
each, made durable by one sync, and only then are the refs written. A crash (a killed process,
a failed sync) before that leaves no ref naming unsynced data, and the next pull and
``gptstore verify`` find a sound library."""

from __future__ import annotations

import multiprocessing
import os

import pytest

import gptstore.fsutil as fsutil
import gptstore.library as library_module
from gptstore.library import Library
from gptstore.packaging import package
from gptstore.pulling import pull


@pytest.fixture
def store(tiny_gpt, tmp_path):
    """A store (a library on disk) holding acme/tiny:1.0.0."""
    root = tmp_path / "store"
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    Library(root).publish(tiny_gpt)
    return root


@pytest.fixture
def events(monkeypatch):
    """What a pull writes and syncs, in order: ("write", path) / ("sync", recorded files) / ("fsync",)."""
    seen: list[tuple] = []
    real_write, real_sync, real_fsync = library_module.atomic_write, fsutil.DurableBatch.sync, os.fsync

    def write(path, data, **kwargs):
        seen.append(("write", path))
        real_write(path, data, **kwargs)

    def sync(batch):
        if batch.files or batch.dirs:
            seen.append(("sync", frozenset(batch.files)))
        real_sync(batch)

    def fsync(fd):
        seen.append(("fsync",))
        real_fsync(fd)

    monkeypatch.setattr(library_module, "atomic_write", write)
    monkeypatch.setattr(fsutil.DurableBatch, "sync", sync)
    monkeypatch.setattr(os, "fsync", fsync)
    return seen


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "parallel-fsync"])
def test_a_pull_syncs_its_small_files_once_before_any_ref(store, events, monkeypatch, syncfs):
    if not syncfs:
        monkeypatch.setattr(fsutil, "_SYNCFS", None)
    elif fsutil._SYNCFS is None:
        pytest.skip("no syncfs(2) on this platform")
    model = pull("acme/tiny:1.0.0", store=str(store))
    library = Library()
    refs = {library._ref_path("acme/tiny", tag) for tag in ("1.0.0", "latest")}
    first_ref = next(i for i, e in enumerate(events) if e[0] == "write" and e[1] in refs)
    before = events[:first_ref]
    syncs = [e[1] for e in before if e[0] == "sync"]
    assert len(syncs) == 1, "one sync before the refs"
    written = {e[1] for e in before if e[0] == "write"}
    manifest = library._manifest_path(model.model.digest)
    assert manifest in written and manifest in syncs[0]  # what the ref names was synced first
    assert any("snapshots" in str(p) for p in syncs[0])  # and the snapshot's files
    after = events[first_ref:]
    assert [e for e in after if e[0] == "sync"], "the refs are synced too"
    assert [e[0] for e in events].count("sync") == 2  # the whole pull: two sync points
    small = sum(1 for e in events if e[0] == "fsync")
    if syncfs:  # the blobs' own fsyncs only (file, then folder, per downloaded blob): none per small file
        assert small == 2 * model.fetched_files
    assert sorted(e.tag for e in library.refs()) == ["1.0.0", "latest"]


def test_a_failed_sync_before_the_refs_leaves_no_ref_and_the_next_pull_works(store, monkeypatch, run_cli):
    real = fsutil.DurableBatch.sync

    def failing(batch):
        if batch.files:
            raise OSError(5, "Input/output error (simulated)")
        real(batch)

    monkeypatch.setattr(fsutil.DurableBatch, "sync", failing)
    with pytest.raises(OSError, match="simulated"):
        pull("acme/tiny:1.0.0", store=str(store))
    library = Library()
    assert library.refs() == []  # nothing names the unsynced manifest and snapshot
    assert fsutil._current() is None  # the batch was left
    monkeypatch.setattr(fsutil.DurableBatch, "sync", real)
    assert pull("acme/tiny:1.0.0", store=str(store)).model.name == "acme/tiny:1.0.0"
    assert run_cli("verify", "acme/tiny:1.0.0", "--full").exit_code == 0


def _pull_and_die_at_the_sync(store: str, home: str) -> None:
    """A child process: pull, and die (no cleanup, like a kill -9) where the batch would be synced."""
    os.environ["GPTSTORE_HOME"] = home

    def die(_batch):
        os._exit(17)

    fsutil.DurableBatch.sync = die
    pull("acme/tiny:1.0.0", store=store, library=Library(home))
    os._exit(0)


def test_a_process_killed_before_its_refs_leaves_a_consistent_library(store, run_cli):
    home = os.environ["GPTSTORE_HOME"]
    child = multiprocessing.get_context("fork").Process(target=_pull_and_die_at_the_sync, args=(str(store), home))
    child.start()
    child.join(60)
    assert child.exitcode == 17  # it died between the small files and the refs
    library = Library(home)
    assert library.refs() == []
    assert list((library.root / "manifests" / "sha256").iterdir())  # it had got that far
    assert run_cli("ls").exit_code == 0  # the half-pulled model is not listed, nothing fails
    result = pull("acme/tiny:1.0.0", store=str(store))
    assert result.fetched_files == 0  # the blobs it had committed were durable and are reused
    assert run_cli("verify", "acme/tiny:1.0.0", "--full").exit_code == 0
    assert Library(home).gc().manifests == 0  # the leftover manifest is the one the ref now names
