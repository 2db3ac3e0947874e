"""Settings of one ``gptstore server`` and the layout of its data directory.

    DATA/catalog.sqlite3        the relational catalog (users, tokens, signing keys, repos, commits,
                                refs, search index)
    DATA/blobs/sha256/<hex>     file contents, content-addressed (the library's blob engine)
    DATA/blobs/tmp/             blobs being written; leftovers are removed at start
    DATA/uploads/<oid>/<repo>/  parts of one repo's multipart LFS upload (and the part ids each
                                part upload produced) until it is completed
    DATA/secret                 key that signs LFS upload URLs (0600, generated on first use)

With ``blobs="s3://bucket/prefix"`` the blobs and LFS uploads live in that bucket instead
(``PREFIX/sha256/<hex>``, ``PREFIX/uploads/…``; see gptstore.server.objectstore).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024
GiB = 1024 * MiB
#: values of ``--log-format``
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class ServerSettings:
    data: Path
    host: str = "127.0.0.1"
    port: int = 8765
    #: base URL clients reach the server at (scheme://host[:port][/prefix]); None = from the Host header
    public_url: str | None = None
    #: files of at least this size are uploaded through LFS, smaller ones inline in the commit
    lfs_threshold: int = 10 * MiB
    #: LFS objects of at least this size (or above max_body) are uploaded in parts of part_size
    multipart_threshold: int = 512 * MiB
    part_size: int = 64 * MiB
    #: largest LFS object an LFS batch accepts (413 for that object beyond)
    max_object_size: int = 50 * GiB
    #: largest request body accepted (commit NDJSON, one LFS PUT); larger ones get 413
    max_body: int = 2048 * MiB
    #: entries per page of list_models, tree and commits listings
    page_size: int = 1000
    #: seconds an LFS upload URL stays valid
    upload_url_ttl: int = 6 * 3600
    #: open connections served at once (idle keep-alive ones included); beyond it requests get 503
    limit_concurrency: int = 512
    #: seconds an idle kept-alive connection stays open between requests
    timeout_keep_alive: int = 30
    #: seconds a client may take to send a request's headers, or stall while sending a body or
    #: reading a response, before it is disconnected (408 where an answer is still possible)
    request_timeout: float = 60.0
    #: bytes/s a client must average sending a body (else 408) or reading a response (else it is
    #: dropped), after request_timeout seconds of grace
    min_transfer_rate: int = 1024
    #: largest request line + headers accepted; larger ones get 431
    max_header_size: int = 64 * 1024
    #: refuse commits that add or change gptstore.json/gptstore.sig without a valid signature by a
    #: key registered for the manifest's namespace (``gptstore server key add``); not persisted
    require_signed: bool = False
    #: key that signs upload URLs, sessions and CSRF tokens; every replica of one store needs the
    #: same (``--secret`` / ``GPTSTORE_SERVER_SECRET``); None = ``DATA/secret``, this machine's own
    secret: str | None = field(default=None, repr=False)
    #: where blobs live: None = DATA/blobs; ``s3://bucket/prefix`` = an S3-compatible bucket (endpoint
    #: and credentials from the AWS_* environment variables; see gptstore.server.objectstore)
    blobs: str | None = None
    #: the bucket's endpoint as clients reach it (``http[s]://HOST[:PORT]``), when it differs from the
    #: one the server uses (AWS_ENDPOINT_URL, e.g. a name only the replicas' network resolves):
    #: presigned URLs are made and signed for it. None = the server's own endpoint
    blobs_public_url: str | None = None
    #: the catalog's URL: None = ``sqlite:///DATA/catalog.sqlite3``; ``postgresql://USER[:PASS]@HOST[:PORT]/DB``
    #: = a PostgreSQL database shared by every replica (``--catalog`` / ``GPTSTORE_SERVER_CATALOG``)
    catalog: str | None = None
    #: access log lines: ``text`` (one human-readable line) or ``json`` (one JSON object per request)
    log_format: str = "text"
    #: seconds a SIGTERM waits for requests in flight (an upload, a download) before cancelling them
    shutdown_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.public_url is not None:
            object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        if self.part_size < 1 or self.part_size > self.max_body:
            raise ValueError("part_size must be between 1 byte and max_body")
        if self.limit_concurrency < 2 or self.timeout_keep_alive < 1 or self.request_timeout <= 0:
            raise ValueError("limit_concurrency must be at least 2, timeout_keep_alive and request_timeout positive")
        if self.min_transfer_rate < 1 or self.max_header_size < 1024:
            raise ValueError("min_transfer_rate must be at least 1 byte/s and max_header_size at least 1 KiB")
        if self.max_object_size < 1:
            raise ValueError("max_object_size must be at least 1 byte")
        if self.blobs is not None:
            from .objectstore import parse_blobs_url

            parse_blobs_url(self.blobs)
        if self.blobs_public_url is not None:
            from .objectstore import parse_public_endpoint

            if self.blobs is None:
                raise ValueError("--blobs-public-url needs --blobs s3://…: blobs in the data directory are "
                                 "served by the server itself")
            object.__setattr__(self, "blobs_public_url", parse_public_endpoint(self.blobs_public_url))
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must be 0 seconds or more")

    @property
    def catalog_path(self) -> Path:
        return self.data / "catalog.sqlite3"

    @property
    def catalog_url(self) -> str:
        """The catalog to open: ``catalog`` as given, else the SQLite file in the data directory."""
        return self.catalog or f"sqlite:///{self.catalog_path}"

    @property
    def blobs_path(self) -> Path:
        return self.data / "blobs"

    @property
    def uploads_path(self) -> Path:
        return self.data / "uploads"

    @property
    def prefix(self) -> str:
        """The path part of the public URL (e.g. ``/hf``), or ``""``."""
        if not self.public_url:
            return ""
        from urllib.parse import urlsplit

        return urlsplit(self.public_url).path.rstrip("/")

    def signing_key(self) -> bytes:
        """The configured secret, or ``DATA/secret`` (created with 0600 on first use)."""
        if self.secret:
            return self.secret.encode()
        path = self.data / "secret"
        if not path.exists():
            from ..fsutil import atomic_write

            self.data.mkdir(parents=True, exist_ok=True)
            atomic_write(path, secrets.token_hex(32).encode(), mode=0o600)
        return path.read_text().strip().encode()

    def check_shared_secret(self) -> None:
        """Refuse to serve a shared catalog (any URL but ``sqlite:``) without an explicit secret:
        replicas that each generated their own ``DATA/secret`` would reject one another's upload
        URLs, sessions and CSRF tokens, failing only when a load balancer switches replicas."""
        catalog = self.catalog
        if catalog and not catalog.startswith("sqlite:") and not self.secret:
            raise ValueError(f"a shared catalog ({catalog.split(':', 1)[0]}://…) needs the same secret on every "
                             "replica: pass --secret or set GPTSTORE_SERVER_SECRET (e.g. `openssl rand -hex 32`)")
