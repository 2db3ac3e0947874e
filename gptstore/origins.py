"""Where a pulled model came from: the store URL, recorded beside its manifest in the library.

``gptstore lock`` without ``--store`` pins the store a model was pulled from, not the local
library (a path only this machine has). The record is ``manifests/sha256/<hex>.origin``, JSON
``{"store": URL}``, written by a pull and removed with the manifest by garbage collection. A model
that was only published locally has none, so lock can say to pass ``--store`` or push it first.

The file sits in the user's own library, yet it is read as data: size-capped and validated, and a
damaged record reads as "no origin", never as an error or a path.
"""

from __future__ import annotations

import json
from pathlib import Path

from .fsutil import atomic_write

ORIGIN_SUFFIX = ".origin"
MAX_ORIGIN_BYTES = 4096


def origin_path(library_root: Path, digest: str) -> Path:
    return library_root / "manifests" / "sha256" / f"{digest}{ORIGIN_SUFFIX}"


def record_origin(library_root: Path, digest: str, store_url: str) -> None:
    """Remember that the manifest ``digest`` was pulled from ``store_url`` (the last pull wins)."""
    atomic_write(origin_path(library_root, digest), json.dumps({"store": store_url}).encode())


def read_origin(library_root: Path, digest: str) -> str | None:
    """The store URL the manifest ``digest`` was pulled from; None when never pulled (or unreadable)."""
    try:
        with origin_path(library_root, digest).open("rb") as fh:
            raw = fh.read(MAX_ORIGIN_BYTES + 1)
        data = json.loads(raw) if len(raw) <= MAX_ORIGIN_BYTES else None
    except (OSError, ValueError):
        return None
    url = data.get("store") if isinstance(data, dict) else None
    if not isinstance(url, str) or not url or len(url) > 2048 or not url.isprintable():
        return None
    return url
