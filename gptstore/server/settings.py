"""Settings of one ``gptstore server`` and the layout of its data directory.

    DATA/catalog.sqlite3        the relational catalog (users, tokens, signing keys, repos, commits,
                                refs, search index)
    DATA/blobs/sha256/<hex>     file contents, content-addressed (the library's blob engine)
    DATA/blobs/tmp/             blobs being written; leftovers are removed at start
    DATA/uploads/<oid>/         parts of multipart LFS uploads until they are completed
    DATA/secret                 key that signs LFS upload URLs (0600, generated on first use)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024


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
    #: largest request body accepted (commit NDJSON, one LFS PUT); larger ones get 413
    max_body: int = 2048 * MiB
    #: entries per page of list_models, tree and commits listings
    page_size: int = 1000
    #: seconds an LFS upload URL stays valid
    upload_url_ttl: int = 6 * 3600
    #: refuse commits that add or change gptstore.json/gptstore.sig without a valid signature by a
    #: key registered for the manifest's namespace (``gptstore server key add``); not persisted
    require_signed: bool = False
    secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.public_url is not None:
            object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        if self.part_size < 1 or self.part_size > self.max_body:
            raise ValueError("part_size must be between 1 byte and max_body")

    @property
    def catalog_path(self) -> Path:
        return self.data / "catalog.sqlite3"

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
