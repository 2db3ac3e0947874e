"""Hub API for writing: preupload, the NDJSON commit, and the git-LFS batch API.

Files below ``lfs_threshold`` travel inline in the commit ("regular"), so clients with Xet
enabled can still upload them, unless the repo's ``.gitattributes`` puts them in LFS (as the Hub
does: ``*.safetensors``, ``*.bin``, … by default); preupload also answers ``shouldIgnore`` by the
``.gitignore`` sent with the commit or committed in the repo. LFS files go through LFS, which
needs ``HF_HUB_DISABLE_XET=1`` on the client. LFS objects at or above ``multipart_threshold`` (or larger than ``max_body``)
are uploaded in parts of ``part_size``. Upload URLs are signed (the client sends no auth there);
objects are hashed while streamed to disk and kept only when size and sha256 match. With
``--blobs s3://…`` the batch answers presigned bucket URLs instead (:func:`_bucket_actions`) and
the server hashes what landed at the verify or completion call before a commit may use it.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlencode
from typing import AsyncIterator, Literal

from pydantic import Field
from starlette.responses import JSONResponse, Response

from ..blobs import BlobWriter
from ..errors import DigestMismatch
from .commits import CommitParser, check_path, lines
from .context import Call
from .gitpatterns import MAX_PATTERN_TEXT, GitAttributes, GitIgnore
from .http import Body, HubError, bad_request, body_chunks, entry_not_found, revision_not_found
from .storage import FileRow, UploadRejected

#: an upload's body is hashed and written in buffers of this size (two per upload; see _stream_into)
WRITE_BATCH = 8 * 1024 * 1024
#: the GIL switch interval (s) of a server process that streams uploads; see shorten_gil_switches
UPLOAD_SWITCH_INTERVAL = 0.0005
LFS_MEDIA = "application/vnd.git-lfs+json"
#: most parts one object may be uploaded in (as on S3); a larger object needs a larger --part-size
MAX_PARTS = 10_000
#: most part URLs one batch answer signs, so a batch of many large objects stays small and quick
MAX_BATCH_PARTS = 50_000


class PreuploadFile(Body):
    path: str
    sample: str = ""
    size: int = Field(ge=0)


class Preupload(Body):
    files: list[PreuploadFile] = Field(max_length=1000)
    gitIgnore: str | None = Field(None, max_length=MAX_PATTERN_TEXT)


class LfsObject(Body):
    oid: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class LfsBatch(Body):
    operation: Literal["upload", "download"]
    transfers: list[str] = ["basic"]
    objects: list[LfsObject] = Field(max_length=1000)


class Part(Body):
    partNumber: int = Field(ge=1, le=MAX_PARTS)
    etag: str = Field(max_length=200)


class Completion(Body):
    oid: str = Field(pattern=r"^[0-9a-f]{64}$")
    parts: list[Part] = Field(min_length=1, max_length=MAX_PARTS)


# -- preupload and commit ------------------------------------------------------------------
def preupload(call: Call) -> Response:
    body = call.model(Preupload)
    repo, _ = call.writable_repo()
    sha = call.revision(repo)
    existing = {row.path: row for row in call.state.catalog.files(sha)}
    threshold = call.state.settings.lfs_threshold
    attributes = GitAttributes(_pattern_text(call, existing.get(".gitattributes")))
    ignore = GitIgnore(body.gitIgnore if body.gitIgnore is not None
                       else _pattern_text(call, existing.get(".gitignore")))
    answers = []
    for item in body.files:
        path = check_path(item.path)
        mode = "lfs" if item.size >= threshold or attributes.is_lfs(path) else "regular"
        row = existing.get(path)
        oid = None
        if row is not None:
            oid = row.sha256 if mode == "lfs" else (None if row.lfs else row.git_oid)
        answers.append({"path": item.path, "uploadMode": mode, "shouldIgnore": ignore.ignores(path),
                        "oid": oid})
    return JSONResponse({"files": answers, "commitOid": sha})


def _pattern_text(call: Call, row: FileRow | None) -> str:
    """A committed .gitattributes / .gitignore, read up to its cap ("" when there is none)."""
    if row is None:
        return ""
    with call.state.storage.blobs.open(row.sha256) as handle:
        return handle.read(MAX_PATTERN_TEXT).decode("utf-8", "replace")


async def commit(call: Call) -> Response:
    if call.request.query_params.get("create_pr") in ("1", "true"):
        raise bad_request("pull requests are not supported by this store; commit to a branch")
    repo, principal = await call.blocking(call.writable_repo)
    branch = call.params["revision"]
    state = call.state
    if await call.blocking(state.catalog.branch_head, repo, branch) is None:
        raise revision_not_found(branch)
    parser = CommitParser(state.storage)
    async for line in lines(body_chunks(call.request, state.settings.max_body)):
        await parser.feed(line)
    if parser.header is None:
        raise bad_request("invalid commit: the body is empty (expected NDJSON starting with a header line)")
    oid = await call.blocking(state.committer.commit, repo, branch, parser.header, parser.operations,
                              author=principal.user, namespaces=principal.namespaces)
    return JSONResponse({"commitOid": oid, "commitUrl": f"{call.base_url}/{repo.repo_id}/commit/{oid}",
                         "commitMessage": parser.header.summary, "hookOutput": "", "success": True,
                         "pullRequestUrl": None})


# -- LFS -----------------------------------------------------------------------------------
def _lfs_base(call: Call) -> str:
    return f"{call.base_url}/{call.repo_id}.git/info/lfs/objects"


def lfs_batch(call: Call) -> Response:
    body = call.model(LfsBatch, what="LFS batch request")
    if body.operation != "upload":
        raise bad_request("only LFS uploads are served; download files from /resolve/")
    repo, principal = call.writable_repo()
    settings, signer, blobs = call.state.settings, call.state.signer, call.state.storage.blobs
    catalog = call.state.catalog
    base = _lfs_base(call)
    objects = []
    signed_parts = 0
    for item in body.objects:
        entry: dict = {"oid": item.oid, "size": item.size, "authenticated": True}
        multipart = item.size >= settings.multipart_threshold or item.size > settings.max_body
        count = -(-item.size // settings.part_size) if multipart else 0  # bounded by the checks below
        if item.size > settings.max_object_size:
            entry["error"] = {"code": 413, "message": f"object {item.oid[:12]}… of {item.size} bytes is larger "
                              f"than this store's limit of {settings.max_object_size} bytes (--max-object-size)"}
        elif count > MAX_PARTS:
            entry["error"] = {"code": 413, "message": f"object {item.oid[:12]}… would need {count} parts of "
                              f"{settings.part_size} bytes; at most {MAX_PARTS} parts are allowed "
                              "(the server's --part-size is too small for it)"}
        elif signed_parts + count > MAX_BATCH_PARTS:
            entry["error"] = {"code": 413, "message": f"more than {MAX_BATCH_PARTS} parts in one batch; "
                              "request fewer large objects per batch"}
        elif ((stored := _stored_size(blobs, item.oid)) is not None
              and catalog.object_available(repo, item.oid, principal.namespaces)):
            if stored != item.size:
                entry["error"] = {"code": 422, "message": f"object {item.oid} is stored with another size"}
        elif multipart and "multipart" not in body.transfers:
            entry["error"] = {"code": 413, "message": f"objects above {settings.max_body} bytes need multipart"}
        elif call.state.storage.remote is not None:
            entry["actions"] = _bucket_actions(call, repo.repo_id, item.oid, item.size, count)
            signed_parts += count
        else:
            query = signer.sign("upload", repo.repo_id, item.oid, item.size)
            upload: dict = {"href": f"{base}/upload/{item.oid}?{query}"}
            if multipart:
                upload["header"] = {"chunk_size": str(settings.part_size)}
                signed_parts += count
                for n in range(1, count + 1):
                    length = min(settings.part_size, item.size - (n - 1) * settings.part_size)
                    query = signer.sign(f"part{n}", repo.repo_id, item.oid, length)
                    upload["header"][str(n)] = f"{base}/upload/{item.oid}/{n}?{query}"
            entry["actions"] = {"upload": upload, "verify": {"href": f"{base}/verify"}}
        objects.append(entry)
    transfer = "multipart" if "multipart" in body.transfers else "basic"
    return JSONResponse({"transfer": transfer, "objects": objects, "hash_algo": "sha256"}, media_type=LFS_MEDIA)


def _stored_size(blobs, oid: str) -> int | None:
    """The size of blob ``oid`` in the store, None when it is not there (one stat, or one HEAD in a bucket)."""
    try:
        return blobs.size(oid)
    except FileNotFoundError:
        return None


def _bucket_actions(call: Call, repo_id: str, oid: str, size: int, parts: int) -> dict:
    """Upload actions straight to the bucket (``--blobs s3://…``): a presigned PUT, or presigned
    UploadPart URLs plus a completion URL of ours (the server completes the multipart upload); and
    a signed verify URL, where the server hashes what landed before the object may be committed."""
    remote, signer, base = call.state.storage.remote, call.state.signer, _lfs_base(call)
    assert remote is not None
    verify = {"href": f"{base}/verify?{signer.sign('verify', repo_id, oid, size)}"}
    if not parts:
        return {"upload": {"href": remote.presigned_put(oid, repo_id)}, "verify": verify}
    upload_id = remote.start_multipart(oid, repo_id)
    header = {"chunk_size": str(call.state.settings.part_size)}
    for n in range(1, parts + 1):
        header[str(n)] = remote.presigned_part(oid, repo_id, upload_id, n)
    query = signer.sign(f"complete:{upload_id}", repo_id, oid, size)
    href = f"{base}/upload/{oid}?{query}&{urlencode({'upload_id': upload_id})}"
    return {"upload": {"href": href, "header": header}, "verify": verify}


async def _stream_into(call: Call, writer: BlobWriter, size: int) -> None:
    """Write the request body into ``writer``, hashing and writing one buffer in a worker thread
    while the event loop fills the other.

    The body arrives in pieces of ~64–256 KiB; each is copied once into a preallocated
    :data:`WRITE_BATCH` buffer (no per-piece allocation, no per-piece thread hop), and a full
    buffer goes to a worker thread in one hop, where :meth:`BlobWriter.write` hashes it while
    another thread writes it (both release the GIL). Two buffers alternate, so receiving never
    waits for the disk unless the disk is slower than the network.
    """
    declared = call.request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) != size:
        raise bad_request(f"Content-Length {declared} differs from the object's size {size}")
    if size > call.state.settings.max_body:
        raise HubError(413, f"an upload of {size} bytes is larger than the limit of "
                            f"{call.state.settings.max_body} bytes; use multipart")
    loop = asyncio.get_running_loop()
    batch = max(1, min(size, WRITE_BATCH))
    buffer, spare = bytearray(batch), bytearray(batch)
    filled = 0
    pending: asyncio.Future | None = None
    try:
        async for chunk in _chunks(call, size):
            piece = memoryview(chunk)
            while piece:
                n = min(len(piece), batch - filled)
                buffer[filled:filled + n] = piece[:n]
                filled += n
                piece = piece[n:]
                if filled == batch:
                    if pending is not None:
                        await pending  # it was writing ``spare``: free again after this
                    pending = loop.run_in_executor(None, writer.write, buffer)
                    buffer, spare, filled = spare, buffer, 0
    finally:
        if pending is not None:
            await pending
    if filled:
        await loop.run_in_executor(None, writer.write, memoryview(buffer)[:filled])


def shorten_gil_switches() -> None:
    """Let the hashing and writing threads get the GIL back promptly during an upload (called once
    as the server starts: see app.open_state).

    While a body streams in, the event loop thread holds the GIL almost all the time; a worker
    thread that comes back from hashing or writing (both done without the GIL) waits up to the
    switch interval (5 ms by default) for it, several times per buffer. Measured on a 256 MB LFS
    upload, that convoy halved the receive rate; 0.5 ms removes most of it. Process-wide and
    idempotent; it costs some CPU-bound threads a little, which a server streaming bytes has few of.
    """
    if sys.getswitchinterval() > UPLOAD_SWITCH_INTERVAL:
        sys.setswitchinterval(UPLOAD_SWITCH_INTERVAL)


async def _chunks(call: Call, limit: int) -> AsyncIterator[bytes]:
    try:
        async for chunk in body_chunks(call.request, limit):
            yield chunk
    except HubError as exc:
        if exc.status == 413:
            raise bad_request(f"the upload is larger than the object's declared size ({limit} bytes)") from None
        raise


async def _store(call: Call, writer: BlobWriter, size: int, label: str) -> str:
    with writer:
        await _stream_into(call, writer, size)
        try:
            return await call.blocking(writer.commit, label=label)
        except DigestMismatch as exc:
            raise bad_request(f"upload rejected: {exc.message}") from None


async def lfs_upload(call: Call) -> Response:
    oid = call.params["oid"]
    size = call.state.signer.check("upload", call.repo_id, oid, dict(call.request.query_params))
    _not_through_server(call)
    writer = await call.blocking(call.state.storage.blobs.writer, expected_sha256=oid, expected_size=size)
    await _store(call, writer, size, f"LFS object {oid[:12]}…")
    await call.blocking(_grant, call, oid)
    return JSONResponse({"oid": oid, "size": size})


def _grant(call: Call, oid: str) -> None:
    repo = call.state.catalog.repo(call.params["namespace"], call.params["name"])
    if repo is not None:
        call.state.catalog.grant_object(repo, oid)


async def lfs_upload_part(call: Call) -> Response:
    oid, number = call.params["oid"], int(call.params["part"])
    length = call.state.signer.check(f"part{number}", call.repo_id, oid, dict(call.request.query_params))
    _not_through_server(call)
    storage = call.state.storage
    writer = await call.blocking(lambda: storage.parts(oid, call.repo_id).writer(expected_size=length))
    etag = await _store(call, writer, length, f"part {number} of {oid[:12]}…")
    await call.blocking(storage.record_part, oid, call.repo_id, number, etag)
    return Response(b"", headers={"ETag": f'"{etag}"'})


def _not_through_server(call: Call) -> None:
    if call.state.storage.remote is not None:
        raise bad_request("this store takes LFS uploads straight to its bucket: use the URLs the LFS "
                          "batch endpoint answers with")


def _promote(call: Call, oid: str, size: int) -> None:
    """Verify what the client put in the bucket for ``oid`` and record it for the repo (see
    objectstore.S3Blobs.promote: wrong bytes are deleted, never referenced)."""
    remote = call.state.storage.remote
    assert remote is not None
    try:
        remote.promote(oid, call.repo_id, size)
    except FileNotFoundError:
        raise entry_not_found(f"LFS object {oid}") from None
    except DigestMismatch as exc:
        raise bad_request(f"upload rejected: {exc.message}; the uploaded object was deleted, "
                          "upload the file again") from None
    _grant(call, oid)


def lfs_complete(call: Call) -> Response:
    """Complete a multipart upload: assemble the parts sent through this server, or (``--blobs
    s3://…``) complete the bucket's multipart upload and verify what landed (:func:`_promote`)."""
    oid = call.params["oid"]
    storage, catalog = call.state.storage, call.state.catalog
    remote = storage.remote
    query = dict(call.request.query_params)
    upload_id = query.get("upload_id", "")
    purpose = "upload" if remote is None else f"complete:{upload_id}"
    size = call.state.signer.check(purpose, call.repo_id, oid, query)
    body = call.model(Completion, what="multipart completion")
    if body.oid != oid:
        raise bad_request(f"completion for {body.oid} sent to the URL of {oid}")
    numbers = [part.partNumber for part in body.parts]
    if numbers != list(range(1, len(numbers) + 1)):
        raise bad_request("parts must be numbered 1, 2, 3, … in order")
    repo = catalog.repo(call.params["namespace"], call.params["name"])
    if (repo is not None and (remote is None or not remote.staged(oid, call.repo_id))
            and storage.blobs.has(oid) and catalog.object_available(repo, oid, ())):
        return JSONResponse({"oid": oid, "size": size})  # a retried completion
    etags = [part.etag.strip().removeprefix("W/").strip('"') for part in body.parts]
    if remote is not None:
        try:
            remote.complete_multipart(oid, call.repo_id, upload_id, etags)
        except ValueError as exc:
            raise bad_request(f"multipart completion rejected by the bucket: {exc}") from None
        _promote(call, oid, size)
    else:
        try:  # always from this upload's own parts, even when the blob exists: the bytes must be proven
            storage.assemble(oid, call.repo_id, size, etags)
        except UploadRejected as exc:
            raise bad_request(f"multipart completion rejected: {exc}") from None
        except DigestMismatch as exc:
            raise bad_request(f"upload rejected: {exc.message}") from None
        _grant(call, oid)
    return JSONResponse({"oid": oid, "size": size})


def lfs_verify(call: Call) -> Response:
    body = call.model(LfsObject, what="LFS verify request")
    repo = call.repo()
    blobs = call.state.storage.blobs
    remote = call.state.storage.remote
    query = dict(call.request.query_params)
    if remote is not None and "sig" in query:
        size = call.state.signer.check("verify", call.repo_id, body.oid, query)
        if size != body.size:
            raise bad_request(f"LFS object {body.oid[:12]}… was announced with {size} bytes, not {body.size}")
        if remote.staged(body.oid, call.repo_id):
            _promote(call, body.oid, size)
    namespaces = call.principal.namespaces if call.principal else ()
    stored = _stored_size(blobs, body.oid)
    if stored is None or not call.state.catalog.object_available(repo, body.oid, namespaces):
        raise entry_not_found(f"LFS object {body.oid}")
    if stored != body.size:
        raise bad_request(f"LFS object {body.oid[:12]}… has {stored} bytes, not {body.size}")
    return JSONResponse({"oid": body.oid, "size": body.size})


#: the last path segment the Xet token routes redirect to: hf_xet's error names only the status and
#: the final URL, never the answer's message, so the URL itself says what to do
XET_REFUSAL_SEGMENT = "this-store-takes-LFS-uploads:set-HF_HUB_DISABLE_XET=1"


async def xet_token(call: Call) -> Response:
    """huggingface_hub 2.x uploads ``lfs`` files over Xet whenever hf_xet is installed, asking no
    server first; the token request (made by hf_xet) is where it fails, so the answer says how to
    switch Xet off: a 307 to this URL plus :data:`XET_REFUSAL_SEGMENT` (what hf_xet shows), which
    answers 400 with the message (what any other client shows)."""
    path = call.request.url.path
    if not path.endswith("/" + XET_REFUSAL_SEGMENT):
        return Response(b"", status_code=307, headers={"Location": f"{path}/{XET_REFUSAL_SEGMENT}"})
    raise bad_request("Xet is not served: this store takes LFS uploads: set HF_HUB_DISABLE_XET=1 "
                      "(environment variable) and retry")
