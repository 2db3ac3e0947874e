"""Resource limits: no client can hold the server, or stall it for everyone else.

One server for the module, started with tight limits (1 s request timeout, 8 KiB of headers,
8 connections), attacked over raw sockets: a slowloris that trickles its headers or its body,
oversized headers, a client that never reads its download, more connections than allowed; and
one slow listing (150,000 files) that must not keep a simple request waiting.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from gptstore.testing import SMALL, StoreServer, start_store

TIMEOUT = 1.0  # --request-timeout of the server under test
HEADER_LIMIT = 8 * 1024
CONNECTIONS = 8
BIG_FILE = 16 * 1024 * 1024  # far more than loopback socket buffers hold
LISTING = 150_000


@pytest.fixture(scope="module")
def limited(every_backend, tmp_path_factory: pytest.TempPathFactory) -> StoreServer:
    server = start_store(tmp_path_factory.mktemp("limited"), [
        *SMALL, "--request-timeout", str(TIMEOUT), "--max-header-size", str(HEADER_LIMIT),
        "--limit-concurrency", str(CONNECTIONS)])
    try:
        server.api("alice").create_repo("alice/slow")
        _seed(server)
        yield server
    finally:
        server.stop()


def _seed(server: StoreServer) -> None:
    """Straight into the running server's catalog and blobs: a repo with one big file and one
    with a very long file list (uploading either would take longer than the tests themselves)."""
    from gptstore.server.catalog import Catalog
    from gptstore.server.db import connect
    from gptstore.server.storage import FileRow, Storage, regular_row

    data = server.data
    db = connect(server.catalog or data / "catalog.sqlite3")
    try:
        catalog = Catalog(db)
        content = os.urandom(BIG_FILE)
        blobs_url = server.args[server.args.index("--blobs") + 1] if server.blobs == "s3" else None
        with pytest.MonkeyPatch.context() as patch:  # the bucket's endpoint and credentials, as the server has them
            for name, value in server.env.items():
                patch.setenv(name, value)
            sha = Storage(data / "blobs", data / "uploads", blobs_url=blobs_url).put_bytes(content)
        catalog.create_repo("alice", "huge", private=False, author="alice",
                            initial=[regular_row("big.bin", content, sha)])
        rows = [FileRow(f"d{i % 100}/f{i}.txt", "0" * 64, 1, "1" * 40, False) for i in range(LISTING)]
        catalog.create_repo("alice", "many", private=False, author="alice", initial=rows)
    finally:
        db.close()


def connect(server: StoreServer, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", server.port))
    return sock


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, bool]:
    """What the server sends within ``limit`` seconds, and whether it closed the connection."""
    received = bytearray()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(1024 * 1024)
        except socket.timeout:
            break
        except ConnectionResetError:
            return bytes(received), True
        if not data:
            return bytes(received), True
        received += data
    return bytes(received), False


def within(seconds: float, condition) -> bool:
    """Whether ``condition()`` comes true within ``seconds`` (asked again every 50 ms)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def served(server: StoreServer) -> bool:
    return httpx.get(f"{server.url}/api/models", timeout=5).status_code == 200


def trickle(server: StoreServer, sock: socket.socket, head: bytes) -> tuple[float, bytes, int]:
    """Send ``head``, then one byte every 0.1 s (checking that others are served meanwhile) until
    the server gives up on us; (seconds it took, what it answered, requests served meanwhile)."""
    sock.sendall(head)
    started = time.monotonic()
    others = 0
    while time.monotonic() - started < 4 * TIMEOUT + 6:
        try:
            sock.sendall(b"a")
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started, b"", others
        others += served(server)
        answer, closed = read_until_closed(sock, 0.1)
        if answer or closed:
            rest, _ = read_until_closed(sock, 1)
            return time.monotonic() - started, answer + rest, others
    pytest.fail("the server kept a client that sends one byte every 0.1 s")


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


