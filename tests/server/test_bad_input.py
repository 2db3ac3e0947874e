"""Bad input gets a 4xx with a clear message, and nothing changes."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import BadRequestError, HfHubHTTPError

from gptstore.manifest import MANIFEST_FILE


def ndjson(*lines: tuple[str, dict]) -> bytes:
    return b"".join(json.dumps({"key": key, "value": value}).encode() + b"\n" for key, value in lines)


def inline(path: str, data: bytes) -> tuple[str, dict]:
    return "file", {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}


HEADER = ("header", {"summary": "test", "description": ""})


@pytest.fixture(scope="module")
def repo(store) -> str:
    api = store.api("alice")
    api.create_repo("alice/target")
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id="alice/target")
    return "alice/target"


@pytest.fixture
def unchanged(store, repo):
    """Asserts after the test that the repo's head, files and history are what they were."""
    api = store.api("alice")

    def snapshot():
        info = api.model_info(repo, files_metadata=True)
        files = sorted((s.rfilename, s.blob_id) for s in info.siblings)
        return info.sha, files, len(api.list_repo_commits(repo))

    before = snapshot()
    yield
    assert snapshot() == before


def commit(store, body: bytes, *, repo: str = "alice/target", revision: str = "main", content=None):
    with store.http("alice") as http:
        return http.post(f"/api/models/{repo}/commit/{revision}", content=body if content is None else content,
                         headers={"content-type": "application/x-ndjson"})


@pytest.mark.parametrize("name", ["a--b", "-lead", "trail-", "x.git", "a..b", "n" * 97, "sp ace", "ünï", ""])
def test_invalid_repo_names_are_400(store, name):
    with store.http("alice") as http:
        response = http.post("/api/repos/create", json={"name": name, "organization": "alice"})
    assert response.status_code == 400, name
    assert "invalid" in response.json()["error"]
    assert not [m.id for m in store.api("alice").list_models(author="alice") if m.id == f"alice/{name}"]


def test_a_valid_unusual_name_is_accepted(store):
    assert store.api("alice").create_repo("alice/a.b_c-9").repo_id == "alice/a.b_c-9"


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a/../../b", ".git/config", "x/.cache/y",
                                  "a//b", "./a", "a\\b", "ok/."])
def test_path_traversal_is_rejected(store, unchanged, path):
    status = 422 if "\\" in path else 400  # backslashes: 422, as on the Hub
    response = commit(store, ndjson(HEADER, inline("fine.txt", b"fine"), inline(path, b"evil")))
    assert response.status_code == status and "invalid path" in response.json()["error"]
    with store.http("alice") as http:
        pre = http.post("/api/models/alice/target/preupload/main", json={"files": [{"path": path, "size": 1}]})
        assert pre.status_code == status
    assert commit(store, ndjson(HEADER, ("deletedFile", {"path": path}))).status_code == status


def test_lfs_upload_with_wrong_bytes_or_size_is_rejected(store, unchanged):
    store.require_disk("the server's own PUT handler and DATA/blobs (S3: test_s3_blobs.py::"
                       "test_wrong_bytes_put_with_a_presigned_url_are_refused_deleted_and_never_referenced)")
    data = os.urandom(300 * 1024)
    oid = hashlib.sha256(data).hexdigest()
    with store.http("alice") as http:
        batch = http.post("/alice/target.git/info/lfs/objects/batch",
                          json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]}).json()
    href = batch["objects"][0]["actions"]["upload"]["href"]
    with store.http() as anonymous:
        wrong = anonymous.put(href, content=os.urandom(len(data)))
        assert wrong.status_code == 400 and "sha256" in wrong.json()["error"]
        longer = anonymous.put(href, content=data + b"extra")
        assert longer.status_code == 400
        shorter = anonymous.put(href, content=iter([data[:1000]]))  # chunked, ends early
        assert shorter.status_code == 400 and "size" in shorter.json()["error"]
    assert not (store.data / "blobs" / "sha256" / oid).exists()
    assert not list((store.data / "blobs" / "tmp").glob("blob.*"))
    missing = commit(store, ndjson(HEADER, ("lfsFile", {"path": "big.bin", "algo": "sha256", "oid": oid,
                                                        "size": len(data)})))
    assert missing.status_code == 400 and "not uploaded" in missing.json()["error"]


def test_lfs_file_with_a_wrong_declared_size_is_rejected(store, unchanged):
    data = b"known object" * 1000
    oid = hashlib.sha256(data).hexdigest()
    with store.http("alice") as http:
        batch = http.post("/alice/target.git/info/lfs/objects/batch",
                          json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]}).json()
        actions = batch["objects"][0]["actions"]
        assert http.put(actions["upload"]["href"], content=data).status_code == 200
        if "verify" in actions:  # as the stock client does; an S3 store takes an object only once verified
            assert http.post(actions["verify"]["href"], json={"oid": oid, "size": len(data)}).status_code == 200
    response = commit(store, ndjson(HEADER, ("lfsFile", {"path": "k.bin", "algo": "sha256", "oid": oid,
                                                         "size": len(data) + 1})))
    assert response.status_code == 400 and "size" in response.json()["error"]


