"""Operating a store (issue 17, item 5): health probes, JSON access logs, graceful shutdown, and the
reference deployment in docs/scale-out/ staying consistent with the server's real options.

Every check drives a real ``gptstore server`` process: the log is the file its stderr goes to, the
shutdown is a real SIGTERM to it while a real upload is half sent over a raw socket.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from gptstore.testing import CLI, SMALL, StoreServer, start_store

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docs" / "scale-out" / "docker-compose.yml"
NGINX = ROOT / "docs" / "scale-out" / "nginx.conf"
SECRET = "ops-test-shared-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def ops(every_backend, tmp_path_factory: pytest.TempPathFactory) -> StoreServer:
    server = start_store(tmp_path_factory.mktemp("ops"), [*SMALL, "--log-level", "info", "--log-format", "json",
                                                         "--secret", SECRET])
    try:
        yield server
    finally:
        server.stop()


def _records(server: StoreServer, request_id: str, deadline: float = 5.0) -> list[dict]:
    """The JSON access records of ``request_id`` (written once the answer is sent: wait for it)."""
    end = time.time() + deadline
    while True:
        lines = [line for line in server.log.read_text().splitlines() if line.startswith("{")]
        records = [json.loads(line) for line in lines]  # every JSON-looking line must parse
        found = [r for r in records if r.get("request_id") == request_id]
        if found or time.time() > end:
            return found
        time.sleep(0.05)


def test_healthz_and_readyz_answer_json_and_are_not_pages(ops: StoreServer) -> None:
    from gptstore.server.db import connect

    db = connect(ops.catalog or f"sqlite:///{ops.data / 'catalog.sqlite3'}")
    try:  # no account may be named so now; a catalog from before that rule may hold one: it must not win
        db.execute("INSERT INTO namespaces (name, kind, created_at) VALUES ('healthz', 'user', 'then')")
    finally:
        db.close()
    with httpx.Client(base_url=ops.url, timeout=10) as http:
        live = http.get("/healthz")
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        assert live.headers["content-type"] == "application/json"
        assert http.head("/healthz").status_code == 200
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        assert http.get("/readyz/").status_code == 200  # a trailing slash, as load balancers sometimes add


def test_readyz_says_503_with_a_reason_while_blob_storage_is_unusable(ops: StoreServer) -> None:
    ops.require_disk("moves DATA/blobs away (S3: test_readyz_says_503_when_the_bucket_is_unreachable)")
    blobs, away = ops.data / "blobs", ops.data / "blobs.away"
    blobs.mkdir(exist_ok=True)  # made by the first stored blob or readiness probe; this test needs it whole
    blobs.rename(away)
    blobs.write_text("not a directory: the volume is gone")
    try:
        with httpx.Client(base_url=ops.url, timeout=10) as http:
            answer = http.get("/readyz")
            assert answer.status_code == 503
            body = answer.json()
            assert body["status"] == "unavailable" and "blob storage" in body["reason"]
            assert str(ops.data) not in answer.text  # no path of the server reaches the client
            assert answer.headers["retry-after"] == "5"
            assert http.get("/healthz").status_code == 200  # liveness stays up: restarting would not help
    finally:
        blobs.unlink()
        away.rename(blobs)
    assert httpx.get(f"{ops.url}/readyz", timeout=10).status_code == 200
    assert "readyz: the blob storage is not reachable" in ops.log.read_text()


def test_readyz_says_503_when_the_postgresql_catalog_is_gone(tmp_path: Path) -> None:
    import psycopg

    from gptstore.testing import postgres_server

    postgres = postgres_server()  # skips, saying why, where PostgreSQL cannot start
    server = start_store(tmp_path, SMALL, backend="postgresql+disk")
    try:
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        with psycopg.connect(postgres.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {server.catalog.rsplit('/', 1)[1]} WITH (FORCE)")
        answer = httpx.get(f"{server.url}/readyz", timeout=10)
        assert answer.status_code == 503 and "catalog" in answer.json()["reason"]
        assert "127.0.0.1" not in answer.text and "postgres" not in answer.text.lower()
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        server.stop()


def test_readyz_says_503_when_the_bucket_is_unreachable(tmp_path: Path) -> None:
    from gptstore.testing import start_s3

    s3 = start_s3(tmp_path / "s3")
    server = None
    try:
        server = start_store(tmp_path / "store", [*SMALL, "--blobs", s3.blobs_url()], env=s3.env)
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        s3.stop()
        answer = httpx.get(f"{server.url}/readyz", timeout=15)
        assert answer.status_code == 503 and "blob storage" in answer.json()["reason"]
        assert s3.url not in answer.text
    finally:
        if server is not None:
            server.stop()
        s3.stop()


def test_json_access_log_has_one_object_per_request_with_user_and_size(ops: StoreServer) -> None:
    with ops.http("alice") as http:
        whoami = http.get("/api/whoami-v2", headers={"X-Request-Id": "ops-whoami-1"})
        assert whoami.status_code == 200
    missing = httpx.get(f"{ops.url}/api/models/alice/nope?expand=x", headers={"X-Request-Id": "ops-missing-1"})
    assert missing.status_code == 404
    [record] = _records(ops, "ops-whoami-1")
    assert record["method"] == "GET" and record["path"] == "/api/whoami-v2" and record["status"] == 200
    assert record["bytes"] == len(whoami.content) and record["user"] == "alice"
    assert isinstance(record["duration_ms"], float) and 0 <= record["duration_ms"] < 10_000
    assert record["client"].startswith("127.0.0.1:") and record["time"].endswith("+00:00")
    [anonymous] = _records(ops, "ops-missing-1")
    assert anonymous["status"] == 404 and anonymous["user"] is None and anonymous["query"] == "expand=x"
    # nothing but JSON once the server runs: uvicorn's own lines are JSON objects too
    lines = ops.log.read_text().splitlines()
    assert all(line.startswith("{") for line in lines if not line.startswith("gptstore server:")), lines[:5]
    assert any(json.loads(line).get("message") == "Application startup complete." for line in lines
               if line.startswith("{"))


def test_explicit_secret_replaces_the_generated_one(ops: StoreServer) -> None:
    assert not (ops.data / "secret").exists()  # signed with --secret; DATA/secret is never generated


def _gptstore(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_bad_operations_options_are_one_line_errors(tmp_path: Path) -> None:
    bad = _gptstore("server", "--data", str(tmp_path), "--log-format", "xml", "--port", "0")
    assert bad.returncode == 2 and "'xml' is not one of 'text', 'json'" in bad.stderr
    negative = _gptstore("server", "--data", str(tmp_path), "--shutdown-timeout", "-1", "--port", "0")
    assert negative.returncode == 2 and "--shutdown-timeout" in negative.stderr


def test_shared_catalog_refuses_to_start_without_a_shared_secret(tmp_path: Path) -> None:
    helped = _gptstore("server", "--help")
    if "--catalog" not in helped.stdout:
        pytest.skip("needs the PostgreSQL catalog (`gptstore server --catalog URL`) of issue 17 item 1")
    env = {"GPTSTORE_SERVER_SECRET": ""}
    refused = _gptstore("server", "--data", str(tmp_path), "--port", "0",
                        "--catalog", "postgresql://gptstore@127.0.0.1:1/gptstore", env=env)
    assert refused.returncode == 2 and "GPTSTORE_SERVER_SECRET" in refused.stderr
    assert refused.stderr.strip().count("\n") <= 1


# -- graceful shutdown -----------------------------------------------------------------------
def _start_commit(server: StoreServer, repo_id: str, content: bytes) -> tuple[socket.socket, bytes]:
    """Open a commit of ``content`` as ``x.bin`` and send all of it but its last line; returns the
    socket and the bytes still to send."""
    header = {"key": "header", "value": {"summary": "sent across a shutdown", "description": ""}}
    file = {"key": "file", "value": {"path": "x.bin", "encoding": "base64",
                                     "content": base64.b64encode(content).decode()}}
    first = (json.dumps(header) + "\n").encode()
    rest = (json.dumps(file) + "\n").encode()
    head = (f"POST /api/models/{repo_id}/commit/main HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {server.tokens['alice:write']}\r\nContent-Type: application/x-ndjson\r\n"
            f"Content-Length: {len(first) + len(rest)}\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(head + first + rest[:100])
    return sock, rest[100:]


def _refused(port: int, deadline: float = 5.0) -> bool:
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def _response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_sigterm_lets_an_upload_in_flight_finish_refuses_new_connections_and_exits_0(tmp_path: Path) -> None:
    server = start_store(tmp_path, [*SMALL, "--shutdown-timeout", "20"])
    try:
        server.api("alice").create_repo("alice/shutdown")
        content = os.urandom(64 * 1024)
        sock, rest = _start_commit(server, "alice/shutdown", content)
        time.sleep(0.5)  # the handler is reading the body now
        server.proc.send_signal(signal.SIGTERM)
        assert _refused(server.port), "the server still accepts connections after SIGTERM"
        assert server.proc.poll() is None, "the server exited with an upload in flight"
        sock.sendall(rest)
        status, body = _response(sock)
        sock.close()
        assert status == 200 and json.loads(body)["success"] is True, body
        assert server.proc.wait(timeout=15) == 0
        server.start()  # the commit that finished during the shutdown is there, whole
        files = server.api("alice").list_repo_files("alice/shutdown")
        assert "x.bin" in files
        fetched = httpx.get(f"{server.url}/alice/shutdown/resolve/main/x.bin", timeout=10,
                            headers={"authorization": f"Bearer {server.tokens['alice:write']}"})
        assert fetched.content == content
    finally:
        server.stop()


def test_sigterm_cancels_a_stalled_upload_after_the_timeout_and_commits_nothing(tmp_path: Path) -> None:
    server = start_store(tmp_path, [*SMALL, "--shutdown-timeout", "1"])
    try:
        server.api("alice").create_repo("alice/stalled")
        sock, _ = _start_commit(server, "alice/stalled", os.urandom(4096))
        time.sleep(0.3)
        started = time.time()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=15) == 0
        assert time.time() - started < 10
        sock.close()
        server.start()
        assert "x.bin" not in server.api("alice").list_repo_files("alice/stalled")
    finally:
        server.stop()


# -- the reference deployment ---------------------------------------------------------------
def _server_env_vars() -> set[str]:
    """GPTSTORE_* variables ``gptstore server`` reads: its options' envvars and gptstore.config's."""
    import inspect

    from gptstore import config
    from gptstore.cli.server import server

    names = {p.envvar for p in server.params if isinstance(getattr(p, "envvar", None), str)}
    for name, fn in inspect.getmembers(config, inspect.isfunction):
        if name.startswith("server_"):
            names |= set(re.findall(r"GPTSTORE_SERVER_[A-Z_]+", inspect.getsource(fn)))
    return names


def _options(command) -> set[str]:
    return {opt for p in command.params for opt in getattr(p, "opts", [])}


def test_compose_file_is_consistent_with_the_server(tmp_path: Path) -> None:
    import yaml

    from gptstore.cli.server import server

    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    replicas = [name for name, svc in services.items() if name.startswith("gptstore-")]
    assert len(replicas) == 2 and {"postgres", "minio", "nginx", "migrate"} <= set(services)
    read = _server_env_vars()
    pending = set()
    if "--catalog" not in _options(server):
        pending.add("GPTSTORE_SERVER_CATALOG")  # issue 17 item 1 adds it; checked once it lands
    for name in [*replicas, "migrate"]:
        env = services[name]["environment"]
        named = {key for key in env if key.startswith("GPTSTORE_")}
        assert named - pending <= read, f"{name} sets variables the server never reads: {named - read}"
        assert {"GPTSTORE_SERVER_CATALOG", "GPTSTORE_SERVER_BLOBS", "GPTSTORE_SERVER_SECRET",
                "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)
        assert env["GPTSTORE_SERVER_CATALOG"].startswith("postgresql://")
        assert env["GPTSTORE_SERVER_BLOBS"].startswith("s3://")
    first, second = (services[name] for name in replicas)
    assert first["environment"] == second["environment"], "replicas must share catalog, bucket and secret"
    for name in replicas:
        command = services[name]["command"]
        assert command[0] == "server"
        assert {opt for opt in command if opt.startswith("--")} <= _options(server)
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert "/readyz" in probe
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # nginx sends traffic to exactly the two replicas, on the port they listen on
    upstream = re.findall(r"server\s+([\w-]+):(\d+)", NGINX.read_text())
    port = first["command"][first["command"].index("--port") + 1]
    assert sorted(host for host, _ in upstream) == sorted(replicas) and {p for _, p in upstream} == {str(port)}
    assert "client_max_body_size" in NGINX.read_text() and "proxy_request_buffering off" in NGINX.read_text()


def test_compose_migrate_job_uses_a_real_command() -> None:
    import yaml

    from gptstore.cli.server import server

    job = yaml.safe_load(COMPOSE.read_text())["services"]["migrate"]
    assert job["command"][:2] == ["server", "migrate"] and job.get("restart", "no") == "no"
    if "migrate" not in server.commands:
        pytest.skip("needs `gptstore server migrate` of issue 17 item 1")
    assert {opt for opt in job["command"] if opt.startswith("--")} <= _options(server.commands["migrate"])
