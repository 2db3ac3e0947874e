"""What differs between the catalog's two engines, in one place: SQLite (the default) and PostgreSQL.

The server's modules write one SQL text for both, in SQLite's spelling with ``?`` (or ``:name``)
parameters; :func:`postgres_sql` rewrites that text once per statement for PostgreSQL (``%s``
parameters, ``"user"`` quoted because ``user`` is a keyword there, ``COLLATE NOCASE`` comparisons
as ``lower()`` ones, ``LIKE`` as ``ILIKE``, ``IS NOT x`` as ``IS DISTINCT FROM x``). What cannot be
rewritten textually is a function here that takes the dialect name: full-text matching (FTS5 on
SQLite; a ``tsvector`` column with a GIN index on PostgreSQL), JSON access and JSON arrays.

The full-text tables keep one shape on both engines (``rowid`` = repo id plus the text columns), so
inserts and deletes are the same statement; only the MATCH differs (:func:`fts_match`).
"""

from __future__ import annotations

import functools
import re

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

_STRING = re.compile(r"('(?:[^']|'')*')")
_NOCASE = re.compile(r"([\w.]+) = \? COLLATE NOCASE")
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=2048)
def postgres_sql(sql: str) -> str:
    """``sql`` as written for SQLite, spelt for PostgreSQL through psycopg (see the module doc)."""
    parts = _STRING.split(sql)
    for i in range(0, len(parts), 2):  # even parts are outside string literals
        text = parts[i].replace("%", "%%")
        text = _NOCASE.sub(r"lower(\1) = lower(?)", text)
        text = text.replace("? IS NULL", "CAST(? AS TEXT) IS NULL")
        text = text.replace("COLLATE NOCASE", "")
        text = re.sub(r"\buser\b", '"user"', text)
        text = re.sub(r"\bIS NOT (?!NULL\b)", "IS DISTINCT FROM ", text)
        text = re.sub(r"\bLIKE\b", "ILIKE", text)
        text = text.replace("?", "%s")
        parts[i] = _NAMED.sub(r"%(\1)s", text)
    return "".join(parts)


def fts_query(dialect: str, words: list[str]) -> str | None:
    """Every word as a prefix term, ANDed, in the engine's full-text query syntax; None for no words."""
    if not words:
        return None
    if dialect == POSTGRESQL:
        return " & ".join(f"'{w.replace(chr(39), '')}':*" for w in words)
    return " ".join(f'"{w}"*' for w in words)


def fts_match(dialect: str, table: str, param: str) -> str:
    """SQL selecting the ``rowid`` of ``table``'s rows matching the query in ``:param``."""
    if dialect == POSTGRESQL:
        return f"SELECT rowid FROM {table} WHERE doc @@ to_tsquery('simple', :{param})"
    return f"SELECT rowid FROM {table} WHERE {table} MATCH :{param}"


def fts_row_match(dialect: str, tables: tuple[str, ...], param: str) -> tuple[str, str]:
    """(joins, condition): SQL testing each repo ``r`` of a listing for a match in any of ``tables``
    by its own row. PostgreSQL: a LEFT JOIN on the row id and ``@@`` (its planner would otherwise
    collect every match of an ``IN`` first); SQLite: ``IN``, as FTS5's MATCH must be."""
    if dialect == POSTGRESQL:
        joins = "".join(f"LEFT JOIN {table} f{i} ON f{i}.rowid = r.id " for i, table in enumerate(tables))
        return joins, " OR ".join(f"f{i}.doc @@ to_tsquery('simple', :{param})" for i in range(len(tables)))
    return "", " OR ".join(f"r.id IN ({fts_match(dialect, table, param)})" for table in tables)


def upsert_inserted(dialect: str) -> str:
    """SQL for a ``RETURNING`` column of ``INSERT … ON CONFLICT DO UPDATE`` with ``created_at`` and
    ``updated_at``: true when the row was inserted rather than updated. PostgreSQL: ``xmax = 0``
    (exact under concurrent upserts); SQLite (one writer at a time): ``created_at = updated_at``."""
    return "(xmax = 0)" if dialect == POSTGRESQL else "(created_at = updated_at)"


def json_text(dialect: str, column: str, key: str) -> str:
    """SQL for the text of ``column``'s (a JSON object) top-level ``key``."""
    if dialect == POSTGRESQL:
        return f"(({column})::json ->> '{key}')"
    return f"json_extract({column}, '$.{key}')"


def json_contains(dialect: str, column: str, value_sql: str) -> str:
    """SQL: 1 when ``column`` (a JSON array of strings) holds ``value_sql``."""
    if dialect == POSTGRESQL:
        return f"EXISTS (SELECT 1 FROM json_array_elements_text(({column})::json) AS e(value) WHERE value = {value_sql})"
    return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value = {value_sql})"


