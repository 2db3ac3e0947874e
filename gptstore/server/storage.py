"""File contents of the store: the library's content-addressed blob engine plus git ids.

Every file of every revision is a blob ``blobs/sha256/<hex>`` written through
:class:`gptstore.blobs.BlobWriter` (hashed while written, renamed into place only when whole and
matching). The Hub client also wants git ids: a regular file's ``oid`` is its git blob SHA-1, an
LFS file's is the git blob SHA-1 of its pointer file, and a folder's is a SHA-1 over its entries.

Multipart LFS uploads stage their parts in ``uploads/<oid>/`` (one small blob store per object)
until the completion call streams them, in order, into one blob.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..blobs import CHUNK, BlobStore
from ..errors import DigestMismatch

_HEX64 = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class FileRow:
    """One file of a revision."""

    path: str
    sha256: str
    size: int
    git_oid: str
    lfs: bool


def is_sha256(value: str) -> bool:
    return len(value) == 64 and set(value) <= _HEX64


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def regular_row(path: str, data: bytes, sha256: str) -> FileRow:
    return FileRow(path, sha256, len(data), git_blob_id(data), False)


def lfs_row(path: str, sha256: str, size: int) -> FileRow:
    return FileRow(path, sha256, size, git_blob_id(lfs_pointer(sha256, size)), True)


def tree_id(entries: Iterable[tuple[str, str]]) -> str:
    """A folder's id: SHA-1 over its sorted (name, oid) entries."""
    digest = hashlib.sha1()
    for name, oid in sorted(entries):
        digest.update(f"{name}\0{oid}\n".encode())
    return digest.hexdigest()


class Storage:
    """Blobs and multipart staging under a server's data directory."""

    def __init__(self, blobs_root: Path, uploads_root: Path) -> None:
        self.blobs = BlobStore(blobs_root)
        self.uploads_root = uploads_root

    def clean(self, *, max_age: float) -> None:
        """Remove leftovers of interrupted writes: unfinished blobs and stale multipart parts."""
        if self.blobs.tmp.is_dir():
            for leftover in self.blobs.tmp.glob("blob.*.part"):
                leftover.unlink(missing_ok=True)
        if self.uploads_root.is_dir():
            cutoff = time.time() - max_age
            for folder in self.uploads_root.iterdir():
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)

    def put_bytes(self, data: bytes) -> str:
        return self.blobs.put_bytes(data)

    def parts(self, oid: str) -> BlobStore:
        """The staging store for the parts of the multipart upload of ``oid``."""
        return BlobStore(self.uploads_root / oid)

    def assemble(self, oid: str, size: int, part_ids: list[str]) -> str:
        """Stream the staged parts, in order, into the blob ``oid``; raises DigestMismatch."""
        parts = self.parts(oid)
        missing = [n for n, part in enumerate(part_ids, 1) if not parts.has(part)]
        if missing:
            raise DigestMismatch(f"part {missing[0]} of {oid[:12]}… was not uploaded or its etag differs",
                                 path=oid, expected=part_ids[missing[0] - 1])
        with self.blobs.writer(expected_sha256=oid, expected_size=size) as writer:
            buffer = bytearray(CHUNK)
            view = memoryview(buffer)
            for part in part_ids:
                with open(parts.path(part), "rb", buffering=0) as handle:
                    while n := handle.readinto(buffer):
                        writer.write(view[:n])
            result = writer.commit(label=f"LFS object {oid[:12]}…")
        shutil.rmtree(parts.root, ignore_errors=True)
        return result
