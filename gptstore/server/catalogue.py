"""The storefront's catalogue: what each model's manifest and signature say, kept as facets the
listing can filter and sort on, and what the store adds (rating, recent downloads).

One row of ``catalogue`` per repo whose ``main`` holds a ``gptstore.json``: category, use cases,
languages, license, full model or adapter, parameters, pricing, and the key id of the
namespace's registered signing key that the ``gptstore.sig`` or OpenSSF ``model.sig`` verifies
with, checked as the commit check does (:func:`gptstore.oms.check_any`; the "verified publisher"
mark); ``catalogue_fts`` indexes its text (use cases and category included) for
search. Rows are made by :func:`refresh` from the stored manifest and signature, and a row is
*stale* when main's manifest digest (the repo's summary) or the repo's id changed, or when a key
was registered for the namespace after a signature that did not verify was checked. The listing
and model-info handlers call :func:`refresh` before they read, so commits, moves, duplicates,
key registrations and catalogs upgraded from schema 4 all show up without a hook in the commit
path; while nothing was committed since the last refresh, it is two cheap statements.

"Verified" is read live: the signer must still be registered for the repo's namespace, so
removing a key (``gptstore server key remove``) removes the mark at once.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import GPTStoreError, ManifestError
from ..manifest import MANIFEST_FILE, OMS_SIGNATURE_FILE, SIGNATURE_FILE, Manifest, parse_bytes
from . import dialect
from .catalog import MAIN
from .db import Database
from .keys import MAX_SIGNATURE, SigningKeys
from .storage import Storage
from .timeutil import now

log = logging.getLogger("gptstore.server")

#: the largest manifest read back from storage (what the commit check accepts)
MAX_MANIFEST = 4 * 1024 * 1024
#: days of downloads that make a model trending
TRENDING_DAYS = 7
#: repos refreshed per write transaction (a big backfill does not hold the writer lock for long)
REFRESH_BATCH = 200

_STALE = """
SELECT r.id, r.namespace, r.name, r.summary IS NULL AS gone, h.target AS head, c.repo IS NOT NULL AS catalogued
FROM repos r
LEFT JOIN catalogue c ON c.repo = r.id
LEFT JOIN refs h ON h.repo = r.id AND h.kind = 'branch' AND h.name = '%(main)s'
WHERE (r.summary IS NULL AND c.repo IS NOT NULL)
   OR (r.summary IS NOT NULL AND (
        c.repo IS NULL
        OR c.digest IS NOT %(digest)s
        OR c.repo_id != r.namespace || '/' || r.name
        OR (c.signed = 1 AND c.signer IS NULL AND EXISTS (
              SELECT 1 FROM signing_keys k WHERE k.namespace = r.namespace AND k.added_at >= c.refreshed_at))))
LIMIT %(batch)d
"""

#: SQL: 1 when a catalogue row ``c`` of repo ``r`` is signed by a key registered for r's namespace now
VERIFIED_SQL = ("(c.signer IS NOT NULL AND EXISTS (SELECT 1 FROM signing_keys k "
                "WHERE k.namespace = r.namespace AND k.keyid = c.signer))")


def _stale_sql(engine: str) -> str:
    return _STALE % {"main": MAIN, "digest": dialect.json_text(engine, "r.summary", "digest"), "batch": REFRESH_BATCH}


def trending_since(today: datetime | None = None) -> str:
    """The first UTC day (``YYYY-MM-DD``) counted as recent: the last :data:`TRENDING_DAYS` days."""
    today = today or datetime.now(timezone.utc)
    return (today - timedelta(days=TRENDING_DAYS - 1)).strftime("%Y-%m-%d")


def _checked(db: Database) -> threading.local:
    """Per thread, ``version``: ``db.version()`` when :func:`refresh` last left nothing to do in
    ``db``; kept on the Database itself, so it goes with it."""
    return db.__dict__.setdefault("_catalogue_checked", threading.local())  # setdefault: one per db, even in a race


def refresh(db: Database, storage: Storage) -> int:
    """Bring every stale catalogue row up to date (see the module doc); the number refreshed.

    Finding stale rows scans every repo (~25 ms at 10,000), so it is skipped while nothing was
    committed to the catalog since this thread's last refresh (``Database.version``): staleness
    depends on the catalog's content only, so an unchanged catalog has nothing new to refresh."""
    checked = _checked(db)
    if getattr(checked, "version", None) == db.version():
        return 0
    seen: set[int] = set()
    keys = SigningKeys(db)
    while True:
        rows = [row for row in db.all(_stale_sql(db.dialect)) if row["id"] not in seen]
        if not rows:  # none left, or only ones that stay stale (a manifest that no longer parses)
            checked.version = db.version()
            return len(seen)
        # read outside the write: a row that stays stale with no catalogue row to remove (its manifest
        # cannot be read) writes nothing, so it does not move the version other threads and replicas
        # compare against (they would each scan again and write again, in turns, for ever)
        work = [(row, _manifest_of(db, storage, row)) for row in rows]
        work = [(row, manifest) for row, manifest in work if manifest is not None or row["catalogued"]]
        if work:
            with db.transaction():
                for row, manifest in work:
                    _refresh_one(db, storage, keys, row, manifest)
        seen.update(row["id"] for row in rows)


_CATALOGUE_COLUMNS = ("repo_id, digest, category, use_cases, languages, license, adapter, parameters, price_model, "
                      "price_amount, currency, signed, signer, refreshed_at")
