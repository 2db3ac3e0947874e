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

**Hash chain.** Each row stores ``hash = sha256(previous row's hash + the row's canonical
content)`` (:func:`canonical`: its id and every column, as sorted-key JSON; the first row's
previous hash is ``""``), and the table ``chain_head`` holds the id and hash of the last row. A
row is appended inside one ``BEGIN IMMEDIATE`` transaction (read the head, insert, move the
head), so several processes appending at once still make one chain. :func:`verify` walks it and
names the first row that was edited, deleted or inserted, or a deleted last row (the head then
points past the end). A log written before the chain existed is chained once, as found, when it
is first opened (:func:`chain_info` says up to which row); the chain proves that nothing changed
*after* that. It is tamper-evident, not tamper-proof: whoever can rewrite the file can rebuild
the whole chain; what was reported to a store (:mod:`gptstore.usage_report`) is pinned there.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
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
    key TEXT NOT NULL DEFAULT '',
    hash TEXT NOT NULL DEFAULT ''
)"""
#: the last row of the chain (one row, id 1) and, when an old log was upgraded, up to which row
#: the rows were chained as found
_CHAIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_id INTEGER NOT NULL,
    hash TEXT NOT NULL,
    upgraded_through INTEGER NOT NULL DEFAULT 0,
    upgraded_at TEXT
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


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A ``BEGIN IMMEDIATE`` transaction (the write lock taken at once): committed when the block
    ends, rolled back when it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _connection(db: Path) -> sqlite3.Connection:
    """The process's connection to ``db`` (reopened when GPTSTORE_HOME changes); hold ``_lock``."""
    if _open["path"] != str(db):
        if _open["conn"] is not None:
            _open["conn"].close()
        db.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(db, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with immediate(conn):  # one process upgrades an old log; the others then see it done
                conn.execute(_SCHEMA)
                conn.execute(_CHAIN_SCHEMA)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(generations)")}
                if "key" not in columns:
                    conn.execute("ALTER TABLE generations ADD COLUMN key TEXT NOT NULL DEFAULT ''")
                if "hash" not in columns:
                    conn.execute("ALTER TABLE generations ADD COLUMN hash TEXT NOT NULL DEFAULT ''")
                if conn.execute("SELECT 1 FROM chain_head").fetchone() is None:
                    _chain_as_found(conn)
        except BaseException:
            conn.close()
            raise
        _open.update(path=str(db), conn=conn)
    return _open["conn"]


#: SQLite's type of each column, so that a row hashes the same when written and when read back
_INTEGER = {"id", "prompts", "prompt_tokens", "completion_tokens", "allow_unsafe"}
_REAL = {"duration_s", "amount"}


def canonical(row: dict[str, Any]) -> str:
    """The content a row's hash covers: its id and every column but ``hash``, typed as SQLite
    stores them, as JSON with sorted keys and no whitespace."""
    values = {}
    for name in ("id", *_COLUMNS):
        value = row[name]
        values[name] = int(value) if name in _INTEGER else float(value) if name in _REAL else str(value)
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(previous: str, row: dict[str, Any]) -> str:
    return hashlib.sha256((previous + canonical(row)).encode()).hexdigest()


_SELECT_ALL = f"SELECT id, {', '.join(_COLUMNS)}, hash FROM generations"


def _chain_as_found(conn: sqlite3.Connection) -> None:
    """Chain the rows of a log written before the chain existed, as they are now (once, inside
    the opening transaction), and write the head."""
    previous, last, cursor = "", 0, conn.execute(f"{_SELECT_ALL} ORDER BY id")
    updates = []
    for values in cursor:
        row = dict(zip(("id", *_COLUMNS, "hash"), values))
        previous, last = chain_hash(previous, row), row["id"]
        updates.append((previous, last))
    conn.executemany("UPDATE generations SET hash = ? WHERE id = ?", updates)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds") if last else None
    conn.execute("INSERT INTO chain_head (id, last_id, hash, upgraded_through, upgraded_at) VALUES (1, ?, ?, ?, ?)",
                 (last, previous, last, stamp))


@contextmanager
def connection() -> Iterator[sqlite3.Connection]:
    """The process's connection to the usage log (created if missing), for the modules that keep
    their own tables in it (:mod:`gptstore.usage_report`); used by one thread at a time."""
    with _lock:
        yield _connection(path())


def record(entry: UsageRecord) -> bool:
    """Append one call to the log; returns False (and writes nothing) when the log is turned off."""
    if not config.usage_log_enabled():
        return False
    values = asdict(entry)
    values["key"] = entry.key or _key.get()
    values["allow_unsafe"] = int(entry.allow_unsafe)
    with _lock:
        conn = _connection(path())
        with immediate(conn):  # head read, row and head written as one: appenders queue here
            last_id, previous = conn.execute("SELECT last_id, hash FROM chain_head WHERE id = 1").fetchone()
            newest = conn.execute("SELECT MAX(id) FROM generations").fetchone()[0] or 0
            row_id = max(last_id, newest) + 1  # never reuse the id of a deleted last row
            values["id"] = row_id
            values["hash"] = chain_hash(previous, values)
            conn.execute(f"INSERT INTO generations (id, {', '.join(_COLUMNS)}, hash) "
                         f"VALUES ({', '.join('?' for _ in range(len(_COLUMNS) + 2))})",
                         [row_id, *(values[c] for c in _COLUMNS), values["hash"]])
            conn.execute("UPDATE chain_head SET last_id = ?, hash = ? WHERE id = 1", (row_id, values["hash"]))
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


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify` found: ``ok``, how many rows it checked, the first bad row (its id;
    None when ok) and one line saying what is wrong."""

    ok: bool
    rows: int
    bad_row: int | None
    message: str
    upgraded_through: int = 0  #: rows up to this id were chained as found when an old log was upgraded
    upgraded_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def chain_info() -> dict[str, Any]:
    """``{"last_id", "hash", "upgraded_through", "upgraded_at"}`` of the chain's head."""
    with _lock:
        row = _connection(path()).execute(
            "SELECT last_id, hash, upgraded_through, upgraded_at FROM chain_head WHERE id = 1").fetchone()
    return dict(zip(("last_id", "hash", "upgraded_through", "upgraded_at"), row))


def verify() -> ChainReport:
    """Walk the chain from the first row: each row's hash must be sha256(previous hash + its
    content), ids must follow each other without a gap, and the last row must be the head. The
    first row that breaks it is named (an edited row, a row inserted, or the row after a deleted
    one); a deleted last row shows as a head past the end."""
    if not path().is_file():
        return ChainReport(True, 0, None, "no usage recorded yet")
    info = chain_info()
    upgraded = {"upgraded_through": info["upgraded_through"], "upgraded_at": info["upgraded_at"]}
    with _lock:
        rows = _connection(path()).execute(f"{_SELECT_ALL} ORDER BY id").fetchall()
    previous, previous_id, count = "", 0, 0
    for values in rows:
        row = dict(zip(("id", *_COLUMNS, "hash"), values))
        where = f"row {row['id']} ({row['at']}, {row['model']})"
        if previous_id and row["id"] != previous_id + 1 and row["id"] > info["upgraded_through"]:
            # (gaps among the rows chained as found at an upgrade were there before the chain)
            missing = (f"row {previous_id + 1}" if row["id"] == previous_id + 2
                       else f"rows {previous_id + 1}-{row['id'] - 1}")
            return ChainReport(False, count, row["id"], f"{missing} deleted: {where} follows row {previous_id}",
                               **upgraded)
        expected = chain_hash(previous, row)
        if row["hash"] != expected:
            return ChainReport(False, count, row["id"], f"{where} does not match the chain: it was edited or "
                               "inserted (or a row before it was removed)", **upgraded)
        previous, previous_id, count = expected, row["id"], count + 1
    if (previous_id, previous) != (info["last_id"], info["hash"]):
        if info["last_id"] > previous_id:
            gone = (f"row {info['last_id']}" if info["last_id"] == previous_id + 1
                    else f"rows {previous_id + 1}-{info['last_id']}")
            return ChainReport(False, count, previous_id + 1, f"{gone} deleted: the log ends at row {previous_id} "
                               f"but its last row was {info['last_id']}", **upgraded)
        return ChainReport(False, count, previous_id, f"row {previous_id} is not the chain's last row "
                           f"({info['last_id']}): the head was changed", **upgraded)
    return ChainReport(True, count, None, f"{count} rows, chain intact", **upgraded)
