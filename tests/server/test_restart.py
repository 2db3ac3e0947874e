"""A server killed mid-upload restarts serving every committed revision intact and no partial one."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from huggingface_hub import hf_hub_download

from .conftest import start_store


def half_request(url: str, method: str, path: str, body: bytes, *, headers: dict[str, str]) -> socket.socket:
    """Open a connection and send the request line, headers and only the first half of the body."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    head = f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode() + body[: len(body) // 2])
    return sock


def wait_for(predicate, timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow
def test_kill_mid_upload_then_restart(tmp_path: Path, hf_cache: Path):
    store = start_store(tmp_path)
    try:
        store.require_disk("watches DATA/blobs/tmp (on S3: test_replicas.py::test_a_replica_killed_mid_commit_leaves_nothing_half_visible)")
        api = store.api("alice")
        api.create_repo("alice/durable")
        weights = os.urandom(400 * 1024)  # LFS (basic)
        first = api.upload_file(path_or_fileobj=weights, path_in_repo="w.bin", repo_id="alice/durable").oid
        second = api.upload_file(path_or_fileobj=b"v2 notes", path_in_repo="notes.txt", repo_id="alice/durable").oid
        api.create_tag("alice/durable", tag="v1", revision=first)

        # 1. an LFS PUT that stops halfway
        pending = os.urandom(900 * 1024)
        oid = hashlib.sha256(pending).hexdigest()
        with store.http("alice") as http:
            batch = http.post("/alice/durable.git/info/lfs/objects/batch",
                              json={"operation": "upload", "objects": [{"oid": oid, "size": len(pending)}]}).json()
        href = urlsplit(batch["objects"][0]["actions"]["upload"]["href"])
        upload = half_request(store.url, "PUT", f"{href.path}?{href.query}", pending, headers={})
        tmp = store.data / "blobs" / "tmp"
        wait_for(lambda: any(tmp.glob("blob.*.part")))
        # 2. a commit whose NDJSON stops in the middle of its second file
        lines = [{"key": "header", "value": {"summary": "never lands"}},
                 {"key": "file", "value": {"path": "notes.txt", "content": base64.b64encode(b"v3").decode()}},
                 {"key": "file", "value": {"path": "big.txt",
                                           "content": base64.b64encode(os.urandom(60_000)).decode()}}]
        body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        token = store.tokens["alice:write"]
        commit = half_request(store.url, "POST", "/api/models/alice/durable/commit/main", body,
                              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
        # the server is inside the commit: it stored the inline notes.txt and waits for big.txt
        wait_for(lambda: (store.data / "blobs" / "sha256" / hashlib.sha256(b"v3").hexdigest()).is_file())
        store.kill()
        upload.close()
        commit.close()

        store.start()
        assert api.model_info("alice/durable").sha == second
        assert [c.commit_id for c in api.list_repo_commits("alice/durable")][:2] == [second, first]
        assert {t.name: t.target_commit for t in api.list_repo_refs("alice/durable").tags} == {"v1": first}
        for revision in (first, second, "v1", "main"):
            path = hf_hub_download("alice/durable", "w.bin", revision=revision, endpoint=store.url, token=token,
                                   cache_dir=hf_cache)
            assert Path(path).read_bytes() == weights
        notes = hf_hub_download("alice/durable", "notes.txt", endpoint=store.url, token=token, cache_dir=hf_cache)
        assert Path(notes).read_bytes() == b"v2 notes"
        assert not api.file_exists("alice/durable", "big.txt")
        assert not (store.data / "blobs" / "sha256" / oid).exists()
        assert not list(tmp.glob("blob.*.part"))  # leftovers removed at start
        with sqlite3.connect(store.data / "catalog.sqlite3") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # the interrupted upload can simply be done again
        again = api.upload_file(path_or_fileobj=pending, path_in_repo="pending.bin", repo_id="alice/durable")
        assert api.model_info("alice/durable").sha == again.oid
    finally:
        store.stop()
