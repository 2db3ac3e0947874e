"""Hub headers a stock client can tell apart: ETags, X-Request-Id, and the Xet refusal (issue 14)."""

from __future__ import annotations

import hashlib
import re
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest
from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url

from gptstore.server.api_uploads import XET_REFUSAL_SEGMENT
from gptstore.testing import SMALL, StoreServer, start_store

REGULAR = b"a small regular file\n"
LFS = bytes(range(256)) * 1200  # 300 KiB: above the test server's 256 KiB LFS threshold
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def store_server(every_backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreServer]:
    """The module's server logs at INFO, so that its access-log lines (with request ids) show."""
    server = start_store(tmp_path_factory.mktemp("store"), [*SMALL, "--log-level", "info"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def repo(store, tmp_path_factory: pytest.TempPathFactory) -> str:
    """alice/headers with notes.txt (regular) and blob.dat (LFS)."""
    folder = tmp_path_factory.mktemp("headers")
    (folder / "notes.txt").write_bytes(REGULAR)
    (folder / "blob.dat").write_bytes(LFS)
    saved, constants.HF_HUB_DISABLE_XET = constants.HF_HUB_DISABLE_XET, True
    try:
        api = store.api("alice")
        api.create_repo("alice/headers")
        api.upload_folder(folder_path=folder, repo_id="alice/headers")
    finally:
        constants.HF_HUB_DISABLE_XET = saved
    return "alice/headers"


def resolve_gets(store: StoreServer, path: str) -> int:
    """How many GETs of ``path`` the server's access log shows."""
    return len(re.findall(rf'"GET /alice/headers/resolve/main/{re.escape(path)} HTTP/[0-9.]+" 200 ',
                          store.log.read_text()))


def test_etag_is_the_git_blob_id_of_a_regular_file_and_the_sha256_of_an_lfs_file(store, repo):
    tree = {entry.path: entry for entry in store.api("alice").list_repo_tree(repo)}
    assert tree["notes.txt"].lfs is None and tree["blob.dat"].lfs is not None
    token = store.tokens["alice:read"]
    regular = get_hf_file_metadata(hf_hub_url(repo, "notes.txt", endpoint=store.url), token=token)
    assert regular.etag == tree["notes.txt"].blob_id
    assert regular.etag == hashlib.sha1(b"blob %d\0" % len(REGULAR) + REGULAR).hexdigest()
    assert regular.size == len(REGULAR)
    lfs = get_hf_file_metadata(hf_hub_url(repo, "blob.dat", endpoint=store.url), token=token)
    assert lfs.etag == hashlib.sha256(LFS).hexdigest() == tree["blob.dat"].lfs.sha256
    assert lfs.size == len(LFS)
    head = store.http("alice").head(f"/{repo}/resolve/main/blob.dat")
    assert head.headers["x-linked-etag"].strip('"') == lfs.etag
    assert head.headers["x-linked-size"] == str(len(LFS))
    assert "x-linked-etag" not in store.http("alice").head(f"/{repo}/resolve/main/notes.txt").headers


@pytest.mark.parametrize("path, content", [("notes.txt", REGULAR), ("blob.dat", LFS)])
def test_a_second_download_to_a_local_dir_fetches_nothing(store, repo, tmp_path: Path, path: str, content: bytes):
    token = store.tokens["alice:read"]
    local = Path(hf_hub_download(repo, path, local_dir=tmp_path, endpoint=store.url, token=token))
    assert local.read_bytes() == content
    gets = resolve_gets(store, path)
    stat = local.stat()
    again = Path(hf_hub_download(repo, path, local_dir=tmp_path, endpoint=store.url, token=token))
    time.sleep(0.2)  # let the server's log line reach its file
    assert again == local and resolve_gets(store, path) == gets, "the second call downloaded again"
    assert (local.stat().st_ino, local.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_every_answer_carries_a_request_id_that_the_log_line_names(store, repo):
    client = store.http("alice")
    answers = {
        200: client.get("/api/models"),
        404: client.get("/api/models/alice/no-such-repo"),
        400: client.get(f"/api/models/{repo}/xet-write-token/main/{XET_REFUSAL_SEGMENT}"),
    }
    time.sleep(0.2)
    log = store.log.read_text()
    for status, answer in answers.items():
        assert answer.status_code == status, answer.text
        rid = answer.headers["x-request-id"]
        assert HEX32.fullmatch(rid)
        line = next(line for line in log.splitlines() if f"request-id={rid}" in line)
        assert f'{answer.request.url.raw_path.decode()} HTTP/1.1" {status}' in line
    assert len({answer.headers["x-request-id"] for answer in answers.values()}) == 3


def test_a_safe_incoming_request_id_is_echoed_and_a_hostile_one_replaced(store):
    client = store.http()
    assert client.get("/api/models", headers={"X-Request-Id": "trace-42.A_b"}).headers["x-request-id"] == "trace-42.A_b"
    missing = client.get("/api/models/alice/nope", headers={"X-Request-Id": "x" * 200})
    assert missing.status_code == 404 and HEX32.fullmatch(missing.headers["x-request-id"])
    for hostile in ["a b", "../../etc", "id;rm", "ü"]:
        answer = client.get("/api/models", headers={"X-Request-Id": hostile.encode()})
        assert HEX32.fullmatch(answer.headers["x-request-id"]), hostile
    # a bare newline inside the value (httpx refuses to send one): replaced, never echoed
    with socket.create_connection(("127.0.0.1", store.port), timeout=10) as sock:
        sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\nInjected: 1\r\n"
                     b"Connection: close\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert "injected" not in head
    ids = re.findall(r"^x-request-id: (.*)$", head, flags=re.M)
    assert len(ids) <= 1 and all(HEX32.fullmatch(rid) or rid == "abc" for rid in ids)


def test_xet_upload_with_a_stock_client_fails_saying_how_to_switch_xet_off(store, repo, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("hf_xet")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    big = tmp_path / "big.dat"
    big.write_bytes(b"x" * (300 * 1024))
    with pytest.raises(Exception) as err:
        store.api("alice").upload_file(path_or_fileobj=big, path_in_repo="big.dat", repo_id=repo)
    # hf_xet's error names the status and the final URL only, so the URL says it
    assert "this-store-takes-LFS-uploads:set-HF_HUB_DISABLE_XET=1" in str(err.value)
    for kind in ("write", "read"):
        answer = store.http("alice").get(f"/api/models/{repo}/xet-{kind}-token/main", follow_redirects=True)
        assert answer.status_code == 400 and len(answer.history) == 1
        assert "this store takes LFS uploads: set HF_HUB_DISABLE_XET=1" in answer.json()["error"]
