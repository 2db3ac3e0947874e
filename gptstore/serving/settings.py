"""What ``gptstore serve`` runs with, and its API key file.

The key file holds one ``name: sha256-hex-of-the-key`` entry per line (``#`` starts a comment), so
the file never holds a key itself; make an entry with ``gptstore serve --hash-key``, or
``printf %s "$KEY" | sha256sum``. Without a key file the server accepts every request and, so that
nobody exposes an open server by accident, listens on a loopback address only unless
``--insecure`` is given too.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

#: the largest key file read
MAX_KEY_FILE = 1024 * 1024
_KEY_LINE = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._@-]{0,63})\s*:\s*([0-9a-fA-F]{64})\s*")


def hash_key(key: str) -> str:
    """The entry a key file holds for ``key``: sha256 of its UTF-8 bytes, in hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def load_keys(path: Path) -> dict[str, str]:
    """``{key hash: name}`` from a key file; a malformed line is an error naming it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the API key file {path}: {exc.strerror or exc}",
                         hint="pass --api-keys with a readable file of `name: sha256-hex` lines") from None
    if len(data) > MAX_KEY_FILE:
        raise UsageError(f"the API key file {path} is larger than {MAX_KEY_FILE} bytes", hint="is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"the API key file {path} is not UTF-8 text", hint="write `name: sha256-hex` lines") from None
    keys: dict[str, str] = {}
    names: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0]
        if not line.strip():
            continue
        found = _KEY_LINE.fullmatch(line)
        if not found:
            raise UsageError(f"{path}, line {number}: expected `name: sha256-hex-of-the-key`",
                             hint="names are letters, digits and ._@- ; make a hash with `gptstore serve --hash-key`")
        name, digest = found.group(1), found.group(2).lower()
        if name in names or digest in keys:
            raise UsageError(f"{path}, line {number}: the name or key hash of {name!r} appears twice",
                             hint="give each key one line")
        names.add(name)
        keys[digest] = name
    if not keys:
        raise UsageError(f"the API key file {path} has no keys", hint="add `name: sha256-hex` lines")
    return keys


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*", re.IGNORECASE)
_SIZE_UNIT = {None: 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes of a size such as ``8GiB``, ``500MB`` or ``1048576``."""
    found = _SIZE.fullmatch(text or "")
    if not found or float(found.group(1)) <= 0:
        raise UsageError(f"--max-memory {text!r} is not a size", hint="write e.g. 8GiB, 500MB or a number of bytes")
    unit = found.group(2).lower() if found.group(2) else None
    return int(float(found.group(1)) * _SIZE_UNIT[unit])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeSettings:
    """Everything the serving app needs; checked on construction (one-line errors)."""

    refs: list[str] = field(default_factory=list)  #: models to load at start
    host: str = "127.0.0.1"
    port: int = 8000
    max_models: int = 2
    device: str = "auto"
    api_keys: Path | None = None
    pull: bool = False
    store: str | None = None  #: where --pull pulls from (default: the effective store)
    token: str | None = None  #: for that store only (default: GPTSTORE_TOKEN, the saved login)
    insecure: bool = False
    max_queue: int = 16  #: requests queued or running per model before 503
    max_body: int = 4 * 1024 * 1024  #: largest request body, bytes
    keep_alive: float | None = None  #: seconds an idle model stays loaded; None = until evicted
    keys: dict[str, str] = field(default_factory=dict)  #: {sha256 hex: name}, from api_keys
    max_batch: int = 8  #: rows (prompts × n) one batched generation may hold; 1 turns batching off
    batch_window_ms: float = 5.0  #: how long a model's worker waits for more requests to batch
    max_memory: int | None = None  #: bytes the loaded models' weights may take (besides max_models)

    def __post_init__(self) -> None:
        if self.max_models < 1:
            raise UsageError(f"--max-models must be at least 1 (got {self.max_models})")
        if self.max_batch < 1:
            raise UsageError(f"--max-batch must be at least 1 (got {self.max_batch})")
        if not 0 <= self.batch_window_ms <= 1000:
            raise UsageError(f"--batch-window-ms must be between 0 and 1000 (got {self.batch_window_ms})")
        if isinstance(self.max_memory, str):
            self.max_memory = parse_size(self.max_memory)
        if self.api_keys is not None:
            self.keys = load_keys(self.api_keys)
        elif not self.insecure and not is_loopback(self.host):
            raise UsageError(f"refusing to serve on {self.host} without API keys",
                             hint="pass --api-keys FILE, or --insecure to serve every client without a key")

    def key_name(self, authorization: str | None) -> str | None:
        """The name of the key in an ``Authorization: Bearer KEY`` header; ``""`` when the server
        has no keys (every request is allowed); ``None`` when the key is missing or unknown."""
        if not self.keys:
            return ""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        digest = hash_key(key.strip())
        for known, name in self.keys.items():
            if hmac.compare_digest(known, digest):
                return name
        return None
