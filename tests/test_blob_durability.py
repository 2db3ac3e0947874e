"""The durability order of a blob write (see gptstore.blobs): write-back is started as the bytes
arrive, but the blob appears under its digest name only after the file's fsync, and the folder is
synced after the rename. A crash at any point leaves either no blob or a whole, durable one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import gptstore.blobs as blobs
from gptstore.blobs import WRITEBACK_STEP, BlobStore, BlobWriter

MiB = 1024 * 1024


@pytest.mark.parametrize("piece", [64 * 1024, MiB, 8 * MiB], ids=["download-sized", "1MiB", "upload-buffer"])
def test_a_blob_appears_under_its_digest_only_once_synced(tmp_path, monkeypatch, piece):
    data = os.urandom(2 * WRITEBACK_STEP + 3 * MiB + 17)
    digest = hashlib.sha256(data).hexdigest()
    store = BlobStore(tmp_path / "blobs")
    events: list[tuple] = []
    real_fsync, real_replace, real_writeback = os.fsync, os.replace, blobs.start_writeback

    def fsync(fd: int) -> None:
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")).name if os.path.exists("/proc/self/fd")
                       else fd))
        real_fsync(fd)

    def replace(source, target) -> None:
        assert not store.has(digest)
        events.append(("replace", Path(target).name))
        real_replace(source, target)

    def writeback(fd: int, offset: int, length: int) -> None:
        events.append(("writeback", offset, length))
        real_writeback(fd, offset, length)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(blobs, "start_writeback", writeback)
    with store.writer(expected_sha256=digest, expected_size=len(data)) as writer:
        for start in range(0, len(data), piece):
            writer.write(data[start:start + piece])
        assert not store.has(digest)  # everything written, nothing visible yet
        assert writer.commit() == digest
    assert store.read_bytes(digest) == data

    ranges = [e[1:] for e in events if e[0] == "writeback"]
    assert ranges and ranges[0][0] == 0
    assert all(a[0] + a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, none skipped
    assert all(length >= WRITEBACK_STEP for _offset, length in ranges)
    order = [e[0] for e in events if e[0] != "writeback"]
    assert order == ["fsync", "replace", "fsync"]  # the file's bytes, then the name, then the folder
    if os.path.exists("/proc/self/fd"):
        assert events[-1] == ("fsync", "sha256")


def test_a_failed_write_leaves_no_blob_and_no_partial(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    data = os.urandom(WRITEBACK_STEP + MiB)
    with pytest.raises(Exception, match="expected"):
        with store.writer(expected_sha256="0" * 64, expected_size=len(data)) as writer:
            writer.write(data)
            writer.commit()
    assert list(store.all()) == [] and list(store.tmp.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_writes_large_blobs_too(tmp_path):
    """The parent's writer threads do not exist in a forked child: it must not wait for them."""
    import signal
    import time

    store = BlobStore(tmp_path / "blobs")
    data = os.urandom(2 * MiB)  # above OVERLAP_MIN: written by the pool
    store.put_bytes(data)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        ok = store.put_bytes(data[::-1]) == hashlib.sha256(data[::-1]).hexdigest()
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("a forked child hung writing a blob")


def _piecewise(store: BlobStore, data: bytes, piece: int) -> str:
    with store.writer(expected_sha256=hashlib.sha256(data).hexdigest(), expected_size=len(data)) as writer:
        for start in range(0, len(data), piece):
            writer.write(data[start:start + piece])
        direct = writer._direct
        digest = writer.commit()
    assert store.read_bytes(digest) == data
    return direct


@pytest.mark.skipif(not getattr(os, "O_DIRECT", 0), reason="no O_DIRECT on this platform")
def test_large_pieces_go_past_the_page_cache_and_land_byte_exact(tmp_path, monkeypatch):
    """An upload's 8 MiB buffers are written with O_DIRECT (in whole blocks; the odd tail through
    the page cache), and the blob is byte-exact, tail and all."""
    calls = []
    real = BlobWriter._write_direct

    def counting(self, view):
        calls.append(len(view))
        real(self, view)

    monkeypatch.setattr(BlobWriter, "_write_direct", counting)
    data = os.urandom(3 * 8 * MiB + 4096 * 3 + 17)  # a tail of blocks, then a few odd bytes
    assert _piecewise(BlobStore(tmp_path / "blobs"), data, 8 * MiB) is True
    assert calls[:3] == [8 * MiB] * 3 and all(n % blobs.DIRECT_ALIGN == 0 for n in calls)


def test_a_filesystem_that_refuses_o_direct_gets_the_page_cache(tmp_path, monkeypatch):
    """EINVAL from the direct write (tmpfs on older kernels, some network filesystems): the piece is
    written again through the page cache, and so is everything after it."""
    import errno

    def refuse(self, view):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(BlobWriter, "_write_direct", refuse)
    data = os.urandom(2 * 8 * MiB + 5)
    assert _piecewise(BlobStore(tmp_path / "blobs"), data, 8 * MiB) is False
