"""The one place that opens the server's relational catalog.

SQLite (WAL, foreign keys on) is the default; the rest of the server speaks plain SQL with ``?``
parameters through :class:`Database`, so another engine (PostgreSQL) can be added here without
touching the callers. The full-text index (``manifest_fts``) is SQLite FTS5; ``search.py`` is
the only module that queries it.

All rows of one commit are written in one transaction (:meth:`Database.transaction`), so a
server killed at any moment shows every committed revision and no partial one.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

#: 1: accounts, repos, commits, refs, files, search index; 2: signing_keys.
#: Every statement of SCHEMA is idempotent (IF NOT EXISTS), so an older catalog is upgraded by
#: running the whole script again: only what it lacks is created.
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('user', 'org')),
    created_at  TEXT NOT NULL
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
CREATE VIRTUAL TABLE IF NOT EXISTS manifest_fts USING fts5(
    name, description, tags, provider, license, pricing, tokenize = 'unicode61'
);
"""


class Database:
    """A connection to the catalog with ``?``-style queries and explicit transactions."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        return self._conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One write transaction (nested calls join the outer one); rolled back on any error."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._depth = 0

    def close(self) -> None:
        self._conn.close()


def connect(path: Path, *, check_same_thread: bool = True) -> Database:
    """Open (and create or upgrade) the SQLite catalog at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    # WAL + NORMAL survives a killed process; a power cut may lose the last commits, never consistency
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
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
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    return Database(conn)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]
