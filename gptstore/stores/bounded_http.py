"""Bounded HTTP reads from a store, which is untrusted input: every answer is size-capped, every
wait time-limited, every redirect checked, and nothing a store sends ever names a local path.

Why not ``huggingface_hub``'s download helpers: ``hf_hub_download`` keeps files in a cache whose
paths it builds from the store's ``ETag`` and ``X-Repo-Commit`` headers (an ETag of
``../../site-packages/x.pth`` wrote a ``.pth`` file), and its requests have no timeout and no size
limit. Here small answers (manifest, signature, API JSON) are read into memory up to a cap, and
file bodies go into a :class:`~gptstore.blobs.BlobWriter` and stop at the manifest's size.

Requests still go through ``huggingface_hub``'s shared ``httpx2`` client (its proxies, TLS
settings, user agent and offline switch), with redirects followed here: ``http(s)`` only, never
from https to http, at most :data:`MAX_REDIRECTS`, and the token sent only to the store's own
origin (scheme, host, port), never to a CDN or any other host a store points at.

Limits (see :mod:`gptstore.config`): ``GPTSTORE_HTTP_TIMEOUT`` bounds connecting and each read;
``GPTSTORE_STALL_TIMEOUT`` is the window in which a download must bring :data:`STALL_MIN_BYTES`
(a trickle fails) and in which a small answer must arrive whole.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urljoin, urlsplit

from .. import config
from ..errors import DigestMismatch, StoreError

if TYPE_CHECKING:
    import httpx2

    from ..blobs import BlobWriter

KiB = 1024
MiB = 1024 * KiB
#: the largest ``gptstore.json`` read (the store server refuses bigger ones too)
MAX_MANIFEST_BYTES = 4 * MiB
#: the largest ``gptstore.sig`` read
MAX_SIGNATURE_BYTES = 4 * MiB
#: the largest JSON answer of the Hub API read (model info, refs, one page of search results)
MAX_API_BYTES = 16 * MiB
#: the most of an error answer read (for its message)
MAX_ERROR_BYTES = 64 * KiB
MAX_REDIRECTS = 10
#: a download must bring at least this much in every ``GPTSTORE_STALL_TIMEOUT`` window
STALL_MIN_BYTES = 64 * KiB

_COMMIT_ID = re.compile(r"[0-9a-f]{40}")
_PORTS = {"http": 80, "https": 443}


def is_commit_id(value: object) -> bool:
    """Whether ``value`` is exactly a commit id: 40 lowercase hex characters."""
    return isinstance(value, str) and _COMMIT_ID.fullmatch(value) is not None


def check_commit_id(value: object, *, where: str) -> str:
    """A commit id a store sent: exactly 40 lowercase hex characters, or StoreError."""
    if is_commit_id(value):
        return value
    raise StoreError(f"{where} sent an invalid commit id {str(value)[:60]!r} (expected 40 hex characters)",
                     hint="the store is broken or hostile; use another store")


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, with the scheme's default port."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    return parts.scheme.lower(), (parts.hostname or "").lower(), port or _PORTS.get(parts.scheme.lower(), 0)


def one_line(text: str, limit: int = 300) -> str:
    """A store-supplied message made safe to print: one line, printable, at most ``limit`` chars."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in str(text))
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _raise_http_error(response: httpx2.Response, body: bytes) -> None:
    """Raise the ``huggingface_hub`` error for an error answer (so callers map it like HfApi's)."""
    import httpx2
    from huggingface_hub.utils import hf_raise_for_status

    headers = [(k, v) for k, v in response.headers.multi_items()
               if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
    hf_raise_for_status(httpx2.Response(response.status_code, headers=headers, content=body,
                                        request=response.request))
    raise StoreError(f"{response.request.url} answered HTTP {response.status_code}")  # not reached


#: the ``HfApi`` methods gptstore calls, run by :func:`without_retries` on the first error
HUB_API_METHODS = ("create_commit", "create_repo", "create_tag", "delete_tag", "list_repo_files",
                   "list_repo_refs", "list_repo_tree", "model_info", "repo_info", "get_paths_info",
                   "upload_file", "upload_folder", "whoami")

_retries_lock = threading.Lock()
_retries_off = 0
_saved_retries: list[tuple[Any, Any]] = []


class _DropRetryWarnings(logging.Filter):
    """huggingface_hub logs each failed try ("... thrown while requesting", "Retrying in 1s"); with
    retries off, the error we raise says it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.WARNING


_DROP_RETRY_WARNINGS = _DropRetryWarnings()


@contextmanager
def hub_retries_off() -> Iterator[None]:
    """Inside: huggingface_hub's ``http_backoff`` tries once (its default is 5 retries, 1 + 2 + 4 +
    8 + 8 s of sleeping: a store that is down took 24 s and printed 10 lines) and logs nothing.

    The defaults are process-wide, so they are switched while any caller is inside (counted, under a
    lock) and restored when the last one leaves; code outside keeps huggingface_hub's retries.
    """
    global _retries_off
    from huggingface_hub.utils import _http

    with _retries_lock:
        if _retries_off == 0:
            _saved_retries.clear()
            for function in (_http.http_backoff, _http.http_stream_backoff):
                defaults = function.__kwdefaults__ or {}
                if "max_retries" in defaults:
                    _saved_retries.append((function, defaults["max_retries"]))
                    defaults["max_retries"] = 0
            logging.getLogger(_http.__name__).addFilter(_DROP_RETRY_WARNINGS)
        _retries_off += 1
    try:
        yield
    finally:
        with _retries_lock:
            _retries_off -= 1
            if _retries_off == 0:
                for function, value in _saved_retries:
                    function.__kwdefaults__["max_retries"] = value
                _saved_retries.clear()
                logging.getLogger(_http.__name__).removeFilter(_DROP_RETRY_WARNINGS)


def without_retries(api: Any) -> Any:
    """``api`` (an ``HfApi``, its type unchanged) whose :data:`HUB_API_METHODS` run inside
    :func:`hub_retries_off`: a store that is down or failing fails on the first answer, in about a
    second, with the one line :meth:`~gptstore.stores.hub.HubStore._fail` makes of it."""
    for name in HUB_API_METHODS:
        method = getattr(api, name, None)
        if callable(method):
            setattr(api, name, _once(method))
    return api


def _once(method: Any) -> Any:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with hub_retries_off():
            return method(*args, **kwargs)
    return call


def is_non_hub_answer(status: int, headers: Any, body: bytes) -> bool:
    """Whether an error answer comes from a web server that is no Hub API (``python -m http.server``,
    a static site, a wrong path): "not found" or "not implemented" with neither the Hub's
    ``X-Error-Code`` nor a JSON body. A Hub's own 404s carry one of them; its 5xx stay store errors."""
    if status not in (404, 405, 501) or headers.get("x-error-code"):
        return False
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return True
    return False


