"""Moving an existing store (``gptstore server migrate --from DATA --to-catalog URL --to-blobs URL``).

Copies the catalog of a data directory (SQLite) into another catalog (PostgreSQL, or another
SQLite file) and its blobs into another blob store (an S3 bucket, or another data directory),
then checks that every digest the new catalog references is in the new blob store with its size.

Re-runnable to catch up: tables are copied in dependency order (:data:`TABLES`) by key, so a row
the target already has is skipped (immutable rows: commits, files, …) or overwritten with the
source's values (mutable rows, "latest wins": refs, repo settings, counters, reviews, tokens'
revocation, …); rows the source no longer has are removed from the *mirrored* tables (a deleted
branch, a removed membership, a deleted repo with everything under it). Append-only rows (commits,
files, per-user downloads, usage reports) are only ever added; the storefront's catalogue, a cache
any server rebuilds from main's manifest, keeps rows the target built itself. Ids are copied as they
are (repo ids are referenced by a dozen tables); PostgreSQL's repo id sequence is moved past them.
Blobs the target already has are skipped; the others are streamed and hashed on the way, and a
source blob whose bytes do not match its name is reported by name and never stored as good.

The source is only read (one read transaction: a consistent snapshot while its server keeps
running); the target is refused when it holds a different store (a repo id that names another
repo, or repos the source never had that are newer than all of the source's).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from ..blobs import CHUNK, BlobStore, is_sha256
from ..errors import DigestMismatch, StoreError, UsageError
from . import db as _db
from . import dialect as _dialect
from . import migrations

#: rows read and written per batch
BATCH = 1000

INSERT, UPSERT, REPLACE = "insert", "upsert", "replace"


@dataclass(frozen=True)
class Table:
    """How one catalog table is copied: by ``key`` with ``mode`` INSERT (immutable rows: skip what
    exists), UPSERT (latest wins) or REPLACE (delete the key, insert: full-text rows and keys
    compared case-insensitively); ``mirror``: rows the source no longer has are removed."""

    name: str
    key: tuple[str, ...]
    mode: str
    mirror: bool = False
    rowid: bool = False  # a full-text table: its rowid (the repo id) is read as a column
    nocase: bool = False
    #: a cache a server refreshes on demand (the storefront's catalogue): the target may have built
    #: rows the source has not; only rows of repos the source no longer has are removed
    cache: bool = False


#: the catalog's tables in dependency order (a table only references tables above it)
TABLES: tuple[Table, ...] = (
    Table("namespaces", ("name",), UPSERT),
    Table("members", ("org", "user"), INSERT, mirror=True),
    Table("tokens", ("id",), UPSERT, mirror=True),
    Table("repos", ("id",), UPSERT, mirror=True),
    Table("commits", ("id",), INSERT),
    Table("files", ("commit_id", "path"), INSERT),
    Table("lfs_objects", ("repo", "oid"), INSERT, mirror=True),
    Table("refs", ("repo", "kind", "name"), UPSERT, mirror=True),
    Table("repo_tags", ("repo", "tag"), INSERT, mirror=True),
    Table("signing_keys", ("namespace", "keyid"), UPSERT, mirror=True),
    Table("repo_redirects", ("namespace", "name"), REPLACE, mirror=True, nocase=True),
    Table("catalogue", ("repo",), UPSERT, mirror=True, cache=True),
    Table("catalogue_fts", ("rowid",), REPLACE, mirror=True, rowid=True, cache=True),
    Table("manifest_fts", ("rowid",), REPLACE, mirror=True, rowid=True),
    Table("reviews", ("repo", "user"), UPSERT, mirror=True),
    Table("user_downloads", ("repo", "user"), INSERT),
    Table("daily_downloads", ("repo", "day"), UPSERT),
    Table("repo_gating", ("repo",), UPSERT, mirror=True),
    Table("access_requests", ("id",), UPSERT, mirror=True),
    Table("usage_reports", ("user", "id"), INSERT),
    Table("usage_daily", ("repo", "user", "day", "currency"), UPSERT),
)


@dataclass
class Report:
    """What a migration did (``--json`` prints :meth:`as_dict`)."""

    source: str
    catalog: str
    blobs: str
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    blobs_copied: int = 0
    blobs_skipped: int = 0
    bytes_copied: int = 0
    blobs_verified: int = 0
    bad_blobs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "catalog": self.catalog, "blobs": self.blobs, "tables": self.tables,
                "blobs_copied": self.blobs_copied, "blobs_skipped": self.blobs_skipped,
                "bytes_copied": self.bytes_copied, "blobs_verified": self.blobs_verified}


def open_source(data: Path) -> sqlite3.Connection:
    """The source catalog, read-only (never created, upgraded or written)."""
    path = Path(data) / "catalog.sqlite3"
    if not path.is_file():
        raise UsageError(f"{data} is not a gptstore server data directory (no catalog.sqlite3)",
                         hint="pass the --data directory of the store to move as --from")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                           timeout=_db.BUSY_TIMEOUT, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    revision = _db._stamp(conn)
    if version != _db.SCHEMA_VERSION or revision != migrations.HEAD:
        conn.close()  # the tables must have the target's columns: bring the source to this schema first
        raise StoreError(f"the source catalog's schema ({version}, revision {'none' if revision is None else revision}) "
                         f"is not this gptstore's ({_db.SCHEMA_VERSION}, revision {migrations.HEAD})",
                         hint=f"stop its server and run `gptstore server --data {data} migrate` first "
                              "(or use the gptstore that wrote it)")
    return conn


def target_blobs(url: str) -> Any:
    """The blob store at ``url``: ``s3://BUCKET[/PREFIX]``, or a data directory (its ``blobs/``)."""
    if url.startswith("s3://"):
        from .objectstore import S3Blobs, parse_blobs_url

        try:
            parse_blobs_url(url)
        except ValueError as exc:
            raise UsageError(str(exc).replace("--blobs", "--to-blobs")) from None
        return S3Blobs(url)
    if "://" in url:
        raise UsageError(f"unsupported --to-blobs {url.split('://')[0]}://…",
                         hint="use s3://BUCKET[/PREFIX] or the new data directory")
    return BlobStore(Path(url) / "blobs")