def test_stale_parent_commit_is_412(store, repo):
    api = store.api("alice")
    old = api.model_info(repo).sha
    new = api.upload_file(path_or_fileobj=b"v2", path_in_repo="a.txt", repo_id=repo).oid
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit(repo, [CommitOperationAdd("a.txt", b"v3")], commit_message="stale", parent_commit=old)
    assert err.value.response.status_code == 412
    assert api.model_info(repo).sha == new
    assert api.create_commit(repo, [CommitOperationAdd("a.txt", b"v3")], commit_message="fresh",
                             parent_commit=new[:7]).oid != new


def test_oversized_bodies_are_413(store, unchanged):
    big = ndjson(HEADER, inline("big.txt", os.urandom(3 * 1024 * 1024 + 1)))  # > 4 MiB as base64
    response = commit(store, big)  # declares its length: refused before reading
    assert response.status_code == 413 and "limit" in response.json()["error"]
    chunked = commit(store, b"", content=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]))
    assert chunked.status_code == 413  # no length: refused once the limit is passed


@pytest.mark.parametrize("body,needle", [
    (b"this is not json\n", "commit line 1"),
    (ndjson(inline("x.txt", b"x")), "header"),
    (ndjson(HEADER, ("rename", {"path": "x"})), "commit line 2"),
    (ndjson(HEADER, ("file", {"path": "x.txt", "content": "***", "encoding": "base64"})), "base64"),
    (ndjson(HEADER, ("file", {"path": "x.txt"})), "content"),
    (ndjson(HEADER) + b'{"key": "file", "value": {"path": "y", "content": "eA=="', "commit line 2"),
    (b"", "empty"),
    (ndjson(HEADER, ("deletedFile", {"path": "nope.txt"})), "nope.txt"),
    (ndjson(HEADER, inline("a.txt/b", b"clash")), "both a file and a folder"),
])
def test_malformed_commits_are_4xx_with_a_clear_message(store, unchanged, body, needle):
    response = commit(store, body)
    assert 400 <= response.status_code < 500
    assert needle in response.json()["error"]


def test_commit_to_a_tag_or_unknown_branch_is_revision_not_found(store, unchanged, repo):
    store.api("alice").create_tag(repo, tag="frozen", exist_ok=True)
    for revision in ("frozen", "nope"):
        response = commit(store, ndjson(HEADER, inline("x.txt", b"x")), revision=revision)
        assert response.status_code == 404 and response.headers["x-error-code"] == "RevisionNotFound"


def test_bad_manifest_rejects_the_commit_naming_the_field(store, unchanged, tiny_package):
    api = store.api("alice")
    manifest = json.loads((tiny_package / MANIFEST_FILE).read_text())
    with pytest.raises(BadRequestError, match="version"):
        api.upload_file(path_or_fileobj=json.dumps({**manifest, "version": "one"}).encode(),
                        path_in_repo=MANIFEST_FILE, repo_id="alice/target")
    with pytest.raises(BadRequestError, match="not in the revision"):  # pins files the repo lacks
        api.upload_file(path_or_fileobj=json.dumps(manifest).encode(), path_in_repo=MANIFEST_FILE,
                        repo_id="alice/target")
    pinned = {**manifest, "files": [{"path": "a.txt", "size": 2, "sha256": "0" * 64}]}
    with pytest.raises(BadRequestError, match="pinned"):
        api.upload_file(path_or_fileobj=json.dumps(pinned).encode(), path_in_repo=MANIFEST_FILE,
                        repo_id="alice/target")


def test_ranges_and_unknown_routes(store, repo):
    with store.http() as http:
        content = http.get(f"/{repo}/resolve/main/a.txt").content
        part = http.get(f"/{repo}/resolve/main/a.txt", headers={"range": "bytes=1-"})
        assert part.status_code == 206 and part.content == content[1:]
        assert part.headers["content-range"] == f"bytes 1-{len(content) - 1}/{len(content)}"
        suffix = http.get(f"/{repo}/resolve/main/a.txt", headers={"range": "bytes=-1"})
        assert suffix.status_code == 206 and suffix.content == content[-1:]
        outside = http.get(f"/{repo}/resolve/main/a.txt", headers={"range": "bytes=99-"})
        assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{len(content)}"
        for path in ("/api/nothing-here", f"/{repo}/blob/main/a.txt", "/api/datasets/alice/target"):
            response = http.get(path)
            assert response.status_code == 404 and response.headers["x-error-code"], path
        invalid = http.post("/api/validate-yaml", json={"content": "---\nlicense: [mit\n---\n"})
        assert invalid.status_code == 400 and invalid.json()["errors"][0]["message"]
