"""The one place that opens the server's relational catalog.

SQLite (WAL, foreign keys on) is the default; the rest of the server speaks plain SQL with ``?``
parameters through :class:`Database`, so another engine (PostgreSQL) can be added here without
touching the callers. The full-text index (``manifest_fts``) is SQLite FTS5; ``search.py`` is
the only module that queries it.

All rows of one commit are written in one transaction (:meth:`Database.transaction`), so a
server killed at any moment shows every committed revision and no partial one.

The server runs catalog work in worker threads (never on the event loop), so a :class:`Database`
hands each thread its own connection: WAL lets readers run beside the one writer, write
transactions are ``BEGIN IMMEDIATE`` (writers queue on SQLite's lock for up to
``BUSY_TIMEOUT`` seconds instead of failing), and a transaction never spans two threads.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

#: 1: accounts, repos, commits, refs, files, search index; 2: signing_keys; 3: namespaces.fullname;
#: 4: repo_redirects (old ids of moved repos) and the case-insensitive repo-id index;
#: 5: the storefront's catalogue (facets and their full-text index), reviews, per-user and per-day downloads.
#: 6: gated access: repo_gating (the repo's ``gated`` setting) and access_requests (gating.py).
#: 7: metering: usage_reports (reports taken, by id) and usage_daily (tokens and cost per repo, consumer, day).
#: Every statement of SCHEMA is idempotent (IF NOT EXISTS), so an older catalog is upgraded by
#: running the whole script again: only what it lacks is created; a column added to an existing
#: table is also listed in :data:`ADDED_COLUMNS`, which adds it where it is missing.
SCHEMA_VERSION = 7

SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('user', 'org')),
    created_at  TEXT NOT NULL,
    fullname    TEXT             -- display name (schema 3); NULL: the name itself
);
CREATE TABLE IF NOT EXISTS members (
    org   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    user  TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    PRIMARY KEY (org, user)
);
CREATE TABLE IF NOT EXISTS tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    user        TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    scope       TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE TABLE IF NOT EXISTS repos (
    id             INTEGER PRIMARY KEY,
    namespace      TEXT NOT NULL REFERENCES namespaces(name),
    name           TEXT NOT NULL,
    private        INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    last_modified  TEXT NOT NULL,
    downloads      INTEGER NOT NULL DEFAULT 0,
    card           TEXT,            -- README.md metadata (JSON) at main
    summary        TEXT,            -- gptstore.json summary (JSON) at main
    library_name   TEXT,
    pipeline_tag   TEXT,
    UNIQUE (namespace, name)
);
CREATE TABLE IF NOT EXISTS commits (
    id          TEXT PRIMARY KEY,
    repo        INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    parent      TEXT,
    author      TEXT NOT NULL,
    title       TEXT NOT NULL,
    message     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS commits_repo ON commits (repo);
CREATE TABLE IF NOT EXISTS files (
    commit_id  TEXT NOT NULL REFERENCES commits(id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    git_oid    TEXT NOT NULL,
    lfs        INTEGER NOT NULL,
    PRIMARY KEY (commit_id, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_sha256 ON files (sha256);
CREATE TABLE IF NOT EXISTS lfs_objects (  -- objects uploaded through this repo's signed URLs
    repo  INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    oid   TEXT NOT NULL,
    PRIMARY KEY (repo, oid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refs (
    repo    INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    kind    TEXT NOT NULL CHECK (kind IN ('branch', 'tag')),
    name    TEXT NOT NULL,
    target  TEXT NOT NULL REFERENCES commits(id),
    PRIMARY KEY (repo, kind, name)
);
CREATE TABLE IF NOT EXISTS repo_tags (
    repo  INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    tag   TEXT NOT NULL,
    PRIMARY KEY (repo, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repo_tags_tag ON repo_tags (tag, repo);
CREATE TABLE IF NOT EXISTS signing_keys (  -- publishers' public keys, per namespace (schema 2)
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    keyid       TEXT NOT NULL,
    public_key  TEXT NOT NULL,      -- PEM SubjectPublicKeyInfo (Ed25519)
    added_at    TEXT NOT NULL,
    PRIMARY KEY (namespace, keyid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repos_id_nocase ON repos (namespace COLLATE NOCASE, name COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS repo_redirects (  -- ids a repo had before a move (schema 4)
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    repo       INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    PRIMARY KEY (namespace COLLATE NOCASE, name COLLATE NOCASE)
);
CREATE INDEX IF NOT EXISTS repo_redirects_repo ON repo_redirects (repo);
CREATE TABLE IF NOT EXISTS catalogue (  -- what main's manifest says, for filters and sorts (schema 5; catalogue.py)
    repo          INTEGER PRIMARY KEY REFERENCES repos(id) ON DELETE CASCADE,
    repo_id       TEXT NOT NULL,     -- namespace/name when refreshed (a move makes the row stale)
    digest        TEXT NOT NULL,     -- manifest digest it was made from
    category      TEXT,
    use_cases     TEXT NOT NULL,     -- JSON list
    languages     TEXT NOT NULL,     -- JSON list, lower-case
    license       TEXT NOT NULL,     -- lower-case
    adapter       INTEGER NOT NULL,  -- 1: an adapter over a base model; 0: a full model
    parameters    INTEGER NOT NULL,
    price_model   TEXT NOT NULL,
    price_amount  REAL NOT NULL,
    currency      TEXT NOT NULL,
    signed        INTEGER NOT NULL,  -- main holds a gptstore.sig
    signer        TEXT,              -- key id of the namespace's registered key it verified with
    refreshed_at  TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS catalogue_fts USING fts5(  -- rowid = repo id (schema 5)
    name, description, tags, provider, category, use_cases, tokenize = 'unicode61'
);
CREATE TABLE IF NOT EXISTS reviews (  -- one per user per repo (schema 5; reviews.py)
    repo        INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    user        TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    stars       INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
    text        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (repo, user)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_downloads (  -- who downloaded what, for reviews' "downloaded" mark (schema 5)
    repo        INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    user        TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    first_at    TEXT NOT NULL,
    PRIMARY KEY (repo, user)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily_downloads (  -- downloads per repo per UTC day, for trending (schema 5)
    repo   INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    day    TEXT NOT NULL,            -- YYYY-MM-DD
    count  INTEGER NOT NULL,
    PRIMARY KEY (repo, day)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS daily_downloads_day ON daily_downloads (day, repo);
CREATE TABLE IF NOT EXISTS repo_gating (  -- the repo's `gated` setting; no row: never set (schema 6; gating.py)
    repo        INTEGER PRIMARY KEY REFERENCES repos(id) ON DELETE CASCADE,
    mode        TEXT NOT NULL CHECK (mode IN ('off', 'auto', 'manual')),
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS access_requests (  -- one per user per gated repo (schema 6; gating.py)
    id          TEXT PRIMARY KEY,
    repo        INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    user        TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
    fields      TEXT,             -- JSON object the requester filled in, or NULL
    reason      TEXT,             -- why it was rejected, or NULL
    decided_by  TEXT,             -- who (or which plugin) decided it last, or NULL
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (repo, user)
);
CREATE INDEX IF NOT EXISTS access_requests_status ON access_requests (repo, status);
CREATE TABLE IF NOT EXISTS usage_reports (  -- usage reports taken, so a re-sent one counts once (schema 7; metering.py)
    user         TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    id           TEXT NOT NULL,     -- the client's report id (64 hex)
    digest       TEXT NOT NULL,     -- sha256 of its rows: the same id with other rows is refused
    rows         INTEGER NOT NULL,
    received_at  TEXT NOT NULL,
    PRIMARY KEY (user, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage_daily (  -- reported usage per repo, consumer and UTC day (schema 7; metering.py)
    repo               INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    user               TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    day                TEXT NOT NULL,     -- YYYY-MM-DD
    currency           TEXT NOT NULL,
    calls              INTEGER NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    cost               REAL NOT NULL,
    PRIMARY KEY (repo, user, day, currency)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_daily_user ON usage_daily (user, repo);
CREATE VIRTUAL TABLE IF NOT EXISTS manifest_fts USING fts5(
    name, description, tags, provider, license, pricing, tokenize = 'unicode61'
);
"""


