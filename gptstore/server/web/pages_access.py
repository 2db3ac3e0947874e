"""Gated access on the pages: the model page's "Request access" box, and the forms that post to it.

- :func:`access_context` is what ``_access.html`` (included in the model page) shows: whether the
  model is gated, and the visitor's state — member of the namespace (always has access), signed
  out, not asked yet, pending, accepted or rejected.
- ``POST /{ns}/{name}/ask-access`` (the box's form, CSRF-checked) asks for access as the
  signed-in user, through the same rules and ``decide_access`` plugins as the API
  (``gating.ask``), and goes back to the model page.
- ``POST /{ns}/-/dashboard/access`` (the dashboard's approve / reject buttons) decides a request;
  only members of the namespace signed in with a write token may.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from .. import gating
from ..auth import can_read
from ..catalog import Repo
from ..context import Call
from ..http import HubError, forbidden, unauthorized
from .pages_store import html_errors
from .sessions import form, web_principal
from .templating import redirect

#: longest note a requester may add in the box
MAX_NOTE_CHARS = 500


def access_context(call: Call, repo: Repo) -> dict[str, Any]:
    """What the model page's access box needs (``access`` in ``_access.html``)."""
    mode = gating.gated(call.state.db, repo.id)
    principal = web_principal(call)
    state = "open"
    if mode:
        if principal is None:
            state = "signed-out"
        elif principal.member_of(repo.namespace):
            state = "member"
        else:
            state = gating.status_of(call.state.db, repo, principal.user) or "none"
    return {"gated": mode, "state": state}


def visible_repo(call: Call, namespace: str, name: str) -> Repo | None:
    """The model ``namespace/name``, if this visitor may see it."""
    repo = call.state.catalog.repo(namespace, name)
    if repo is None or not can_read(web_principal(call), repo):
        return None
    return repo


def _page_repo(call: Call, namespace: str, name: str) -> Repo:
    repo = visible_repo(call, namespace, name)
    if repo is None:
        raise HubError(404, "There is no such model on this store (or it is private).")
    return repo


def model_path(repo: Repo) -> str:
    """The model page's path."""
    return f"/{quote(repo.namespace, safe='')}/{quote(repo.name, safe='')}"


@html_errors
def ask_access(call: Call) -> Response:
    fields = form(call)
    repo = _page_repo(call, call.params["namespace"], call.params["name"])
    principal = web_principal(call)
    if principal is None:
        raise unauthorized("Sign in to request access to this model.")
    if principal.member_of(repo.namespace):
        raise HubError(400, f"You are a member of {repo.namespace} and already have access.")
    note = fields.get("note", "").strip()[:MAX_NOTE_CHARS]
    gating.ask(call.state.db, repo, principal.user, {"note": note} if note else {})
    return redirect(call, model_path(repo) + "#access")


@html_errors
def decide(call: Call) -> Response:
    """Approve or reject a pending request from the dashboard."""
    fields = form(call)
    namespace = call.params["namespace"]
    principal = web_principal(call)
    if principal is None:
        raise unauthorized("Sign in to decide access requests.")
    if not principal.member_of(namespace):
        raise HubError(404, "There is no such page on this store.")
    if principal.scope != "write":
        raise forbidden("You signed in with a read-only token: sign in with a write token to decide requests.")
    decision = {"approve": "accepted", "reject": "rejected"}.get(fields.get("decision", ""))
    if decision is None:
        raise HubError(400, "Choose approve or reject.")
    repo = _page_repo(call, namespace, fields.get("model", ""))
    if repo.namespace != namespace:
        raise HubError(404, "There is no such model in this namespace.")
    gating.handle(call.state.db, repo, fields.get("user", ""), decision, by=principal.user)  # type: ignore[arg-type]
    return redirect(call, f"/{quote(namespace, safe='')}/-/dashboard#access-requests")
