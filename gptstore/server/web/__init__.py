"""The storefront: server-rendered pages over the same catalog, accounts and tokens as the API.

No JavaScript at all (the pages' Content-Security-Policy forbids scripts): forms, links and inline
SVG. One module per concept:

    templating    the Jinja2 environment (autoescaped), page responses and their security headers
    sessions      sign-in with a store token into a signed session cookie; CSRF tokens for forms
    markdown      model cards rendered safely (no raw HTML, links sanitised)
    charts        small inline SVG charts (downloads per day)
    pages_account sign-in and sign-out pages
    pages_access  the model page's gated-access box and its forms (request, approve, reject)
    pages_dashboard  /{ns}/-/dashboard: a namespace's downloads, ratings, access requests, usage
    pages_store   the home page, the model listing (/models) and provider profiles (/{namespace})
    pages_model   the model page (/{namespace}/{name}) and its review form

:data:`ROUTES` are appended to the API's routes by ``gptstore.server.app``; API paths are matched
first, so a page never shadows an API route. Among the pages, ``/models`` and ``/login`` come
before the namespace pages, and the namespace patterns refuse the path segments the store uses
itself (:data:`accounts.RESERVED_NAMES`: ``api``, ``models``, ``login``, ``healthz``, …). New users
and orgs cannot take those names; routing order keeps the paths the store's even in a catalog
made before that rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import pages_access, pages_account, pages_dashboard, pages_model, pages_store

if TYPE_CHECKING:
    from ..context import Handler

#: a namespace in a page's path: never one of the store's own first segments
_NAMESPACE = r"(?P<namespace>(?!(?i:%s)(?:/|$))[^/]+)" % "|".join(pages_store.RESERVED)
#: a model's id in a page's path (``/api/…`` stays the API's, answered by its 404 when unknown)
_MODEL = r"/(?P<namespace>(?!(?i:api)/)[^/]+)/(?P<name>[^/]+)"

#: (methods, pattern over the raw path, handler), tried after the API's routes
ROUTES: list[tuple[tuple[str, ...], str, "Handler"]] = [
    *pages_account.ROUTES,
    (("GET",), r"/", pages_store.home),
    (("GET",), r"/models", pages_store.models),
    (("POST",), _MODEL + r"/reviews", pages_model.save_review),
    (("POST",), _MODEL + r"/reviews/delete", pages_model.delete_review),
    (("GET",), "/" + _NAMESPACE + r"/-/dashboard", pages_dashboard.dashboard),
    (("POST",), "/" + _NAMESPACE + r"/-/dashboard/access", pages_access.decide),
    (("POST",), _MODEL + r"/ask-access", pages_access.ask_access),
    # the Hub's web URL of a revision (what `gptstore push` prints) opens the model page
    (("GET",), _MODEL + r"/tree/(?P<revision>[^/]+)(?:/.*)?", pages_model.model_page),
    (("GET",), _MODEL, pages_model.model_page),
    (("GET",), "/" + _NAMESPACE, pages_store.profile),
]