def migrate_store(source_data: Path, catalog_url: str, blobs_url: str, *, verify_all: bool = False,
                  progress: Callable[[str], None] = lambda line: None) -> Report:
    """Copy the store in ``source_data`` to ``catalog_url`` + ``blobs_url`` (see the module doc).
    Raises StoreError naming what is wrong (a different store in the target, a corrupt or missing
    source blob, a digest the target lacks) after copying everything else it could."""
    source_catalog = (Path(source_data) / "catalog.sqlite3").resolve()
    if catalog_url.startswith("sqlite:///") and Path(catalog_url[len("sqlite:///"):]).resolve() == source_catalog:
        raise UsageError("--to-catalog is the source's own catalog", hint="name a new catalog to copy into")
    source = open_source(Path(source_data))
    blobs = target_blobs(blobs_url)
    target = _db.connect(catalog_url)  # creates or upgrades the target's schema (Alembic)
    report = Report(str(source_data), target.describe(), blobs_url)
    try:
        source.execute("BEGIN")  # one snapshot of the source for the whole catalog copy
        try:
            _refuse_other_store(source, target)
            with target.transaction():
                for table in reversed(TABLES):
                    if table.mirror:
                        report.tables.setdefault(table.name, {})["removed"] = _remove_stale(source, target, table)
                for table in TABLES:
                    counts = report.tables.setdefault(table.name, {})
                    counts.update(_copy_table(source, target, table))
                    progress(f"catalog: {table.name}: {counts['rows']} rows, {counts['new']} new")
                if target.dialect == _dialect.POSTGRESQL:
                    target.execute("SELECT setval(pg_get_serial_sequence('repos', 'id'), "
                                   "(SELECT COALESCE(MAX(id), 0) + 1 FROM repos), false)")
        finally:
            source.execute("COMMIT")
        referenced = target.all("SELECT DISTINCT sha256, size FROM files")
        bad = _copy_blobs(Path(source_data) / "blobs", source, referenced, blobs, report, progress)
        _verify(referenced, bad, blobs, report, verify_all, progress)
    finally:
        source.close()
        target.close()
    if report.bad_blobs:
        raise StoreError(f"{len(report.bad_blobs)} source blob(s) could not be copied: "
                         + "; ".join(report.bad_blobs[:5]) + ("; …" if len(report.bad_blobs) > 5 else ""),
                         hint="restore those blobs in the source (from a backup or by pushing the files "
                              "again), then run the migration again; everything else was copied")
    return report


