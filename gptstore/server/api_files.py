"""``HEAD`` / ``GET /{namespace}/{name}/resolve/{revision}/{path}``: file bytes with Range support.

Headers mirror between HEAD and GET: ``X-Repo-Commit`` (the commit the revision names),
``ETag`` and the true ``Content-Length``. The ETag is the Hub's (the client names its cache blob
after it and compares it with a ``local_dir`` copy): a regular file's git blob id (the ``oid`` of
tree and paths-info); an LFS file's content sha256, also sent as ``X-Linked-Etag`` with
``X-Linked-Size``, which the client prefers to ``ETag`` / ``Content-Length``. No Xet headers are
ever sent, so every client downloads over plain HTTP. With ``--blobs s3://…`` LFS files answer
with a redirect to a presigned URL of the bucket (see :func:`_from_bucket`).

Downloads are counted once per fetch of a repo's *counting file*: ``config.json`` (what every
``from_pretrained``, ``snapshot_download`` and ``gptstore pull`` fetches once), or
``gptstore.json`` in a revision without ``config.json`` (e.g. an adapter package). Reading only
the manifest (to show or search) is not a download; neither are HEAD requests, cached re-loads
and range reads past byte 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import Response, StreamingResponse

from ..manifest import MANIFEST_FILE
from .context import Call
from .gating import require_access
from .http import FileStream, entry_not_found, parse_range

if TYPE_CHECKING:
    from .objectstore import S3Blobs
    from .storage import FileRow

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
    remote = call.state.storage.remote
    if remote is not None:
        return _from_bucket(remote, row, span, headers, head=head)
    return FileStream(str(call.state.storage.blobs.path(row.sha256)), start, end,
                      status=206 if span else 200, headers=headers, head=head)


def _from_bucket(remote: S3Blobs, row: FileRow, span: tuple[int, int] | None, headers: dict[str, str], *,
                 head: bool) -> Response:
    """With ``--blobs s3://…``: an LFS file is a 302 to a presigned GET of its blob, carrying the
    Hub's metadata on the redirect itself (the client takes a cross-origin 3xx's headers as the
    file's and fetches ``Location`` without auth; ranges then go to the bucket). A regular (small)
    file is streamed from the bucket through the server, as the Hub serves them itself."""
    if row.lfs:
        location = remote.presigned_get(row.sha256, filename=row.path.rsplit("/", 1)[-1])
        headers = {key: value for key, value in headers.items()
                   if key not in ("Content-Length", "Content-Range", "Accept-Ranges")}
        return Response(b"", status_code=302, headers={**headers, "Location": location})
    if head or row.size == 0:
        return Response(b"", status_code=206 if span else 200, headers=headers,
                        media_type="application/octet-stream")
    start, end = span if span else (0, row.size - 1)
    return StreamingResponse(remote.iter_range(row.sha256, start, end), status_code=206 if span else 200,
                             headers=headers, media_type="application/octet-stream")


def _counts(call: Call, sha: str, path: str) -> bool:
    if path == CONFIG_FILE:
        return True
    return path == MANIFEST_FILE and call.state.catalog.file(sha, CONFIG_FILE) is None
