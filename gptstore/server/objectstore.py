"""S3-compatible blob storage (``gptstore server --blobs s3://bucket/prefix``): the bytes bypass the server.

The bucket holds the same content-addressed blobs as ``DATA/blobs``: ``PREFIX/sha256/<hex>``.
Small regular files still travel inline through the server (:meth:`S3Blobs.put_bytes`); LFS objects
are uploaded by the client straight to the bucket with presigned URLs, into a *staging* key
``PREFIX/uploads/<oid>/<repo hash>`` that no one else's upload and no download ever uses. Only after
the server has read the staged object back and hashed it (size and sha256 must match the oid) is it
copied to ``sha256/<oid>`` (a server-side copy) and granted to the repo; wrong bytes are deleted.
So a client can never overwrite a blob another repo references, and a commit never references
bytes nobody verified. Downloads answer with a redirect to a presigned GET of ``sha256/<oid>``.

Endpoint, region and credentials come from the standard AWS variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``), so MinIO, Ceph RGW, R2 and
AWS all work. Incomplete multipart uploads of clients that give up are best expired by a bucket
lifecycle rule (``AbortIncompleteMultipartUpload``).
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any, BinaryIO, Iterator

from ..blobs import CHUNK, is_sha256
from ..errors import DigestMismatch

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9._\-/]{0,200}$")
#: bytes per read when hashing a staged object back, and how many such reads may wait to be hashed
READ_CHUNK = 8 * 1024 * 1024
READ_AHEAD = 4
#: the largest object one CopyObject request may copy (S3's limit); larger ones are copied in parts
MAX_COPY = 5 * 1024**3


def parse_blobs_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → (bucket, ``prefix/`` or ``""``); ValueError saying what is wrong."""
    if not url.startswith("s3://"):
        raise ValueError(f"--blobs must be s3://BUCKET[/PREFIX] (or omitted for the data directory), not {url[:100]!r}")
    bucket, _, prefix = url[5:].partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"invalid bucket name {bucket[:100]!r} in --blobs: use 3-63 lowercase letters, digits, . and -")
    if not _PREFIX.fullmatch(prefix) or ".." in prefix.split("/"):
        raise ValueError(f"invalid prefix {prefix[:100]!r} in --blobs: use letters, digits and ._-/")
    return bucket, f"{prefix}/" if prefix else ""


