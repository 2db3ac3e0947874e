"""The metering API: consumers report usage, a namespace's members read it.

- ``POST /api/gptstore/usage`` — a usage report (shape in docs/usage.md): any valid token (the
  usage is counted under its user); at most :data:`MAX_ROWS` rows in at most
  :data:`MAX_REPORT_BYTES`; every number bounded; every repo must exist and be readable by the
  reporter (else 404 ``RepoNotFound`` naming it, and nothing of the report is counted). 201
  ``{"id", "duplicate": false, "rows"}`` when counted, 200 ``{"id", "duplicate": true}`` for a
  report already taken, 409 for a taken id with other rows.
- ``GET /api/gptstore/usage/{namespace}[?since=YYYY-MM-DD]`` — :func:`metering.usage_of
  <gptstore.server.metering.usage_of>` for members of the namespace (401 anonymous, 403 others,
  404 for a namespace that does not exist).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime, timedelta, timezone
from typing import Annotated

from pydantic import Field, StrictInt, field_validator
from starlette.responses import JSONResponse, Response

from .accounts import Principal
from .auth import require_read
from .catalog import Repo, RepoMoved
from .context import Call
from .http import Body, HubError, bad_request, conflict, forbidden, unauthorized
from .metering import DailyUsage, Metering, ReportConflict, usage_of

#: the most rows (model × day × currency) one report holds; the client sends at most 500
MAX_ROWS = 1000
#: the largest report body read
MAX_REPORT_BYTES = 512 * 1024
#: bounds of one row's numbers: far above real use, far below what would overflow a sum
MAX_CALLS = 10**9
MAX_TOKENS = 10**13
MAX_COST = 10**9
#: how far back a report's day may be
MAX_AGE_DAYS = 3660
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_REPO_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$"
_HEX64 = r"^[0-9a-f]{64}$"
# (pydantic's ``pattern`` searches: every pattern is anchored)

Tokens = Annotated[StrictInt, Field(ge=0, le=MAX_TOKENS)]


def _check_day(value: str) -> str:
    if not _DAY.fullmatch(value):
        raise ValueError("must be a date YYYY-MM-DD")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date YYYY-MM-DD") from None
    today = datetime.now(timezone.utc).date()
    if not today - timedelta(days=MAX_AGE_DAYS) <= day <= today + timedelta(days=1):
        raise ValueError("must be a day of the last ten years, not in the future")
    return value


class ReportRow(Body):
    repo: str = Field(pattern=_REPO_ID, max_length=200)
    day: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    calls: StrictInt = Field(ge=0, le=MAX_CALLS)
    prompt_tokens: Tokens
    completion_tokens: Tokens
    cost: float = Field(ge=0, le=MAX_COST, allow_inf_nan=False)

    @field_validator("day")
    @classmethod
    def _day(cls, value: str) -> str:
        return _check_day(value)


class ReportRange(Body):
    after: StrictInt = Field(ge=0, le=2**62)
    last: StrictInt = Field(ge=1, le=2**62)
    hash: str = Field(pattern=_HEX64)


class UsageReport(Body):
    id: str = Field(pattern=_HEX64)
    range: ReportRange
    rows: list[ReportRow] = Field(min_length=1, max_length=MAX_ROWS)


def post_usage(call: Call) -> Response:
    """Count a usage report once (see the module doc)."""
    principal = call.principal
    if principal is None:
        raise unauthorized("authentication required: a usage report is counted under the token's user "
                           "(Authorization: Bearer …)")
    if len(call.body) > MAX_REPORT_BYTES:
        raise HubError(413, f"a usage report may hold at most {MAX_REPORT_BYTES} bytes; send it in parts")
    report = call.model(UsageReport, what="usage report")
    seen, rows = set(), []
    readable: dict[str, Repo] = {}  # by lower-cased repo id: ids match without case
    for row in report.rows:
        if (row.repo.lower(), row.day, row.currency) in seen:
            raise bad_request(f"invalid usage report: {row.repo} appears twice for {row.day} in {row.currency}")
        seen.add((row.repo.lower(), row.day, row.currency))
        repo = readable.get(row.repo.lower())
        if repo is None:
            repo = readable[row.repo.lower()] = _readable_repo(call, principal, row.repo)
        rows.append(DailyUsage(repo.id, row.day, row.currency, row.calls, row.prompt_tokens,
                               row.completion_tokens, row.cost))
    digest = hashlib.sha256(json.dumps([row.model_dump() for row in report.rows], sort_keys=True).encode()).hexdigest()
    try:
        counted = Metering(call.state.db).take(principal.user, report.id, digest, rows)
    except ReportConflict:
        raise conflict(f"the usage report {report.id} was taken before with other rows") from None
    if not counted:
        return JSONResponse({"id": report.id, "duplicate": True})
    return JSONResponse({"id": report.id, "duplicate": False, "rows": len(rows)}, status_code=201)


def _readable_repo(call: Call, principal: Principal, repo_id: str) -> Repo:
    """The repo a report row names, read access checked; 404 ``RepoNotFound`` otherwise."""
    namespace, name = repo_id.split("/", 1)
    try:
        found = call.state.catalog.repo(namespace, name)
    except RepoMoved as moved:  # usage of a model reported under the id it had when pulled
        found = moved.repo
    try:
        return require_read(principal, found)
    except HubError:
        raise HubError(404, f"no model {repo_id} on this store that {principal.user} may read; "
                            "nothing of the report was counted", code="RepoNotFound") from None


def namespace_usage(call: Call) -> Response:
    """Usage and revenue per model and per consumer of a namespace, for its members."""
    principal = call.principal
    if principal is None:
        raise unauthorized("authentication required: usage is shown to members of the namespace")
    namespace = call.state.catalog.namespace(call.params["namespace"])
    if namespace is None:
        raise HubError(404, f"no user or organization {call.params['namespace'][:100]!r}", code="RepoNotFound")
    if not principal.member_of(namespace):
        raise forbidden(f"{principal.user} is not a member of {namespace}; its usage is shown to members only")
    since = call.request.query_params.get("since") or None
    if since is not None:
        try:
            if not _DAY.fullmatch(since):
                raise ValueError
            date.fromisoformat(since)
        except ValueError:
            raise bad_request("since must be a date YYYY-MM-DD") from None
    return JSONResponse(usage_of(call.state.db, namespace, since=since))
