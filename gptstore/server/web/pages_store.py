"""The store's public pages: the home page, the model listing (``/models``) and provider profiles.

Every page reads through the same queries as the API (``search.query_models``,
``catalogue.facets``) with the visitor's namespaces, so a private model shows only to members
of its namespace, on every page. The catalogue is brought up to date (``catalogue.refresh``)
before a page reads it, as the API's listing does.

A bad filter value is a page saying what is wrong (400), an unknown namespace or model a 404
page: :func:`html_errors` turns the API's errors into pages for every handler here.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from starlette.responses import Response

from ...manifest import CATEGORIES
from ..accounts import RESERVED_NAMES
from ..catalog import Repo
from ..catalogue import facets, refresh
from ..context import Call
from ..http import HubError, bad_request
from ..keys import SigningKeys
from ..search import MAX_SEARCH_WORDS, ModelQuery, query_models, search_words, store_filters
from .sessions import web_principal
from .templating import render

#: models per page of /models
PAGE_SIZE = 20
#: models per strip of the home page
STRIP = 6
#: models a profile lists
PROFILE_MODELS = 200
#: the listing's sorts, in the order the form offers them (each a key of search.SORTS)
PAGE_SORTS = ("trending", "downloads", "rating", "newest", "price")
#: last page number a listing goes to (deep offsets are slow and useless to a person)
MAX_PAGE = 500
#: longest search text the listing takes
MAX_QUERY_CHARS = 200
#: most query parameters a listing URL may carry
MAX_PARAMS = 40
#: first path segments the store uses itself: never a namespace page (see ``web/__init__``); new
#: accounts cannot take them, but a catalog from before that rule may hold one
RESERVED = RESERVED_NAMES
FORM_FIELDS = ("license", "min_price", "max_price", "min_parameters", "max_parameters", "format", "language")


def html_errors(handler: Callable[[Call], Response]) -> Callable[[Call], Response]:
    """``handler`` with the API's errors (400 bad filter, 403 form, 404 unknown model) answered
    as a page with the same status and message."""

    @functools.wraps(handler)
    def page(call: Call) -> Response:
        try:
            return handler(call)
        except HubError as exc:
            return error_page(call, exc.status, exc.message)

    return page


def error_page(call: Call, status: int, message: str) -> Response:
    titles = {400: "Bad request", 401: "Sign in needed", 403: "Not allowed", 404: "Not found"}
    return render(call, "error.html", status=status, title=titles.get(status, "Error"), message=message)


def not_found_page(call: Call, what: str = "There is no such model or provider on this store.") -> Response:
    return error_page(call, 404, what)


def visible_namespaces(call: Call) -> tuple[str, ...]:
    principal = web_principal(call)
    return principal.namespaces if principal else ()


# -- what a card shows -------------------------------------------------------------------------
def price_text(pricing: dict[str, Any] | None) -> str:
    if not pricing or pricing.get("model", "free") == "free":
        return "Free"
    amount = f"{pricing.get('amount', 0):g} {pricing.get('currency', 'USD')}"
    return f"{amount} / 1k tokens" if pricing["model"] == "per_1k_tokens" else f"{amount} flat"


def one_line(text: str, limit: int = 140) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def card(repo: Repo, facet: dict[str, Any] | None) -> dict[str, Any]:
    """What a model's card in a list shows."""
    summary = repo.summary or {}
    facet = facet or {}
    provider = (summary.get("provider") or {}).get("name") or repo.namespace
    rating = facet.get("rating") or {"average": None, "count": 0}
    return {"namespace": repo.namespace, "name": repo.name, "id": repo.repo_id, "provider": provider,
            "description": one_line(summary.get("description", "")), "category": facet.get("category"),
            "price": price_text(summary.get("pricing")) if summary else None, "rating": rating,
            "downloads": repo.downloads, "verified": bool(facet.get("verified")), "private": repo.private,
            "version": summary.get("version"), "format": facet.get("format")}


def cards(call: Call, query: ModelQuery) -> list[dict[str, Any]]:
    rows = query_models(call.state.db, query, visible=visible_namespaces(call))
    found = facets(call.state.db, [repo.id for repo, _ in rows])
    return [card(repo, found.get(repo.id)) for repo, _ in rows]


# -- pages ---------------------------------------------------------------------------------------
@html_errors
def home(call: Call) -> Response:
    refresh(call.state.db, call.state.storage)
    strips = [("Trending", "trending", cards(call, ModelQuery(sort="trending", limit=STRIP))),
              ("Newest", "newest", cards(call, ModelQuery(sort="newest", limit=STRIP))),
              ("Top rated", "rating", cards(call, ModelQuery(sort="rating", limit=STRIP)))]
    return render(call, "home.html", strips=strips, categories=CATEGORIES)


