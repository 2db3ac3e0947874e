"""``gptstore server --blobs s3://…``: LFS bytes go to and come from the bucket, never the server.

A real ``gptstore server`` process with its blobs in moto's standalone S3 server (spoken to only
through boto3 and presigned URLs, as with any S3); the stock huggingface_hub client uploads
(basic and multipart, both straight to the bucket) and downloads (following the presigned
redirect), and so does ``gptstore pull``. Wrong bytes put with a presigned URL are refused at
verify and completion, deleted, and never referenced by a commit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest
from huggingface_hub import hf_hub_download

from gptstore.testing import SMALL, KiB, publish_package, start_s3, start_store

PREFIX = "store"
BASIC = os.urandom(300 * KiB)  # LFS (threshold 256 KiB), one presigned PUT
MULTI = os.urandom(1300 * KiB)  # multipart from 1 MiB: 6 presigned UploadPart URLs of 256 KiB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ndjson(*lines: tuple[str, dict]) -> bytes:
    return b"".join(json.dumps({"key": key, "value": value}).encode() + b"\n" for key, value in lines)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    endpoint = start_s3(tmp_path_factory.mktemp("s3"))
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="module")
def store(every_backend, s3, tmp_path_factory):
    server = start_store(tmp_path_factory.mktemp("store"), [*SMALL, "--blobs", s3.blobs_url(PREFIX)], env=s3.env)
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as patch:  # LFS, not Xet (module fixtures run before xet_off)
        patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        api = server.api("alice")
        api.create_repo("alice/weights")
        api.upload_file(path_or_fileobj=BASIC, path_in_repo="basic.bin", repo_id="alice/weights")
        api.upload_file(path_or_fileobj=MULTI, path_in_repo="multi.safetensors", repo_id="alice/weights")
        api.upload_file(path_or_fileobj=b"# Weights\n", path_in_repo="README.md", repo_id="alice/weights")
    yield server
    server.stop()


def test_basic_and_multipart_pushes_land_verified_in_the_bucket_not_on_disk(store, s3):
    keys = s3.keys(f"{PREFIX}/")
    for data in (BASIC, MULTI):
        assert f"{PREFIX}/sha256/{sha(data)}" in keys
        assert not (store.data / "blobs" / "sha256" / sha(data)).exists()
    assert f"{PREFIX}/sha256/{sha(b'# Weights' + bytes([10]))}" in keys  # small files: inline, same bucket
    assert not [key for key in keys if key.startswith(f"{PREFIX}/uploads/")]  # staging is emptied
    files = {f.path: f for f in store.api("alice").list_repo_tree("alice/weights")}
    assert files["multi.safetensors"].lfs.sha256 == sha(MULTI) and files["basic.bin"].size == len(BASIC)


def test_the_stock_client_downloads_through_the_redirect(store, tmp_path):
    for name, data in (("basic.bin", BASIC), ("multi.safetensors", MULTI), ("README.md", b"# Weights\n")):
        path = hf_hub_download("alice/weights", name, endpoint=store.url, token=False, cache_dir=tmp_path)
        assert Path(path).read_bytes() == data


def test_lfs_head_and_get_answer_a_redirect_with_the_hubs_metadata_and_ranges_go_to_the_bucket(store, s3):
    commit = store.api("alice").model_info("alice/weights").sha
    with store.http("alice", "read") as http:
        for method in ("HEAD", "GET"):
            answer = http.request(method, "/alice/weights/resolve/main/multi.safetensors")
            assert answer.status_code == 302, answer.text
            assert answer.headers["x-repo-commit"] == commit
            assert answer.headers["x-linked-etag"] == f'"{sha(MULTI)}"' == answer.headers["etag"]
            assert answer.headers["x-linked-size"] == str(len(MULTI))
            assert answer.headers["location"].startswith(f"{s3.url}/")
        ranged = http.get("/alice/weights/resolve/main/multi.safetensors", headers={"range": "bytes=1000-1999"},
                          follow_redirects=True)
    assert ranged.status_code == 206 and ranged.content == MULTI[1000:2000]
    assert str(ranged.url).startswith(s3.url) and "authorization" not in ranged.request.headers
    plain = httpx.get(f"{store.url}/alice/weights/resolve/main/README.md", headers={"range": "bytes=2-8"})
    assert plain.status_code == 206 and plain.content == b"# Weights\n"[2:9]  # regular: streamed from the bucket


def test_wrong_bytes_put_with_a_presigned_url_are_refused_deleted_and_never_referenced(store, s3):
    store.api("bob").create_repo("bob/liar")
    honest = os.urandom(300 * KiB)
    oid, forged = sha(honest), os.urandom(300 * KiB)
    with store.http("bob") as bob:
        offer = bob.post("/bob/liar.git/info/lfs/objects/batch",
                         json={"operation": "upload", "transfers": ["basic", "multipart"],
                               "objects": [{"oid": oid, "size": len(honest)}]}).json()["objects"][0]
        assert offer["actions"]["upload"]["href"].startswith(f"{s3.url}/")  # straight to the bucket
        assert httpx.put(offer["actions"]["upload"]["href"], content=forged).status_code == 200
        verify = bob.post(offer["actions"]["verify"]["href"], json={"oid": oid, "size": len(honest)})
        assert verify.status_code == 400 and "hash" in verify.json()["error"]
        assert not [key for key in s3.keys(f"{PREFIX}/") if oid in key]  # deleted, not promoted
        referenced = bob.post("/api/models/bob/liar/commit/main", headers={"content-type": "application/x-ndjson"},
                              content=ndjson(("header", {"summary": "lie"}),
                                             ("lfsFile", {"path": "w.bin", "algo": "sha256", "oid": oid,
                                                          "size": len(honest)})))
        assert referenced.status_code == 400, referenced.text
        assert bob.get("/bob/liar/resolve/main/w.bin").status_code == 404


def test_a_multipart_upload_of_wrong_bytes_is_refused_at_completion(store, s3):
    store.api("bob").create_repo("bob/parts")
    honest = os.urandom(1100 * KiB)
    oid = sha(honest)
    with store.http("bob") as bob:
        upload = _offer(bob, "bob/parts", oid, len(honest))["actions"]["upload"]
        etags = _put_parts(upload, os.urandom(len(honest)))  # five parts of other bytes
        done = bob.post(upload["href"], json={"oid": oid, "parts": etags})
        assert done.status_code == 400 and "hash" in done.json()["error"]
        assert bob.post(upload["href"], json={"oid": oid, "parts": [{"partNumber": 1, "etag": "x" * 32}]}
                        ).status_code == 400  # etags S3 does not know are refused by S3
    assert not [key for key in s3.keys(f"{PREFIX}/") if oid in key]


def test_a_retried_multipart_completion_succeeds_once_the_object_is_stored(store, s3):
    store.api("bob").create_repo("bob/retry")
    data = os.urandom(1100 * KiB)
    oid = sha(data)
    with store.http("bob") as bob:
        offer = _offer(bob, "bob/retry", oid, len(data))
        upload = offer["actions"]["upload"]
        etags = _put_parts(upload, data)
        for _ in range(2):  # the answer to the first one was lost: the client sends it again
            done = bob.post(upload["href"], json={"oid": oid, "parts": etags})
            assert done.status_code == 200, done.text
        verify = bob.post(offer["actions"]["verify"]["href"], json={"oid": oid, "size": len(data)})
        assert verify.status_code == 200, verify.text
    assert f"{PREFIX}/sha256/{oid}" in s3.keys(f"{PREFIX}/sha256/")


def test_gptstore_pull_of_a_private_package_follows_the_redirect(store, run_cli, tmp_path, monkeypatch):
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        publish_package(store, tmp_path, "alice/pulled", user="alice", private=True)
    monkeypatch.setenv("GPTSTORE_TOKEN", store.tokens["alice:read"])  # sent to the store only, not to S3
    pulled = run_cli("pull", "alice/pulled", "--store", store.url, "--allow-unsafe", "--json")
    assert pulled.exit_code == 0, pulled.output
    assert json.loads(pulled.output)[0]["digest"].startswith("sha256:")


def test_a_store_whose_bucket_is_missing_does_not_start(s3, tmp_path):
    with pytest.raises(RuntimeError, match="not usable"):
        start_store(tmp_path, [*SMALL, "--blobs", "s3://no-such-bucket/x"], env=s3.env)


def test_a_blobs_url_that_is_not_s3_is_refused_with_how_to_fix(run_cli, tmp_path):
    result = run_cli("server", "--data", str(tmp_path / "data"), "--blobs", "http://bucket/x")
    assert result.exit_code != 0 and "s3://BUCKET[/PREFIX]" in result.output


def test_presigned_urls_are_made_for_the_public_endpoint_clients_reach(s3, tmp_path, monkeypatch):
    """``--blobs-public-url``: the server talks to the bucket at AWS_ENDPOINT_URL (here 127.0.0.1, as
    a name only the replicas' network resolves would be) and hands clients presigned URLs for the
    endpoint they reach (here ``localhost``): uploads and downloads of the stock client go there."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    public = s3.url.replace("127.0.0.1", "localhost")
    server = start_store(tmp_path / "store", [*SMALL, "--blobs", s3.blobs_url("public"),
                                              "--blobs-public-url", public + "/"], env=s3.env)
    try:
        api = server.api("alice")
        api.create_repo("alice/public")
        for name, data in (("basic.bin", BASIC), ("multi.safetensors", MULTI)):
            with server.http("alice") as http:
                offer = _offer(http, "alice/public", sha(data), len(data))
            action = offer["actions"]["upload"]
            urls = [url for key, url in action.get("header", {}).items() if key.isdigit()] or [action["href"]]
            assert all(url.startswith(f"{public}/") for url in urls), urls
            api.upload_file(path_or_fileobj=data, path_in_repo=name, repo_id="alice/public")
        with server.http("alice", "read") as http:
            answer = http.head("/alice/public/resolve/main/multi.safetensors")
        assert answer.status_code == 302 and answer.headers["location"].startswith(f"{public}/")
        for name, data in (("basic.bin", BASIC), ("multi.safetensors", MULTI)):
            path = hf_hub_download("alice/public", name, endpoint=server.url, token=server.tokens["alice:read"],
                                   cache_dir=tmp_path / "cache")
            assert Path(path).read_bytes() == data
    finally:
        server.stop()


@pytest.mark.parametrize(("args", "says"), [
    (["--blobs", "s3://bucket/x", "--blobs-public-url", "ftp://minio:9000"], "http[s]://HOST[:PORT]"),
    (["--blobs", "s3://bucket/x", "--blobs-public-url", "http://minio:9000/bucket"], "http[s]://HOST[:PORT]"),
    (["--blobs-public-url", "http://minio:9000"], "needs --blobs s3://"),
])
def test_a_bad_blobs_public_url_is_refused_with_how_to_fix(run_cli, tmp_path, args, says):
    result = run_cli("server", "--data", str(tmp_path / "data"), *args)
    assert result.exit_code == 2 and says in result.output, result.output
    assert not (tmp_path / "data" / "catalog.sqlite3").exists()


# -- the S3 counterparts of test_attacks.py's disk-only multipart attacks --------------------------
def _offer(http, repo_id: str, oid: str, size: int) -> dict:
    answer = http.post(f"/{repo_id}.git/info/lfs/objects/batch",
                       json={"operation": "upload", "transfers": ["basic", "multipart"],
                             "objects": [{"oid": oid, "size": size}]})
    assert answer.status_code == 200, answer.text
    return answer.json()["objects"][0]


def _put_parts(upload: dict, data: bytes) -> list[dict]:
    etags = []
    for n in range(1, sum(key.isdigit() for key in upload["header"]) + 1):
        put = httpx.put(upload["header"][str(n)], content=data[(n - 1) * 256 * KiB:n * 256 * KiB])
        assert put.status_code == 200, put.text
        etags.append({"partNumber": n, "etag": put.headers["etag"]})
    return etags


def test_a_presigned_url_of_another_upload_cannot_claim_another_repos_blob(store, s3):
    """bob knows the digest of alice's private file and holds the presigned URLs of an upload of
    hers still in flight: putting bytes through them fills her staging object, never his, and
    nothing lets his repo reference her blob."""
    alice = store.api("alice")
    alice.create_repo("alice/vault", private=True)
    secret = os.urandom(300 * KiB)
    alice.upload_file(path_or_fileobj=secret, path_in_repo="secret.bin", repo_id="alice/vault")
    store.api("bob").create_repo("bob/heist")
    inflight = os.urandom(300 * KiB)
    with store.http("alice") as alice_http, store.http("bob") as bob:
        hers = _offer(alice_http, "alice/vault", sha(inflight), len(inflight))["actions"]
        # knowing a stored digest does not skip bob's upload, and verifying it without one fails
        known = _offer(bob, "bob/heist", sha(secret), len(secret))
        assert "upload" in known["actions"], "knowing a digest must not skip the upload"
        assert bob.post(known["actions"]["verify"]["href"], json={"oid": sha(secret), "size": len(secret)}
                        ).status_code in (400, 404)
        # bob's bytes through alice's presigned URL land in her staging key, not his
        mine = _offer(bob, "bob/heist", sha(inflight), len(inflight))["actions"]
        assert httpx.put(hers["upload"]["href"], content=inflight).status_code == 200
        assert bob.post(mine["verify"]["href"], json={"oid": sha(inflight), "size": len(inflight)}
                        ).status_code == 404
        for oid, size in ((sha(secret), len(secret)), (sha(inflight), len(inflight))):
            stolen = bob.post("/api/models/bob/heist/commit/main", headers={"content-type": "application/x-ndjson"},
                              content=ndjson(("header", {"summary": "steal"}),
                                             ("lfsFile", {"path": "x.bin", "algo": "sha256", "oid": oid, "size": size})))
            assert stolen.status_code == 400, stolen.text
        assert bob.get("/bob/heist/resolve/main/x.bin").status_code == 404
        # alice's upload is hers to finish
        assert alice_http.post(hers["verify"]["href"], json={"oid": sha(inflight), "size": len(inflight)}
                               ).status_code == 200


def test_etags_of_another_upload_cannot_complete_this_one(store, s3):
    """A client cannot complete a multipart upload it did not start: the completion URL is signed
    for one UploadId (swapping in another's is 403), and S3 refuses part etags of another upload."""
    store.api("alice").create_repo("alice/inflight", private=True)
    store.api("bob").create_repo("bob/copycat")
    data = os.urandom(1100 * KiB)
    oid = sha(data)
    with store.http("alice") as alice, store.http("bob") as bob:
        hers = _offer(alice, "alice/inflight", oid, len(data))["actions"]["upload"]
        etags = _put_parts(hers, data)
        mine = _offer(bob, "bob/copycat", oid, len(data))["actions"]["upload"]
        her_upload_id = dict(httpx.URL(hers["href"]).params)["upload_id"]
        my_upload_id = dict(httpx.URL(mine["href"]).params)["upload_id"]
        assert her_upload_id != my_upload_id
        swapped = mine["href"].replace(my_upload_id, her_upload_id)
        assert bob.post(swapped, json={"oid": oid, "parts": etags}).status_code == 403
        refused = bob.post(mine["href"], json={"oid": oid, "parts": etags})  # her etags, his upload
        assert refused.status_code == 400 and "bucket" in refused.json()["error"], refused.text
        stolen = bob.post("/api/models/bob/copycat/commit/main", headers={"content-type": "application/x-ndjson"},
                          content=ndjson(("header", {"summary": "steal"}),
                                         ("lfsFile", {"path": "x.bin", "algo": "sha256", "oid": oid, "size": len(data)})))
        assert stolen.status_code == 400, stolen.text
        done = alice.post(hers["href"], json={"oid": oid, "parts": etags})  # hers still completes
        assert done.status_code == 200, done.text
    assert f"{PREFIX}/sha256/{oid}" in s3.keys(f"{PREFIX}/sha256/")


@pytest.mark.parametrize("when", ["before the read-back", "before the copy"])
def test_bytes_swapped_into_the_staging_key_while_it_is_verified_are_never_promoted(s3, monkeypatch, when):
    """The presigned PUT stays valid for its whole lifetime, so a client can put other bytes into
    its staging key while the server verifies the first ones: every read and the copy are tied to
    the ETag the server checked, so the swapped bytes are refused, not copied to ``sha256/<oid>``.
    The verification reads in several chunks here (READ_CHUNK made small) with back-pressure."""
    from gptstore.errors import DigestMismatch
    from gptstore.server import objectstore

    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(objectstore, "READ_CHUNK", 64 * KiB)
    monkeypatch.setattr(objectstore, "READ_AHEAD", 2)
    honest, forged = os.urandom(300 * KiB), os.urandom(300 * KiB)
    oid = sha(honest)

    class SwapWhileVerifying(objectstore.S3Blobs):
        def swap(self) -> None:
            assert httpx.put(self.presigned_put(oid, "mallory/race"), content=forged).status_code == 200

        def _hash(self, key, size, etag):
            if when == "before the read-back":
                self.swap()
            return super()._hash(key, size, etag)

        def _copy_verified(self, key, oid, size, etag):
            if when == "before the copy":
                self.swap()
            return super()._copy_verified(key, oid, size, etag)

    blobs = SwapWhileVerifying(s3.blobs_url("race"))
    assert httpx.put(blobs.presigned_put(oid, "mallory/race"), content=honest).status_code == 200
    with pytest.raises(DigestMismatch, match="changed while it was verified"):
        blobs.promote(oid, "mallory/race", len(honest))
    assert not blobs.has(oid) and not blobs.staged(oid, "mallory/race")
    # the honest upload alone is verified in several chunks and promoted
    plain = objectstore.S3Blobs(s3.blobs_url("race"))
    assert httpx.put(plain.presigned_put(oid, "alice/fair"), content=honest).status_code == 200
    plain.promote(oid, "alice/fair", len(honest))
    assert plain.read_bytes(oid) == honest and not plain.staged(oid, "alice/fair")
