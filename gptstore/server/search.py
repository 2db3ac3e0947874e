"""``list_models``: search, filter, sort and page over the repos a caller may see.

``search`` matches a substring of the repo id (as on the Hub) *or* every word (as a prefix) in
the full-text index of main's manifest: name, description, tags, provider, license and pricing
model (``manifest_fts``), or name, description, tags, provider, category and use cases
(``catalogue_fts``; SQLite FTS5, row id = repo id). ``filter`` values are ANDed tags.

The storefront's filters (category, license, price and parameter ranges, format, verified
publisher, language) read the ``catalogue`` rows (``catalogue.py``): a repo without a manifest
matches none of them. Sorts are descending (most downloads, best rated, newest first) except
``price`` (cheapest first); models without the sorted value come last, and ties are broken by
repo id so pages are stable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..manifest import MAX_SIZE, Category
from .catalog import Repo, repo_from_row
from .catalogue import VERIFIED_SQL, trending_since
from . import dialect
from .db import Database
from .http import bad_request, validation_message

_RATING = "(SELECT AVG(stars) FROM reviews v WHERE v.repo = r.id)"
_RECENT = ("(SELECT COALESCE(SUM(count), 0) FROM daily_downloads d WHERE d.repo = r.id "
           "AND d.day >= :recent_since)")
SORTS = {
    "downloads": "r.downloads DESC",
    "lastModified": "r.last_modified DESC",
    "last_modified": "r.last_modified DESC",
    "createdAt": "r.created_at DESC",
    "created_at": "r.created_at DESC",
    "newest": "r.created_at DESC",
    "trendingScore": f"{_RECENT} DESC, r.downloads DESC",
    "trending": f"{_RECENT} DESC, r.downloads DESC",
    "rating": f"{_RATING} IS NULL, {_RATING} DESC, "
              "(SELECT COUNT(*) FROM reviews v WHERE v.repo = r.id) DESC, r.downloads DESC",
    "price": "c.price_amount IS NULL, c.price_amount ASC, r.downloads DESC",
    "likes": "r.downloads DESC",
    "id": "r.namespace ASC, r.name ASC",
}
#: the storefront's sorts (``gptstore search --sort``), each a key of SORTS
STORE_SORTS = ("downloads", "trending", "rating", "newest", "price", "recent")
FORMATS = ("full", "adapter")
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
    # the storefront's filters (None / empty: not filtered)
    categories: tuple[str, ...] = ()  # any of them
    license: str | None = None  # SPDX id or expression, compared without case
    min_price: float | None = None  # amounts as the manifest gives them, in its currency
    max_price: float | None = None
    min_parameters: int | None = None
    max_parameters: int | None = None
    format: str | None = None  # "full" or "adapter"
    verified: bool = False  # signed by a key registered for the namespace
    language: str | None = None


class StoreFilters(BaseModel):
    """The storefront's query parameters of ``GET /api/models`` (docs/server.md, "Catalogue API")."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    categories: tuple[Category, ...] = Field((), alias="category", max_length=12)
    license: str | None = Field(None, min_length=1, max_length=256)
    min_price: float | None = Field(None, ge=0, le=1e15)
    max_price: float | None = Field(None, ge=0, le=1e15)
    min_parameters: int | None = Field(None, ge=0, le=MAX_SIZE)
    max_parameters: int | None = Field(None, ge=0, le=MAX_SIZE)
    format: Literal["full", "adapter"] | None = None
    verified: bool = False
    language: str | None = Field(None, min_length=1, max_length=35)


def store_filters(params: Any) -> dict[str, Any]:
    """:class:`ModelQuery` fields from a listing's query parameters (a Starlette ``QueryParams``);
    400 naming the parameter when one does not fit."""
    data: dict[str, Any] = {}
    if "category" in params:
        data["category"] = [value for value in params.getlist("category") if value]  # a form's "any" is empty
    for name in StoreFilters.model_fields:
        if name != "categories" and params.get(name):
            data[name] = params.get(name)
    try:
        parsed = StoreFilters.model_validate(data)
    except ValidationError as exc:
        raise bad_request(validation_message(exc, "query")) from None
    return parsed.model_dump()


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


