"""A small hostile Hub-compatible store for tests: a threaded HTTP server on 127.0.0.1 that serves
one package (``alice/tiny``) the way the Hub API does, and can be told to misbehave per request:
crafted ``ETag`` / ``X-Repo-Commit`` / ``Location`` headers, a bad commit id, endless, longer,
stalled or trickling bodies, a huge manifest, redirects. Every request is recorded with its
headers (to check where a token went)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

COMMIT = "c0ffee" + "0" * 34  # a valid 40-hex commit id
REPO = "alice/tiny"


def package_files(seed: bytes = b"tiny") -> dict[str, bytes]:
    """A small package: config, 'weights' and a tokenizer (safety looks at names, not bytes)."""
    return {
        "config.json": json.dumps({"model_type": "gpt2", "n_layer": 1}).encode(),
        "model.safetensors": hashlib.sha256(seed).digest() * 4096,  # 128 KiB
        "tokenizer.json": b'{"version": "1.0"}',
    }


def manifest_for(files: dict[str, bytes], *, repo: str = REPO, version: str = "1.0.0") -> bytes:
    namespace, name = repo.split("/")
    from gptstore.manifest import dumps, validate

    manifest = validate({
        "namespace": namespace, "name": name, "version": version,
        "format": {"adapter": "transformers", "architecture": "GPT2LMHeadModel", "parameters": 1,
                   "context_length": 8, "dtype": "float32"},
        "files": [{"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                  for p, d in sorted(files.items())],
    })
    return dumps(manifest)


class _HeadersOnly:
    """A HEAD answer: the headers of the GET answer, no body."""

    def __init__(self, wfile: Any) -> None:
        self.wfile = wfile
        self.body = False

    def write(self, data: bytes) -> int:
        if not self.body:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                self.body = True
                self.wfile.write(data[:end + 4])
                return len(data)
            self.wfile.write(data)
        return len(data)

    def flush(self) -> None:
        self.wfile.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wfile, name)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeHub:
    files: dict[str, bytes] = field(default_factory=package_files)
    manifest: bytes | None = None
    sha: Any = COMMIT  # what model info says the revision's commit is
    tags: dict[str, Any] = field(default_factory=lambda: {"v1.0.0": COMMIT})
    headers: dict[str, str] = field(default_factory=dict)  # extra headers on every file answer
    search: list[Any] = field(default_factory=lambda: [{"id": REPO, "downloads": 1, "gptstore": {"version": "1.0.0"}}])
    # path -> callable(handler, data) that answers instead of the normal file answer
    behaviour: dict[str, Callable[[Any, bytes], None]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)  # bytes written per path before the client left
    release: threading.Event = field(default_factory=threading.Event)  # ends stalls when the test is done

    def __post_init__(self) -> None:
        if self.manifest is None:
            self.manifest = manifest_for(self.files)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                hub.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                try:
                    hub.answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_HEAD(self) -> None:  # noqa: N802  (what huggingface_hub's downloads ask first)
                real, self.wfile = self.wfile, _HeadersOnly(self.wfile)
                try:
                    self.do_GET()
                finally:
                    self.wfile = real

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def authorizations(self) -> list[str]:
        return [s.headers["authorization"] for s in self.seen if "authorization" in s.headers]

    # -- answers --------------------------------------------------------------------------------
    def answer(self, h: BaseHTTPRequestHandler) -> None:
        path = unquote(urlsplit(h.path).path)
        api = f"/api/models/{REPO}"
        if path.startswith(api + "/revision/"):
            return self.json(h, {"id": REPO, "sha": self.sha, "siblings": [{"rfilename": p} for p in self.all()]})
        if path == api + "/refs":
            return self.json(h, {"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": COMMIT}],
                                 "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c}
                                          for n, c in self.tags.items()], "converts": []})
        if path == "/api/models":
            return self.json(h, self.search)
        prefix = f"/{REPO}/resolve/"
        if path.startswith(prefix):
            _revision, _, rel = path[len(prefix):].partition("/")
            data = self.all().get(rel)
            if rel in self.behaviour:
                return self.behaviour[rel](h, data or b"")
            if data is None:
                return self.error(h, 404, "EntryNotFound")
            return self.file(h, rel, data)
        return self.error(h, 404, "RepoNotFound")

    def all(self) -> dict[str, bytes]:
        return {**self.files, "gptstore.json": self.manifest}

    def json(self, h: BaseHTTPRequestHandler, obj: Any) -> None:
        body = json.dumps(obj).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def error(self, h: BaseHTTPRequestHandler, status: int, code: str) -> None:
        body = json.dumps({"error": code}).encode()
        h.send_response(status)
        h.send_header("X-Error-Code", code)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def file(self, h: BaseHTTPRequestHandler, rel: str, data: bytes) -> None:
        start = 0
        wanted = h.headers.get("Range", "")
        if wanted.startswith("bytes="):
            start = int(wanted[len("bytes="):].split("-")[0])
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
        h.send_response(206 if start else 200)
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"', **self.headers}
        for key, value in headers.items():
            h.send_header(key, value)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(data) - start))
        h.end_headers()
        h.wfile.write(data[start:])

    # -- misbehaviours (use as behaviour[path] = hub.endless, ...) --------------------------------
    def stream(self, h: BaseHTTPRequestHandler, rel: str, chunks: Any, *, length: int | None = None) -> None:
        """Send chunks (chunked encoding unless ``length``), counting what got out."""
        h.send_response(200)
        if length is None:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(length))
        h.end_headers()
        self.sent[rel] = 0
        for chunk in chunks:
            if self.release.is_set():
                break
            if length is None:
                h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            else:
                h.wfile.write(chunk)
            h.wfile.flush()
            self.sent[rel] += len(chunk)
        if length is None:
            h.wfile.write(b"0\r\n\r\n")

    def endless(self, rel: str, limit: int = 256 * 1024 * 1024) -> Callable[[Any, bytes], None]:
        """The file's bytes, then more and more (up to ``limit``, so old code ends too)."""
        def answer(h: BaseHTTPRequestHandler, data: bytes) -> None:
            block = b"\0" * 65536
            self.stream(h, rel, [data] + [block] * (limit // len(block)))
        return answer

    def longer(self, rel: str, extra: int = 4096) -> Callable[[Any, bytes], None]:
        """The file's bytes plus ``extra``, with a Content-Length that says so."""
        def answer(h: BaseHTTPRequestHandler, data: bytes) -> None:
            self.stream(h, rel, [data, b"x" * extra], length=len(data) + extra)
        return answer

    def stalled(self, rel: str, seconds: float = 20.0) -> Callable[[Any, bytes], None]:
        """Half the file, then nothing (until the test ends or ``seconds`` pass)."""
        def answer(h: BaseHTTPRequestHandler, data: bytes) -> None:
            def chunks():
                yield data[: len(data) // 2]
                self.release.wait(seconds)
            self.stream(h, rel, chunks(), length=len(data))
        return answer

    def trickle(self, rel: str, every: float = 0.1, seconds: float = 20.0) -> Callable[[Any, bytes], None]:
        """One byte every ``every`` seconds: no read ever times out, the file never arrives."""
        def answer(h: BaseHTTPRequestHandler, data: bytes) -> None:
            def chunks():
                deadline = time.monotonic() + seconds
                for i in range(len(data)):
                    if time.monotonic() > deadline:
                        return
                    yield data[i:i + 1]
                    time.sleep(every)
            self.stream(h, rel, chunks(), length=len(data))
        return answer

    def redirect(self, location: str) -> Callable[[Any, bytes], None]:
        def answer(h: BaseHTTPRequestHandler, data: bytes) -> None:
            h.send_response(302)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()
        return answer
