"""The ASGI app: a Starlette app whose routes match the raw (still percent-encoded) path.

- **routing**: :data:`ROUTES` as ``routing.RawPathRoute`` objects (``dev%2Fx``
  stays one revision, ``a%2Fb`` one tree path), then a catch-all that answers 404 with
  ``X-Error-Code``; plain ``def`` handlers run in the threadpool after their body is read.
- **errors**: exception handlers turn a :class:`~gptstore.server.http.HubError` into its answer,
  a pydantic ``ValidationError`` into a 400 and any other ``GPTStoreError`` into the status of
  :data:`~gptstore.server.http.ERROR_STATUS` (404/409/401/403, else 400); anything else is a
  500 that names no internals.
- **operations**: ``GET /healthz`` (liveness) and ``GET /readyz`` (catalog and blob storage
  reachable), matched before every other route; ``serve`` shuts down gracefully on SIGTERM.
- **lifespan**: opens the catalog and storage at startup (cleaning stale uploads) and closes
  the catalog at shutdown; handlers reach them as ``call.state``.
- **limits**: :class:`~gptstore.server.limits.RequestGuard` bounds every request (head size,
  body pace) and cleans every answer's headers; ``guarded_protocol`` bounds connections.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any, AsyncIterator, Iterator

import anyio
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import GPTStoreError
from ..netutil import listen_socket
from . import (api_access, api_files, api_manage, api_metering, api_repos, api_revisions, api_store, api_uploads,
               web)
from .accounts import Accounts
from .auth import UrlSigner
from .catalog import Catalog, RepoMoved
from .commits import Committer
from .context import Call, Handler, State
from .db import connect
from .http import HubError, on_gptstore_error, on_hub_error, on_validation_error
from .limits import RequestGuard, guarded_protocol, log_config
from .routing import RawPathRoute, route_path, store_state
from .settings import ServerSettings
from .storage import Storage

logger = logging.getLogger("uvicorn.error")
_REPO = r"(?P<namespace>[^/]+)/(?P<name>[^/]+)"
_API = r"/api/models/" + _REPO
_LFS = r"/(?P<namespace>[^/]+)/(?P<name>[^/]+?)\.git/info/lfs/objects"
_OID = r"(?P<oid>[0-9a-f]{64})"

#: seconds ``/readyz`` waits for the catalog and the blob storage to answer before it says 503
READY_TIMEOUT = 5.0
_ready_limiter: list[anyio.CapacityLimiter] = []


async def healthz(call: Call) -> Response:
    """Liveness: the process serves requests (nothing else is checked, so a catalog outage never
    makes an orchestrator restart every replica at once)."""
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(call: Call) -> Response:
    """Readiness: the catalog answers a trivial query (``Database.ping()``) and the blob storage
    could store a blob now (``Storage.ready()``: a HEAD on the bucket, or a probe file on disk),
    within :data:`READY_TIMEOUT` seconds; else 503 with the reason (the details go to the server
    log only: a client learns no host name or path). The checks run on a thread pool of their own
    (one thread), so checks stuck on a dead database never take the threads requests need."""
    if not _ready_limiter:
        _ready_limiter.append(anyio.CapacityLimiter(1))
    state = call.state

    def check() -> list[str]:
        failed = []
        for part, probe in (("catalog", state.db.ping), ("blob storage", state.storage.ready)):
            try:
                probe()
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
                logger.warning("readyz: the %s is not reachable: %s: %s", part, type(exc).__name__, exc)
                failed.append(part)
        return failed

    failed: list[str] | None = None
    with anyio.move_on_after(READY_TIMEOUT):
        failed = await anyio.to_thread.run_sync(check, limiter=_ready_limiter[0], abandon_on_cancel=True)
    if failed is None:
        reason = f"the catalog or the blob storage did not answer within {READY_TIMEOUT:g} s"
    elif failed:
        reason = f"the {' and the '.join(failed)} {'is' if len(failed) == 1 else 'are'} not reachable"
    else:
        return JSONResponse({"status": "ready"}, headers={"Cache-Control": "no-store"})
    return JSONResponse({"status": "unavailable", "reason": reason + "; see the server log"}, status_code=503,
                        headers={"Cache-Control": "no-store", "Retry-After": "5"})


#: (methods, pattern over the raw path, handler); the first match wins
ROUTES: list[tuple[tuple[str, ...] | None, str, Handler]] = [
    (("GET", "HEAD"), r"/healthz", healthz),
    (("GET", "HEAD"), r"/readyz", readyz),
    (("GET",), r"/api/whoami-v2", api_repos.whoami),
    (("GET",), r"/api/agent-harnesses", api_repos.agent_harnesses),
    (("POST",), r"/api/repos/create", api_repos.create_repo),
    (("DELETE",), r"/api/repos/delete", api_repos.delete_repo),
    (("POST",), r"/api/repos/move", api_manage.move_repo),
    (("GET",), r"/api/settings/repositories", api_manage.repository_settings),
    (("GET",), r"/api/organizations/(?P<namespace>[^/]+)/settings/repositories", api_manage.repository_settings),
    (("POST",), r"/api/validate-yaml", api_repos.validate_yaml),
    (("GET",), r"/api/models", api_repos.list_models),
    (("GET",), r"/api/gptstore/keys/(?P<namespace>[^/]+)", api_repos.signing_keys),
    (("GET",), r"/api/gptstore/models/" + _REPO + r"/reviews", api_store.list_reviews),
    (("PUT",), r"/api/gptstore/models/" + _REPO + r"/reviews", api_store.put_review),
    (("DELETE",), r"/api/gptstore/models/" + _REPO + r"/reviews", api_store.delete_review),
    (("POST",), r"/api/gptstore/usage", api_metering.post_usage),
    (("GET",), r"/api/gptstore/usage/(?P<namespace>[^/]+)", api_metering.namespace_usage),
    (("GET",), _API, api_repos.model_info),
    (("GET",), _API + r"/revision/(?P<revision>[^/]+)", api_repos.model_info),
    (("PUT",), _API + r"/settings", api_repos.repo_settings),
    (("POST",), _API + r"/ask-access", api_access.ask_access),
    (("DELETE",), _API + r"/user-access-request", api_access.withdraw_request),
    (("GET",), _API + r"/user-access-request/(?P<status>pending|accepted|rejected)", api_access.list_requests),
    (("POST",), _API + r"/user-access-request/handle", api_access.handle_request),
    (("POST",), _API + r"/user-access-request/grant", api_access.grant_access),
    (("POST",), _API + r"/duplicate", api_manage.duplicate_repo),
    (("GET",), _API + r"/auth-check(?:/(?P<access>write))?", api_manage.auth_check),
    (("GET",), _API + r"/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?", api_revisions.tree),
    (("POST",), _API + r"/paths-info/(?P<revision>[^/]+)", api_revisions.paths_info),
    (("GET",), _API + r"/refs", api_revisions.refs),
    (("GET",), _API + r"/commits/(?P<revision>[^/]+)", api_revisions.commits),
    (("POST",), _API + r"/tag/(?P<revision>[^/]+)", api_revisions.create_tag),
    (("DELETE",), _API + r"/tag/(?P<revision>[^/]+)", api_revisions.delete_tag),
    (("POST",), _API + r"/branch/(?P<revision>[^/]+)", api_revisions.create_branch),
    (("DELETE",), _API + r"/branch/(?P<revision>[^/]+)", api_revisions.delete_branch),
    (("POST",), _API + r"/preupload/(?P<revision>[^/]+)", api_uploads.preupload),
    (("POST",), _API + r"/commit/(?P<revision>[^/]+)", api_uploads.commit),
    (("GET",), _API + r"/xet-(?:read|write)-token/.*", api_uploads.xet_token),
    (("POST",), _LFS + r"/batch", api_uploads.lfs_batch),
    (("PUT",), _LFS + r"/upload/" + _OID, api_uploads.lfs_upload),
    (("PUT",), _LFS + r"/upload/" + _OID + r"/(?P<part>[1-9][0-9]{0,4})", api_uploads.lfs_upload_part),
    (("POST",), _LFS + r"/upload/" + _OID, api_uploads.lfs_complete),
    (("POST",), _LFS + r"/verify", api_uploads.lfs_verify),
    (("GET", "HEAD"), "/" + _REPO + r"/resolve/(?P<revision>[^/]+)/(?P<path>.+)", api_files.resolve),
    # an id without a namespace (`gpt2`): RepoNotFound, not "no such endpoint", so repo_exists is False
    (None, r"/api/models/[^/]+(?:/(?:revision|tree|paths-info|refs|commits|tag|branch|preupload|commit|settings"
           r"|duplicate|auth-check|xet-read-token|xet-write-token)(?:/.*)?)?", api_manage.namespace_less),
    (("GET", "HEAD"), r"/[^/]+/resolve/.*", api_manage.namespace_less),
]


def routes(prefix: str = "") -> list[RawPathRoute]:
    """:data:`ROUTES` for a public URL with path ``prefix``, then the catch-all 404."""
    table = [RawPathRoute(methods, pattern, handler, prefix=prefix)
             for methods, pattern, handler in (*ROUTES, *web.ROUTES)]
    return [*table, RawPathRoute(None, r"[\s\S]*", api_repos.not_found, prefix=prefix)]


async def on_repo_moved(request: Request, exc: Exception) -> Response:
    """A lookup named an old id of a moved repo: redirect to its current id (``api_manage.moved``)."""
    assert isinstance(exc, RepoMoved)
    state = store_state(request)
    call = Call(state, request, dict(request.path_params), route_path(request.scope, state.settings.prefix))
    try:  # the caller's token is checked against the catalog: off the event loop
        return await run_in_threadpool(api_manage.moved, call, exc.repo)
    except HubError as error:
        return error.response()


def open_state(settings: ServerSettings) -> State:
    """Open the catalog and storage of a data directory (creating them) for serving."""
    db = connect(settings.catalog_url)
    storage = Storage(settings.blobs_path, settings.uploads_path, blobs_url=settings.blobs,
                      url_ttl=settings.upload_url_ttl, public_endpoint=settings.blobs_public_url)
    storage.clean(max_age=settings.upload_url_ttl)
    api_uploads.shorten_gil_switches()
    catalog = Catalog(db)
    return State(settings, db, Accounts(db), catalog, storage,
                 UrlSigner(settings.signing_key(), settings.upload_url_ttl),
                 Committer(catalog, storage, require_signed=settings.require_signed))


def create_app(settings: ServerSettings, *, access_log: bool = True) -> Starlette:
    """The store's ASGI app; serve it with its lifespan on (``serve`` does)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        state = open_state(settings)  # a failure here is reported by uvicorn, which then exits
        try:
            yield {"store": state}
        finally:
            state.db.close()

    return Starlette(
        routes=routes(settings.prefix),
        middleware=[Middleware(RequestGuard, settings=settings, access_log=access_log)],
        exception_handlers={HubError: on_hub_error, ValidationError: on_validation_error,
                            GPTStoreError: on_gptstore_error, RepoMoved: on_repo_moved},
        lifespan=lifespan,
    )


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