def _refuse_other_store(source: sqlite3.Connection, target: _db.Database) -> None:
    """StoreError when the target holds another store than the source (or writes the source lacks)."""
    mine = {row["id"]: (row["namespace"], row["name"], row["created_at"])
            for row in source.execute("SELECT id, namespace, name, created_at FROM repos")}
    newest = max((created for _, _, created in mine.values()), default="")
    for row in target.all("SELECT id, namespace, name, created_at FROM repos"):
        theirs = mine.get(row["id"])
        if theirs is not None and theirs[2] != row["created_at"]:
            raise StoreError(f"the target catalog holds a different store: repo id {row['id']} is "
                             f"{row['namespace']}/{row['name']} there, {theirs[0]}/{theirs[1]} in the source",
                             hint="migrate into an empty catalog and blob store")
        if theirs is None and row["created_at"] > newest:
            raise StoreError(f"the target catalog has repo {row['namespace']}/{row['name']}, newer than "
                             "anything in the source: it was written to after the move, or is another store",
                             hint="migrate into an empty catalog, or run the server on the target only")


def _columns(source: sqlite3.Connection, table: Table) -> list[str]:
    cursor = source.execute(f"SELECT {'rowid, ' if table.rowid else ''}* FROM {table.name} LIMIT 0")
    return [d[0] for d in cursor.description]


def _rows(source: sqlite3.Connection, table: Table, columns: list[str]) -> Iterator[list[tuple]]:
    cursor = source.execute(f"SELECT {', '.join(columns)} FROM {table.name}")
    while batch := cursor.fetchmany(BATCH):
        yield [tuple(row) for row in batch]


def _count(target: _db.Database, table: str) -> int:
    return int(target.one(f"SELECT COUNT(*) FROM {table}")[0])


