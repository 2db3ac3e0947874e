"""``list_models``: search, filter, sort and page over the repos a caller may see.

``search`` matches a substring of the repo id (as on the Hub) *or* every word (as a prefix) in
the full-text index of main's manifest: name, description, tags, provider, license and pricing
model (SQLite FTS5, row id = repo id). ``filter`` values are ANDed tags. Sorting is descending,
ties broken by repo id so pages are stable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .catalog import Repo, repo_from_row
from .db import Database

SORTS = {
    "downloads": "r.downloads DESC",
    "lastModified": "r.last_modified DESC",
    "last_modified": "r.last_modified DESC",
    "createdAt": "r.created_at DESC",
    "created_at": "r.created_at DESC",
    "trendingScore": "r.downloads DESC",
    "likes": "r.downloads DESC",
    "id": "r.namespace ASC, r.name ASC",
}
_WORD = re.compile(r"\w+", re.UNICODE)
#: most ``filter`` tags one listing combines (each is one SQL condition; 1,100 broke SQLite's limits)
MAX_FILTERS = 32
#: most words one ``search`` may hold (each is one full-text term)
MAX_SEARCH_WORDS = 32


@dataclass(frozen=True)
class ModelQuery:
    search: str | None = None
    author: str | None = None
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    sort: str = "downloads"
    offset: int = 0
    limit: int = 1000


def index_manifest(db: Database, repo_id: int, summary: dict[str, Any] | None) -> None:
    """Replace the repo's row in the full-text index (no row when main has no manifest)."""
    db.execute("DELETE FROM manifest_fts WHERE rowid = ?", (repo_id,))
    if summary:
        provider = summary.get("provider") or {}
        db.execute("INSERT INTO manifest_fts (rowid, name, description, tags, provider, license, pricing) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (repo_id, summary.get("name", ""), summary.get("description", ""),
                    " ".join(summary.get("tags", [])), provider.get("name", ""),
                    summary.get("license", ""), (summary.get("pricing") or {}).get("model", "")))


def search_words(text: str) -> list[str]:
    return _WORD.findall(text)


def fts_query(text: str) -> str | None:
    """Every word of ``text`` as a quoted prefix term (ANDed); None when there is no word."""
    words = search_words(text)
    return " ".join(f'"{w}"*' for w in words) if words else None


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def query_models(db: Database, query: ModelQuery, *, visible: tuple[str, ...]) -> list[tuple[Repo, str]]:
    """(repo, main's commit) pairs for one page; ``visible`` = namespaces whose private repos show."""
    where = ["(r.private = 0" + (f" OR r.namespace IN ({','.join('?' * len(visible))})" if visible else "") + ")"]
    params: list[Any] = list(visible)
    if query.search:
        match = fts_query(query.search)
        clause = "(r.namespace || '/' || r.name) LIKE ? ESCAPE '\\'"
        params.append(_like(query.search))
        if match:
            clause = f"({clause} OR r.id IN (SELECT rowid FROM manifest_fts WHERE manifest_fts MATCH ?))"
            params.append(match)
        where.append(clause)
    if query.author:
        where.append("r.namespace = ?")
        params.append(query.author)
    for tag in query.tags:
        where.append("r.id IN (SELECT repo FROM repo_tags WHERE tag = ?)")
        params.append(tag)
    if query.pipeline_tag:
        where.append("r.pipeline_tag = ?")
        params.append(query.pipeline_tag)
    order = SORTS.get(query.sort, SORTS["downloads"])
    sql = (f"SELECT r.*, refs.target AS head FROM repos r "
           f"JOIN refs ON refs.repo = r.id AND refs.kind = 'branch' AND refs.name = 'main' "
           f"WHERE {' AND '.join(where)} ORDER BY {order}, r.namespace, r.name LIMIT ? OFFSET ?")
    params += [query.limit, query.offset]
    return [(repo_from_row(row), row["head"]) for row in db.all(sql, params)]
