"""Jinja2 templates for the storefront, and the headers every page carries.

Autoescaping is on for every template, so a value from the catalog (a model name, a review, a
description) is text, never markup. The only HTML a page embeds unescaped is what
``web.markdown`` and ``web.charts`` build, which escape their own inputs.

Every page answers with a Content-Security-Policy that allows no script at all, no framing,
forms only to this origin and styles only inline: a page that somehow carried markup a user wrote
still could not run it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.responses import HTMLResponse, RedirectResponse

from ..context import Call

#: a page may load images from anywhere over https (model cards link them) but run nothing
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; "
                           "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _thousands(value: int | float | None) -> str:
    if value is None:
        return "–"
    number = float(value)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(number) >= size:
            return f"{number / size:.1f}".rstrip("0").rstrip(".") + unit
    return f"{int(number)}" if number == int(number) else f"{number:g}"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("gptstore.server.web", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["thousands"] = _thousands
    env.filters["urlpart"] = lambda value: quote(str(value), safe="")
    env.globals["urlencode"] = urlencode
    return env


def page_context(call: Call) -> dict[str, Any]:
    """What every template may use: the signed-in user, the CSRF token, the URL prefix."""
    from .sessions import csrf_token, web_principal

    principal = web_principal(call)
    return {"user": principal.user if principal else None, "principal": principal,
            "csrf": csrf_token(call), "prefix": call.state.settings.prefix,
            "request_path": call.route_path}


def render(call: Call, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered with the page context and ``context``, with the page headers and the
    CSRF cookie (set on first visit, so the page's forms can be posted)."""
    from .sessions import remember_csrf

    html = environment().get_template(template).render(**page_context(call), **context)
    response = HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
    remember_csrf(call, response)
    return response


def redirect(call: Call, path: str) -> RedirectResponse:
    """A 303 to ``path`` (a path on this store, prefix added): after a POST, the browser GETs it."""
    if not path.startswith("/") or path.startswith("//"):
        path = "/"
    return RedirectResponse(call.state.settings.prefix + path, status_code=303, headers=PAGE_HEADERS)
