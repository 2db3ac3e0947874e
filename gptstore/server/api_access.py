"""Hub API of gated access: ask for access, and the owners' ``user-access-request`` endpoints.

- ``POST /api/models/{id}/ask-access`` — the signed-in user asks (JSON object of fields, may be
  empty); answers the request (``status`` is ``accepted`` at once for ``gated="auto"`` or when a
  plugin's ``decide_access`` accepted it). ``DELETE /api/models/{id}/user-access-request``
  withdraws one's own request.
- ``GET …/user-access-request/{pending,accepted,rejected}``, ``POST …/user-access-request/handle``
  (``{"user"|"requestId", "status", "rejectionReason"}``; cancel = back to ``pending``) and
  ``POST …/user-access-request/grant`` (``{"user"}``) — what ``HfApi.list_*_access_requests``,
  ``accept/reject/cancel_access_request`` and ``grant_access`` call. Only members of the repo's
  namespace with a write token may use them.

Rules and storage are in :mod:`gptstore.server.gating`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field
from starlette.responses import JSONResponse, Response

from . import gating
from .catalog import Repo
from .context import Call
from .http import Body, HubError, bad_request, unauthorized


class HandleBody(Body):
    user: str | None = Field(None, max_length=200)
    requestId: str | None = Field(None, max_length=100)
    status: str
    rejectionReason: str | None = Field(None, max_length=gating.MAX_REASON_CHARS)


class GrantBody(Body):
    user: str = Field(min_length=1, max_length=200)


def _gated_repo(call: Call) -> tuple[Repo, str]:
    """The repo (its owners only: write token of a namespace member) and the caller's name."""
    repo, principal = call.writable_repo()
    return repo, principal.user


def _json(call: Call, request: gating.AccessRequest) -> dict[str, Any]:
    fullname = call.state.accounts.fullnames((request.user,)).get(request.user)
    return request.hub_json(fullname)


def ask_access(call: Call) -> Response:
    repo = call.repo()
    principal = call.principal
    if principal is None:
        raise unauthorized("sign in to ask for access: pass a token (Authorization: Bearer …)")
    if principal.member_of(repo.namespace):
        raise bad_request(f"{principal.user} is a member of {repo.namespace} and already has access")
    try:
        fields = json.loads(call.body or b"{}")
    except ValueError:
        raise bad_request("the body must be a JSON object of fields (or empty)") from None
    request = gating.ask(call.state.db, repo, principal.user, gating.clean_fields(fields))
    return JSONResponse(_json(call, request))


def withdraw_request(call: Call) -> Response:
    repo = call.repo()
    principal = call.principal
    if principal is None:
        raise unauthorized("sign in to withdraw your access request")
    if not gating.withdraw(call.state.db, repo, principal.user):
        raise HubError(404, f"{principal.user} has no access request for {repo.repo_id}", code="EntryNotFound")
    return JSONResponse({"withdrawn": True})


def list_requests(call: Call) -> Response:
    repo, _ = _gated_repo(call)
    status: gating.Status = call.params["status"]  # type: ignore[assignment]  (the route's pattern checks it)
    return JSONResponse([_json(call, request) for request in gating.requests(call.state.db, repo, status)])


def handle_request(call: Call) -> Response:
    repo, owner = _gated_repo(call)
    body = call.model(HandleBody)
    if (body.user is None) == (body.requestId is None):
        raise bad_request("name exactly one of user or requestId")
    user = body.user
    if user is None:
        user = gating.user_of_request(call.state.db, repo, body.requestId)
        if user is None:
            raise HubError(404, f"no access request {body.requestId!r} for {repo.repo_id}", code="EntryNotFound")
    request = gating.handle(call.state.db, repo, user, body.status, by=owner,  # type: ignore[arg-type]
                            reason=body.rejectionReason)
    return JSONResponse(_json(call, request))


def grant_access(call: Call) -> Response:
    repo, owner = _gated_repo(call)
    body = call.model(GrantBody)
    if call.state.accounts.kind(body.user) != "user":
        raise HubError(404, f"no user {body.user!r} on this store", code="EntryNotFound")
    return JSONResponse(_json(call, gating.grant(call.state.db, repo, body.user, by=owner)))
