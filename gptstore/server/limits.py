"""Limits on what one client may hold of the server, beyond what uvicorn enforces by itself.

uvicorn bounds concurrency (``limit_concurrency``: 503 beyond it) and idle keep-alive
connections (``timeout_keep_alive``). A hostile or broken client could still hold a connection
forever by sending its request, or reading the answer, one byte at a time; so:

- **request head** (request line and headers): it must arrive within ``request_timeout``
  seconds of the connection opening (or of its first byte, for a later request on a kept-alive
  connection) and fit in ``max_header_size`` bytes; otherwise 408 / 431 and the connection is
  closed. Enforced per connection by :func:`guarded_protocol`, because the app sees nothing of
  a request until its head is complete; :func:`check_head` re-checks a head that arrived whole.
- **request body**: :class:`TimedReceive` waits at most ``request_timeout`` seconds for each
  piece, and allows the whole body ``request_timeout`` seconds plus one second per
  ``min_transfer_rate`` bytes received (Apache mod_reqtimeout's rule). Only time spent waiting
  for the client counts, not time the server spends storing what arrived. A client trickling a
  byte a second is cut off after about ``request_timeout`` seconds; an honest slow upload is not.
- **response**: while the connection's write buffer is full (the client does not keep up), the
  client must acknowledge at least ``min_transfer_rate`` bytes a second of what is queued for it
  (uvicorn's buffer plus the kernel's send queue), checked every ``request_timeout`` seconds, or
  it is reset (:func:`guarded_protocol`): a client that stops reading its download is dropped
  with everything queued for it, a slow one is not.

:class:`RequestGuard`, the app's middleware, applies the per-request parts: the head check, the
timed ``receive``, ``Connection: close`` on an answer sent before the whole body arrived (the
rest is not read), clean header values (:func:`~gptstore.server.http.clean_headers`), and an
``X-Request-Id`` on every answer (the client's own when it is a short safe token, else a fresh
one), which also ends the request's access-log line so a user's error report finds its log line.

The access log is ``text`` (one line per request when its answer starts, as uvicorn's) or ``json``
(``--log-format json``: one JSON object per request once its answer is sent, with its size and
duration, for log pipelines; :func:`log_config` makes every other server log line JSON too).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import re
import socket
import struct
import time
import uuid
from typing import Any, Awaitable, Callable

import anyio

from .http import HubError, clean_headers
from .settings import ServerSettings

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

#: the server's log (uvicorn's); one line per request at INFO, in place of uvicorn's access log
logger = logging.getLogger("uvicorn.error")
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
#: scope key where the request's handler notes the authenticated user's name (``Call.principal``)
ACCESS_USER = "gptstore.user"


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: an access record's fields as they are, any other record
    as ``{"time", "level", "logger", "message"}`` (so a JSON log holds nothing but JSON lines)."""

    def format(self, record: logging.LogRecord) -> str:
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            return json.dumps(access, ensure_ascii=True, separators=(",", ":"))
        entry = {"time": _iso(record.created), "level": record.levelname.lower(), "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=True, separators=(",", ":"))


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="milliseconds")


def log_config(log_format: str) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for ``log_format``: None keeps uvicorn's own (text); ``json`` routes
    the server's loggers through :class:`JsonFormatter` on stderr."""
    if log_format != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
            "handlers": {"default": handler},
            "loggers": {name: {"handlers": ["default"], "level": "INFO", "propagate": False}
                        for name in ("uvicorn", "uvicorn.access", "gptstore")}}


def request_id(scope: dict[str, Any]) -> str:
    """The client's ``X-Request-Id`` when it is a short safe token (it goes into a header and a
    log line), else a fresh uuid4 hex."""
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _SAFE_REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


