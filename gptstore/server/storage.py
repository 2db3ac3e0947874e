"""File contents of the store: the library's content-addressed blob engine plus git ids.

Every file of every revision is a blob ``blobs/sha256/<hex>`` written through
:class:`gptstore.blobs.BlobWriter` (hashed while written, renamed into place only when whole and
matching). The Hub client also wants git ids: a regular file's ``oid`` is its git blob SHA-1, an
LFS file's is the git blob SHA-1 of its pointer file, and a folder's is a SHA-1 over its entries.

Multipart LFS uploads stage their parts in ``uploads/<oid>/<repo key>/`` (one small blob store per
object and repo, so one repo's upload never sees another's parts) until the completion call streams
them, in order, into one blob. Each part upload records the id (sha256) it produced under
``parts/<number>``; a completion is accepted only with exactly those ids, so a client-supplied etag
never becomes a path and knowing a digest never lends another upload's bytes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..blobs import CHUNK, BlobStore, is_sha256
from ..errors import DigestMismatch
from ..fsutil import atomic_write

if TYPE_CHECKING:
    from .objectstore import S3Blobs



class UploadRejected(Exception):
    """A multipart completion that does not name this upload's own parts (the message is safe to
    show: it names part numbers only, never a path or anything about other files)."""


@dataclass(frozen=True)
class FileRow:
    """One file of a revision."""

    path: str
    sha256: str
    size: int
    git_oid: str
    lfs: bool




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
    """Blobs and multipart staging under a server's data directory, or blobs in a bucket.

    With ``blobs_url`` (``s3://bucket/prefix``) :attr:`blobs` is an
    :class:`~gptstore.server.objectstore.S3Blobs` and :attr:`remote` is that same store: LFS bytes
    then go to and come from the bucket through presigned URLs (see objectstore); without it both
    are today's local disk (:attr:`remote` is None) and nothing else changes.
    """

    def __init__(self, blobs_root: Path, uploads_root: Path, *, blobs_url: str | None = None,
                 url_ttl: int = 3600, public_endpoint: str | None = None) -> None:
        self.remote: S3Blobs | None = None
        if blobs_url:
            from .objectstore import S3Blobs

            self.remote = S3Blobs(blobs_url, url_ttl=url_ttl, public_endpoint=public_endpoint)
        self.blobs: Any = self.remote if self.remote is not None else BlobStore(blobs_root)
        self.uploads_root = uploads_root

    def clean(self, *, max_age: float) -> None:
        """Remove leftovers of interrupted writes: unfinished blobs and stale multipart parts."""
        if self.remote is not None:
            self.remote.clean_staging(max_age=max_age)
        elif self.blobs.tmp.is_dir():
            for leftover in self.blobs.tmp.glob("blob.*.part"):
                leftover.unlink(missing_ok=True)
        if self.uploads_root.is_dir():
            cutoff = time.time() - max_age
            for folder in self.uploads_root.iterdir():
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)

    def put_bytes(self, data: bytes) -> str:
        return self.blobs.put_bytes(data)

    def staging(self, oid: str, repo_id: str) -> Path:
        """The folder of the multipart upload of ``oid`` to ``repo_id``; both are checked, neither
        becomes a path as given (the repo id is hashed)."""
        if not is_sha256(oid):
            raise ValueError("an LFS oid is 64 lowercase hex characters")
        return self.uploads_root / oid / hashlib.sha256(repo_id.encode()).hexdigest()[:32]

    def parts(self, oid: str, repo_id: str) -> BlobStore:
        """The staging store for the parts of the multipart upload of ``oid`` to ``repo_id``."""
        return BlobStore(self.staging(oid, repo_id))

    def record_part(self, oid: str, repo_id: str, number: int, part_id: str) -> None:
        """Remember that part ``number`` of this upload is the staged part ``part_id``."""
        if not is_sha256(part_id) or number < 1:
            raise ValueError("a part id is 64 lowercase hex characters and its number at least 1")
        atomic_write(self.staging(oid, repo_id) / "parts" / str(number), part_id.encode())

    def _recorded(self, oid: str, repo_id: str, number: int) -> str | None:
        try:
            return (self.staging(oid, repo_id) / "parts" / str(number)).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def assemble(self, oid: str, repo_id: str, size: int, part_ids: list[str]) -> str:
        """Stream the staged parts, in order, into the blob ``oid``.

        ``part_ids`` come from the client: each must be the 64-hex id that part's upload returned
        to this repo's upload of ``oid`` (UploadRejected otherwise); the whole must hash to ``oid``
        with ``size`` bytes (DigestMismatch otherwise).
        """
        for number, part in enumerate(part_ids, 1):
            if not is_sha256(part):
                raise UploadRejected(f"part {number}: the etag must be the 64-hex id that the part's "
                                     "upload answered with")
            if self._recorded(oid, repo_id, number) != part:
                raise UploadRejected(f"part {number} was not uploaded through this upload's part URLs, "
                                     "or its etag differs; upload it again")
        parts = self.parts(oid, repo_id)
        with self.blobs.writer(expected_sha256=oid, expected_size=size) as writer:
            buffer = bytearray(CHUNK)
            view = memoryview(buffer)
            for number, part in enumerate(part_ids, 1):
                try:
                    handle = open(parts.path(part), "rb", buffering=0)
                except FileNotFoundError:  # completed or cleaned meanwhile
                    raise UploadRejected(f"part {number} is no longer staged; upload it again") from None
                with handle:
                    while n := handle.readinto(buffer):
                        writer.write(view[:n])
            result = writer.commit(label=f"LFS object {oid[:12]}…")
        self.discard_upload(oid, repo_id)
        return result

    def discard_upload(self, oid: str, repo_id: str) -> None:
        """Remove this upload's staged parts (and the object's folder once no upload uses it)."""
        staging = self.staging(oid, repo_id)
        shutil.rmtree(staging, ignore_errors=True)
        try:
            os.rmdir(staging.parent)
        except OSError:  # another repo's upload of the same object is still staged there
            pass

    def ready(self) -> None:
        """Readiness (``GET /readyz``): raise OSError unless a blob could be written now. The
        cheapest real check: create and remove an empty file beside the blobs being written, which
        catches a blob directory that cannot be created and a read-only or full volume (even for
        root, unlike ``os.access``).
        An object store answers the same question with one HEAD on its bucket (``S3Blobs.check``)."""
        if self.remote is not None:
            self.remote.check()
            return
        self.blobs.tmp.mkdir(parents=True, exist_ok=True)
        probe = self.blobs.tmp / f"ready.{os.getpid()}.{time.monotonic_ns()}.probe"
        with open(probe, "xb"):
            pass
        probe.unlink()
