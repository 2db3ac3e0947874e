"""Tokens, namespaces and visibility: each caller gets what the Hub would answer."""

from __future__ import annotations

import hashlib
import json

import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

INVALID = "Invalid credentials in Authorization header"


@pytest.fixture(scope="module")
def repos(store) -> dict[str, str]:
    """alice/open (public), alice/hidden (private), acme/team (private org repo): name -> head commit."""
    api = store.api("alice")
    heads = {}
    for repo, private in (("alice/open", False), ("alice/hidden", True), ("acme/team", True)):
        api.create_repo(repo, private=private)
        heads[repo] = api.upload_file(path_or_fileobj=f"weights of {repo}".encode(), path_in_repo="w.txt",
                                      repo_id=repo).oid
    return heads


def status_of(call) -> int:
    with pytest.raises(HfHubHTTPError) as err:
        call()
    return err.value.response.status_code


def test_anonymous_reads_public_but_cannot_write(store, repos, hf_cache):
    anonymous = store.api(None)
    assert anonymous.model_info("alice/open").sha == repos["alice/open"]
    path = hf_hub_download("alice/open", "w.txt", endpoint=store.url, token=False, cache_dir=hf_cache)
    assert open(path, "rb").read() == b"weights of alice/open"
    assert status_of(lambda: anonymous.create_repo("alice/anon")) == 401
    assert status_of(lambda: anonymous.upload_file(path_or_fileobj=b"x", path_in_repo="x",
                                                   repo_id="alice/open")) == 401
    with store.http() as http:
        assert http.get("/api/whoami-v2").status_code == 401
    assert store.api("alice").model_info("alice/open").sha == repos["alice/open"]


def test_invalid_and_revoked_tokens_are_401_invalid_credentials(store, repos):
    with store.http() as http:
        for path in ("/api/models/alice/open", "/alice/open/resolve/main/w.txt", "/api/whoami-v2"):
            response = http.get(path, headers={"authorization": "Bearer gst_not-a-real-token"})
            assert response.status_code == 401 and response.headers["x-error-message"] == INVALID
    token = store.admin("token", "create", "bob", "--scope", "read")
    assert HfApi(endpoint=store.url, token=token).whoami()["name"] == "bob"
    store.admin("token", "revoke", token)
    with pytest.raises(HfHubHTTPError, match="Invalid user token"):
        HfApi(endpoint=store.url, token=token).whoami()


def test_read_token_cannot_write(store, repos):
    reader = store.api("alice", "read")
    assert status_of(lambda: reader.create_repo("alice/by-reader")) == 403
    assert status_of(lambda: reader.upload_file(path_or_fileobj=b"x", path_in_repo="x",
                                                repo_id="alice/open")) == 403
    assert status_of(lambda: reader.create_tag("alice/open", tag="nope")) == 403
    assert status_of(lambda: reader.delete_repo("alice/open")) == 403
    writer = store.api("alice")
    assert not writer.repo_exists("alice/by-reader")
    assert writer.model_info("alice/open").sha == repos["alice/open"]
    assert [t.name for t in writer.list_repo_refs("alice/open").tags] == []


def test_other_users_cannot_write_to_a_namespace(store, repos):
    bob = store.api("bob")
    assert status_of(lambda: bob.create_repo("alice/by-bob")) == 403
    assert status_of(lambda: bob.create_repo("acme/by-bob")) == 403
    assert status_of(lambda: bob.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="alice/open")) == 403
    assert status_of(lambda: bob.delete_repo("alice/open")) == 403
    assert status_of(lambda: bob.create_branch("alice/open", branch="bobs")) == 403
    assert store.api("alice").model_info("alice/open").sha == repos["alice/open"]
    carol = store.api("carol")  # an acme member
    assert carol.upload_file(path_or_fileobj=b"v2", path_in_repo="w.txt", repo_id="acme/team").oid