def has_body(scope: dict[str, Any]) -> bool:
    """Does the request carry a body (HTTP/1.1: a non-zero Content-Length or a Transfer-Encoding)?"""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def head_size(scope: dict[str, Any]) -> int:
    """Bytes of the request line and headers (as parsed; within a few bytes of the wire)."""
    line = len(scope["method"]) + len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 12
    return line + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def check_head(scope: dict[str, Any], limit: int) -> None:
    """431 for a head larger than ``limit`` that arrived in one piece (the protocol caught the rest)."""
    if head_size(scope) > limit:
        raise HubError(431, f"request headers are larger than the limit of {limit} bytes",
                       headers={"Connection": "close"})


class TimedReceive:
    """The ASGI ``receive`` of one request, raising 408 when the client sends its body too slowly."""

    def __init__(self, receive: Receive, scope: dict[str, Any], *, timeout: float, min_rate: int) -> None:
        self._receive = receive
        self.timeout = timeout
        self.min_rate = min_rate
        self.received = 0
        self.waited = 0.0
        #: the whole body has arrived (or there is none, or the client went away)
        self.complete = not has_body(scope)

    async def __call__(self) -> dict[str, Any]:
        if self.complete:  # after the body only http.disconnect comes, whenever the client leaves
            return await self._receive()
        allowance = min(self.timeout, self.timeout + self.received / self.min_rate - self.waited)
        started = time.monotonic()
        message = None
        with anyio.move_on_after(max(allowance, 0.0)):
            message = await self._receive()
        self.waited += time.monotonic() - started
        if message is None:
            raise HubError(408, f"the request body arrived too slowly (nothing for {self.timeout:g} s, or "
                                f"under {self.min_rate} bytes/s); check the connection and retry",
                           headers={"Connection": "close"})
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        else:
            self.complete = True
        return message


class RequestGuard:
    """ASGI middleware: bounds each HTTP request and checks each answer's head (see the module doc).

    It sits inside Starlette's error middleware and outside its exception middleware, so the
    answers of the exception handlers pass through it too.
    """

    def __init__(self, app: ASGIApp, *, settings: ServerSettings, access_log: bool = True) -> None:
        self.app = app
        self.settings = settings
        self.access_log = access_log

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        timed = TimedReceive(receive, scope, timeout=settings.request_timeout, min_rate=settings.min_transfer_rate)
        rid = request_id(scope)
        started = False
        status, sent, began = 0, 0, time.monotonic()
        json_log = self.access_log and settings.log_format == "json"

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started, status, sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                started = True
                status = message.get("status", 200)
                headers = [(k, v) for k, v in clean_headers(list(message.get("headers", ())))
                           if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode("ascii")))
                if not timed.complete:  # answered before the whole body came: do not read the rest
                    headers = [(k, v) for k, v in headers if k.lower() != b"connection"]
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
                if self.access_log and not json_log:
                    self._log(scope, status, rid)
            await send(message)

        try:
            try:
                check_head(scope, settings.max_header_size)
            except HubError as exc:
                await exc.response()(scope, timed, guarded_send)
                return
            try:
                await self.app(scope, timed, guarded_send)
            except Exception:  # answer the 500 here, so that it carries the id too (uvicorn logs the error)
                if not started:
                    await HubError(500, "internal server error; see the server log").response()(
                        scope, timed, guarded_send)
                raise
        finally:
            if json_log:
                self._log_json(scope, rid, status, sent, time.monotonic() - began)

    @staticmethod
    def _log_json(scope: dict[str, Any], rid: str, status: int, sent: int, seconds: float) -> None:
        """The request's JSON access record, once its answer is sent (or the client left: status 0
        = no answer started, ``bytes`` = body bytes handed to the connection)."""
        if not logger.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        query = scope.get("query_string") or b""
        record = {"time": _iso(time.time()), "request_id": rid, "method": scope["method"],
                  "path": scope.get("path", ""), "query": query.decode("latin-1"), "status": status,
                  "bytes": sent, "duration_ms": round(seconds * 1000, 3),
                  "client": f"{client[0]}:{client[1]}" if client else None,
                  "user": scope.get(ACCESS_USER), "http_version": scope.get("http_version", "1.1")}
        logger.info("%s %s %d", scope["method"], record["path"], status, extra={"access": record})

    @staticmethod
    def _log(scope: dict[str, Any], status: int, rid: str) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "-"
        query = scope.get("query_string") or b""
        path = scope.get("path", "") + ("?" + query.decode("latin-1") if query else "")
        logger.info('%s - "%s %s HTTP/%s" %d request-id=%s', where, scope["method"],
                    path.encode("unicode_escape").decode(), scope.get("http_version", "1.1"), status, rid)