_CATALOGUE_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in _CATALOGUE_COLUMNS.split(", "))


def _manifest_of(db: Database, storage: Storage, row: Any) -> Manifest | None:
    """The manifest at main of a stale row's repo; None when it has none (or it no longer parses)."""
    return None if row["gone"] or row["head"] is None else read_manifest(db, storage, row["head"])


def _refresh_one(db: Database, storage: Storage, keys: SigningKeys, row: Any, manifest: Manifest | None) -> None:
    repo = row["id"]
    db.execute("DELETE FROM catalogue_fts WHERE rowid = ?", (repo,))
    if manifest is None:
        db.execute("DELETE FROM catalogue WHERE repo = ?", (repo,))
        return
    repo_id = f"{row['namespace']}/{row['name']}"
    signature, oms = (read_file(db, storage, row["head"], name, MAX_SIGNATURE + 1)
                      for name in (SIGNATURE_FILE, OMS_SIGNATURE_FILE))
    signer = _verified_signer(manifest, signature, oms, repo_id, row["namespace"], keys)
    pricing = manifest.pricing
    db.execute(
        f"INSERT INTO catalogue (repo, {_CATALOGUE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        f"ON CONFLICT (repo) DO UPDATE SET {_CATALOGUE_UPDATE}",
        (repo, repo_id, manifest.digest, manifest.category, json.dumps(manifest.use_cases or []),
         json.dumps([language.lower() for language in manifest.languages]), manifest.license.lower(),
         int(manifest.format.base is not None), manifest.format.parameters, pricing.model,
         pricing.amount, pricing.currency, int(signature is not None or oms is not None), signer, now()))
    db.execute("INSERT INTO catalogue_fts (rowid, name, description, tags, provider, category, use_cases) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)",
               (repo, f"{repo_id} {manifest.name}", manifest.description, " ".join(manifest.tags),
                manifest.provider.name if manifest.provider else "", manifest.category or "",
                " ; ".join(manifest.use_cases or [])))


def read_file(db: Database, storage: Storage, commit: str, path: str, limit: int) -> bytes | None:
    """The bytes of ``path`` at ``commit``; None when it is absent, larger than ``limit`` or unreadable."""
    found = db.one("SELECT sha256, size FROM files WHERE commit_id = ? AND path = ?", (commit, path))
    if found is None or found["size"] > limit:
        return None
    try:
        with storage.blobs.open(found["sha256"]) as handle:
            return handle.read(limit)
    except OSError:
        return None


def read_manifest(db: Database, storage: Storage, commit: str) -> Manifest | None:
    """The manifest at ``commit``; None when it has none, or one too large or that no longer parses."""
    data = read_file(db, storage, commit, MANIFEST_FILE, MAX_MANIFEST)
    if data is None:
        return None
    try:
        return parse_bytes(data, source=MANIFEST_FILE)
    except ManifestError:
        return None  # the commit check refused such a manifest; an old catalog may still hold one


def _verified_signer(manifest: Manifest, signature: bytes | None, oms: bytes | None, repo_id: str,
                     namespace: str, keys: SigningKeys) -> str | None:
    """The key id of ``namespace``'s registered key that signed this very manifest for this repo,
    with ``gptstore.sig`` (``signature``) or ``model.sig`` (``oms``)."""
    if (signature is None and oms is None) or manifest.repo_id.lower() != repo_id.lower():
        return None
    trusted = keys.trusted(namespace)
    if not trusted:
        return None
    from ..oms import check_any

    try:
        result, _ = check_any(manifest, signature, oms, trusted, namespace=namespace)
    except GPTStoreError as exc:  # e.g. the signing extra is missing: no mark, and say why once
        log.warning("cannot check the signature of %s: %s", repo_id, exc.message)
        return None
    return result.keyid if result.ok else None


# -- reading ------------------------------------------------------------------------------------
def facets(db: Database, repo_ids: list[int]) -> dict[int, dict[str, Any]]:
    """``{repo id: what the store adds to its summary}`` for the repos that have a catalogue row:
    category, use cases, languages, format (``full`` / ``adapter``), ``verified`` and ``signer``,
    ``rating`` ``{average, count}`` and ``downloads_7d``."""
    if not repo_ids:
        return {}
    marks = ",".join("?" * len(repo_ids))
    rows = db.all(
        f"SELECT c.*, {VERIFIED_SQL} AS verified, "
        "(SELECT AVG(stars) FROM reviews v WHERE v.repo = c.repo) AS rating, "
        "(SELECT COUNT(*) FROM reviews v WHERE v.repo = c.repo) AS reviews, "
        "(SELECT COALESCE(SUM(count), 0) FROM daily_downloads d WHERE d.repo = c.repo AND d.day >= ?) AS recent "
        f"FROM catalogue c JOIN repos r ON r.id = c.repo WHERE c.repo IN ({marks})",
        (trending_since(), *repo_ids))
    return {row["repo"]: _facet(row) for row in rows}


def _facet(row: Any) -> dict[str, Any]:
    average = row["rating"]
    return {
        "category": row["category"],
        "use_cases": json.loads(row["use_cases"]),
        "languages": json.loads(row["languages"]),
        "format": "adapter" if row["adapter"] else "full",
        "verified": bool(row["verified"]),
        "signer": row["signer"] if row["verified"] else None,
        "rating": {"average": round(average, 2) if average is not None else None, "count": row["reviews"]},
        "downloads_7d": row["recent"],
    }