def _listing(call: Call) -> tuple[ModelQuery, dict[str, Any]]:
    """The listing's query from its GET form, and the form's values to show again (400 when bad)."""
    params = call.request.query_params
    if len(params.multi_items()) > MAX_PARAMS:
        raise bad_request(f"too many query parameters; at most {MAX_PARAMS}")
    text = (params.get("q") or "").strip()
    if len(text) > MAX_QUERY_CHARS or len(search_words(text)) > MAX_SEARCH_WORDS:
        raise bad_request(f"the search is too long: at most {MAX_QUERY_CHARS} characters and "
                          f"{MAX_SEARCH_WORDS} words")
    sort = params.get("sort") or "trending"
    if sort not in PAGE_SORTS:
        raise bad_request(f"unknown sort {sort[:40]!r}; use one of {', '.join(PAGE_SORTS)}")
    page_text = params.get("page") or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        raise bad_request(f"page must be a whole number from 1 to {MAX_PAGE}")
    page = int(page_text)
    filters = store_filters(params)  # 400 naming the parameter
    query = ModelQuery(search=text or None, sort=sort, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE + 1,
                       **filters)
    shown = {name: params.get(name) or "" for name in FORM_FIELDS}
    shown.update(q=text, sort=sort, page=page, categories=list(filters["categories"]),
                 verified=filters["verified"])
    return query, shown


def _page_link(shown: dict[str, Any], page: int) -> str:
    from urllib.parse import urlencode

    pairs = [("q", shown["q"])] + [("category", c) for c in shown["categories"]]
    pairs += [(name, shown[name]) for name in FORM_FIELDS]
    pairs += [("verified", "true" if shown["verified"] else ""), ("sort", shown["sort"]), ("page", str(page))]
    return "?" + urlencode([(key, value) for key, value in pairs if value])


@html_errors
def models(call: Call) -> Response:
    try:
        query, shown = _listing(call)
    except HubError as exc:
        params = call.request.query_params
        shown = {name: (params.get(name) or "")[:MAX_QUERY_CHARS] for name in (*FORM_FIELDS, "q", "sort")}
        shown.update(categories=params.getlist("category")[:len(CATEGORIES)], verified=bool(params.get("verified")),
                     page=1)
        return render(call, "models.html", status=exc.status, error=exc.message, results=[], shown=shown,
                      categories=CATEGORIES, sorts=PAGE_SORTS, previous=None, next=None)
    refresh(call.state.db, call.state.storage)
    results = cards(call, query)
    more = len(results) > PAGE_SIZE
    page = shown["page"]
    return render(call, "models.html", error=None, results=results[:PAGE_SIZE], shown=shown,
                  categories=CATEGORIES, sorts=PAGE_SORTS,
                  previous=_page_link(shown, page - 1) if page > 1 else None,
                  next=_page_link(shown, page + 1) if more else None)


@html_errors
def profile(call: Call) -> Response:
    namespace = call.state.catalog.namespace(call.params["namespace"])
    if namespace is None:
        return not_found_page(call, "There is no such provider on this store.")
    db = call.state.db
    refresh(db, call.state.storage)
    visible = visible_namespaces(call)
    listed = cards(call, ModelQuery(author=namespace, sort="downloads", limit=PROFILE_MODELS))
    member = namespace in visible
    totals = db.one("SELECT COUNT(*) AS models, COALESCE(SUM(downloads), 0) AS downloads, "
                    "(SELECT AVG(v.stars) FROM reviews v JOIN repos x ON x.id = v.repo "
                    " WHERE x.namespace = :ns AND (x.private = 0 OR :member)) AS rating, "
                    "(SELECT COUNT(*) FROM reviews v JOIN repos x ON x.id = v.repo "
                    " WHERE x.namespace = :ns AND (x.private = 0 OR :member)) AS reviews "
                    "FROM repos WHERE namespace = :ns AND (private = 0 OR :member)",
                    {"ns": namespace, "member": int(member)})
    keys = SigningKeys(db).list(namespace)
    fullname = call.state.accounts.fullnames((namespace,))[namespace]
    return render(call, "profile.html", namespace=namespace, fullname=fullname, models=listed,
                  total_models=totals["models"], total_downloads=totals["downloads"],
                  rating=round(totals["rating"], 2) if totals["rating"] is not None else None,
                  reviews=totals["reviews"], verified=bool(keys), keyids=[key.keyid for key in keys],
                  kind=call.state.accounts.kind(namespace))
