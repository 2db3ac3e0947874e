"""The one place that opens the server's relational catalog: SQLite or PostgreSQL, chosen by URL.

``sqlite:///DATA/catalog.sqlite3`` (WAL, foreign keys on) is the default; ``postgresql://…``
selects PostgreSQL (psycopg 3). Both are opened through a SQLAlchemy engine; the rest of the
server speaks one SQL text with ``?`` (or ``:name``) parameters through :class:`Database`, which
spells it for PostgreSQL once per statement (``dialect.postgres_sql``). What must differ per
engine (full-text search, JSON, the schema's types) lives in ``dialect.py``.

All rows of one commit are written in one transaction (:meth:`Database.transaction`), so a
server killed at any moment shows every committed revision and no partial one.

The server runs catalog work in worker threads (never on the event loop), so a :class:`Database`
hands each thread its own connection: WAL lets readers run beside the one writer, write
transactions are ``BEGIN IMMEDIATE`` (writers queue on SQLite's lock for up to
``BUSY_TIMEOUT`` seconds instead of failing), and a transaction never spans two threads.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from . import dialect as _dialect
from . import migrations

#: 1: accounts, repos, commits, refs, files, search index; 2: signing_keys; 3: namespaces.fullname;
#: 4: repo_redirects (old ids of moved repos) and the case-insensitive repo-id index;
#: 5: the storefront's catalogue (facets and their full-text index), reviews, per-user and per-day downloads.
#: 6: gated access: repo_gating (the repo's ``gated`` setting) and access_requests (gating.py).
#: 7: metering: usage_reports (reports taken, by id) and usage_daily (tokens and cost per repo, consumer, day).
#: Every statement of SCHEMA is idempotent (IF NOT EXISTS), so an older catalog is upgraded by
#: running the whole script again: only what it lacks is created; a column added to an existing
#: table is also listed in :data:`ADDED_COLUMNS`, which adds it where it is missing.
#: Schema 7 is the Alembic baseline (``migrations/``, revision 0001, both engines): a SQLite
#: catalog of an older user_version is brought to 7 this way, then stamped; every later change is
#: an Alembic revision, applied by :func:`connect` on both engines.
SCHEMA_VERSION = 7

SCHEMA = _dialect.SQLITE_SCHEMA


#: (table, column, declaration) of columns added to tables of an older schema (see SCHEMA_VERSION)
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("namespaces", "fullname", "TEXT"),
)


#: seconds a connection waits for another thread's or process's write transaction to end
BUSY_TIMEOUT = 10

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")


class Row:
    """A PostgreSQL row read like a :class:`sqlite3.Row`: by column name or index, ``keys()``, ``dict(row)``."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: dict[str, int], values: Sequence[Any]) -> None:
        self._names = names
        self._values = values

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key if isinstance(key, int) else self._names[key]]

    def keys(self) -> list[str]:
        return list(self._names)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._names, self._values))!r})"


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(names, values)


class _NoRows:
    """The result of a query that cannot match anything."""

    rowcount = 0

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []


def _has_nul(params: Sequence[Any] | dict[str, Any]) -> bool:
    values = params.values() if isinstance(params, dict) else params
    return any(isinstance(value, str) and "\x00" in value for value in values)


