"""Stateless replicas: two ``gptstore server`` processes on one PostgreSQL catalog and one bucket
(moto's S3 server), each with a data directory of its own, serve one store.

A round-robin proxy stands for the load balancer: every request goes to the other replica than the
one before, so one push has its LFS batch answered by one replica and its multipart completion by
the other, with the bytes going straight to the bucket in between. Tokens, web sessions and signed
URLs made by one replica work on the other; commits racing to one branch through both serialise
(one wins whole, the other gets 412/409); counters and ratings lose no update; and a replica
SIGKILLed inside a commit leaves nothing half-visible on the other.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import re
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, hf_hub_download

from gptstore.testing import KiB, StoreServer, free_port, publish_package, s3_server, start_store

from .racing import race_commits

PAIR = "postgresql+s3"
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade", "te",
       "trailer"}


@pytest.fixture(scope="module")
def backend() -> str:
    """Replicas need a shared catalog and bucket: this module runs on PostgreSQL + S3 only."""
    return PAIR


class RoundRobin:
    """A tiny HTTP load balancer on a loopback port: request n goes to replica n % 2, the Host
    header passed on unchanged (so the URLs the replicas build point back at the balancer). It
    records ``(replica index, method, path)`` of every request."""

    def __init__(self, replicas: list[StoreServer]) -> None:
        self.replicas, self.seen, self.count = replicas, [], 0
        self.lock = threading.Lock()
        balancer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with balancer.lock:
                    index, balancer.count = balancer.count % len(balancer.replicas), balancer.count + 1
                    balancer.seen.append((index, self.command, self.path))
                target = balancer.replicas[index]
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP]
                answer = httpx.request(self.command, f"{target.url}{self.path}", headers=headers, content=body,
                                       timeout=60, follow_redirects=False)
                self.send_response(answer.status_code)
                for key, value in answer.headers.multi_items():
                    if key.lower() not in HOP and key.lower() != "content-encoding":
                        self.send_header(key, value)
                content = answer.content if self.command != "HEAD" else b""
                self.send_header("content-length", answer.headers.get("content-length", "0")
                                 if self.command == "HEAD" else str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def store(self, like: StoreServer) -> StoreServer:
        """A :class:`StoreServer` handle whose ``url``, ``api()`` and ``http()`` go through the balancer."""
        return StoreServer(like.data, like.log, like.args, port=self.server.server_address[1], tokens=like.tokens,
                           env=like.env, catalog=like.catalog)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory):
    """Replica A and B: one catalog, one bucket prefix, one secret, separate data directories."""
    first = start_store(tmp_path_factory.mktemp("replica-a"), backend=PAIR)
    root = tmp_path_factory.mktemp("replica-b")
    second = StoreServer(root / "data", root / "server.log", list(first.args), env=dict(first.env),
                         catalog=first.catalog, tokens=dict(first.tokens))
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


@pytest.fixture
def balancer(replicas):
    rr = RoundRobin(list(replicas))
    yield rr
    rr.close()


def test_a_client_alternating_between_replicas_pushes_pulls_and_searches(replicas, balancer, tmp_path, run_cli,
                                                                          monkeypatch):
    first, second = replicas
    store = balancer.store(first)
    folder = tmp_path / "weights"
    folder.mkdir()
    basic, multi = os.urandom(300 * KiB), os.urandom(1300 * KiB)  # one presigned PUT; multipart (6 parts)
    (folder / "basic.bin").write_bytes(basic)
    (folder / "multi.safetensors").write_bytes(multi)
    (folder / "README.md").write_text("# Weights\n")
    api = store.api("alice")
    api.create_repo("alice/spread")
    api.upload_folder(folder_path=folder, repo_id="alice/spread")
    batches = [i for i, (_, method, path) in enumerate(balancer.seen) if path.endswith("/objects/batch")]
    follow_ups = [balancer.seen[i][0] for i, (_, method, path) in enumerate(balancer.seen)
                  if "/info/lfs/objects/upload/" in path or "/info/lfs/objects/verify" in path]
    assert len(batches) == 1 and any("/info/lfs/objects/upload/" in path for _, _, path in balancer.seen)
    # the multipart completion and the verify (one replica at least) are not the batch's replica
    assert balancer.seen[batches[0]][0] != min(follow_ups) or balancer.seen[batches[0]][0] != max(follow_ups)
    assert {index for index, _, _ in balancer.seen} == {0, 1}
    s3 = s3_server()
    prefix = first.args[first.args.index("--blobs") + 1].split("/", 3)[3]
    stored = s3.keys(f"{prefix}/sha256/")
    assert {f"{prefix}/sha256/{hashlib.sha256(d).hexdigest()}" for d in (basic, multi)} <= set(stored)
    assert not list((first.data / "blobs").glob("sha256/*")) and not (second.data / "blobs" / "sha256").exists()
    for name, data in (("basic.bin", basic), ("multi.safetensors", multi), ("README.md", b"# Weights\n")):
        path = hf_hub_download("alice/spread", name, endpoint=store.url, token=False, cache_dir=tmp_path / "hf")
        assert Path(path).read_bytes() == data
    publish_package(store, tmp_path, "alice/roundtrip", user="alice", description="Rhymes about distributed lighthouses",
                    tags=["poetry"])
    monkeypatch.setenv("GPTSTORE_TOKEN", store.tokens["alice:read"])
    pulled = run_cli("pull", "alice/roundtrip", "--store", store.url, "--allow-unsafe", "--json")
    assert pulled.exit_code == 0, pulled.output
    assert json.loads(pulled.output)[0]["digest"].startswith("sha256:")
    for server in (first, second, store):
        assert [m.id for m in server.api("alice").list_models(search="lighthouses")] == ["alice/roundtrip"]


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def test_tokens_sessions_and_signed_urls_made_by_one_replica_work_on_the_other(replicas):
    first, second = replicas
    for server in (first, second):
        with server.http("bob") as http:
            assert http.get("/api/whoami-v2").json()["name"] == "bob"
    # a web session signed in on A is a session on B (cookies are per host, not per port: same jar)
    with httpx.Client(base_url=first.url, timeout=30) as browser:
        answer = browser.post("/login", data={"csrf": _csrf(browser.get("/login")),
                                              "token": first.tokens["carol:write"], "next": "/"})
        assert answer.status_code == 303, answer.text
        assert "carol" in browser.get(f"{second.url}/").text
        assert "carol" not in httpx.get(f"{second.url}/", timeout=30).text  # and not without the cookie
        # its CSRF token, made by A, is good for a form on B
        signed_out = browser.post(f"{second.url}/logout", data={"csrf": _csrf(browser.get(f"{second.url}/login"))})
        assert signed_out.status_code == 303, signed_out.text
    # signed LFS URLs: batch on A, bytes to the bucket, verify on B
    first.api("alice").create_repo("alice/signed")
    data = os.urandom(300 * KiB)
    oid = hashlib.sha256(data).hexdigest()
    with first.http("alice") as on_a, second.http("alice") as on_b:
        offer = on_a.post("/alice/signed.git/info/lfs/objects/batch",
                          json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]}).json()["objects"][0]
        assert httpx.put(offer["actions"]["upload"]["href"], content=data).status_code == 200
        verify = urlsplit(offer["actions"]["verify"]["href"])
        assert verify.netloc == urlsplit(first.url).netloc
        assert on_b.post(f"{verify.path}?{verify.query}", json={"oid": oid, "size": len(data)}).status_code == 200
        tampered = f"{verify.path}?{verify.query}".replace(f"size={len(data)}", f"size={len(data) + 1}")
        assert on_b.post(tampered, json={"oid": oid, "size": len(data) + 1}).status_code == 403


def test_racing_commits_to_one_branch_through_two_replicas_one_wins_whole(replicas):
    first, second = replicas
    first.api("alice").create_repo("alice/raced")
    for round_ in range(3):
        head = first.api("alice").model_info("alice/raced").sha
        def operations(name: str) -> list[CommitOperationAdd]:
            ops = [CommitOperationAdd(f"{name}/{i}.txt", f"{name} {round_} {i}".encode()) for i in range(20)]
            return [*ops, CommitOperationAdd(f"{name}/big.bin", os.urandom(300 * KiB))]  # LFS, via the bucket

        outcomes = race_commits(first, second, "alice/raced", head, str(round_), operations)
        winners = [name for name, outcome in outcomes.items() if isinstance(outcome, str)]
        assert len(winners) == 1, outcomes
        loser = "b" if winners == ["a"] else "a"
        assert outcomes[loser] in (409, 412), outcomes
        for server in (first, second):
            assert server.api("alice").model_info("alice/raced").sha == outcomes[winners[0]]
            commits = server.api("alice").list_repo_commits("alice/raced")
            assert [c.title for c in commits].count(f"{loser} {round_}") == 0
            with server.http("alice") as http:
                for i in (0, 19):
                    assert http.get(f"/alice/raced/resolve/main/{winners[0]}/{i}.txt").text == \
                        f"{winners[0]} {round_} {i}"


def test_download_counters_and_ratings_lose_no_update_across_replicas(replicas):
    first, second = replicas
    first.api("alice").create_repo("alice/popular")
    first.api("alice").upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="alice/popular")
    per_thread, threads = 10, 6

    def pull(server: StoreServer) -> None:
        with server.http() as http:
            for _ in range(per_thread):
                assert http.get("/alice/popular/resolve/main/config.json").status_code == 200

    users = [f"rater{i}" for i in range(8)]
    for user in users:
        first.admin("user", "add", user)
        first.tokens[f"{user}:write"] = first.admin("token", "create", user, "--scope", "write")
    stars = {user: 1 + i % 5 for i, user in enumerate(users)}
    start = threading.Barrier(len(users))
    statuses: list[int] = []

    def rate(server: StoreServer, user: str) -> None:
        with httpx.Client(base_url=server.url, timeout=30,
                          headers={"authorization": f"Bearer {first.tokens[f'{user}:write']}"}) as http:
            http.get("/api/whoami-v2")
            start.wait()
            statuses.append(http.put("/api/gptstore/models/alice/popular/reviews",
                                     json={"stars": stars[user], "text": "ok"}).status_code)

    workers = [threading.Thread(target=pull, args=(replicas[i % 2],)) for i in range(threads)]
    workers += [threading.Thread(target=rate, args=(replicas[i % 2], user)) for i, user in enumerate(users)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert statuses == [201] * len(users)
    for server in (first, second):
        assert server.api("alice").model_info("alice/popular").downloads == per_thread * threads
        listed = server.http().get("/api/gptstore/models/alice/popular/reviews").json()
        assert sorted(r["user"] for r in listed["reviews"]) == sorted(users)
        assert listed["rating"] == {"count": len(users), "average": round(sum(stars.values()) / len(users), 2)}


def _half_commit(server: StoreServer, repo_id: str, lines: list[dict]) -> socket.socket:
    """Send all of an NDJSON commit but its last half line, so the server is inside the commit."""
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = (f"POST /api/models/{repo_id}/commit/main HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {server.tokens['alice:write']}\r\nContent-Type: application/x-ndjson\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    sock.sendall(head.encode() + body[: len(body) - 1000])
    return sock


def test_a_replica_killed_mid_commit_leaves_nothing_half_visible(replicas):
    first, second = replicas
    api = first.api("alice")
    api.create_repo("alice/crash")
    before = api.upload_file(path_or_fileobj=b"v1", path_in_repo="notes.txt", repo_id="alice/crash").oid
    s3 = s3_server()
    prefix = first.args[first.args.index("--blobs") + 1].split("/", 3)[3]
    # 1. an LFS object uploaded and verified through B, then B dies before the commit naming it
    data = os.urandom(300 * KiB)
    oid = hashlib.sha256(data).hexdigest()
    with second.http("alice") as on_b:
        offer = on_b.post("/alice/crash.git/info/lfs/objects/batch",
                          json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]}).json()["objects"][0]
        assert httpx.put(offer["actions"]["upload"]["href"], content=data).status_code == 200
        assert on_b.post(offer["actions"]["verify"]["href"], json={"oid": oid, "size": len(data)}).status_code == 200
    # 2. B is streaming a commit (its inline file already in the bucket) when it is killed
    inline = b"v2 " + os.urandom(16).hex().encode()
    lines = [{"key": "header", "value": {"summary": "never lands"}},
             {"key": "file", "value": {"path": "notes.txt", "content": base64.b64encode(inline).decode()}},
             {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": len(data)}},
             {"key": "file", "value": {"path": "big.txt", "content": base64.b64encode(os.urandom(60_000)).decode()}}]
    sock = _half_commit(second, "alice/crash", lines)
    deadline = time.time() + 10
    while f"{prefix}/sha256/{hashlib.sha256(inline).hexdigest()}" not in s3.keys(f"{prefix}/sha256/"):
        assert time.time() < deadline, "the replica never stored the commit's first file"
        time.sleep(0.05)
    second.kill()
    sock.close()
    try:
        info = api.model_info("alice/crash")
        assert info.sha == before
        files = set(api.list_repo_files("alice/crash"))
        assert "notes.txt" in files and files <= {".gitattributes", "notes.txt"}, files  # no w.bin, no big.txt
        with first.http("alice") as on_a:
            assert on_a.get("/alice/crash/resolve/main/notes.txt").content == b"v1"
            assert on_a.get("/alice/crash/resolve/main/w.bin").status_code == 404
        # the store keeps working: A commits on top of the last whole commit
        after = api.create_commit("alice/crash", [CommitOperationAdd("notes.txt", b"v3")], commit_message="v3",
                                  parent_commit=before).oid
        assert api.model_info("alice/crash").sha == after
    finally:
        second.start()
    with second.http("alice") as on_b:  # and B, restarted, serves the same store
        assert on_b.get("/alice/crash/resolve/main/notes.txt").content == b"v3"
    assert second.api("alice").model_info("alice/crash").sha == after
