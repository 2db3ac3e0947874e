"""Hub API for managing repos as a whole: move (rename or transfer), duplicate, the caller's repo
list with storage (``hf repos ls``), access checks, and the redirect from a moved repo's old id.

As on the Hub, a moved repo keeps answering under every id it had: a request naming an old id
(API, resolve or LFS) is redirected (307, method and body kept) to the same URL under the
current id, to callers who may read the repo; to anyone else it is the usual 404 RepoNotFound.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import unquote

from pydantic import Field
from starlette.responses import JSONResponse, Response

from ..errors import ConflictError
from .api_repos import check_repo_id
from .auth import can_read, require_repo_write, require_write
from .catalog import Repo
from .context import Call
from .http import Body, HubError, bad_request, conflict, next_link, repo_not_found, unauthorized


class MoveRepo(Body):
    fromRepo: str = Field(min_length=1, max_length=300)
    toRepo: str = Field(min_length=1, max_length=300)
    type: str | None = None


class DuplicateRepo(Body):
    repository: str = Field(min_length=1, max_length=300)
    visibility: Literal["private", "public"] | None = None
    private: bool | None = None


def _split(repo_id: str, what: str) -> tuple[str, str]:
    namespace, slash, name = repo_id.partition("/")
    if not slash or "/" in name:
        raise bad_request(f"invalid {what} {repo_id[:200]!r}: use namespace/name")
    return namespace, name


def _signed_in(call: Call):
    if call.principal is None:
        raise unauthorized("authentication required: pass a write token (Authorization: Bearer …)")
    return call.principal


def _destination(call: Call, repo_id: str, what: str) -> tuple[str, str]:
    """``repo_id`` checked, its namespace spelt as created, and the caller allowed to write there."""
    namespace, name = check_repo_id(*_split(repo_id, what))
    namespace = call.state.catalog.namespace(namespace) or namespace
    require_write(call.principal, namespace)
    return namespace, name


def move_repo(call: Call) -> Response:
    """``POST /api/repos/move`` (``HfApi.move_repo``): rename, or transfer to a namespace the caller
    may write; the old id keeps naming the repo (see the module doc)."""
    body = call.model(MoveRepo)
    if body.type not in (None, "model"):
        raise bad_request(f"this store serves model repos only, not {body.type!r}")
    principal = _signed_in(call)
    catalog = call.state.catalog
    repo, _ = require_repo_write(principal, catalog.repo(*_split(body.fromRepo, "fromRepo"), follow_moves=False))
    namespace, name = _destination(call, body.toRepo, "toRepo")
    try:
        moved = catalog.move_repo(repo, namespace, name)
    except ConflictError:
        raise conflict(f"A repository named {namespace}/{name} already exists; pick another name") from None
    return JSONResponse({"url": f"{call.base_url}/{moved.repo_id}", "name": moved.repo_id})


def duplicate_repo(call: Call) -> Response:
    """``POST /api/models/{id}/duplicate`` (``HfApi.duplicate_repo``): a new repo with the source's
    history, branches and tags; as private as the source unless the body says otherwise."""
    body = call.model(DuplicateRepo)
    source = call.repo()
    _signed_in(call)
    namespace, name = _destination(call, body.repository, "repository")
    private = body.visibility == "private" if body.visibility else (
        body.private if body.private is not None else source.private)
    catalog = call.state.catalog
    try:
        copy = catalog.duplicate_repo(source, namespace, name, private=private)
    except ConflictError:
        existing = catalog.repo(namespace, name, follow_moves=False)
        url = f"{call.base_url}/{existing.repo_id if existing else f'{namespace}/{name}'}"
        raise conflict(f"You already created this model repo: {namespace}/{name}", url=url) from None
    return JSONResponse({"url": f"{call.base_url}/{copy.repo_id}", "filesCopyPending": False})


def repository_settings(call: Call) -> Response:
    """``GET /api/settings/repositories`` (the caller's repos) and
    ``/api/organizations/{namespace}/settings/repositories`` (an org's, for its members): what
    ``hf repos ls`` / ``HfApi.list_user_repos`` list, with each repo's storage."""
    principal = _signed_in(call)
    catalog = call.state.catalog
    asked = call.params.get("namespace")
    namespace = principal.user if asked is None else catalog.namespace(asked)
    if namespace is None or (asked is not None and call.state.accounts.kind(namespace) != "org"):
        raise HubError(404, f"no organisation {asked!r} on this store", code="EntryNotFound")
    if not principal.member_of(namespace):
        raise HubError(403, f"{principal.user} is not a member of {namespace!r}")
    cursor = call.request.query_params.get("cursor", "0")
    if not cursor.isdigit():
        raise bad_request("cursor must be a whole number")
    offset, page = int(cursor), call.state.settings.page_size
    repos = catalog.repos_in(namespace)  # storagePercent is a share of the whole namespace's
    total = sum(storage for _, storage in repos) or 1
    entries = [{"id": repo.repo_id, "type": "model", "updatedAt": repo.last_modified,
                "visibility": "private" if repo.private else "public", "storage": storage,
                "storagePercent": round(100 * storage / total, 2)}
               for repo, storage in repos[offset:offset + page]]
    more = offset + page < len(repos)
    headers = next_link(call.request, call.base_url, call.route_path, offset + page) if more else None
    return JSONResponse(entries, headers=headers)


def auth_check(call: Call) -> Response:
    """``GET /api/models/{id}/auth-check[/write]`` (``HfApi.auth_check``): 200 when the caller may
    read (or write) the repo; 404 RepoNotFound when it may not see it, 401/403 when it may not write."""
    repo = call.repo()
    if call.params.get("access") == "write":
        require_write(call.principal, repo.namespace)
    return JSONResponse({"id": repo.repo_id, "access": call.params.get("access") or "read"})


def namespace_less(call: Call) -> Response:
    """A model id without a namespace (``gpt2``): the Hub's canonical ids are not served here, so
    it names no repo (RepoNotFound, which ``repo_exists`` reads as False)."""
    raise repo_not_found()


def moved(call: Call, repo: Repo) -> Response:
    """The answer to a request naming an old id of ``repo``: a 307 to the same URL under its
    current id (query kept) for callers who may read it, else 404 RepoNotFound."""
    if not can_read(call.principal, repo):
        raise repo_not_found()
    old_namespace, old_name = call.params.get("namespace"), call.params.get("name")
    segments = call.route_path.split("/")
    for i in range(len(segments) - 1):
        if unquote(segments[i]) == old_namespace and unquote(segments[i + 1]) in (old_name, f"{old_name}.git"):
            suffix = ".git" if unquote(segments[i + 1]) != old_name else ""
            segments[i:i + 2] = [repo.namespace, repo.name + suffix]
            break
    else:  # no id in the path (cannot happen for routes that name one): nothing to redirect to
        raise repo_not_found()
    query = call.request.url.query
    location = call.base_url + "/".join(segments) + (f"?{query}" if query else "")
    return Response(b"", status_code=307, headers={"Location": location})
