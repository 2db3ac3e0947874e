"""Integrity (gptstore.integrity): files against the manifest, the stamp cache, the three modes,
and read-only blobs."""

import os
import shutil
import stat
import time

import pytest

from gptstore.errors import DigestMismatch, FileMissing, UnlistedFile
from gptstore.integrity import StampCache, check_integrity
from gptstore.library import Library
from gptstore.packaging import package


@pytest.fixture
def model(tiny_gpt):
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    return Library().publish(tiny_gpt)


def _check(model, **kwargs):
    return check_integrity(model.path, model.manifest, stamps=Library().stamps(model.digest),
                           reference=model.name, **kwargs)


def _writable(path):
    """Snapshot files are links to read-only blobs: a test that damages one on purpose unlocks it."""
    path.chmod(0o644)
    return path


def test_stamps_make_reverify_cheap_and_full_rehashes(model):
    files = len(model.manifest.files)
    assert _check(model).hashed == files
    assert _check(model).hashed == 0
    assert _check(model, mode="full").hashed == files
    assert _check(model, mode="full").hashed == files  # full never trusts stamps


def test_same_size_change_is_caught_despite_stamps(model):
    assert _check(model).ok
    target = _writable(model.path / "config.json")
    data = target.read_bytes()
    time.sleep(0.01)
    target.write_bytes(data.replace(b"gpt2", b"gpt3"))
    report = _check(model)
    assert not report.ok
    with pytest.raises(DigestMismatch, match="config.json does not match its sha256"):
        report.raise_first()
    assert Library().stamps(model.digest).stamps == {}  # a failed check leaves no stamps to trust


def test_missing_and_extra_files_named(model):
    (model.path / "tokenizer.json").unlink()
    (model.path / "extra.bin").write_bytes(b"x")
    report = _check(model)
    kinds = {type(p) for p in report.problems}
    assert kinds == {FileMissing, UnlistedFile}
    text = " ".join(str(p) for p in report.problems)
    assert "tokenizer.json" in text and "extra.bin" in text
    assert all(p.reference == "acme/tiny:1.0.0" for p in report.problems)


def test_parallel_hashing_matches_serial(model):
    serial = check_integrity(model.path, model.manifest, mode="full", workers=1)
    parallel = check_integrity(model.path, model.manifest, mode="full", workers=2)
    assert serial.ok and parallel.ok and serial.hashed == parallel.hashed == len(model.manifest.files)


def test_listing_mode_hashes_nothing_and_catches_listing_and_sizes(tiny_gpt):
    manifest = package(tiny_gpt, name="acme/tiny", version="1.0.0")
    stamps = StampCache(tiny_gpt.parent / "stamps.json")
    weights = tiny_gpt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))  # same size, other bytes: only a hash sees it
    listing = check_integrity(tiny_gpt, manifest, mode="listing", stamps=stamps)
    assert listing.ok and listing.hashed == 0
    assert not stamps.path.exists()  # nothing was hashed, so nothing may be trusted later
    assert not check_integrity(tiny_gpt, manifest, mode="full").ok
    (tiny_gpt / "config.json").write_text("{}")
    (tiny_gpt / "tokenizer.json").unlink()
    (tiny_gpt / "notes.txt").write_text("extra")
    kinds = {type(p) for p in check_integrity(tiny_gpt, manifest, mode="listing").problems}
    assert kinds == {DigestMismatch, FileMissing, UnlistedFile}


def test_an_unknown_mode_is_refused(model):
    with pytest.raises(ValueError, match="unknown integrity mode 'quick'"):
        check_integrity(model.path, model.manifest, mode="quick")


def test_a_damaged_stamp_file_is_an_empty_cache(tmp_path):
    path = tmp_path / "stamps.json"
    path.write_text("[1, 2")
    assert StampCache(path).stamps == {}
    path.write_text("[1, 2]")  # JSON, but not the mapping a cache holds
    assert StampCache(path).stamps == {}


# -- committed blobs are read-only ---------------------------------------------------------------

def test_committed_blobs_and_their_snapshot_links_are_read_only(model):
    library = Library()
    for entry in model.manifest.files:
        blob = library.blobs.path(entry.sha256)
        assert stat.S_IMODE(blob.stat().st_mode) == 0o444
        assert (model.path / entry.path).stat().st_ino == blob.stat().st_ino
    if os.geteuid() != 0:  # root writes through any mode
        with pytest.raises(PermissionError):
            (model.path / "config.json").write_text("{}")
    assert _check(model, mode="full").ok  # so a write through a snapshot cannot change a blob


def test_read_only_blobs_are_still_removed_and_snapshots_rebuilt(model):
    library = Library()
    snapshot = model.path
    shutil.rmtree(snapshot)  # a snapshot of read-only links can be removed ...
    assert library.get("acme/tiny").path == snapshot  # ... and is rebuilt from the blobs
    assert _check(model, mode="full").ok
    removed = library.remove("acme/tiny")
    assert removed and list(library.blobs.all()) == [] and not snapshot.exists()
