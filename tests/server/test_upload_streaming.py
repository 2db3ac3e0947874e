"""LFS uploads larger than one receive buffer (api_uploads.WRITE_BATCH, 8 MiB): the body is copied
into alternating buffers that a worker thread hashes while another writes them, so these tests
cross buffer boundaries on purpose: the stock client's upload arrives byte-exact, wrong or longer
bodies are refused and leave nothing behind, and a client that stalls mid-body is still cut off.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from urllib.parse import urlsplit

import pytest
from huggingface_hub import hf_hub_download

from gptstore.server.api_uploads import WRITE_BATCH
from gptstore.testing import BACKENDS, KiB, StoreServer, start_store

MiB = 1024 * KiB
SIZE = 2 * WRITE_BATCH + 123_457  # two full buffers and a tail
TIMEOUT = 1.0  # --request-timeout of the server under test


@pytest.fixture(scope="module")
def store(every_backend, tmp_path_factory: pytest.TempPathFactory) -> StoreServer:
    if BACKENDS[every_backend].blobs != "disk":  # on S3 the bytes never pass through the server
        pytest.skip("the server's own receive buffers and DATA/blobs/tmp staging: disk blobs only "
                    "(S3 uploads go to the bucket: tests/server/test_s3_blobs.py)")
    server = start_store(tmp_path_factory.mktemp("streaming"), [
        "--max-body", str(64 * MiB), "--multipart-threshold", str(64 * MiB), "--part-size", str(16 * MiB),
        "--request-timeout", str(TIMEOUT)])
    try:
        server.api("alice").create_repo("alice/big")
        yield server
    finally:
        server.stop()


def leftovers(store: StoreServer) -> list[str]:
    return [p.name for p in (store.data / "blobs" / "tmp").glob("blob.*")]


def signed_upload(store: StoreServer, data: bytes) -> str:
    oid = hashlib.sha256(data).hexdigest()
    with store.http("alice") as http:
        batch = http.post("/alice/big.git/info/lfs/objects/batch",
                          json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]}).json()
    return batch["objects"][0]["actions"]["upload"]["href"]


def test_a_large_upload_through_huggingface_hub_is_stored_byte_exact(store, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    data = os.urandom(SIZE)
    api = store.api("alice")
    api.upload_file(path_or_fileobj=data, path_in_repo="weights.bin", repo_id="alice/big")
    oid = hashlib.sha256(data).hexdigest()
    blob = store.data / "blobs" / "sha256" / oid
    assert blob.read_bytes() == data  # hashed and written from the same buffers, in order
    assert oid in {f.lfs.sha256 for f in api.list_repo_tree("alice/big") if getattr(f, "lfs", None)}
    path = hf_hub_download("alice/big", "weights.bin", endpoint=store.url, token=store.tokens["alice:write"],
                           cache_dir=str(store.data.parent / "hf-cache"))
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == oid
    assert leftovers(store) == []


def test_large_bodies_that_do_not_match_are_refused_and_leave_nothing(store):
    data = os.urandom(SIZE)
    href = signed_upload(store, data)
    oid = hashlib.sha256(data).hexdigest()
    with store.http() as anonymous:
        wrong = anonymous.put(href, content=data[:-1] + bytes([data[-1] ^ 1]))  # last byte of the tail
        assert wrong.status_code == 400 and "sha256" in wrong.json()["error"]
        longer = anonymous.put(href, content=iter([data, os.urandom(WRITE_BATCH)]))  # chunked, a buffer too many
        assert longer.status_code == 400 and "larger than the object's declared size" in longer.json()["error"]
        shorter = anonymous.put(href, content=iter([data[:WRITE_BATCH + 1]]))  # ends after one full buffer
        assert shorter.status_code == 400 and "size" in shorter.json()["error"]
        declared = anonymous.put(href, content=data + b"x")  # Content-Length says more than the object
        assert declared.status_code == 400 and "differs" in declared.json()["error"]
    assert not (store.data / "blobs" / "sha256" / oid).exists()
    assert leftovers(store) == []


def test_an_upload_that_stalls_after_a_full_buffer_is_cut_off(store):
    data = os.urandom(SIZE)
    url = urlsplit(signed_upload(store, data))
    head = (f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\nContent-Length: {SIZE}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", store.port), timeout=TIMEOUT + 5) as sock:
        sock.sendall(head + data[:WRITE_BATCH + MiB])  # one buffer goes to the disk, then nothing
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408") and b"the request body arrived too slowly" in answer
    assert took < TIMEOUT + 3
    assert not (store.data / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).exists()
    assert leftovers(store) == []