#: the catalog's schema on SQLite (schema 7; see db.SCHEMA_VERSION), every statement idempotent
SQLITE_SCHEMA = """
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


def _fts_table(name: str, columns: tuple[str, ...]) -> str:
    joined = " || ' ' || ".join(f"coalesce({c}, '')" for c in columns)
    cols = ",\n    ".join(f"{c} TEXT" for c in columns)
    return (f"CREATE TABLE IF NOT EXISTS {name} (\n    rowid BIGINT PRIMARY KEY,\n    {cols},\n"
            f"    doc tsvector GENERATED ALWAYS AS (to_tsvector('simple', {joined})) STORED\n);\n"
            f"CREATE INDEX IF NOT EXISTS {name}_doc ON {name} USING GIN (doc);\n")


#: the catalog's schema on PostgreSQL: the same tables as db.SCHEMA (SQLite), in PostgreSQL's types
POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('user', 'org')),
    created_at  TEXT NOT NULL,
    fullname    TEXT
);
CREATE INDEX IF NOT EXISTS namespaces_name_lower ON namespaces (lower(name));
CREATE TABLE IF NOT EXISTS members (
    org     TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    "user"  TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    PRIMARY KEY (org, "user")
);
CREATE TABLE IF NOT EXISTS tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    "user"      TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    scope       TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE TABLE IF NOT EXISTS repos (
    id             BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    namespace      TEXT NOT NULL REFERENCES namespaces(name),
    name           TEXT NOT NULL,
    private        INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    last_modified  TEXT NOT NULL,
    downloads      BIGINT NOT NULL DEFAULT 0,
    card           TEXT,
    summary        TEXT,
    library_name   TEXT,
    pipeline_tag   TEXT,
    UNIQUE (namespace, name)
);
CREATE UNIQUE INDEX IF NOT EXISTS repos_id_lower ON repos (lower(namespace), lower(name));
CREATE TABLE IF NOT EXISTS commits (
    id          TEXT PRIMARY KEY,
    repo        BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
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
    size       BIGINT NOT NULL,
    git_oid    TEXT NOT NULL,
    lfs        INTEGER NOT NULL,
    PRIMARY KEY (commit_id, path)
);
CREATE INDEX IF NOT EXISTS files_sha256 ON files (sha256);
CREATE TABLE IF NOT EXISTS lfs_objects (
    repo  BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    oid   TEXT NOT NULL,
    PRIMARY KEY (repo, oid)
);
CREATE TABLE IF NOT EXISTS refs (
    repo    BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    kind    TEXT NOT NULL CHECK (kind IN ('branch', 'tag')),
    name    TEXT NOT NULL,
    target  TEXT NOT NULL REFERENCES commits(id),
    PRIMARY KEY (repo, kind, name)
);
CREATE TABLE IF NOT EXISTS repo_tags (
    repo  BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    tag   TEXT NOT NULL,
    PRIMARY KEY (repo, tag)
);
CREATE INDEX IF NOT EXISTS repo_tags_tag ON repo_tags (tag, repo);
CREATE TABLE IF NOT EXISTS signing_keys (
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    keyid       TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    added_at    TEXT NOT NULL,
    PRIMARY KEY (namespace, keyid)
);
CREATE TABLE IF NOT EXISTS repo_redirects (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    repo       BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX IF NOT EXISTS repo_redirects_id ON repo_redirects (lower(namespace), lower(name));
CREATE INDEX IF NOT EXISTS repo_redirects_repo ON repo_redirects (repo);
CREATE TABLE IF NOT EXISTS catalogue (
    repo          BIGINT PRIMARY KEY REFERENCES repos(id) ON DELETE CASCADE,
    repo_id       TEXT NOT NULL,
    digest        TEXT NOT NULL,
    category      TEXT,
    use_cases     TEXT NOT NULL,
    languages     TEXT NOT NULL,
    license       TEXT NOT NULL,
    adapter       INTEGER NOT NULL,
    parameters    BIGINT NOT NULL,
    price_model   TEXT NOT NULL,
    price_amount  DOUBLE PRECISION NOT NULL,
    currency      TEXT NOT NULL,
    signed        INTEGER NOT NULL,
    signer        TEXT,
    refreshed_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reviews (
    repo        BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    "user"      TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    stars       INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
    text        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (repo, "user")
);
CREATE TABLE IF NOT EXISTS user_downloads (
    repo        BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    "user"      TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    first_at    TEXT NOT NULL,
    PRIMARY KEY (repo, "user")
);
CREATE TABLE IF NOT EXISTS daily_downloads (
    repo   BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    day    TEXT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (repo, day)
);
CREATE INDEX IF NOT EXISTS daily_downloads_day ON daily_downloads (day, repo);
CREATE TABLE IF NOT EXISTS repo_gating (
    repo        BIGINT PRIMARY KEY REFERENCES repos(id) ON DELETE CASCADE,
    mode        TEXT NOT NULL CHECK (mode IN ('off', 'auto', 'manual')),
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS access_requests (
    id          TEXT PRIMARY KEY,
    repo        BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    "user"      TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
    fields      TEXT,
    reason      TEXT,
    decided_by  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (repo, "user")
);
CREATE INDEX IF NOT EXISTS access_requests_status ON access_requests (repo, status);
CREATE TABLE IF NOT EXISTS usage_reports (
    "user"       TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    digest       TEXT NOT NULL,
    rows         INTEGER NOT NULL,
    received_at  TEXT NOT NULL,
    PRIMARY KEY ("user", id)
);
CREATE TABLE IF NOT EXISTS usage_daily (
    repo               BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    "user"             TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    day                TEXT NOT NULL,
    currency           TEXT NOT NULL,
    calls              BIGINT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    cost               DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (repo, "user", day, currency)
);
CREATE INDEX IF NOT EXISTS usage_daily_user ON usage_daily ("user", repo);
""" + _fts_table("catalogue_fts", ("name", "description", "tags", "provider", "category", "use_cases")) \
    + _fts_table("manifest_fts", ("name", "description", "tags", "provider", "license", "pricing")) \
    + "CREATE SEQUENCE IF NOT EXISTS catalog_version;\n"


def schema(engine: str) -> str:
    """The baseline schema script of ``engine`` (the migrations' revision 0001)."""
    return POSTGRES_SCHEMA if engine == POSTGRESQL else SQLITE_SCHEMA


def statements(script: str) -> list[str]:
    """The statements of a schema script, one per ``;`` at a line's end."""
    return [s.strip() for s in script.split(";\n") if s.strip()]
