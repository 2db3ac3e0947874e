"""Issue 13, item 9: a store that is down, failing or no Hub at all fails fast in one line; a
store URL without its scheme is corrected; ``gptstore server`` on a port in use says so.

Every command runs as a real ``gptstore`` process (its whole stderr is what a user sees), against
real sockets on 127.0.0.1: a port nothing listens on, a server answering 503 to everything (a
store whose backend is down behind its proxy), and ``python -m http.server``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gptstore.errors import GPTStoreError
from gptstore.library import Library
from gptstore.packaging import package
from gptstore.stores import get_store
from gptstore.testing import free_port

CLI = [sys.executable, "-c", "from gptstore.cli.main import main; main()"]


def gptstore(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1"})
    return done, time.monotonic() - start


def one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


@pytest.fixture
def published(tiny_gpt) -> str:
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    return Library().publish(tiny_gpt).name


class _Failing(BaseHTTPRequestHandler):
    """A Hub whose backend is down: 503 to every request (what a proxy answers)."""

    def _fail(self) -> None:
        self.requests.append(f"{self.command} {self.path}")
        body = b'{"error": "backend unavailable"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = _fail

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def failing_store():
    handler = type("Handler", (_Failing,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    server.shutdown()
    server.server_close()


@pytest.fixture
def web_server(tmp_path):
    """``python -m http.server``: a web server, not a Hub."""
    port = free_port()
    (tmp_path / "site").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                            cwd=tmp_path / "site", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.parametrize("args", [["search", "poet"], ["show", "acme/poet"], ["pull", "acme/poet"],
                                  ["run", "acme/poet", "Hello"]])
def test_a_store_that_is_down_fails_in_a_second_with_one_line(args):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done, took = gptstore(*args, "--store", url)
    assert done.returncode == 1
    line = one_error_line(done)
    assert f"cannot reach {url}" in line and "check the URL and that the store is running" in line
    assert took < 5  # about a second: the process start; no retries (they took 24 s)


def test_push_to_a_store_that_is_down(published):
    url = f"http://127.0.0.1:{free_port()}"
    done, took = gptstore("push", published, "--store", url, "--token", "t")
    assert done.returncode == 1 and f"cannot reach {url}" in one_error_line(done)
    assert took < 5


@pytest.mark.parametrize("args", [["search", "poet"], ["show", "acme/poet"], ["pull", "acme/poet"]])
def test_a_failing_store_is_asked_once(failing_store, args):
    url, requests = failing_store
    done, took = gptstore(*args, "--store", url)
    assert done.returncode == 1 and "backend unavailable" in one_error_line(done)
    assert len(requests) == 1 and took < 5


def test_push_to_a_failing_store_is_one_try_and_one_line(failing_store, published):
    url, requests = failing_store
    done, took = gptstore("push", published, "--store", url, "--token", "t")
    assert done.returncode == 1 and url in one_error_line(done)
    assert len(requests) == 1 and took < 5


def test_the_hub_client_calls_of_a_store_do_not_retry(failing_store, caplog):
    """HfApi methods paginate through huggingface_hub's http_backoff (5 retries, 23 s of sleeps,
    a warning per try); a store's own client tries once, logs nothing, and leaves the process's
    retries as they were for any other huggingface_hub user."""
    from huggingface_hub.utils import _http

    url, requests = failing_store
    store = get_store(url, token="t")
    start = time.monotonic()
    with pytest.raises(Exception) as raised:
        store.api.list_repo_files("acme/poet")
    assert time.monotonic() - start < 2 and len(requests) == 1
    assert "503" in str(raised.value)
    assert not [r for r in caplog.records if r.name.startswith("huggingface_hub")]
    assert _http.http_backoff.__kwdefaults__["max_retries"] == 5  # restored


@pytest.mark.parametrize("args", [["search", "poet"], ["show", "acme/poet"], ["pull", "acme/poet"]])
def test_a_web_server_is_not_a_hub_compatible_store(web_server, args):
    done, _ = gptstore(*args, "--store", web_server)
    assert done.returncode == 1
    assert f"{web_server} is not a Hub-compatible store" in one_error_line(done)


def test_push_to_a_web_server(web_server, published):
    done, _ = gptstore("push", published, "--store", web_server, "--token", "t")
    assert done.returncode == 1
    assert f"{web_server} is not a Hub-compatible store" in one_error_line(done)


@pytest.mark.parametrize("given", ["127.0.0.1:8765", "localhost:8765", "store.example.org:443/"])
def test_a_store_without_its_scheme_suggests_http(run_cli, given):
    result = run_cli("search", "poet", "--store", given)
    assert result.exit_code == 2
    assert f"did you mean --store http://{given} ?" in result.output and result.output.count("\n") == 1


def test_a_library_directory_named_like_a_host_is_still_a_library(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "backup:2024").mkdir()
    try:  # an existing directory is given to the library store as it always was
        get_store("backup:2024").search("x")
    except GPTStoreError as exc:
        assert "did you mean" not in str(exc) and "no scheme" not in str(exc)


def test_server_on_a_port_in_use_says_so_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done, took = gptstore("server", "--data", str(tmp_path / "data"), "--port", str(port))
    assert done.returncode == 1 and took < 10
    line = one_error_line(done)
    assert f"port {port} on 127.0.0.1 is already in use" in line and "--port" in line
    assert "listening" not in done.stderr + done.stdout


def test_server_announces_the_port_it_bound(tmp_path):
    proc = subprocess.Popen([*CLI, "server", "--data", str(tmp_path / "data"), "--port", "0",
                             "--log-level", "warning"], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        port = int(line.rsplit("http://127.0.0.1:", 1)[1].split(",")[0].strip())
        assert port > 0
        import httpx

        deadline = time.monotonic() + 20
        while True:
            try:
                assert json.loads(httpx.get(f"http://127.0.0.1:{port}/api/models", timeout=1).text) == []
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