def fts_query(text: str, engine: str = dialect.SQLITE) -> str | None:
    """Every word of ``text`` as a quoted prefix term (ANDed) for ``engine``'s full-text index; None when there is no word."""
    return dialect.fts_query(engine, search_words(text))


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _catalogue_filters(query: ModelQuery, engine: str) -> tuple[list[str], dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    if query.categories:
        names = [f":category{i}" for i in range(len(query.categories))]
        where.append(f"c.category IN ({', '.join(names)})")
        params.update({name[1:]: value for name, value in zip(names, query.categories)})
    checks = [("license", "c.license = lower(:license)", query.license),
              ("min_price", "c.price_amount >= :min_price", query.min_price),
              ("max_price", "c.price_amount <= :max_price", query.max_price),
              ("min_parameters", "c.parameters >= :min_parameters", query.min_parameters),
              ("max_parameters", "c.parameters <= :max_parameters", query.max_parameters),
              ("adapter", "c.adapter = :adapter", None if query.format is None else int(query.format == "adapter")),
              ("language", dialect.json_contains(engine, "c.languages", "lower(:language)"),
               query.language)]
    for name, clause, value in checks:
        if value is not None:
            where.append(clause)
            params[name] = value
    if query.verified:
        where.append(VERIFIED_SQL)
    if where:
        where.insert(0, "c.repo IS NOT NULL")
    return where, params


#: sorts a listing can read in index order (migration 0002's indexes; ``id`` reads the unique key)
WALKABLE_SORTS = frozenset({"downloads", "likes", "lastModified", "last_modified", "createdAt", "created_at",
                            "newest", "id"})
#: how many repos, in the listing's order, a search first looks through for its page (below)
SEARCH_WINDOW = 1000
#: the deepest page end (offset + limit) a search looks for in that window first
WINDOWED_DEPTH = 100


def query_models(db: Database, query: ModelQuery, *, visible: tuple[str, ...],
                 window: int = SEARCH_WINDOW) -> list[tuple[Repo, str]]:
    """(repo, main's commit) pairs for one page; ``visible`` = namespaces whose private repos show.
    The catalogue must be fresh (``catalogue.refresh``) for its filters and sorts to be exact.

    A search sorted in index order first looks for its page among the first ``window`` repos of that
    order (each repo tested for a match by its row: cheap when the words are common, where the page
    fills after a few hundred repos). When that window holds the whole page, the page is exact: the
    window's repos come first in the order, ties included. Otherwise the matches are collected
    as a set (full-text indexes, plus the id substring through PostgreSQL's trigram index) and
    sorted: cheap when the words are rare. Either plan alone is slow at 100,000 models for the
    other kind of word (``bench/scale.py``)."""
    where, params = _conditions(db, query, visible)
    order = SORTS.get(query.sort, SORTS["downloads"])
    if ":recent_since" in order:
        params["recent_since"] = trending_since()
    params.update(limit=query.limit, offset=query.offset)
    select = ("SELECT r.*, refs.target AS head FROM {source} r "
              "JOIN refs ON refs.repo = r.id AND refs.kind = 'branch' AND refs.name = 'main' "
              "LEFT JOIN catalogue c ON c.repo = r.id {joins}"
              f"WHERE {{where}} ORDER BY {order}, r.namespace, r.name LIMIT :limit OFFSET :offset")
    if not query.search:
        return _page(db, select.format(source="repos", joins="", where=" AND ".join(where)), params)
    match = fts_query(query.search, db.dialect)
    params["like"] = _like(query.search)
    if match:
        params["match"] = match
    if query.sort in WALKABLE_SORTS and query.offset + query.limit <= min(window, WINDOWED_DEPTH):
        joins, condition = dialect.fts_row_match(db.dialect, ("manifest_fts", "catalogue_fts"), "match") \
            if match else ("", "")
        clause = _ID_LIKE + (f" OR {condition}" if condition else "")
        params["window"] = window
        rows = _page(db, select.format(
            source=f"(SELECT * FROM repos r ORDER BY {order}, r.namespace, r.name LIMIT :window)", joins=joins,
            where=" AND ".join([*where, f"({clause})"])), params)
        if len(rows) == query.limit:
            return rows
    found = [f"SELECT r.id FROM repos r WHERE {_ID_LIKE}"]
    if match:
        found += [dialect.fts_match(db.dialect, table, "match") for table in ("manifest_fts", "catalogue_fts")]
    return _page(db, select.format(source="repos", joins="", where=" AND ".join(
        [*where, f"r.id IN ({' UNION '.join(found)})"])), params)


#: SQL: the repo id holds the search text (as on the Hub; PostgreSQL's trigram index serves it)
_ID_LIKE = "(r.namespace || '/' || r.name) LIKE :like ESCAPE '\\'"


def _conditions(db: Database, query: ModelQuery, visible: tuple[str, ...]) -> tuple[list[str], dict[str, Any]]:
    """The WHERE conditions (ANDed) and parameters of everything but the search words."""
    params: dict[str, Any] = {f"visible{i}": namespace for i, namespace in enumerate(visible)}
    marks = ", ".join(f":visible{i}" for i in range(len(visible)))
    where = ["(r.private = 0" + (f" OR r.namespace IN ({marks})" if visible else "") + ")"]
    if query.author:
        where.append("r.namespace = :author")
        params["author"] = query.author
    for i, tag in enumerate(query.tags):
        where.append(f"r.id IN (SELECT repo FROM repo_tags WHERE tag = :tag{i})")
        params[f"tag{i}"] = tag
    if query.pipeline_tag:
        where.append("r.pipeline_tag = :pipeline_tag")
        params["pipeline_tag"] = query.pipeline_tag
    filters, filter_params = _catalogue_filters(query, db.dialect)
    params.update(filter_params)
    return where + filters, params


def _page(db: Database, sql: str, params: dict[str, Any]) -> list[tuple[Repo, str]]:
    return [(repo_from_row(row), row["head"]) for row in db.all(sql, params)]