# -- slow clients --------------------------------------------------------------------------
def test_slowloris_headers_are_cut_off_while_others_are_served(limited):
    with connect(limited) as sock:
        took, answer, others = trickle(limited, sock, b"GET /api/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert TIMEOUT * 0.8 <= took < TIMEOUT + 3
    assert status_of(answer) == 408 and b"did not arrive within 1 s" in answer
    assert others >= 3


@pytest.mark.parametrize("target", ["/api/repos/create", "/api/models/alice/slow/commit/main"],
                         ids=["json", "streamed-commit"])
def test_slowloris_body_is_cut_off_while_others_are_served(limited, target):
    head = (f"POST {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {limited.tokens['alice:write']}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n").encode()
    with connect(limited) as sock:
        took, answer, others = trickle(limited, sock, head)
    assert took < TIMEOUT + 3
    assert status_of(answer) == 408 and b"the request body arrived too slowly" in answer
    assert b"connection: close" in answer.lower()
    assert others >= 3
    assert not limited.api("alice").repo_exists("alice/a")


def test_a_client_that_stops_reading_its_download_is_dropped(limited):
    with connect(limited, rcvbuf=4096) as sock:
        sock.sendall(b"GET /alice/huge/resolve/main/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(TIMEOUT + 1.5)  # read nothing
        received, closed = read_until_closed(sock, 5)
    assert closed and len(received) < BIG_FILE, "the server kept writing to a client that reads nothing"
    assert served(limited)


def test_a_slow_but_steady_reader_keeps_its_download(limited):
    received = 0
    with connect(limited, rcvbuf=4096) as sock:
        sock.sendall(b"GET /alice/huge/resolve/main/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        while time.monotonic() - started < TIMEOUT * 3:  # three checks of a full send buffer
            time.sleep(0.05)
            data = sock.recv(16 * 1024)
            assert data, f"dropped after {received} bytes"
            received += len(data)
    assert 0 < received < BIG_FILE


# -- oversized headers ---------------------------------------------------------------------
@pytest.mark.parametrize("ending", [b"\r\n\r\n", b""], ids=["complete", "unterminated"])
def test_oversized_headers_get_431(limited, ending):
    with connect(limited) as sock:
        sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (3 * HEADER_LIMIT) + ending)
        answer, closed = read_until_closed(sock, TIMEOUT / 2)
    assert closed
    assert status_of(answer) == 431 and f"larger than the limit of {HEADER_LIMIT} bytes".encode() in answer
    assert served(limited)


def test_headers_within_the_limit_are_fine(limited):
    response = httpx.get(f"{limited.url}/api/models", headers={"X-Fine": "a" * (HEADER_LIMIT // 2)}, timeout=5)
    assert response.status_code == 200


# -- concurrency ---------------------------------------------------------------------------
def test_connections_beyond_the_limit_get_503(limited):
    assert within(5, lambda: served(limited)), "connections of earlier tests still fill the server"
    idle = [connect(limited) for _ in range(CONNECTIONS)]
    try:  # as soon as the server has accepted them, a request beyond them is refused
        assert within(5, lambda: httpx.get(f"{limited.url}/api/models", timeout=5).status_code == 503)
    finally:
        for sock in idle:
            sock.close()
    assert within(5, lambda: served(limited)), "the server did not serve again once the idle clients left"


# -- blocking work ---------------------------------------------------------------------------
def test_a_slow_listing_does_not_hold_up_other_requests(limited):
    """The listing is catalog work (SQLite, sorting, JSON); the whoami that starts while it runs
    must be answered before it, not after it."""
    done: dict[str, float] = {}

    def listing() -> None:
        response = httpx.get(f"{limited.url}/api/models/alice/many/tree/main", params={"recursive": "1"},
                             timeout=60)
        done["listing"] = time.monotonic()
        assert response.status_code == 200 and len(response.json()) == 3

    started = time.monotonic()
    thread = threading.Thread(target=listing)
    thread.start()
    time.sleep(0.2)  # the listing is being computed
    with limited.http("alice") as http:
        assert http.get("/api/whoami-v2").json()["name"] == "alice"
    done["whoami"] = time.monotonic()
    thread.join(60)
    assert "listing" in done, "the listing failed"
    assert done["listing"] - started > 0.35, "the listing is too quick to tell; make LISTING larger"
    assert done["whoami"] < done["listing"] - 0.1, (
        f"whoami answered {done['whoami'] - started:.2f} s after the listing started, the listing "
        f"{done['listing'] - started:.2f} s: it waited for the listing")


def test_catalog_is_used_from_many_threads_at_once(tmp_path):
    """The server's worker threads share one Database: each gets its own connection, writers queue."""
    from gptstore.server.accounts import Accounts
    from gptstore.server.catalog import Catalog
    from gptstore.server.db import connect as open_catalog

    db = open_catalog(tmp_path / "catalog.sqlite3")
    Accounts(db).add_user("alice")
    catalog = Catalog(db)
    errors: list[BaseException] = []

    def create(n: int) -> None:
        try:
            for k in range(5):
                repo = catalog.create_repo("alice", f"r{n}-{k}", private=False, author="alice", initial=[])
                assert catalog.branch_head(repo, "main") is not None
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert db.one("SELECT count(*) FROM repos")[0] == 40
    db.close()
