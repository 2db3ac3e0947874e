"""The ASGI app: routes on the raw (still percent-encoded) path, then runs one handler.

Routing on ``scope["raw_path"]`` keeps ``dev%2Fx`` one revision and ``a%2Fb`` one tree path: a
path is split at literal ``/`` first and each part is percent-decoded after (protocol §1.5).
A public URL with a path prefix (``http://host/hf``) is stripped before matching.

A plain ``def`` handler runs in a worker thread once its body is read (so SQLite, hashing, fsync
and big listings never stall the event loop; see ``context.py``); an ``async def`` one runs on
the loop. Every request is bounded: head size, body pace and size, and the number of open
connections (see ``limits.py``).
"""

from __future__ import annotations

import inspect
import logging
import re
from typing import Any
from urllib.parse import unquote

import anyio
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ..errors import GPTStoreError
from . import api_files, api_repos, api_revisions, api_uploads
from .accounts import Accounts
from .auth import UrlSigner
from .catalog import Catalog
from .commits import Committer
from .context import Call, Handler, State
from .db import connect
from .http import JSON_LIMIT, HubError, read_body, validation_message
from .limits import TimedReceive, check_head, guarded_protocol
from .settings import ServerSettings
from .storage import Storage

log = logging.getLogger("gptstore.server")

_REPO = r"(?P<namespace>[^/]+)/(?P<name>[^/]+)"
_API = r"/api/models/" + _REPO
_LFS = r"/(?P<namespace>[^/]+)/(?P<name>[^/]+?)\.git/info/lfs/objects"
_OID = r"(?P<oid>[0-9a-f]{64})"

ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", r"/api/whoami-v2", api_repos.whoami),
    ("GET", r"/api/agent-harnesses", api_repos.agent_harnesses),
    ("POST", r"/api/repos/create", api_repos.create_repo),
    ("DELETE", r"/api/repos/delete", api_repos.delete_repo),
    ("POST", r"/api/validate-yaml", api_repos.validate_yaml),
    ("GET", r"/api/models", api_repos.list_models),
    ("GET", r"/api/gptstore/keys/(?P<namespace>[^/]+)", api_repos.signing_keys),
    ("GET", _API, api_repos.model_info),
    ("GET", _API + r"/revision/(?P<revision>[^/]+)", api_repos.model_info),
    ("PUT", _API + r"/settings", api_repos.repo_settings),
    ("GET", _API + r"/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?", api_revisions.tree),
    ("POST", _API + r"/paths-info/(?P<revision>[^/]+)", api_revisions.paths_info),
    ("GET", _API + r"/refs", api_revisions.refs),
    ("GET", _API + r"/commits/(?P<revision>[^/]+)", api_revisions.commits),
    ("POST", _API + r"/tag/(?P<revision>[^/]+)", api_revisions.create_tag),
    ("DELETE", _API + r"/tag/(?P<revision>[^/]+)", api_revisions.delete_tag),
    ("POST", _API + r"/branch/(?P<revision>[^/]+)", api_revisions.create_branch),
    ("DELETE", _API + r"/branch/(?P<revision>[^/]+)", api_revisions.delete_branch),
    ("POST", _API + r"/preupload/(?P<revision>[^/]+)", api_uploads.preupload),
    ("POST", _API + r"/commit/(?P<revision>[^/]+)", api_uploads.commit),
    ("GET", _API + r"/xet-(?:read|write)-token/.*", api_uploads.xet_token),
    ("POST", _LFS + r"/batch", api_uploads.lfs_batch),
    ("PUT", _LFS + r"/upload/" + _OID, api_uploads.lfs_upload),
    ("PUT", _LFS + r"/upload/" + _OID + r"/(?P<part>[1-9][0-9]{0,4})", api_uploads.lfs_upload_part),
    ("POST", _LFS + r"/upload/" + _OID, api_uploads.lfs_complete),
    ("POST", _LFS + r"/verify", api_uploads.lfs_verify),
    ("GET", "/" + _REPO + r"/resolve/(?P<revision>[^/]+)/(?P<path>.+)", api_files.resolve),
    ("HEAD", "/" + _REPO + r"/resolve/(?P<revision>[^/]+)/(?P<path>.+)", api_files.resolve),
]
_COMPILED = [(method, re.compile(f"^{pattern}/?$"), handler) for method, pattern, handler in ROUTES]


def match(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    for route_method, pattern, handler in _COMPILED:
        if route_method == method and (found := pattern.match(path)):
            return handler, {k: unquote(v) for k, v in found.groupdict().items() if v is not None}
    return api_repos.not_found, {}


def open_state(settings: ServerSettings) -> State:
    """Open the catalog and storage of a data directory (creating them) for serving."""
    db = connect(settings.catalog_path)
    storage = Storage(settings.blobs_path, settings.uploads_path)
    storage.clean(max_age=settings.upload_url_ttl)
    catalog = Catalog(db)
    return State(settings, db, Accounts(db), catalog, storage,
                 UrlSigner(settings.signing_key(), settings.upload_url_ttl),
                 Committer(catalog, storage, require_signed=settings.require_signed))


class StoreApp:
    """ASGI application of one store server."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.state: State | None = None

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self.state is None:
            self.state = open_state(self.settings)
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1")
        prefix = self.settings.prefix
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix):] or "/"
        handler, params = match(scope["method"], path)
        settings = self.settings
        receive = TimedReceive(receive, scope, timeout=settings.request_timeout, min_rate=settings.min_transfer_rate)
        call = Call(self.state, Request(scope, receive), params, path)
        try:
            check_head(scope, settings.max_header_size)
            response = await run(handler, call)
        except HubError as exc:
            response = exc.response()
        except ValidationError as exc:
            response = HubError(400, validation_message(exc, "request")).response()
        except GPTStoreError as exc:
            response = HubError(400, str(exc)).response()
        except Exception:
            log.exception("unexpected error in %s %s", scope["method"], path)
            response = HubError(500, "internal server error; see the server log").response()
        if not receive.complete:  # answered before the whole body came: do not read the rest
            response.headers["connection"] = "close"
        await response(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.state = open_state(self.settings)
                except Exception as exc:  # reported by uvicorn, which then exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.state is not None:
                    self.state.db.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def run(handler: Handler, call: Call) -> Response:
    """An async handler on the event loop; a plain one in a worker thread after reading its body."""
    if inspect.iscoroutinefunction(handler):
        return await handler(call)
    call.body = await read_body(call.request, JSON_LIMIT)
    return await anyio.to_thread.run_sync(handler, call)


def create_app(settings: ServerSettings) -> StoreApp:
    return StoreApp(settings)


def tune_malloc() -> None:
    """Keep request-sized buffers in glibc's heap instead of a fresh mmap each.

    Bodies and files move in 64 KiB–4 MiB pieces; above glibc's default mmap threshold every one
    of them costs an mmap, page faults and an munmap, which caps uploads at a few hundred MB/s.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not hasattr(ctypes.CDLL(name), "mallopt"):
        return
    libc = ctypes.CDLL(name)
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    libc.mallopt(m_trim_threshold, 128 * 1024 * 1024)


def serve(settings: ServerSettings, *, log_level: str = "info", access_log: bool = True) -> None:
    """Run the server under uvicorn until interrupted."""
    import uvicorn

    tune_malloc()
    settings.data.mkdir(parents=True, exist_ok=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level,
                access_log=access_log, lifespan="on", http=guarded_protocol(settings),
                limit_concurrency=settings.limit_concurrency, timeout_keep_alive=settings.timeout_keep_alive,
                h11_max_incomplete_event_size=settings.max_header_size)