class _Connection:
    """One thread's connection; closed when its thread ends and drops it (or at :meth:`Database.close`)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.depth = 0  # nesting of Database.transaction() in this thread

    def __del__(self) -> None:
        self.conn.close()


class Database:
    """The catalog with ``?``-style queries and explicit transactions; one connection per thread.

    ``dialect`` is ``"sqlite"`` or ``"postgresql"`` (callers pass it to ``dialect.py``'s helpers)."""

    def __init__(self, url: str, engine: Any, first: Any) -> None:
        self.url = url
        self.engine = engine
        self.dialect = _dialect.POSTGRESQL if engine.dialect.name == "postgresql" else _dialect.SQLITE
        self._local = threading.local()
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        self._adopt(first)

    def _adopt(self, conn: Any) -> _Connection:
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
                raise RuntimeError(f"the catalog {_safe_url(self.url)} is closed")
            holder = self._adopt(_dbapi(self.engine))
        return holder

    def _sql(self, sql: str) -> str:
        return _dialect.postgres_sql(sql) if self.dialect == _dialect.POSTGRESQL else sql

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        holder = self._holder
        if self.dialect != _dialect.POSTGRESQL:
            return holder.conn.execute(sql, params)
        verb = sql.lstrip()[:6].upper()
        if verb in ("SELECT", "DELETE") and _has_nul(params):
            return _NoRows()  # PostgreSQL text cannot hold NUL, so no row matches one (SQLite: none does either)
        cursor = holder.conn.execute(self._sql(sql), params)
        if not holder.depth and verb in _WRITES:
            holder.conn.execute("SELECT nextval('catalog_version')")
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        holder = self._holder
        if self.dialect == _dialect.POSTGRESQL:
            with self.transaction():
                holder.conn.cursor().executemany(self._sql(sql), rows)
        else:
            holder.conn.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One write transaction of this thread (nested calls join the outer one); rolled back on any error.

        SQLite: ``BEGIN IMMEDIATE`` (one writer at a time). PostgreSQL: READ COMMITTED; a write
        that must not race (moving a branch) conditions its UPDATE on the value it read, and
        PostgreSQL's row lock makes the second writer see the first one's result."""
        holder = self._holder
        if holder.depth:
            holder.depth += 1
            try:
                yield self
            finally:
                holder.depth -= 1
            return
        postgres = self.dialect == _dialect.POSTGRESQL
        holder.conn.execute("BEGIN" if postgres else "BEGIN IMMEDIATE")
        holder.depth = 1
        try:
            yield self
        except BaseException:
            holder.conn.execute("ROLLBACK")
            raise
        else:
            holder.conn.execute("COMMIT")
            if postgres:  # after the commit: a reader that sees the new mark also sees the new rows
                holder.conn.execute("SELECT nextval('catalog_version')")
        finally:
            holder.depth = 0

    def version(self) -> tuple[int, int, int]:
        """A mark of the catalog's state as this thread's connection sees it: equal marks mean
        no write was committed in between. SQLite: by this connection (``total_changes``) or by
        any other connection or process (``PRAGMA data_version``). PostgreSQL: the sequence
        ``catalog_version``, advanced after every write. Lets a reader skip work it already did."""
        conn = self._holder.conn
        if self.dialect == _dialect.POSTGRESQL:
            return id(conn), conn.execute("SELECT last_value FROM catalog_version").fetchone()[0], 0
        return id(conn), conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes

    def describe(self) -> str:
        """The catalog's URL without its password, for messages."""
        return _safe_url(self.url)

    def ping(self) -> None:
        """One round trip to the catalog (``/readyz``)."""
        self.one("SELECT 1")

    def close(self) -> None:
        """Close every thread's connection (at shutdown); later use raises."""
        self._closed = True
        with self._lock:
            holders = list(self._all)
        for holder in holders:
            holder.conn.close()
        self.engine.dispose()


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


def _safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def catalog_url(target: Path | str) -> str:
    """The catalog URL for ``target``: a URL as given, a path as ``sqlite:///PATH``."""
    if isinstance(target, str) and "://" in target:
        if target.startswith("postgres://"):
            target = "postgresql://" + target[len("postgres://"):]
        if not target.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            from ..errors import UsageError

            raise UsageError(f"unsupported catalog URL {target.split('://')[0]}://…",
                             hint="use sqlite:///PATH or postgresql://USER@HOST/DB")
        return target
    return f"sqlite:///{Path(target)}"


def engine_for(url: str) -> Any:
    """A SQLAlchemy engine for the catalog at ``url``. Connections are held per thread by
    :class:`Database` for the thread's life (the worker threads are the pool), so the engine's
    own pool is off (NullPool): a connection is really closed when its thread ends."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        return create_engine(url, poolclass=NullPool, creator=lambda: _open(path))
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, poolclass=NullPool)


def _dbapi(engine: Any) -> Any:
    """A new driver connection of ``engine``, set up for :class:`Database` (autocommit, rows by name)."""
    conn = engine.raw_connection()
    raw = conn.dbapi_connection
    conn.detach()
    if engine.dialect.name == "postgresql":
        raw.autocommit = True
        raw.row_factory = _row_factory
        raw.adapters.register_loader("numeric", _number_loader())
    return raw


@functools.cache
def _number_loader() -> type:
    """The psycopg loader of ``numeric`` (SUM()/AVG() results): int when whole, else float, as
    SQLite gives them. Made once, on first use: psycopg is imported only for PostgreSQL catalogs."""
    from psycopg.adapt import Loader

    class _NumberLoader(Loader):
        def load(self, data: Any) -> Any:
            text = bytes(data).decode()
            return int(text) if text.lstrip("-").isdigit() else float(text)

    return _NumberLoader


def connect(target: Path | str) -> Database:
    """Open (and create or upgrade) the catalog at ``target``: a SQLite path, or a catalog URL."""
    url = catalog_url(target)
    engine = engine_for(url)
    if engine.dialect.name == "postgresql":
        try:
            conn = _dbapi(engine)
        except Exception as exc:
            from ..errors import StoreError

            raise StoreError(f"cannot connect to the catalog {_safe_url(url)}: {str(exc).strip().splitlines()[0]}",
                             hint="check the URL, and that PostgreSQL is running and reachable") from None
        _migrate(engine, postgres=True)
        return Database(url, engine, conn)
    path = Path(engine.url.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _dbapi(engine)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        conn.close()
        from ..errors import StoreError

        raise StoreError(f"catalog {path} has schema {version}, newer than this gptstore ({SCHEMA_VERSION})",
                         hint="upgrade gptstore")
    if version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        for statement in _dialect.statements(SCHEMA):
            conn.execute(statement)
        for table, column, declaration in ADDED_COLUMNS:
            if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    if _stamp(conn) != migrations.HEAD:
        _migrate(engine, postgres=False)
    return Database(url, engine, conn)


def _stamp(conn: sqlite3.Connection) -> str | None:
    """The SQLite catalog's Alembic revision, read without loading Alembic (None: not stamped)."""
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


#: key of the advisory lock that makes concurrent schema upgrades of one PostgreSQL catalog take turns
_SCHEMA_LOCK = 0x67707473


def _migrate(engine: Any, *, postgres: bool) -> None:
    """Apply the Alembic revisions (``migrations/``) the catalog lacks, in one transaction; on
    PostgreSQL under an advisory lock, so replicas starting together take turns."""
    from sqlalchemy import text

    with engine.connect() as connection:
        with connection.begin():
            if postgres:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            try:
                migrations.upgrade(connection)
            except LookupError:
                from ..errors import StoreError

                raise StoreError(f"catalog {_safe_url(str(engine.url))} has a schema revision newer than this "
                                 f"gptstore knows ({migrations.HEAD})", hint="upgrade gptstore") from None
