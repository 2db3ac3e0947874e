"""Hub API: who am I, create / delete / configure repos, model info, list models, validate YAML."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..errors import ConflictError, InvalidReference
from ..refs import check_segment
from .auth import require_repo_write, require_write
from .catalog import MAIN, Repo
from .context import Call
from .gating import gated, gated_many, set_gated
from .gitpatterns import HUB_GITATTRIBUTES
from .http import Body, HubError, bad_request, conflict, next_link, repo_not_found, unauthorized
from .metadata import NO_METADATA_WARNING, card_problems, parse_card, repo_metadata
from .catalogue import facets, refresh
from .search import MAX_FILTERS, MAX_SEARCH_WORDS, SORTS, ModelQuery, query_models, search_words, store_filters
from .storage import FileRow, lfs_pointer, regular_row


#: the server's own repo-id segment check (whatever ``refs`` accepts): used with fullmatch only,
#: since ``$`` also matches before a trailing newline (``bob/evil\n`` was created)
_REPO_SEGMENT = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?")
#: most query parameters a listing takes (each ``filter`` is one more SQL condition)
MAX_QUERY_PARAMS = 100


class RepoName(Body):
    name: str = Field(min_length=1)
    organization: str | None = None
    type: str | None = None


class CreateRepo(RepoName):
    visibility: Literal["private", "public"] | None = None
    private: bool | None = None


class RepoSettings(Body):
    visibility: Literal["private", "public"] | None = None
    private: bool | None = None
    gated: Literal[False, "auto", "manual"] | None = None


class YamlCheck(Body):
    content: str
    repoType: str | None = None


# -- JSON shapes ---------------------------------------------------------------------------
def sibling(row: FileRow, blobs: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"rfilename": row.path}
    if blobs:
        entry.update(size=row.size, blobId=row.git_oid)
        if row.lfs:
            entry["lfs"] = {"size": row.size, "sha256": row.sha256,
                            "pointerSize": len(lfs_pointer(row.sha256, row.size))}
    return entry


def model_entry(repo: Repo, sha: str, *, last_modified: str | None = None, card: bool = False,
                store: dict[str, Any] | None = None) -> dict[str, Any]:
    """One model as ``model_info`` and ``list_models`` return it; ``store`` (``catalogue.facets``:
    category, use cases, rating, verified, …) joins the manifest summary in the ``gptstore`` field."""
    meta = repo_metadata(repo.card, repo.summary)
    entry: dict[str, Any] = {
        "_id": f"{repo.id:024x}", "id": repo.repo_id, "modelId": repo.repo_id, "author": repo.namespace,
        "sha": sha, "private": repo.private, "gated": False, "disabled": False,
        "downloads": repo.downloads, "likes": 0, "lastModified": last_modified or repo.last_modified,
        "createdAt": repo.created_at, "tags": meta.tags, "library_name": meta.library_name,
        "pipeline_tag": meta.pipeline_tag,
    }
    if card and repo.card:
        entry["cardData"] = repo.card
    if repo.summary:
        entry["gptstore"] = {**repo.summary, **(store or {})}
    return entry


def _flag(call: Call, name: str) -> bool:
    return call.request.query_params.get(name, "").lower() in ("1", "true")


# -- handlers ------------------------------------------------------------------------------
async def agent_harnesses(call: Call) -> Response:
    return JSONResponse({"standardEnvVars": [], "harnesses": {}})


def whoami(call: Call) -> Response:
    principal = call.principal
    if principal is None:
        raise unauthorized("authentication required: pass a token (Authorization: Bearer …)")
    fullnames = call.state.accounts.fullnames(principal.namespaces)  # set by `server user/org add --fullname`
    return JSONResponse({
        "type": "user", "id": principal.user, "name": principal.user, "fullname": fullnames[principal.user],
        "orgs": [{"type": "org", "name": org, "fullname": fullnames[org]} for org in principal.orgs],
        "auth": {"type": "access_token",
                 "accessToken": {"displayName": principal.token_name, "role": principal.scope}},
    })


def _target(call: Call, body: RepoName) -> tuple[str, str]:
    if body.type not in (None, "model"):
        raise bad_request(f"this store serves model repos only, not {body.type!r}")
    principal = call.principal
    if principal is None and body.organization is None:
        raise unauthorized("authentication required: pass a write token (Authorization: Bearer …)")
    namespace = body.organization or principal.user  # type: ignore[union-attr]
    name = body.name
    if "/" in name and body.organization is None:
        namespace, _, name = name.partition("/")
    return check_repo_id(namespace, name)


def check_repo_id(namespace: str, name: str) -> tuple[str, str]:
    """``namespace``/``name`` if they make a repo id this store accepts (else 400 saying why)."""
    try:
        check_segment(namespace, f"{namespace}/{name}", "namespace")
        check_segment(name, f"{namespace}/{name}", "name")
        if name.endswith(".git"):
            raise InvalidReference(f"{namespace}/{name}", "the name may not end in .git")
    except InvalidReference as exc:
        raise bad_request(f"invalid repo id: {exc.message}") from None
    if not (_REPO_SEGMENT.fullmatch(namespace) and _REPO_SEGMENT.fullmatch(name)):
        raise bad_request(f"invalid repo id {f'{namespace}/{name}'[:200]!r}: use letters, digits and -_. "
                          "(no whitespace or control characters), starting and ending with a letter, "
                          "digit or _")
    return namespace, name


def create_repo(call: Call) -> Response:
    body = call.model(CreateRepo)
    namespace, name = _target(call, body)
    catalog = call.state.catalog
    namespace = catalog.namespace(namespace) or namespace  # as the user or org was created
    principal = require_write(call.principal, namespace)
    private = body.visibility == "private" if body.visibility else bool(body.private)
    initial = regular_row(".gitattributes", HUB_GITATTRIBUTES, call.state.storage.put_bytes(HUB_GITATTRIBUTES))
    try:  # the id is claimed inside the catalog's transaction: ids differing by case only are one
        repo = catalog.create_repo(namespace, name, private=private, author=principal.user, initial=[initial])
    except ConflictError:
        existing = catalog.repo(namespace, name, follow_moves=False)
        url = f"{call.base_url}/{existing.repo_id if existing else f'{namespace}/{name}'}"
        raise conflict("You already created this model repo", url=url) from None
    return JSONResponse({"url": f"{call.base_url}/{repo.repo_id}", "name": repo.repo_id, "id": f"{repo.id:024x}"})


def delete_repo(call: Call) -> Response:
    body = call.model(RepoName)
    namespace, name = _target(call, body)
    repo, _ = require_repo_write(call.principal, call.state.catalog.repo(namespace, name, follow_moves=False))
    call.state.catalog.delete_repo(repo)
    return JSONResponse({"deleted": repo.repo_id})


def repo_settings(call: Call) -> Response:
    body = call.model(RepoSettings)
    repo, _ = call.writable_repo()
    private = body.visibility == "private" if body.visibility else body.private
    if private is not None:
        call.state.catalog.set_private(repo, private)
    if body.gated is not None:
        set_gated(call.state.db, repo.id, body.gated)
    return JSONResponse({"private": repo.private if private is None else private,
                         "gated": gated(call.state.db, repo.id)})


def model_info(call: Call) -> Response:
    repo = call.repo()
    revision = call.params.get("revision") or MAIN
    sha = call.revision(repo, revision)
    catalog = call.state.catalog
    commit = catalog.commit(sha)
    blobs = _flag(call, "blobs")
    files = catalog.files(sha)
    refresh(call.state.db, call.state.storage)
    entry = model_entry(repo, sha, last_modified=commit.created_at, card=True,
                        store=facets(call.state.db, [repo.id]).get(repo.id))
    entry["gated"] = gated(call.state.db, repo.id)
    entry["siblings"] = [sibling(row, blobs) for row in files]
    if blobs:
        entry["usedStorage"] = sum(row.size for row in files)
    return JSONResponse(entry)


def list_models(call: Call) -> Response:
    params = call.request.query_params
    settings = call.state.settings
    filters, count = params.getlist("filter"), len(params.multi_items())
    if len(filters) > MAX_FILTERS:
        raise bad_request(f"too many filter parameters ({len(filters)}); at most {MAX_FILTERS} "
                          "tags can be combined in one listing")
    if count > MAX_QUERY_PARAMS:
        raise bad_request(f"too many query parameters ({count}); at most {MAX_QUERY_PARAMS}")
    if len(search_words(params.get("search") or "")) > MAX_SEARCH_WORDS:
        raise bad_request(f"the search has more than {MAX_SEARCH_WORDS} words; search for fewer")
    try:
        limit = int(params["limit"]) if "limit" in params else None
        offset = int(params.get("cursor", "0"))
    except ValueError:
        raise bad_request("limit and cursor must be integers") from None
    if (limit is not None and limit < 1) or offset < 0:
        raise bad_request("limit must be at least 1 and cursor at least 0")
    sort = params.get("sort") or "downloads"
    if sort not in SORTS:
        raise bad_request(f"unknown sort {sort!r}; use one of {', '.join(sorted(SORTS))}")
    page = min(limit or settings.page_size, settings.page_size)
    query = ModelQuery(search=params.get("search") or None, author=params.get("author") or None,
                       tags=tuple(filters), pipeline_tag=params.get("pipeline_tag") or None,
                       sort=sort, offset=offset, limit=page + 1, **store_filters(params))
    principal = call.principal
    refresh(call.state.db, call.state.storage)
    rows = query_models(call.state.db, query, visible=principal.namespaces if principal else ())
    store = facets(call.state.db, [repo.id for repo, _ in rows[:page]])
    gates = gated_many(call.state.db, [repo.id for repo, _ in rows[:page]])
    full = _flag(call, "full")
    card = full or _flag(call, "cardData")
    entries = []
    for repo, sha in rows[:page]:
        entry = model_entry(repo, sha, card=card, store=store.get(repo.id))
        entry["gated"] = gates.get(repo.id, False)
        if full:
            entry["siblings"] = [sibling(row, False) for row in call.state.catalog.files(sha)]
        entries.append(entry)
    headers = next_link(call.request, call.base_url, call.route_path, offset + page) if len(rows) > page else None
    return JSONResponse(entries, headers=headers)


def validate_yaml(call: Call) -> Response:
    """A model card's metadata checked as the Hub does: ``errors`` (400) for YAML that does not
    parse or breaks the model-card rules (``metadata.card_problems``; other repo types get the
    YAML check only), a ``warnings`` entry for a card without metadata. ``ModelCard.validate``
    asks for ``text/plain`` and gets the Hub's ``- Error: …`` / ``- Warning: …`` lines."""
    body = call.model(YamlCheck)
    try:  # bounded (see parse_card); a plain handler, so parsed off the event loop
        card = parse_card(body.content)
    except ValueError as exc:
        errors, card = [str(exc)], None
    else:
        errors = card_problems(card) if body.repoType in (None, "model") else []
    warnings = [NO_METADATA_WARNING] if card == {} else []
    status = 400 if errors else 200
    accept = call.request.headers.get("accept", "")
    if "text/plain" in accept and "json" not in accept:
        text = "\n".join([*(f"- Error: {e}" for e in errors), *(f"- Warning: {w}" for w in warnings)])
        return PlainTextResponse(text, status_code=status)
    return JSONResponse({"errors": [{"message": e} for e in errors], "warnings": [{"message": w} for w in warnings]},
                        status_code=status)


def signing_keys(call: Call) -> Response:
    """The public keys registered for a namespace (``gptstore server key add``); public, read-only."""
    namespace = call.params["namespace"]
    if call.state.accounts.kind(namespace) is None:
        raise HubError(404, f"no user or organisation {namespace!r} on this store", code="EntryNotFound")
    keys = [{"keyid": k.keyid, "publicKey": k.public_key, "addedAt": k.added_at}
            for k in call.state.committer.keys.list(namespace)]
    return JSONResponse({"namespace": namespace, "requireSigned": call.state.settings.require_signed,
                         "keys": keys})


async def not_found(call: Call) -> Response:
    if call.route_path.startswith(("/api/datasets/", "/api/spaces/", "/datasets/", "/spaces/")):
        raise repo_not_found()
    raise HubError(404, f"no such endpoint: {call.request.method} {call.route_path}", code="EntryNotFound")