def test_private_repos_are_not_found_for_outsiders(store, repos, hf_cache):
    for outsider in (store.api(None), store.api("bob")):
        for repo in ("alice/hidden", "acme/team"):
            with pytest.raises(RepositoryNotFoundError):
                outsider.model_info(repo)
            assert not outsider.repo_exists(repo)
        listed = [m.id for author in ("alice", "acme") for m in outsider.list_models(author=author)]
        assert "alice/hidden" not in listed and "acme/team" not in listed
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/hidden", "w.txt", endpoint=store.url, token=store.tokens["bob:write"],
                        cache_dir=hf_cache)
    with store.http("bob") as http:
        for method, path in [("HEAD", "/alice/hidden/resolve/main/w.txt"),
                             ("GET", "/api/models/alice/hidden/tree/main"),
                             ("GET", "/api/models/alice/hidden/refs"),
                             ("POST", "/alice/hidden.git/info/lfs/objects/batch")]:
            response = http.request(method, path, json={"operation": "upload", "objects": []})
            assert response.status_code == 404 and response.headers["x-error-code"] == "RepoNotFound", path
    assert status_of(lambda: store.api("bob").delete_repo("alice/hidden")) == 404
    alice_reader = store.api("alice", "read")
    assert "alice/hidden" in [m.id for m in alice_reader.list_models(author="alice")]
    assert alice_reader.model_info("alice/hidden").private
    assert store.api("carol").model_info("acme/team").private  # org member sees the org's private repo
    path = hf_hub_download("acme/team", "w.txt", endpoint=store.url, token=store.tokens["carol:write"],
                           cache_dir=hf_cache)
    assert open(path, "rb").read() in (b"weights of acme/team", b"v2")


def test_visibility_can_be_changed_by_the_owner(store, repos):
    alice = store.api("alice")
    alice.create_repo("alice/flip")
    assert store.api(None).repo_exists("alice/flip")
    alice.update_repo_settings("alice/flip", private=True)
    assert not store.api(None).repo_exists("alice/flip")
    assert status_of(lambda: store.api("bob").update_repo_settings("alice/flip", private=False)) == 404


def test_lfs_upload_urls_must_be_signed(store, repos):
    store.require_disk("looks for the blob in DATA/blobs (S3's presigned URLs are signed by S3: "
                       "test_s3_blobs.py::test_a_presigned_url_of_another_upload_cannot_claim_another_repos_blob)")
    data = b"signed upload" * 30_000
    oid = hashlib.sha256(data).hexdigest()
    with store.http("alice") as http:
        batch = http.post("/alice/open.git/info/lfs/objects/batch",
                          json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]}).json()
    href = batch["objects"][0]["actions"]["upload"]["href"]
    with store.http() as anonymous:
        unsigned = href.split("?")[0]
        assert anonymous.put(unsigned, content=data).status_code == 403
        tampered = href.replace(f"size={len(data)}", f"size={len(data) + 1}")
        assert anonymous.put(tampered, content=data + b"!").status_code == 403
        assert not (store.data / "blobs" / "sha256" / oid).exists()
        assert anonymous.put(href, content=data).status_code == 200  # no auth header, as the client sends it
    assert (store.data / "blobs" / "sha256" / oid).exists()


def test_knowing_a_digest_does_not_grant_private_bytes(store, repos):
    secret = b"weights of alice/hidden"
    oid = hashlib.sha256(secret).hexdigest()
    store.api("bob").create_repo("bob/thief")
    with store.http("bob") as http:
        batch = http.post("/bob/thief.git/info/lfs/objects/batch",
                          json={"operation": "upload", "objects": [{"oid": oid, "size": len(secret)}]}).json()
        assert "actions" in batch["objects"][0]  # bob must upload the bytes himself
        line = {"key": "lfsFile", "value": {"path": "stolen.txt", "algo": "sha256", "oid": oid, "size": len(secret)}}
        body = json.dumps({"key": "header", "value": {"summary": "steal"}}) + "\n" + json.dumps(line) + "\n"
        response = http.post("/api/models/bob/thief/commit/main", content=body.encode(),
                             headers={"content-type": "application/x-ndjson"})
        assert response.status_code == 400 and "not uploaded" in response.json()["error"]
        verify = http.post("/bob/thief.git/info/lfs/objects/verify", json={"oid": oid, "size": len(secret)})
        assert verify.status_code == 404
    assert store.api("bob").list_repo_files("bob/thief") == [".gitattributes"]
    with store.http("alice") as http:  # alice may reuse her own object in another of her repos
        store.api("alice").create_repo("alice/reuse")
        batch = http.post("/alice/reuse.git/info/lfs/objects/batch",
                          json={"operation": "upload", "objects": [{"oid": oid, "size": len(secret)}]}).json()
        assert "actions" not in batch["objects"][0]
