"""Hub API over revisions: tree, paths-info, refs, commits, tags and branches."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import JSONResponse, Response

from .catalog import MAIN, Commit
from .context import Call
from .http import Body, bad_request, conflict, entry_not_found, forbidden, next_link, revision_not_found
from .storage import FileRow, lfs_pointer, tree_id

# always fullmatch: ``$`` also matches before a trailing newline ("dev\n" was created)
_REF_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+/-]{0,127}")
_HEX40 = re.compile(r"[0-9a-f]{40}")


class NewTag(Body):
    tag: str
    message: str | None = None


class NewBranch(Body):
    startingPoint: str | None = None


def check_ref_name(name: str, what: str) -> str:
    """``name`` if it may name a branch or tag; 400 otherwise (whitespace and control characters
    anywhere included)."""
    if (not _REF_NAME.fullmatch(name) or ".." in name or "//" in name or name.endswith(("/", ".lock", "."))
            or _HEX40.fullmatch(name)):
        raise bad_request(f"invalid {what} name {name[:140]!r}: use letters, digits and _.+-/ "
                          "(no whitespace or control characters, no '..', no trailing '/' or '.', "
                          "not a commit id)")
    return name


# -- listings ------------------------------------------------------------------------------
def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def folder_ids(files: list[FileRow]) -> dict[str, str]:
    """Every folder of a revision (``""`` is the root) with its id, computed bottom-up."""
    children: dict[str, list[tuple[str, str]]] = defaultdict(list)
    folders = {""}
    for row in files:
        children[_parent(row.path)].append((row.path.rpartition("/")[2], row.git_oid))
        folder = _parent(row.path)
        while folder not in folders:
            folders.add(folder)
            folder = _parent(folder)
    ids: dict[str, str] = {}
    for folder in sorted(folders, key=lambda f: (f.count("/") if f else -1), reverse=True):
        ids[folder] = tree_id(children[folder])
        if folder:
            children[_parent(folder)].append((folder.rpartition("/")[2], ids[folder]))
    return ids


def file_entry(row: FileRow) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "oid": row.git_oid, "size": row.size, "path": row.path}
    if row.lfs:
        entry["lfs"] = {"oid": row.sha256, "size": row.size, "pointerSize": len(lfs_pointer(row.sha256, row.size))}
    return entry


def folder_entry(path: str, oid: str) -> dict[str, Any]:
    return {"type": "directory", "oid": oid, "size": 0, "path": path}


def tree_entries(files: list[FileRow], path: str, *, recursive: bool) -> list[dict[str, Any]] | None:
    """Entries under folder ``path`` (full paths), or None when there is no such folder."""
    ids = folder_ids(files)
    if path not in ids:
        return None
    prefix = f"{path}/" if path else ""

    def wanted(item: str) -> bool:
        return item.startswith(prefix) and (recursive or "/" not in item[len(prefix):])

    entries = [(f, folder_entry(f, oid)) for f, oid in ids.items() if f and wanted(f)]
    entries += [(row.path, file_entry(row)) for row in files if wanted(row.path)]
    return [entry for _, entry in sorted(entries, key=lambda pair: pair[0])]


def _flag(call: Call, name: str) -> bool:
    return call.request.query_params.get(name, "").lower() in ("1", "true")


def _cursor(call: Call) -> int:
    value = call.request.query_params.get("cursor", "0")
    if not value.isdigit():
        raise bad_request("cursor must be a non-negative integer")
    return int(value)


def tree(call: Call) -> Response:
    repo = call.repo()
    sha = call.revision(repo)
    path = call.params.get("path", "").strip("/")
    entries = tree_entries(call.state.catalog.files(sha), path, recursive=_flag(call, "recursive"))
    if entries is None:
        raise entry_not_found(path, commit=sha)
    offset, page = _cursor(call), call.state.settings.page_size
    headers = next_link(call.request, call.base_url, call.route_path, offset + page) \
        if len(entries) > offset + page else None
    return JSONResponse(entries[offset:offset + page], headers=headers)


def paths_info(call: Call) -> Response:
    repo = call.repo()
    sha = call.revision(repo)
    form = parse_qs(call.body.decode("utf-8", "replace"))
    wanted = {p.strip("/") for p in form.get("paths", [])}
    files = call.state.catalog.files(sha)
    ids = folder_ids(files)
    entries = [file_entry(row) for row in files if row.path in wanted]
    entries += [folder_entry(path, ids[path]) for path in sorted(wanted) if path and path in ids]
    return JSONResponse(entries)


def refs(call: Call) -> Response:
    repo = call.repo()
    result: dict[str, list[dict[str, str]]] = {"branches": [], "tags": [], "converts": []}
    for ref in call.state.catalog.refs(repo):
        group, prefix = ("branches", "refs/heads/") if ref.kind == "branch" else ("tags", "refs/tags/")
        result[group].append({"name": ref.name, "ref": prefix + ref.name, "targetCommit": ref.target})
    if _flag(call, "include_prs"):
        result["pullRequests"] = []
    return JSONResponse(result)


def commit_entry(commit: Commit, formatted: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": commit.id, "title": commit.title, "message": commit.message, "date": commit.created_at,
        "authors": [{"user": commit.author, "avatar": None}], "parents": [commit.parent] if commit.parent else [],
    }
    if formatted:
        entry["formatted"] = {"title": commit.title, "message": commit.message}
    return entry


def commits(call: Call) -> Response:
    repo = call.repo()
    sha = call.revision(repo)
    offset, page = _cursor(call), call.state.settings.page_size
    history = call.state.catalog.history(sha, offset=offset, limit=page + 1)
    params = call.request.query_params
    formatted = "formatted" in params.getlist("expand[]") + params.getlist("expand")
    headers = next_link(call.request, call.base_url, call.route_path, offset + page) if len(history) > page else None
    return JSONResponse([commit_entry(c, formatted) for c in history[:page]], headers=headers)


# -- tags and branches ---------------------------------------------------------------------
def create_tag(call: Call) -> Response:
    body = call.model(NewTag)
    repo, _ = call.writable_repo()
    name = check_ref_name(body.tag, "tag")
    target = call.revision(repo)
    if not call.state.catalog.add_ref(repo, "tag", name, target):
        raise conflict(f"tag {name} already exists")
    return JSONResponse({"name": name, "ref": f"refs/tags/{name}", "targetCommit": target})


def delete_tag(call: Call) -> Response:
    repo, _ = call.writable_repo()
    if not call.state.catalog.delete_ref(repo, "tag", call.params["revision"]):
        raise revision_not_found(call.params["revision"])
    return JSONResponse({"deleted": call.params["revision"]})


def create_branch(call: Call) -> Response:
    body = call.model(NewBranch)
    repo, _ = call.writable_repo()
    name = check_ref_name(call.params["revision"], "branch")
    target = call.revision(repo, body.startingPoint or MAIN)
    if not call.state.catalog.add_ref(repo, "branch", name, target):
        raise conflict(f"branch {name} already exists")
    return JSONResponse({"name": name, "ref": f"refs/heads/{name}", "targetCommit": target})


def delete_branch(call: Call) -> Response:
    repo, _ = call.writable_repo()
    name = call.params["revision"]
    if name == MAIN:
        raise forbidden("the main branch cannot be deleted")
    if not call.state.catalog.delete_ref(repo, "branch", name):
        raise revision_not_found(name)
    return JSONResponse({"deleted": name})
