"""``HEAD`` / ``GET /{namespace}/{name}/resolve/{revision}/{path}``: file bytes with Range support.

Headers mirror between HEAD and GET: ``X-Repo-Commit`` (the commit the revision names),
``ETag`` and the true ``Content-Length``. The ETag is the Hub's (the client names its cache blob
after it and compares it with a ``local_dir`` copy): a regular file's git blob id (the ``oid`` of
tree and paths-info); an LFS file's content sha256, also sent as ``X-Linked-Etag`` with
``X-Linked-Size``, which the client prefers to ``ETag`` / ``Content-Length``. No Xet headers are
ever sent, so every client downloads over plain HTTP.

Downloads are counted once per fetch of a repo's *counting file*: ``config.json`` (what every
``from_pretrained``, ``snapshot_download`` and ``gptstore pull`` fetches once), or
``gptstore.json`` in a revision without ``config.json`` (e.g. an adapter package). Reading only
the manifest (to show or search) is not a download; neither are HEAD requests, cached re-loads
and range reads past byte 0.
"""

from __future__ import annotations

from starlette.responses import Response

from ..manifest import MANIFEST_FILE
from .context import Call
from .gating import require_access
from .http import FileStream, entry_not_found, parse_range

CONFIG_FILE = "config.json"


def resolve(call: Call) -> Response:
    repo = call.repo()
    require_access(call.state.db, call.principal, repo, f"{call.base_url}/{repo.repo_id}")
    sha = call.revision(repo)
    path = call.params["path"]
    catalog = call.state.catalog
    row = catalog.file(sha, path)
    if row is None:
        raise entry_not_found(path, commit=sha)
    head = call.request.method == "HEAD"
    span = None if head or row.size == 0 else parse_range(call.request.headers.get("range"), row.size)
    start, end = span if span else (0, row.size - 1)
    headers = {
        "X-Repo-Commit": sha,
        "ETag": f'"{row.sha256 if row.lfs else row.git_oid}"',
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start + 1),
    }
    if row.lfs:
        headers["X-Linked-Etag"] = f'"{row.sha256}"'
        headers["X-Linked-Size"] = str(row.size)
    if span:
        headers["Content-Range"] = f"bytes {start}-{end}/{row.size}"
    if not head and start == 0 and _counts(call, sha, path):
        catalog.count_download(repo, call.principal.user if call.principal else None)
    return FileStream(str(call.state.storage.blobs.path(row.sha256)), start, end,
                      status=206 if span else 200, headers=headers, head=head)


def _counts(call: Call, sha: str, path: str) -> bool:
    if path == CONFIG_FILE:
        return True
    return path == MANIFEST_FILE and call.state.catalog.file(sha, CONFIG_FILE) is None