#: (table, column, declaration) of columns added to tables of an older schema (see SCHEMA_VERSION)
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("namespaces", "fullname", "TEXT"),
)


#: seconds a connection waits for another thread's or process's write transaction to end
BUSY_TIMEOUT = 10


class _Connection:
    """One thread's connection; closed when its thread ends and drops it (or at :meth:`Database.close`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.depth = 0  # nesting of Database.transaction() in this thread

    def __del__(self) -> None:
        self.conn.close()


class Database:
    """The catalog with ``?``-style queries and explicit transactions; one connection per thread."""

    def __init__(self, path: Path, first: sqlite3.Connection) -> None:
        self.path = path
        self._local = threading.local()
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        self._adopt(first)

    def _adopt(self, conn: sqlite3.Connection) -> _Connection:
        holder = _Connection(conn)
        self._local.holder = holder
        with self._lock:
            self._all.add(holder)
        return holder

    @property
    def _holder(self) -> _Connection:
        holder = getattr(self._local, "holder", None)
        if holder is None:
            if self._closed:
                raise RuntimeError(f"the catalog {self.path} is closed")
            holder = self._adopt(_open(self.path))
        return holder

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._holder.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._holder.conn.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        return self._holder.conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._holder.conn.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One write transaction of this thread (nested calls join the outer one); rolled back on any error."""
        holder = self._holder
        if holder.depth:
            holder.depth += 1
            try:
                yield self
            finally:
                holder.depth -= 1
            return
        holder.conn.execute("BEGIN IMMEDIATE")
        holder.depth = 1
        try:
            yield self
        except BaseException:
            holder.conn.execute("ROLLBACK")
            raise
        else:
            holder.conn.execute("COMMIT")
        finally:
            holder.depth = 0

    def version(self) -> tuple[int, int, int]:
        """A mark of the catalog's state as this thread's connection sees it: equal marks mean
        no write was committed in between, by this connection (``total_changes``) or by any other
        connection or process (``PRAGMA data_version``). Lets a reader skip work it already did."""
        conn = self._holder.conn
        return id(conn), conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes

    def close(self) -> None:
        """Close every thread's connection (at shutdown); later use raises."""
        self._closed = True
        with self._lock:
            holders = list(self._all)
        for holder in holders:
            holder.conn.close()


def _open(path: Path) -> sqlite3.Connection:
    # check_same_thread is off because a dead thread's connection is closed by whichever thread
    # drops the last reference; Database never lets two threads use one connection
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    # WAL + NORMAL survives a killed process; a power cut may lose the last commits, never consistency
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def connect(path: Path) -> Database:
    """Open (and create or upgrade) the SQLite catalog at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _open(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        conn.close()
        from ..errors import StoreError

        raise StoreError(f"catalog {path} has schema {version}, newer than this gptstore ({SCHEMA_VERSION})",
                         hint="upgrade gptstore")
    if version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        for statement in _statements(SCHEMA):
            conn.execute(statement)
        for table, column, declaration in ADDED_COLUMNS:
            if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    return Database(path, conn)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]
