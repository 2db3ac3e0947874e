"""Content-addressed blob storage: ``<root>/sha256/<hex>``.

One engine for the local library and the store server. Blobs are written through a
:class:`BlobWriter` that hashes while it writes (no second read), fsyncs, and renames into place
only when the digest (and size, if expected) match; a blob therefore either exists whole and
correct or not at all.

Durability invariant: a blob is visible under its digest name only once its bytes are on disk
(fsync of the file, then the rename, then an fsync of the folder), so a crash never leaves a torn
blob that ``has()`` would trust. That fsync used to be the measured cost of a pull (the whole file
written back at the end, with the downloader waiting); now the writer asks the kernel to start
writing back every :data:`WRITEBACK_STEP` bytes as they arrive (Linux ``sync_file_range``, which
waits for nothing), so by the final fsync little is left to write. Same invariant, a shorter wait.
Large pieces (an upload's 8 MiB buffers) skip the page cache altogether (O_DIRECT, see
:meth:`BlobWriter._write_large`): copying into fresh page-cache pages was the slowest stage of an
upload; the final fsync still comes (file size, the device's cache).

A committed blob is read-only (mode 0444). Unfinished writes live in ``<root>/tmp`` and can be
resumed by name.

Digests and resume names come from manifests and stores, i.e. from outside: a blob path is built
only from a 64-hex digest, a partial only from a plain name, and a writer with an expected size
never grows past it (an endless or oversized download fails instead of filling the disk).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from .errors import DigestMismatch
from .fsutil import fsync_dir, libc_function

CHUNK = 4 * 1024 * 1024
#: a writer starts the write-back of what it wrote each time this much more has been written
WRITEBACK_STEP = 8 * 1024 * 1024
#: pieces at least this large are hashed and written at the same time (see BlobWriter.write)
OVERLAP_MIN = 1024 * 1024
#: large pieces are written past the page cache (O_DIRECT) in blocks of this alignment
DIRECT_ALIGN = 4096
#: the page-aligned staging buffer a writer copies large pieces into for O_DIRECT
DIRECT_STAGE = 8 * 1024 * 1024
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RESUME_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DISK_WRITER: ThreadPoolExecutor | None = None
_DISK_WRITER_LOCK = threading.Lock()


def _disk_writer() -> ThreadPoolExecutor:
    """The threads that write large pieces while their caller hashes them. Its own pool (not the
    caller's): a writer thread never waits on anything, so callers in any pool cannot deadlock."""
    global _DISK_WRITER
    with _DISK_WRITER_LOCK:
        if _DISK_WRITER is None:
            _DISK_WRITER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="blob-write")
        return _DISK_WRITER


def _forget_disk_writer() -> None:
    """A forked child has none of its parent's threads: it starts a pool of its own when needed."""
    global _DISK_WRITER, _DISK_WRITER_LOCK
    _DISK_WRITER, _DISK_WRITER_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_disk_writer)


def is_sha256(value: object) -> bool:
    """Whether ``value`` is exactly 64 lowercase hex characters (what a blob may be named)."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def hash_file(path: Path, *, chunk: int = CHUNK) -> tuple[str, int]:
    """sha256 hex and size of a file, read in large chunks into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while True:
            n = handle.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start write-back of dirty pages in the range, wait for none