def parse_public_endpoint(url: str) -> str:
    """``http[s]://HOST[:PORT]`` (a trailing ``/`` dropped) → the same; ValueError saying what is wrong."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"--blobs-public-url must be http[s]://HOST[:PORT], the bucket's endpoint as clients "
                         f"reach it, not {url[:100]!r}")
    return f"{parts.scheme}://{parts.netloc}"


class S3Blobs:
    """The blob interface of :class:`gptstore.blobs.BlobStore` (has, size, open, read_bytes,
    put_bytes, iter_range, delete) over one bucket, plus presigned uploads and downloads."""

    def __init__(self, url: str, *, url_ttl: int = 3600, public_endpoint: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = parse_blobs_url(url)
        self.url_ttl = url_ttl
        config = Config(signature_version="s3v4", connect_timeout=10, read_timeout=60, retries={"max_attempts": 3})
        self.client: Any = boto3.client("s3", config=config)
        #: makes the presigned URLs clients follow: signed for the host they use (``public_endpoint``)
        self.presigner: Any = self.client if public_endpoint is None else \
            boto3.client("s3", endpoint_url=public_endpoint, config=config)

    # -- keys ----------------------------------------------------------------------------------
    def key(self, sha256: str) -> str:
        if not is_sha256(sha256):
            raise ValueError("a blob id is 64 lowercase hex characters")
        return f"{self.prefix}sha256/{sha256}"

    def staging_key(self, oid: str, repo_id: str) -> str:
        """Where a client's upload of ``oid`` to ``repo_id`` lands until verified (the repo id is
        hashed, never used as given)."""
        self.key(oid)  # refuses anything but a sha256
        return f"{self.prefix}uploads/{oid}/" \
               f"{hashlib.sha256(repo_id.encode()).hexdigest()[:32]}"

    # -- reading -------------------------------------------------------------------------------
    def _head(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def has(self, sha256: str) -> bool:
        return self._head(self.key(sha256)) is not None

    def size(self, sha256: str) -> int:
        head = self._head(self.key(sha256))
        if head is None:
            raise FileNotFoundError(f"blob {sha256} is not in the bucket")
        return int(head["ContentLength"])

    def open(self, sha256: str) -> BinaryIO:
        """A streamed reader of the whole blob (a context manager, like an open file)."""
        return self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"]

    def read_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as body:
            return body.read()

    def iter_range(self, sha256: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start``..``end`` (inclusive) of a blob, in chunks."""
        answer = self.client.get_object(Bucket=self.bucket, Key=self.key(sha256), Range=f"bytes={start}-{end}")
        with answer["Body"] as body:
            while chunk := body.read(CHUNK):
                yield chunk

    # -- writing -------------------------------------------------------------------------------
    def put_bytes(self, data: bytes, *, expected_sha256: str | None = None) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if expected_sha256 is not None and sha != expected_sha256:
            raise DigestMismatch(f"content hashes to {sha}, not {expected_sha256}")
        if not self.has(sha):
            self.client.put_object(Bucket=self.bucket, Key=self.key(sha), Body=data)
        return sha

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    # -- presigned transfers -------------------------------------------------------------------
    def presigned_get(self, sha256: str, *, filename: str | None = None) -> str:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self.key(sha256)}
        if filename:
            safe = re.sub(r"[^A-Za-z0-9._\-]", "_", filename)[:200]
            params["ResponseContentDisposition"] = f'attachment; filename="{safe}"'
        return self.presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=self.url_ttl)

    def presigned_put(self, oid: str, repo_id: str) -> str:
        return self.presigner.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": self.staging_key(oid, repo_id)},
            ExpiresIn=self.url_ttl)

    def start_multipart(self, oid: str, repo_id: str) -> str:
        """A new multipart upload into the staging key; its UploadId."""
        answer = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.staging_key(oid, repo_id))
        return answer["UploadId"]

    def presigned_part(self, oid: str, repo_id: str, upload_id: str, number: int) -> str:
        return self.presigner.generate_presigned_url(
            "upload_part", Params={"Bucket": self.bucket, "Key": self.staging_key(oid, repo_id),
                                   "UploadId": upload_id, "PartNumber": number}, ExpiresIn=self.url_ttl)

    def complete_multipart(self, oid: str, repo_id: str, upload_id: str, etags: list[str]) -> None:
        """CompleteMultipartUpload with the client's part etags (S3 checks them: they name parts of
        this upload of the staging key only); ValueError with S3's reason when it refuses."""
        from botocore.exceptions import ClientError

        parts = [{"PartNumber": n, "ETag": f'"{etag}"'} for n, etag in enumerate(etags, 1)]
        try:
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=self.staging_key(oid, repo_id),
                                                  UploadId=upload_id, MultipartUpload={"Parts": parts})
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise ValueError(f"{error.get('Code', 'error')}: {str(error.get('Message', ''))[:200]}") from None

    def staged(self, oid: str, repo_id: str) -> bool:
        return self._head(self.staging_key(oid, repo_id)) is not None

    def promote(self, oid: str, repo_id: str, size: int) -> None:
        """Verify the staged upload of ``oid`` (size, then sha256 of the bytes read back) and move it
        to ``sha256/<oid>``; the staged object is deleted either way. DigestMismatch when it differs,
        FileNotFoundError when nothing is staged.

        The client still holds a URL that can overwrite the staging key, so every read and the copy
        are conditioned on the ETag the first HEAD saw (``If-Match``, ``x-amz-copy-source-if-match``):
        bytes put there after the check are never copied. The read-back overlaps reading and hashing
        (:meth:`_hash`); the copy is one CopyObject up to S3's 5 GiB limit (the
        managed multipart copy above it is ~4x slower for a 256 MB object on moto)."""
        key = self.staging_key(oid, repo_id)
        try:
            head = self._head(key)
            if head is None:
                raise FileNotFoundError(f"LFS object {oid[:12]}… was not uploaded")
            if int(head["ContentLength"]) != size:
                raise DigestMismatch(f"LFS object {oid[:12]}… has {head['ContentLength']} bytes, not {size}")
            etag = head["ETag"]
            digest = self._hash(key, size, etag)
            if digest != oid:
                raise DigestMismatch(f"the uploaded bytes hash to {digest}, not {oid}")
            if not self.has(oid):
                self._copy_verified(key, oid, size, etag)
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def _hash(self, key: str, size: int, etag: str) -> str:
        """sha256 of ``key``'s bytes as of ``etag``: one GET read by a worker thread while this one
        hashes the chunk before (both release the GIL), at most :data:`READ_AHEAD` chunks buffered.
        One GET rather than parallel ranges: moto (and some gateways) read the whole object for
        every range, which made 16 ranges of a 256 MB object 5x slower than one stream."""
        import queue
        import threading

        from botocore.exceptions import ClientError

        chunks: queue.Queue = queue.Queue(READ_AHEAD)
        stop = threading.Event()

        def read(body: Any) -> None:
            try:
                with body:
                    while not stop.is_set() and (chunk := body.read(READ_CHUNK)):
                        chunks.put(chunk)
                chunks.put(b"")
            except BaseException as exc:  # noqa: BLE001 - handed to the hashing thread
                chunks.put(exc)

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=etag)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise DigestMismatch("the uploaded object changed while it was verified") from None
            raise
        reader = threading.Thread(target=read, args=(body,), name="s3-verify", daemon=True)
        reader.start()
        digest, total = hashlib.sha256(), 0
        try:
            while True:
                chunk = chunks.get()
                if isinstance(chunk, BaseException):
                    raise chunk
                if not chunk:
                    break
                total += len(chunk)
                if total > size:
                    raise DigestMismatch("the uploaded object changed while it was verified (it grew)")
                digest.update(chunk)
        finally:
            stop.set()
            while reader.is_alive():  # unblock a reader waiting on a full queue
                try:
                    chunks.get_nowait()
                except queue.Empty:
                    reader.join(0.05)
        return digest.hexdigest()

    def _copy_verified(self, key: str, oid: str, size: int, etag: str) -> None:
        """Copy the verified staging object to ``sha256/<oid>``, only as of ``etag``; a copy whose
        single-part ETag (the bytes' MD5) differs from the verified one is deleted and refused."""
        source = {"Bucket": self.bucket, "Key": key}
        if size > MAX_COPY:
            self.client.copy(source, self.bucket, self.key(oid), ExtraArgs={"CopySourceIfMatch": etag})
            return
        answer = self.client.copy_object(CopySource=source, Bucket=self.bucket, Key=self.key(oid),
                                         CopySourceIfMatch=etag)
        copied = answer.get("CopyObjectResult", {}).get("ETag", "").strip('"')
        if "-" not in etag and copied and copied != etag.strip('"'):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(oid))
            raise DigestMismatch("the uploaded object changed while it was verified")

    def check(self) -> None:
        """Raise unless the bucket is reachable (for readiness checks)."""
        self.client.head_bucket(Bucket=self.bucket)

    def clean_staging(self, *, max_age: float) -> None:
        """Delete staged uploads and abort multipart uploads older than ``max_age`` seconds (their
        URLs have expired: nothing can complete them). Also the start-up check that the bucket is
        reachable: RuntimeError with one line saying what to fix."""
        from botocore.exceptions import BotoCoreError, ClientError

        staging = f"{self.prefix}uploads/"
        cutoff = time.time() - max_age
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=staging)
            for page in pages:
                for item in page.get("Contents", []):
                    if item["LastModified"].timestamp() < cutoff:
                        self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
            answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=staging)
            for upload in answer.get("Uploads", []):
                if upload["Initiated"].timestamp() < cutoff:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])
        except (BotoCoreError, ClientError) as exc:
            raise RuntimeError(f"the bucket {self.bucket!r} of --blobs is not usable ({str(exc)[:200]}); check the "
                               "bucket name, AWS_ENDPOINT_URL and the AWS credentials") from None
