"""Hub API over revisions: tree, paths-info, refs, commits, tags and branches.

With ``expand=true``, tree and paths-info entries carry what the Hub adds there: ``lastCommit``
(``{id, title, date}`` of the newest commit, walking back from the revision, that added, changed
or — for a folder — removed something at that path) and, for files, ``securityFileStatus``:
``unsafe`` for pickle-based files (the suffixes ``gptstore.safety`` refuses without
``--allow-unsafe``), ``safe`` for the rest. The status is decided by file type: the store runs no
virus or pickle-import scan, so ``avScan`` and ``pickleImportScan`` are null.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import JSONResponse, Response

from ..safety import unsafe_files
from .catalog import MAIN, Catalog, Commit
from .context import Call
from .http import Body, bad_request, conflict, entry_not_found, forbidden, next_link, revision_not_found
from .storage import FileRow, lfs_pointer, tree_id

# always fullmatch: ``$`` also matches before a trailing newline ("dev\n" was created)
_REF_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+/-]{0,127}")
_HEX40 = re.compile(r"[0-9a-f]{40}")
#: entries per tree page with ``expand=true`` (as on the Hub: each costs a history walk)
EXPAND_PAGE = 50
#: commits walked back to find the ``lastCommit`` of paths; older ones get no ``lastCommit``
MAX_HISTORY_WALK = 2000
#: most paths one paths-info request may ask about
MAX_PATHS_INFO = 10_000


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


def _changed_paths(catalog: Catalog, commit: str, parent: str | None) -> list[str]:
    """Paths a commit added, changed or removed relative to its parent (all its paths for a root)."""
    if parent is None:
        return [row.path for row in catalog.files(commit)]
    rows = catalog.db.all(
        "SELECT path FROM (SELECT path, sha256, lfs FROM files WHERE commit_id = :commit EXCEPT "
        "SELECT path, sha256, lfs FROM files WHERE commit_id = :parent) AS added UNION "
        "SELECT path FROM (SELECT path, sha256, lfs FROM files WHERE commit_id = :parent EXCEPT "
        "SELECT path, sha256, lfs FROM files WHERE commit_id = :commit) AS removed", {"commit": commit, "parent": parent})
    return [row["path"] for row in rows]


def last_commits(catalog: Catalog, head: str, files: set[str], folders: set[str]) -> dict[str, Commit]:
    """The newest commit at or before ``head`` that touched each of ``files`` and ``folders``
    (anything below a folder), walking at most :data:`MAX_HISTORY_WALK` commits back."""
    found: dict[str, Commit] = {}
    offset, batch = 0, 100
    while (files or folders) and offset < MAX_HISTORY_WALK:
        history = catalog.history(head, offset=offset, limit=batch)
        for commit in history:
            changed = _changed_paths(catalog, commit.id, commit.parent)
            hit_files = files.intersection(changed)
            hit_folders = {d for d in folders if any(p.startswith(d + "/") for p in changed)}
            for path in hit_files | hit_folders:
                found[path] = commit
            files -= hit_files
            folders -= hit_folders
            if not (files or folders):
                break
        if len(history) < batch:
            break
        offset += batch
    return found


def security_status(path: str) -> dict[str, Any]:
    pickles, _ = unsafe_files([path])
    return {"status": "unsafe" if pickles else "safe", "avScan": None, "pickleImportScan": None}


def expand_entries(catalog: Catalog, head: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries`` (tree or paths-info shape) with ``lastCommit`` and, for files, ``securityFileStatus``."""
    files = {e["path"] for e in entries if e["type"] == "file"}
    folders = {e["path"] for e in entries if e["type"] == "directory"}
    commits = last_commits(catalog, head, set(files), set(folders))
    for entry in entries:
        commit = commits.get(entry["path"])
        if commit is not None:
            entry["lastCommit"] = {"id": commit.id, "title": commit.title, "date": commit.created_at}
        if entry["type"] == "file":
            entry["securityFileStatus"] = security_status(entry["path"])
    return entries


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
    expand = _flag(call, "expand")
    offset, page = _cursor(call), call.state.settings.page_size
    if expand:
        page = min(page, EXPAND_PAGE)
    headers = next_link(call.request, call.base_url, call.route_path, offset + page) \
        if len(entries) > offset + page else None
    shown = entries[offset:offset + page]
    if expand:
        shown = expand_entries(call.state.catalog, sha, shown)
    return JSONResponse(shown, headers=headers)


def paths_info(call: Call) -> Response:
    repo = call.repo()
    sha = call.revision(repo)
    form = parse_qs(call.body.decode("utf-8", "replace"))
    wanted = {p.strip("/") for p in form.get("paths", [])}
    if len(wanted) > MAX_PATHS_INFO:
        raise bad_request(f"too many paths ({len(wanted)}); ask about at most {MAX_PATHS_INFO} per request")
    files = call.state.catalog.files(sha)
    ids = folder_ids(files)
    entries = [file_entry(row) for row in files if row.path in wanted]
    entries += [folder_entry(path, ids[path]) for path in sorted(wanted) if path and path in ids]
    if form.get("expand", [""])[-1].lower() in ("1", "true"):
        entries = expand_entries(call.state.catalog, sha, entries)
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
    target = call.revision(repo)  # as on the Hub: an unknown revision first, then the tag's name
    name = check_ref_name(body.tag, "tag")
    if not call.state.catalog.add_ref(repo, "tag", name, target):
        raise conflict(f"Reference refs/tags/{name} already exists")
    return JSONResponse({"name": name, "ref": f"refs/tags/{name}", "targetCommit": target})


def delete_tag(call: Call) -> Response:
    repo, _ = call.writable_repo()
    if not call.state.catalog.delete_ref(repo, "tag", call.params["revision"]):
        raise revision_not_found(call.params["revision"])
    return JSONResponse({"deleted": call.params["revision"]})


def create_branch(call: Call) -> Response:
    body = call.model(NewBranch)
    repo, _ = call.writable_repo()
    target = call.revision(repo, body.startingPoint or MAIN)
    name = check_ref_name(call.params["revision"], "branch")
    if not call.state.catalog.add_ref(repo, "branch", name, target):
        raise conflict(f"Reference refs/heads/{name} already exists")
    return JSONResponse({"name": name, "ref": f"refs/heads/{name}", "targetCommit": target})


def delete_branch(call: Call) -> Response:
    repo, _ = call.writable_repo()
    name = call.params["revision"]
    if name == MAIN:
        raise forbidden(f"Cannot delete refs/heads/{MAIN}: it is the default branch")
    if not call.state.catalog.delete_ref(repo, "branch", name):
        raise revision_not_found(name)
    return JSONResponse({"deleted": name})
