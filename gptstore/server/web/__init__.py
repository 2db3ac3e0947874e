"""The storefront: server-rendered pages over the same catalog, accounts and tokens as the API.

No JavaScript at all (the pages' Content-Security-Policy forbids scripts): forms, links and inline
SVG. One module per concept:

    templating    the Jinja2 environment (autoescaped), page responses and their security headers
    sessions      sign-in with a store token into a signed session cookie; CSRF tokens for forms
    markdown      model cards rendered safely (no raw HTML, links sanitised)
    charts        small inline SVG charts (downloads per day)
    pages_account sign-in and sign-out pages

:data:`ROUTES` are appended to the API's routes by ``gptstore.server.app``; API paths are matched
first, so a page never shadows an API route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import pages_account

if TYPE_CHECKING:
    from ..context import Handler

#: (methods, pattern over the raw path, handler), tried after the API's routes
ROUTES: list[tuple[tuple[str, ...], str, "Handler"]] = [
    *pages_account.ROUTES,
]
