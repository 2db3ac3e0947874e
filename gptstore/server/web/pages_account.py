"""Sign-in and sign-out pages: a store token in, a session cookie out."""

from __future__ import annotations

from starlette.responses import Response

from ..context import Call
from .sessions import form, sign_in, sign_out
from .templating import redirect, render

#: longest token the sign-in form takes (tokens are ~50 characters)
MAX_TOKEN_CHARS = 200


def _next_path(value: str | None) -> str:
    """Where to go after signing in: a path on this store only (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def login_page(call: Call) -> Response:
    return render(call, "login.html", next=_next_path(call.request.query_params.get("next")), error=None)


def login(call: Call) -> Response:
    fields = form(call)
    token = fields.get("token", "").strip()
    target = _next_path(fields.get("next"))
    principal = call.state.accounts.principal(token) if 0 < len(token) <= MAX_TOKEN_CHARS else None
    if principal is None:
        return render(call, "login.html", status=401, next=target,
                      error="That token is unknown or revoked. Create one with "
                            "`gptstore server token create USER` and paste it here.")
    response = redirect(call, target)
    sign_in(call, response, principal)
    return response


def logout(call: Call) -> Response:
    form(call)
    response = redirect(call, "/")
    sign_out(call, response)
    return response


ROUTES = [
    (("GET",), r"/login", login_page),
    (("POST",), r"/login", login),
    (("POST",), r"/logout", logout),
]