_sync_file_range: Any = None  # ctypes function once looked up; False where there is none


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``length`` bytes at ``offset`` of ``fd`` back to disk without waiting
    (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``); elsewhere nothing, and the final fsync
    does it all. Only a head start for that fsync: it guarantees nothing by itself."""
    global _sync_file_range
    if _sync_file_range is None:
        _sync_file_range = False
        if (function := libc_function("sync_file_range")) is not None:
            import ctypes

            function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            _sync_file_range = function
    if _sync_file_range and length > 0:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a failure: the fsync still comes


class BlobWriter:
    """Write a blob in pieces; :meth:`commit` checks and publishes it.

    With ``resume_name`` the partial file ``tmp/<resume_name>`` is kept on failure and continued
    next time (its bytes are re-hashed once to restore the hash state). A partial already longer
    than ``expected_size`` cannot be the start of the blob: it is dropped and the write starts over.
    """

    def __init__(self, store: BlobStore, *, expected_sha256: str | None = None,
                 expected_size: int | None = None, resume_name: str | None = None) -> None:
        self.store = store
        self.expected_sha256 = expected_sha256
        self.expected_size = expected_size
        self._hash = hashlib.sha256()
        self.size = 0
        self._written_back = 0  # bytes whose write-back has been started (see start_writeback)
        store.tmp.mkdir(parents=True, exist_ok=True)
        self._keep_partial = resume_name is not None
        if resume_name is not None:
            if not _RESUME_NAME.fullmatch(resume_name):
                raise ValueError(f"invalid resume name {resume_name[:80]!r}: letters, digits and ._- only")
            self.path = store.tmp / resume_name
            if expected_size is not None and self.path.is_file() and self.path.stat().st_size > expected_size:
                self.path.unlink(missing_ok=True)  # longer than the blob: not a prefix of it
            if self.path.exists():
                with open(self.path, "rb") as handle:
                    while chunk := handle.read(CHUNK):
                        self._hash.update(chunk)
                        self.size += len(chunk)
            self._file: BinaryIO = open(self.path, "ab")
        else:
            import tempfile

            fd, name = tempfile.mkstemp(dir=store.tmp, prefix="blob.", suffix=".part")
            self.path = Path(name)
            self._file = os.fdopen(fd, "wb")
        self._done = False
        #: large pieces go past the page cache (see :meth:`_write_large`) until the filesystem refuses
        self._direct = bool(_O_DIRECT) and sys.platform.startswith("linux")
        self._stage: Any = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; a piece of :data:`OVERLAP_MIN` bytes or more is written by another
        thread while this one hashes it (both release the GIL), so a large buffer costs about the
        longer of the two, not their sum."""
        if self.expected_size is not None and self.size + len(data) > self.expected_size:
            self.discard(force=True)
            raise DigestMismatch(f"blob: more than the expected {self.expected_size} bytes arrived",
                                 expected=str(self.expected_size), actual=f">{self.expected_size}")
        if len(data) >= OVERLAP_MIN:
            written = _disk_writer().submit(self._write_large, data, self.size)
            try:
                self._hash.update(data)
            finally:
                written.result()
        else:
            self._file.write(data)
            self._hash.update(data)
        self.size += len(data)
        if self.size - self._written_back >= WRITEBACK_STEP:
            self._file.flush()
            start_writeback(self._file.fileno(), self._written_back, self.size - self._written_back)
            self._written_back = self.size

    def _write_large(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        """A large piece at ``offset``: past the page cache where the filesystem allows, else through it.

        Measured on the 256 MB upload of ``bench/server.py``: writing into the page cache (fresh
        pages, then their write-back) ran at ~400 MiB/s and was the slowest stage of the upload,
        below hashing (~1.9 GiB/s); an O_DIRECT write of the same bytes ran at ~3 GiB/s and leaves
        nothing for the final fsync to flush. The piece is copied into a page-aligned buffer (one
        memcpy) in whole blocks; a tail under a block, and everything after it, goes through the
        page cache. ``commit`` still fsyncs (file size, the device's cache): same durability."""
        if self._direct and offset % DIRECT_ALIGN == 0 and len(data) >= DIRECT_ALIGN:
            view = memoryview(data).cast("B")
            body = len(view) - len(view) % DIRECT_ALIGN
            try:
                self._write_direct(view[:body])
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                self._direct = False  # this filesystem refuses O_DIRECT: the page cache from here on
                self._file.seek(offset)
                self._file.truncate()
                self._file.write(data)
                return
            if body < len(view):
                self._file.write(view[body:])
            return
        self._file.write(data)

    def _write_direct(self, view: memoryview) -> None:
        import fcntl
        import mmap

        self._file.flush()
        fd = self._file.fileno()
        if self._stage is None:
            self._stage = mmap.mmap(-1, DIRECT_STAGE)  # anonymous mappings are page-aligned
        stage = memoryview(self._stage)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)
        try:
            for start in range(0, len(view), DIRECT_STAGE):
                piece = view[start:start + DIRECT_STAGE]
                stage[:len(piece)] = piece
                done = 0
                while done < len(piece):
                    done += os.write(fd, stage[done:len(piece)])
        finally:
            stage.release()
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        self._file.seek(0, os.SEEK_END)  # the buffered file object learns the new end

    def restart(self) -> None:
        """Drop what was written so far (e.g. a server that ignored a Range request)."""
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.sha256()
        self.size = 0
        self._written_back = 0

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def commit(self, *, label: str | None = None) -> str:
        """Check size and digest, then move the blob into place; returns its sha256 hex."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        actual = self._hash.hexdigest()
        what = label or "blob"
        if self.expected_size is not None and self.size != self.expected_size:
            self.discard(force=True)
            raise DigestMismatch(f"{what}: size {self.size} bytes, expected {self.expected_size}",
                                 path=label, expected=str(self.expected_size), actual=str(self.size))
        if self.expected_sha256 is not None and actual != self.expected_sha256:
            self.discard(force=True)
            raise DigestMismatch(f"{what}: sha256 {actual[:12]}…, expected {self.expected_sha256[:12]}…",
                                 path=label, expected=self.expected_sha256, actual=actual)
        target = self.store.path(actual)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            self.path.unlink(missing_ok=True)
        else:
            # read-only once committed: snapshots hard-link blobs, so a write through a snapshot
            # file would otherwise change the bytes of every model that shares the blob
            os.chmod(self.path, 0o444)
            os.replace(self.path, target)
            fsync_dir(target.parent)
        self._done = True
        return actual

    def discard(self, *, force: bool = False) -> None:
        if not self._file.closed:
            self._file.close()
        if force or not self._keep_partial or self.size == 0:  # an empty partial resumes nothing
            self.path.unlink(missing_ok=True)
        self._done = True

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._done:
            self.discard()


class BlobStore:
    """Blobs by sha256 under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"

    def path(self, sha256: str) -> Path:
        """Where blob ``sha256`` lives; anything but 64 lowercase hex is refused (never a path)."""
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256 digest: {str(sha256)[:80]!r}")
        return self.root / "sha256" / sha256

    def has(self, sha256: str) -> bool:
        return is_sha256(sha256) and self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.path(sha256).stat().st_size

    def writer(self, **kwargs) -> BlobWriter:
        return BlobWriter(self, **kwargs)

    def put_file(self, source: Path, *, expected_sha256: str | None = None, label: str | None = None) -> tuple[str, int]:
        """Copy a file in, hashing while copying; returns (sha256, size)."""
        with self.writer(expected_sha256=expected_sha256) as writer:
            buffer = bytearray(CHUNK)
            view = memoryview(buffer)
            with open(source, "rb", buffering=0) as handle:
                while n := handle.readinto(buffer):
                    writer.write(view[:n])
            return writer.commit(label=label), writer.size

    def put_bytes(self, data: bytes, *, expected_sha256: str | None = None) -> str:
        with self.writer(expected_sha256=expected_sha256) as writer:
            writer.write(data)
            return writer.commit()

    def read_bytes(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path(sha256), "rb")

    def iter_range(self, sha256: str, start: int = 0, end: int | None = None,
                   chunk: int = 1024 * 1024) -> Iterator[bytes]:
        """Yield bytes ``[start, end]`` (inclusive end, like HTTP ranges)."""
        with self.open(sha256) as handle:
            handle.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                data = handle.read(chunk if remaining is None else min(chunk, remaining))
                if not data:
                    break
                if remaining is not None:
                    remaining -= len(data)
                yield data

    def delete(self, sha256: str) -> None:
        path = self.path(sha256)
        try:
            path.unlink(missing_ok=True)
        except PermissionError:  # Windows refuses to delete a read-only file
            os.chmod(path, 0o644)
            path.unlink(missing_ok=True)

    def all(self) -> Iterator[str]:
        folder = self.root / "sha256"
        if folder.is_dir():
            for entry in os.scandir(folder):
                if entry.is_file():
                    yield entry.name