def bind(settings: ServerSettings) -> socket.socket:
    """The listening socket for ``settings.host``/``settings.port`` (see :func:`gptstore.netutil.listen_socket`)."""
    return listen_socket(settings.host, settings.port)


def serve(settings: ServerSettings, *, log_level: str = "info", access_log: bool = True,
          sock: socket.socket | None = None) -> None:
    """Run the server under uvicorn until interrupted, on ``sock`` (from :func:`bind`; bound here
    when not given)."""
    import uvicorn

    tune_malloc()
    settings.data.mkdir(parents=True, exist_ok=True)
    sock = sock or bind(settings)
    # the access log is RequestGuard's (its lines carry the request id), not uvicorn's
    config = uvicorn.Config(create_app(settings, access_log=access_log), host=settings.host, port=settings.port,
                            log_level=log_level, access_log=False, lifespan="on", http=guarded_protocol(settings),
                            limit_concurrency=settings.limit_concurrency,
                            timeout_keep_alive=settings.timeout_keep_alive,
                            timeout_graceful_shutdown=settings.shutdown_timeout,
                            h11_max_incomplete_event_size=settings.max_header_size,
                            **({"log_config": log_config(settings.log_format)}
                               if settings.log_format != "text" else {}))
    with _sigterm_exits_cleanly():
        uvicorn.Server(config).run(sockets=[sock])


@contextlib.contextmanager
def _sigterm_exits_cleanly() -> Iterator[None]:
    """Make a SIGTERM end in exit status 0. uvicorn handles it gracefully (stop accepting, let
    requests in flight finish for up to ``timeout_graceful_shutdown`` s, run the lifespan's
    shutdown), then raises the signal again under the handler it found; with the default one the
    process would die of the signal (status 143) after a clean shutdown, which orchestrators report
    as a crash. The handler it finds is this no-op one, so ``serve`` returns normally instead."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
