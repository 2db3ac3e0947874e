"""Routes that match the raw (still percent-encoded) request path, for Starlette's router.

Starlette's own ``Route`` matches the *decoded* ``scope["path"]``, where ``dev%2Fx`` (one
revision) and ``dev/x`` (a revision and a path) look the same. A :class:`RawPathRoute` matches
``scope["raw_path"]`` instead: the path is split at literal ``/`` by the pattern first and each
captured part is percent-decoded after (protocol §1.5). A public URL with a path prefix
(``http://host/hf``) is stripped before matching; requests without it are served too.

Each route hands its handler a :class:`~gptstore.server.context.Call`. A plain ``def`` handler
runs in Starlette's threadpool once its (JSON-sized) body is read, so SQLite, hashing, fsync and
big listings never stall the event loop; an ``async def`` one runs on the loop and streams its
body itself, passing blocking steps to :meth:`Call.blocking`.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Collection
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, request_response
from starlette.types import Receive, Scope, Send

from .context import Call, Handler, State
from .http import JSON_LIMIT, read_body

#: scope key caching the raw path without the public URL's prefix (computed once per request)
ROUTE_PATH = "gptstore.route_path"


def route_path(scope: Scope, prefix: str) -> str:
    """The raw request path (percent-encoding kept), without the public URL's path ``prefix``."""
    path = scope.get(ROUTE_PATH)
    if path is None:
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1")
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix):] or "/"
        scope[ROUTE_PATH] = path
    return path


def store_state(request: Request) -> State:
    """The store the app's lifespan opened (see ``app.lifespan``)."""
    try:
        return request.state.store
    except AttributeError:
        raise RuntimeError("the store is not open: run the app with its lifespan "
                           "(uvicorn --lifespan on, or `with TestClient(app)`)") from None


class RawPathRoute(BaseRoute):
    """One endpoint: HTTP ``methods`` (None = any) and a regex ``pattern`` that must match the
    whole raw route path (an optional trailing ``/`` allowed); named groups become the
    handler's ``call.params``, percent-decoded."""

    def __init__(self, methods: Collection[str] | None, pattern: str, handler: Handler, *, prefix: str = "") -> None:
        self.methods = frozenset(methods) if methods is not None else None
        self.pattern = re.compile(f"(?:{pattern})/?")
        self.handler = handler
        self.prefix = prefix
        self.name = handler.__name__
        self.threaded = not inspect.iscoroutinefunction(handler)
        self.app = request_response(self._endpoint)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or (self.methods is not None and scope["method"] not in self.methods):
            return Match.NONE, {}
        found = self.pattern.fullmatch(route_path(scope, self.prefix))
        if found is None:
            return Match.NONE, {}
        params = {key: unquote(value) for key, value in found.groupdict().items() if value is not None}
        return Match.FULL, {"endpoint": self.handler, "path_params": params}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)  # routes are matched, never built into URLs

    async def _endpoint(self, request: Request) -> Response:
        call = Call(store_state(request), request, request.path_params, route_path(request.scope, self.prefix))
        if not self.threaded:
            return await self.handler(call)  # type: ignore[misc]
        call.body = await read_body(request, JSON_LIMIT)
        return await run_in_threadpool(self.handler, call)  # type: ignore[arg-type, return-value]

    def __repr__(self) -> str:
        methods = ",".join(sorted(self.methods)) if self.methods is not None else "*"
        return f"RawPathRoute({methods} {self.pattern.pattern} -> {self.name})"