def _refusal(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"x-error-message: {message}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
            ).encode("latin-1") + body


def queued(transport: asyncio.Transport) -> int:
    """Bytes written for the peer and not yet acknowledged: the transport's buffer plus (on Linux)
    the kernel's send queue, which holds megabytes on a fast link."""
    size = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    try:
        import fcntl
        import termios

        size += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
    except (ImportError, AttributeError, OSError, ValueError):
        pass  # the transport's buffer alone: coarser, still catches a client that reads nothing
    return size


def reset(transport: asyncio.Transport) -> None:
    """Close with a TCP reset, dropping what the kernel still queues for a client that will not read it."""
    sock = transport.get_extra_info("socket")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (AttributeError, OSError):
        pass
    transport.abort()


def guarded_protocol(settings: ServerSettings) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools, else h11) with the head and write-stall limits above."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # pragma: no cover - httptools is a dependency of the server extra
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    timeout, max_head = settings.request_timeout, settings.max_header_size
    min_drained = settings.min_transfer_rate * settings.request_timeout  # per check of a full buffer

    class GuardedProtocol(Base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._head_bytes = 0
            self._head_timer: asyncio.TimerHandle | None = None
            self._stall_timer: asyncio.TimerHandle | None = None
            self._queued = 0  # bytes queued for the client at the last check of a full buffer
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(timeout, self._head_timed_out)

        def connection_lost(self, exc: Exception | None) -> None:
            for timer in (self._head_timer, self._stall_timer):
                if timer is not None:
                    timer.cancel()
            self._head_timer = self._stall_timer = None
            super().connection_lost(exc)

        def _awaiting_head(self) -> bool:
            """No request is being answered or queued: what arrives now is the next request's head."""
            return self.cycle is None or self.cycle.response_complete

        def data_received(self, data: bytes) -> None:
            if self._awaiting_head():
                if self._head_timer is None:  # the first byte of a request on a kept-alive connection
                    self._head_bytes = 0
                    self._head_timer = self.loop.call_later(timeout, self._head_timed_out)
                self._head_bytes += len(data)
            super().data_received(data)
            if not self._awaiting_head():
                if self._head_timer is not None:
                    self._head_timer.cancel()
                    self._head_timer = None
            elif self._head_bytes > max_head:
                self._refuse(431, "Request Header Fields Too Large",
                             f"request headers are larger than the limit of {max_head} bytes")

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self._awaiting_head():
                return
            if self._head_bytes:
                self._refuse(408, "Request Timeout", f"the request headers did not arrive within {timeout:g} s")
            elif not self.transport.is_closing():
                self.transport.close()

        def _refuse(self, status: int, reason: str, message: str) -> None:
            if not self.transport.is_closing():
                self.logger.warning("%s from %s: %s", status, self.client, message)
                self.transport.write(_refusal(status, reason, message))
                self.transport.close()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._stall_timer is None:
                self._queued = queued(self.transport)
                self._stall_timer = self.loop.call_later(timeout, self._check_reader)

        def resume_writing(self) -> None:
            if self._stall_timer is not None:
                self._stall_timer.cancel()
                self._stall_timer = None
            super().resume_writing()

        def _check_reader(self) -> None:
            """Still paused after ``request_timeout`` s: keep a client that reads slowly, drop (with
            its buffer) one that reads next to nothing."""
            self._stall_timer = None
            now = queued(self.transport)
            if self._queued - now >= min_drained:
                self._queued = now
                self._stall_timer = self.loop.call_later(timeout, self._check_reader)
                return
            self.logger.warning("dropping %s: it took %d bytes of the response in %g s", self.client,
                                max(0, self._queued - now), timeout)
            reset(self.transport)

    return GuardedProtocol
