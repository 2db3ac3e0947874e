"""HTTP plumbing shared by the handlers: errors the Hub client understands (and the app's exception
handlers that send them), bodies with a size limit, JSON validated by pydantic, absolute
pagination links, byte ranges and file streaming.

Errors carry ``X-Error-Code`` (every 404 has one: ``RepoNotFound``, ``RevisionNotFound`` or
``EntryNotFound``, which ``huggingface_hub`` maps onto its exception classes) and
``X-Error-Message``, and a JSON body ``{"error": message}``. A handler raises :class:`HubError`
for an answer of its own; a :class:`~gptstore.errors.GPTStoreError` from the code below gets its
status from :data:`ERROR_STATUS` (404, 409, 401/403, else 400).

No header value the server writes holds a control character: request data ends up in headers
(a revision or path in ``X-Error-Message``, the ``Host`` in a ``Link``), and one NUL or CR/LF
there made the HTTP layer drop the response (or could split it). :func:`clean_headers` replaces
them with ``?`` in every response the app sends (``limits.RequestGuard`` applies it).
"""

from __future__ import annotations

import os
import re
from typing import Any, AsyncIterator
from urllib.parse import urlencode

import anyio
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from ..errors import AuthError, ConflictError, GPTStoreError, ModelNotFound, NotFoundError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x1f\x7f]")
JSON_LIMIT = 16 * 1024 * 1024
FILE_CHUNK = 1024 * 1024


class HubError(Exception):
    """An error answer: status, message and (for 404s) the Hub's error code."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}

    def response(self) -> Response:
        headers = {"X-Error-Message": _header_safe(self.message), **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return JSONResponse({"error": self.message, **self.extra}, status_code=self.status, headers=headers)


def _header_safe(text: str) -> str:
    """The message on one line, as UTF-8 bytes (starlette writes header strings as latin-1), so a
    client that decodes headers as UTF-8 (httpx, huggingface_hub) reads the JSON ``error``'s text
    and prints it once instead of twice (once with ``?`` for each ``…``)."""
    return header_value(" ".join(text.split())[:1000].encode("utf-8").decode("latin-1"))


def header_value(text: str) -> str:
    """``text`` with every control character (NUL, CR, LF, ESC, DEL, …) replaced by ``?``."""
    return _CONTROL.sub("?", text)


def has_control_characters(text: str) -> bool:
    return _CONTROL.search(text) is not None


def clean_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """ASGI response headers with every control character in a value replaced by ``?`` (bytes
    0x80–0x9f stay: they are the UTF-8 of ``X-Error-Message``, see :func:`_header_safe`)."""
    return [(name, _CONTROL_BYTES.sub(b"?", value)) for name, value in raw]


def repo_not_found() -> HubError:
    return HubError(404, "Repository not found", code="RepoNotFound")


def revision_not_found(revision: str) -> HubError:
    """404 RevisionNotFound; 400 for a revision that could never exist (it holds control characters)."""
    if has_control_characters(revision):
        return bad_request(f"invalid revision {revision[:100]!r}: control characters are not allowed")
    return HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")


def entry_not_found(path: str, *, commit: str | None = None) -> HubError:
    headers = {"X-Repo-Commit": commit} if commit else None
    return HubError(404, f"Entry not found: {path}", code="EntryNotFound", headers=headers)


def bad_request(message: str) -> HubError:
    return HubError(400, message)


def unauthorized(message: str) -> HubError:
    return HubError(401, message)


def forbidden(message: str) -> HubError:
    return HubError(403, message)


def conflict(message: str, **extra: Any) -> HubError:
    return HubError(409, message, extra=extra)


# -- exception handlers of the app -----------------------------------------------------------
#: status and X-Error-Code of a :class:`GPTStoreError`, most specific class first (the first
#: ``isinstance`` match wins); any other GPTStoreError (bad input, a refused manifest or
#: signature, an integrity or usage error) is 400
ERROR_STATUS: tuple[tuple[type[GPTStoreError], int, str | None], ...] = (
    (ModelNotFound, 404, "RepoNotFound"),
    (NotFoundError, 404, "EntryNotFound"),
    (ConflictError, 409, None),
    (AuthError, 403, None),  # 401 when the request carried no credentials: see error_status
)


def error_status(exc: GPTStoreError, *, authenticated: bool) -> tuple[int, str | None]:
    """The HTTP status and ``X-Error-Code`` that answer ``exc``. An :class:`AuthError` is 401 when
    the request had no ``Authorization`` header (a token may help) and 403 when it had one (that
    token may not do this)."""
    for cls, status, code in ERROR_STATUS:
        if isinstance(exc, cls):
            if cls is AuthError and not authenticated:
                return 401, code
            return status, code
    return 400, None


async def on_hub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    return exc.response()


async def on_validation_error(request: Request, exc: Exception) -> Response:
    """A pydantic model built from request data that does not fit: 400 naming the field."""
    assert isinstance(exc, ValidationError)
    return bad_request(validation_message(exc, "request")).response()


async def on_gptstore_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GPTStoreError)
    status, code = error_status(exc, authenticated="authorization" in request.headers)
    return HubError(status, str(exc), code=code).response()


class Body(BaseModel):
    """Base of every JSON request body: fields the server does not read are ignored (the Hub
    client sends more than a store needs, and newer clients add fields)."""

    model_config = ConfigDict(extra="ignore")


def validation_message(error: ValidationError, what: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"invalid {what}: {where}: {first['msg']}"


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 when it is (or declares to be) larger than ``limit``."""
    chunks = []
    async for chunk in body_chunks(request, limit):
        chunks.append(chunk)
    return b"".join(chunks)