def _copy_table(source: sqlite3.Connection, target: _db.Database, table: Table) -> dict[str, int]:
    columns = _columns(source, table)
    names = ", ".join(columns)
    insert = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})"
    if table.mode == INSERT:
        insert += " ON CONFLICT DO NOTHING"
    elif table.mode == UPSERT:
        rest = [c for c in columns if c not in table.key]
        insert += f" ON CONFLICT ({', '.join(table.key)}) DO " + (
            "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in rest) if rest else "NOTHING")
    where = " AND ".join(f"{c} = ?{' COLLATE NOCASE' if table.nocase else ''}" for c in table.key)
    at = [columns.index(c) for c in table.key]
    before, rows = _count(target, table.name), 0
    for batch in _rows(source, table, columns):
        rows += len(batch)
        if table.mode == REPLACE:
            target.executemany(f"DELETE FROM {table.name} WHERE {where}", [[r[i] for i in at] for r in batch])
        target.executemany(insert, batch)
    return {"rows": rows, "new": _count(target, table.name) - before}


def _remove_stale(source: sqlite3.Connection, target: _db.Database, table: Table) -> int:
    """Delete the target's rows of ``table`` whose key the source no longer has; how many."""
    keys = ", ".join(table.key)

    def norm(row: Any) -> tuple:
        return tuple(v.lower() if table.nocase and isinstance(v, str) else v for v in row)

    mine = {norm(row) for row in source.execute(f"SELECT {'id' if table.cache else keys} FROM "
                                                 f"{'repos' if table.cache else table.name}")}
    stale = [tuple(row) for row in target.all(f"SELECT {keys} FROM {table.name}") if norm(row) not in mine]
    if stale:
        where = " AND ".join(f"{c} = ?" for c in table.key)
        target.executemany(f"DELETE FROM {table.name} WHERE {where}", stale)
    return len(stale)


# -- blobs ---------------------------------------------------------------------------------------
def _wanted(source: sqlite3.Connection) -> dict[str, int | None]:
    """Every digest the source catalog references, with its size where the catalog says it."""
    wanted: dict[str, int | None] = {}
    for row in source.execute("SELECT DISTINCT sha256, size FROM files"):
        wanted[row[0]] = row[1]
    for row in source.execute("SELECT DISTINCT oid FROM lfs_objects"):
        wanted.setdefault(row[0], None)
    return wanted


class _Hashing:
    """A reader that hashes and counts what is read through it (for S3 uploads)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.handle.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


def _copy_one(path: Path, sha: str, size: int | None, blobs: Any) -> int:
    """Stream one source blob into the target, hashing it; DigestMismatch (nothing stored) when its
    bytes are not ``sha`` (or not ``size`` long). Returns the bytes copied."""
    with open(path, "rb") as handle:
        if isinstance(blobs, BlobStore):
            with blobs.writer(expected_sha256=sha, expected_size=size) as writer:
                while chunk := handle.read(CHUNK):
                    writer.write(chunk)
                writer.commit(label=f"blob {sha}")
                return writer.size
        staging = f"{blobs.prefix}uploads/migrate-{sha}"
        reader = _Hashing(handle)
        try:
            blobs.client.upload_fileobj(reader, blobs.bucket, staging)
            actual = reader.digest.hexdigest()
            if actual != sha or (size is not None and reader.size != size):
                raise DigestMismatch(f"blob {sha}: its bytes hash to {actual[:12]}… ({reader.size} bytes)")
            blobs.client.copy({"Bucket": blobs.bucket, "Key": staging}, blobs.bucket, blobs.key(sha))
        finally:
            blobs.client.delete_object(Bucket=blobs.bucket, Key=staging)
        return reader.size


def _copy_blobs(root: Path, source: sqlite3.Connection, referenced: list[Any], blobs: Any, report: Report,
                progress: Callable[[str], None]) -> set[str]:
    """Copy every blob the source catalog or ``referenced`` (the target catalog's ``(sha256, size)``
    rows) names that the target lacks; returns the digests that could not be copied."""
    store = BlobStore(root)
    wanted = _wanted(source)
    bad: set[str] = set()
    # digests the target catalog references beyond the source snapshot (pushes since) come along too
    for row in referenced:
        wanted.setdefault(row[0], row[1])
    for n, (sha, size) in enumerate(sorted(wanted.items()), 1):
        if not is_sha256(sha):
            report.bad_blobs.append(f"{str(sha)[:80]!r} is not a sha256 digest")
            bad.add(sha)
            continue
        if blobs.has(sha):
            report.blobs_skipped += 1
            continue
        path = store.path(sha)
        if not path.is_file():
            report.bad_blobs.append(f"{sha} is missing from {root}")
            bad.add(sha)
            continue
        try:
            report.bytes_copied += _copy_one(path, sha, size, blobs)
        except DigestMismatch:
            report.bad_blobs.append(f"{sha} in {root} is corrupt (its bytes do not hash to its name)")
            bad.add(sha)
            continue
        report.blobs_copied += 1
        if n % 100 == 0:
            progress(f"blobs: {n}/{len(wanted)}")
    progress(f"blobs: {report.blobs_copied} copied ({report.bytes_copied} bytes), {report.blobs_skipped} "
             "already there")
    return bad


def _verify(referenced: list[Any], bad: set[str], blobs: Any, report: Report, verify_all: bool,
            progress: Callable[[str], None]) -> None:
    """Every digest the target catalog references (``referenced``: its ``(sha256, size)`` rows) is
    in the target blob store with its size (and, with ``verify_all``, hashes to its name read back
    from there); the ``bad`` ones, reported already, are skipped."""
    problems: list[str] = []
    for sha, size in referenced:
        if sha in bad:
            continue
        try:
            actual = blobs.size(sha)
        except (FileNotFoundError, OSError):
            problems.append(f"{sha} is missing from the target blob store")
            continue
        if actual != size:
            problems.append(f"{sha} has {actual} bytes in the target, the catalog says {size}")
            continue
        if verify_all:
            digest = hashlib.sha256()
            with blobs.open(sha) as body:
                while chunk := body.read(CHUNK):
                    digest.update(chunk)
            if digest.hexdigest() != sha:
                problems.append(f"{sha} in the target blob store is corrupt")
                continue
        report.blobs_verified += 1
    progress(f"verified: {report.blobs_verified} blobs" + (" (re-hashed)" if verify_all else ""))
    report.bad_blobs.extend(problems)
