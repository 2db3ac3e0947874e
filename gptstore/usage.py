"""The usage log: one row per generation call in SQLite at ``GPTSTORE_HOME/usage.db``.

Each ``generate`` / ``stream`` call records the reference, the manifest digest, the engine and
device, the prompt and completion tokens, the duration, whether the model was loaded with
``allow_unsafe``, and the manifest's pricing at that moment (so a model removed later can still be
priced) and, for calls served by ``gptstore serve``, the name of the API key that asked
(:func:`attributed_to`; empty otherwise). ``GPTSTORE_NO_USAGE_LOG=1`` turns recording off. :func:`summary` sums the log per model
and prices it with :meth:`gptstore.manifest.Pricing.cost`:

- ``free`` — nothing;
- ``per_1k_tokens`` — ``amount`` × (prompt + completion tokens) / 1000;
- ``flat`` — ``amount`` once per model version, however much it is used.

A log written before the ``key`` column existed gets it (empty) when it is first opened.
The database runs in WAL mode and one connection per process is kept open, so recording a call
costs well under a millisecond.
"""

from __future__ import annotations

import contextvars
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from . import config

FILENAME = "usage.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    reference TEXT NOT NULL,
    model TEXT NOT NULL,
    digest TEXT NOT NULL,
    engine TEXT NOT NULL,
    device TEXT NOT NULL,
    prompts INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    allow_unsafe INTEGER NOT NULL,
    pricing TEXT NOT NULL,
    amount REAL NOT NULL,
    currency TEXT NOT NULL,
    key TEXT NOT NULL DEFAULT ''
)"""
_COLUMNS = ("at", "reference", "model", "digest", "engine", "device", "prompts", "prompt_tokens",
            "completion_tokens", "duration_s", "allow_unsafe", "pricing", "amount", "currency", "key")

#: the API key name calls in this context are recorded under (see :func:`attributed_to`)
_key: contextvars.ContextVar[str] = contextvars.ContextVar("gptstore_usage_key", default="")


@contextmanager
def attributed_to(key: str) -> Iterator[None]:
    """Record the calls made inside this block (in this thread or task) under the API key name
    ``key``; ``gptstore serve`` wraps each request's generation in it, so that ``gptstore usage
    --by key`` can say who used what without the generate API taking a key argument."""
    token = _key.set(key)
    try:
        yield
    finally:
        _key.reset(token)


@dataclass
class UsageRecord:
    """One generation call."""

    reference: str  #: the reference as resolved, e.g. ``acme/poet:latest``
    model: str  #: ``namespace/name:version`` from the manifest
    digest: str  #: manifest digest
    engine: str
    device: str
    prompt_tokens: int
    completion_tokens: int
    duration_s: float
    prompts: int = 1
    allow_unsafe: bool = False
    pricing: str = "free"  #: the manifest's pricing model
    amount: float = 0.0
    currency: str = "USD"
    key: str = ""  #: the API key name (``gptstore serve``); empty for calls made in-process
    at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


@dataclass
class ModelUsage:
    """Usage of one model version, summed, with its cost."""

    model: str
    digest: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    pricing: str
    amount: float
    currency: str
    cost: float
    key: str | None = None  #: the API key name, in a summary ``by="key"``

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self) | {"total_tokens": self.total_tokens}
        if self.key is None:
            del data["key"]
        return data


def path() -> Path:
    return config.home() / FILENAME


_lock = threading.Lock()
_open: dict[str, Any] = {"path": None, "conn": None}


def _connection(db: Path) -> sqlite3.Connection:
    """The process's connection to ``db`` (reopened when GPTSTORE_HOME changes); hold ``_lock``."""
    if _open["path"] != str(db):
        if _open["conn"] is not None:
            _open["conn"].close()
        db.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(db, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(_SCHEMA)
        if "key" not in {row[1] for row in conn.execute("PRAGMA table_info(generations)")}:
            conn.execute("ALTER TABLE generations ADD COLUMN key TEXT NOT NULL DEFAULT ''")
        _open.update(path=str(db), conn=conn)
    return _open["conn"]


def record(entry: UsageRecord) -> bool:
    """Append one call to the log; returns False (and writes nothing) when the log is turned off."""
    if not config.usage_log_enabled():
        return False
    values = asdict(entry)
    values["key"] = entry.key or _key.get()
    values["allow_unsafe"] = int(entry.allow_unsafe)
    with _lock:
        _connection(path()).execute(
            f"INSERT INTO generations ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
            [values[c] for c in _COLUMNS])
    return True


def records() -> list[UsageRecord]:
    """Every recorded call, oldest first."""
    if not path().is_file():
        return []
    with _lock:
        rows = _connection(path()).execute(
            f"SELECT {', '.join(_COLUMNS)} FROM generations ORDER BY id").fetchall()
    found = []
    for row in rows:
        values = dict(zip(_COLUMNS, row))
        values["allow_unsafe"] = bool(values["allow_unsafe"])
        found.append(UsageRecord(**values))
    return found


def price(pricing: str, amount: float, tokens: int) -> float:
    """What ``tokens`` cost under a logged pricing: :meth:`Pricing.cost
    <gptstore.manifest.Pricing.cost>`, which owns the rule (imported here, not at the top, so
    that recording a call does not need the manifest module)."""
    from .manifest import Pricing

    return Pricing.unchecked(pricing, amount).cost(tokens)


def summary(by: str = "model") -> list[ModelUsage]:
    """Calls and tokens per model version (by manifest digest), priced; most used first.
    ``by="key"``: per API key name and model version (each row's ``key`` is set; ``""`` for
    calls not served through ``gptstore serve``), most used key first."""
    if by not in ("model", "key"):
        raise ValueError(f"by must be 'model' or 'key', not {by!r}")
    if not path().is_file():
        return []
    keyed = by == "key"
    query = f"""
        SELECT model, digest, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), pricing, amount, currency,
               {'key' if keyed else "''"}
        FROM generations GROUP BY {'key, ' if keyed else ''}digest, pricing, amount, currency ORDER BY MIN(id)"""
    with _lock:
        rows = _connection(path()).execute(query).fetchall()
    found = [ModelUsage(model, digest, calls, tokens_in, tokens_out, pricing, amount, currency,
                        price(pricing, amount, tokens_in + tokens_out), key if keyed else None)
             for model, digest, calls, tokens_in, tokens_out, pricing, amount, currency, key in rows]
    if keyed:
        spent: dict[str, int] = {}
        for row in found:
            spent[row.key or ""] = spent.get(row.key or "", 0) + row.total_tokens
        return sorted(found, key=lambda u: (-spent[u.key or ""], u.key or "", -u.total_tokens, u.model))
    return sorted(found, key=lambda u: (-u.total_tokens, u.model))


def totals(rows: list[ModelUsage]) -> dict[str, float]:
    """Total cost per currency (currencies of free models are left out)."""
    sums: dict[str, float] = {}
    for row in rows:
        if row.pricing != "free":
            sums[row.currency] = sums.get(row.currency, 0.0) + row.cost
    return sums