async def body_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body as it arrives; 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise bad_request("invalid Content-Length")
        if int(declared) > limit:
            raise HubError(413, f"request body of {declared} bytes is larger than the limit of {limit} bytes")
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise HubError(413, f"request body is larger than the limit of {limit} bytes")
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise HubError(400, "the client disconnected before the body was complete") from None


def next_link(request: Request, base_url: str, route_path: str, cursor: int) -> dict[str, str]:
    """``Link: <absolute URL of the next page>; rel="next"``, every query parameter kept."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    params.append(("cursor", str(cursor)))
    return {"Link": f'<{base_url}{route_path}?{urlencode(params)}>; rel="next"'}


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single ``bytes=`` range; None = whole file; 416 if unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes="):].strip().partition("-")
    try:
        if first == "":
            if not last:
                return None
            start, end = max(0, size - int(last)), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    if start >= size or start > end:
        raise HubError(416, f"range {header} is outside the file of {size} bytes",
                       headers={"Content-Range": f"bytes */{size}"})
    return start, end


class FileStream(Response):
    """Bytes ``[start, end]`` of a file, read in 1 MiB chunks off the event loop.

    Not Starlette's ``FileResponse``, which would serve Range and HEAD too, because:

    - the route decides from the range *before* answering (only a read from byte 0 of a repo's
      counting file is a download; see ``api_files``), and answers a bad range with the Hub's
      error shape (:func:`parse_range`: 416 as JSON with ``X-Error-Message``), while
      ``FileResponse`` parses the ``Range`` header itself and answers plain-text 400/416s and
      ``multipart/byteranges`` that no Hub client asks for;
    - it reads with one ``os.pread`` of 1 MiB per worker-thread hop; ``FileResponse`` reads
      64 KiB per hop through ``anyio.open_file``, 16 times the thread round trips per gigabyte;
    - it stops reading as soon as the client disconnects (the watch task below), whatever ASGI
      version the server speaks, instead of reading the rest of a multi-GB file into a closed
      connection (uvicorn drops writes to it silently). A client that stays connected but stops
      reading is dropped by ``limits.guarded_protocol``.
    """

    def __init__(self, path: str, start: int, end: int, *, status: int, headers: dict[str, str],
                 head: bool = False) -> None:
        self.path = path
        self.start = start
        self.length = end - start + 1
        self.head = head
        super().__init__(None, status_code=status, headers=headers, media_type="application/octet-stream")

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if self.head or self.length <= 0:
            await send({"type": "http.response.body", "body": b""})
            return
        gone = anyio.Event()

        async def watch() -> None:  # the server drops writes to a closed connection silently
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        fd = os.open(self.path, os.O_RDONLY)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(watch)
                offset, remaining = self.start, self.length
                while remaining > 0 and not gone.is_set():
                    data = await anyio.to_thread.run_sync(os.pread, fd, min(FILE_CHUNK, remaining), offset)
                    if not data:
                        raise OSError(f"{self.path} is shorter than expected")
                    offset += len(data)
                    remaining -= len(data)
                    await send({"type": "http.response.body", "body": data, "more_body": remaining > 0})
                tasks.cancel_scope.cancel()
        finally:
            os.close(fd)