def error_body(response: Any) -> bytes:
    """What an error answer ``huggingface_hub`` raised on holds (at most MAX_ERROR_BYTES; b"" unread)."""
    try:
        return bytes(response.content[:MAX_ERROR_BYTES])
    except Exception:  # a streamed answer that was never read
        return b""


def not_hub_compatible(endpoint: str, what: str, status: int) -> StoreError:
    return StoreError(f"{one_line(endpoint, 200)} is not a Hub-compatible store (it answered {what} with "
                      f"HTTP {status} and no Hub API answer)",
                      hint="give the URL of a `gptstore server` or a Hugging Face Hub, e.g. "
                           "--store http://127.0.0.1:8765 or hf://")


class BoundedHTTP:
    """GET requests (and the JSON POST of a usage report) to one store (``endpoint``) with caps, time
    limits and safe redirects."""

    def __init__(self, endpoint: str, token: str | None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token or None
        self._origin = origin(self.endpoint)
        self._base_headers: dict[str, str] | None = None

    def _headers(self, url: str, extra: dict[str, str] | None) -> dict[str, str]:
        if self._base_headers is None:
            from huggingface_hub.utils import build_hf_headers

            self._base_headers = dict(build_hf_headers(token=False))
        headers = {**self._base_headers, "Accept-Encoding": "identity", **(extra or {})}
        if self.token and origin(url) == self._origin:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    @staticmethod
    def _timeout() -> httpx2.Timeout:
        import httpx2

        limit = config.http_timeout()
        return httpx2.Timeout(limit, read=min(limit, config.stall_timeout()))

    @contextmanager
    def open(self, url: str, *, what: str, headers: dict[str, str] | None = None,
             params: Any = None, accept: tuple[int, ...] = ()) -> Iterator[httpx2.Response]:
        """A streamed answer to ``GET url`` after safe redirects; an error status raises the
        ``huggingface_hub`` error for it (unless listed in ``accept``)."""
        import httpx2
        from huggingface_hub.utils import get_session

        session = get_session()
        try:
            for _ in range(MAX_REDIRECTS + 1):
                request = session.build_request("GET", url, headers=self._headers(url, headers), params=params,
                                                timeout=self._timeout())
                response = session.send(request, stream=True, follow_redirects=False)
                try:
                    if response.is_redirect and response.has_redirect_location:
                        url = self._redirect_target(str(response.url), response.headers["location"], what)
                        params = None  # the Location carries its own query
                        continue
                    if response.status_code >= 400 and response.status_code not in accept:
                        body = self._read(response, MAX_ERROR_BYTES, what, truncate=True)
                        if is_non_hub_answer(response.status_code, response.headers, body):
                            raise not_hub_compatible(self.endpoint, what, response.status_code)
                        _raise_http_error(response, body)
                    yield response
                    return
                finally:
                    response.close()
        except httpx2.TimeoutException as exc:
            raise self._timed_out(exc, what) from exc
        raise StoreError(f"{self.endpoint} redirected {what} more than {MAX_REDIRECTS} times",
                         hint="the store is misconfigured or hostile")

    def _redirect_target(self, current: str, location: str, what: str) -> str:
        target = urljoin(current, location)
        scheme = urlsplit(target).scheme.lower()
        if scheme not in ("http", "https") or not urlsplit(target).hostname:
            raise StoreError(f"{self.endpoint} redirected {what} to a non-HTTP location {one_line(target, 100)!r}",
                             hint="the store is misconfigured or hostile")
        if urlsplit(current).scheme.lower() == "https" and scheme == "http":
            raise StoreError(f"{self.endpoint} redirected {what} from https to plain http ({one_line(target, 100)})",
                             hint="refusing the downgrade; the store is misconfigured or hostile")
        return target

    def _timed_out(self, exc: Exception, what: str) -> StoreError:
        import httpx2

        if isinstance(exc, (httpx2.ConnectTimeout, httpx2.PoolTimeout)):
            return StoreError(f"could not connect to {self.endpoint} within {config.http_timeout():g} s for {what}",
                              hint="check the URL and that the store is running; raise GPTSTORE_HTTP_TIMEOUT "
                                   "on a slow network")
        waited = min(config.http_timeout(), config.stall_timeout())
        return StoreError(f"{self.endpoint} sent nothing for {waited:g} s while sending {what}",
                          hint="try again later (a pull resumes); on a slow network raise GPTSTORE_HTTP_TIMEOUT "
                               "and GPTSTORE_STALL_TIMEOUT")

    def _stalled(self, what: str, got: int) -> StoreError:
        return StoreError(f"{self.endpoint} stalled while sending {what} ({got} bytes in "
                          f"{config.stall_timeout():g} s)",
                          hint="try again later; on a slow network raise GPTSTORE_STALL_TIMEOUT")

    def _read(self, response: httpx2.Response, limit: int, what: str, *, truncate: bool = False) -> bytes:
        """The whole body, at most ``limit`` bytes (more fails, or is cut with ``truncate``), arriving
        within the stall timeout."""
        announced = response.headers.get("content-length", "")
        if not truncate and announced.isdigit() and int(announced) > limit:
            raise StoreError(f"{self.endpoint} announced {int(announced)} bytes for {what}, more than the "
                             f"limit of {limit} bytes; refusing it", hint="the store is broken or hostile")
        deadline = time.monotonic() + config.stall_timeout()
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if truncate:
                    break
                raise StoreError(f"{self.endpoint} sent more than {limit} bytes for {what}; refusing it",
                                 hint="the store is broken or hostile")
            if time.monotonic() > deadline:
                raise self._stalled(what, size)
        return b"".join(chunks)[:limit]

    # -- what stores use ----------------------------------------------------------------------
    def _expect_ok(self, response: httpx2.Response, what: str) -> None:
        if response.status_code != 200:
            raise StoreError(f"{self.endpoint} answered {what} with HTTP {response.status_code}, not 200",
                             hint="the store is broken or hostile")

    def get_bytes(self, url: str, *, limit: int, what: str, params: Any = None) -> bytes:
        with self.open(url, what=what, params=params) as response:
            self._expect_ok(response, what)
            return self._read(response, limit, what)

    def get_json(self, url: str, *, what: str, params: Any = None, limit: int = MAX_API_BYTES) -> tuple[Any, Any]:
        """(parsed JSON, the answer's ``links``) of ``GET url``."""
        with self.open(url, what=what, params=params) as response:
            self._expect_ok(response, what)
            data = self._read(response, limit, what)
            links = response.links
        try:
            return json.loads(data), links
        except (ValueError, RecursionError):
            if data.lstrip()[:1] == b"<":  # an HTML page: a web server, not a Hub API
                raise not_hub_compatible(self.endpoint, what, 200) from None
            raise StoreError(f"{self.endpoint} answered {what} with invalid JSON",
                             hint="the store is broken or hostile") from None

    def post_json(self, url: str, body: bytes, *, what: str, limit: int = MAX_API_BYTES) -> tuple[int, Any]:
        """(status, parsed JSON answer) of ``POST url`` with a JSON ``body``, to the store's own
        origin only and never redirected (a redirect would resend the body and the token
        elsewhere); an error status raises the ``huggingface_hub`` error for it, like :meth:`open`."""
        import httpx2
        from huggingface_hub.utils import get_session

        if origin(url) != self._origin:
            raise StoreError(f"refusing to send {what} to {one_line(url, 100)}: not the store {self.endpoint}")
        session = get_session()
        headers = self._headers(url, {"Content-Type": "application/json"})
        try:
            request = session.build_request("POST", url, headers=headers, content=body, timeout=self._timeout())
            response = session.send(request, stream=True, follow_redirects=False)
            try:
                if response.is_redirect:
                    raise StoreError(f"{self.endpoint} redirected {what}; refusing to send it elsewhere",
                                     hint="give the store's own URL (--store)")
                if response.status_code >= 400:
                    error = self._read(response, MAX_ERROR_BYTES, what, truncate=True)
                    if is_non_hub_answer(response.status_code, response.headers, error):
                        raise not_hub_compatible(self.endpoint, what, response.status_code)
                    _raise_http_error(response, error)
                data, status = self._read(response, limit, what), response.status_code
            finally:
                response.close()
        except httpx2.TimeoutException as exc:
            raise self._timed_out(exc, what) from exc
        try:
            return status, json.loads(data)
        except (ValueError, RecursionError):
            raise StoreError(f"{self.endpoint} answered {what} with invalid JSON",
                             hint="the store is broken or hostile") from None

    def download(self, url: str, writer: BlobWriter, *, size: int, what: str) -> None:
        """Stream a file of ``size`` bytes into ``writer`` after the bytes it already holds.

        The body stops at ``size``: a longer one (announced or sent) is a DigestMismatch and the
        partial is dropped. A server that ignores the Range request starts the blob over.
        """
        for _attempt in range(2):
            start = writer.size
            if start >= size:
                return  # everything is in; the writer's commit checks size and digest
            headers = {"Range": f"bytes={start}-"} if start else None
            with self.open(url, what=what, headers=headers, accept=(416,)) as response:
                if start and not self._continues(response, start):
                    writer.restart()  # no usable range answer: take the whole file
                    if response.status_code != 200:
                        continue
                    start = 0
                elif response.status_code not in (200, 206):
                    raise StoreError(f"{self.endpoint} answered {what} with HTTP {response.status_code}")
                self._stream(response, writer, size - start, size, what)
                return
        raise StoreError(f"{self.endpoint} does not serve {what} consistently (range requests)",
                         hint="the store is broken or hostile")

    @staticmethod
    def _continues(response: httpx2.Response, start: int) -> bool:
        """Whether an answer to ``Range: bytes=start-`` really starts at ``start``."""
        if response.status_code != 206:
            return False
        match = re.fullmatch(r"bytes (\d+)-\d+/(?:\d+|\*)", response.headers.get("content-range", "").strip())
        return match is not None and int(match.group(1)) == start

    def _stream(self, response: httpx2.Response, writer: BlobWriter, remaining: int, size: int, what: str) -> None:
        announced = response.headers.get("content-length", "")
        if announced.isdigit() and int(announced) > remaining:
            writer.discard(force=True)
            raise DigestMismatch(f"{what}: {self.endpoint} announced {int(announced)} more bytes, the manifest "
                                 f"says {size} in all", path=what, expected=str(size),
                                 actual=str(size - remaining + int(announced)))
        stall = config.stall_timeout()
        window_start, window_bytes, got = time.monotonic(), 0, 0
        for chunk in response.iter_bytes():
            if got + len(chunk) > remaining:
                writer.discard(force=True)
                raise DigestMismatch(f"{what}: {self.endpoint} sent more than the manifest's {size} bytes",
                                     path=what, expected=str(size), actual=f">{size}")
            writer.write(chunk)
            got += len(chunk)
            window_bytes += len(chunk)
            now = time.monotonic()
            if now - window_start >= stall:
                if window_bytes < STALL_MIN_BYTES and got < remaining:
                    raise self._stalled(what, window_bytes)
                window_start, window_bytes = now, 0
