"""Attacks on a real ``gptstore server`` process (issue 11, server items 9, 10, 11, 14 and 15).

Two users: alice keeps a private repo with an LFS file; bob knows its digest (and the digests of
the parts of an upload alice has in flight) and tries every way to turn that knowledge into the
bytes. Then hostile inputs: LFS batches that declare absurd sizes, YAML bombs in model cards,
control characters in revisions, too many query parameters, deep JSON and repo, branch and tag
names with a trailing newline. Each must fail with a 4xx that says why, quickly, and change nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

import pytest

KiB = 1024
MiB = 1024 * KiB
SECRET = os.urandom(300 * KiB)  # above the test server's LFS threshold (256 KiB): an LFS object
SECRET_OID = hashlib.sha256(SECRET).hexdigest()
HEADER = ("header", {"summary": "attack", "description": ""})


def ndjson(*lines: tuple[str, dict]) -> bytes:
    return b"".join(json.dumps({"key": key, "value": value}).encode() + b"\n" for key, value in lines)


def lfs_file(path: str, oid: str, size: int | None = None) -> tuple[str, dict]:
    value = {"path": path, "algo": "sha256", "oid": oid}
    if size is not None:
        value["size"] = size
    return "lfsFile", value


def batch(http, repo: str, objects: list[dict], transfers=("basic", "multipart")) -> list[dict]:
    response = http.post(f"/{repo}.git/info/lfs/objects/batch",
                         json={"operation": "upload", "transfers": list(transfers), "objects": objects})
    assert response.status_code == 200, response.text
    return response.json()["objects"]


def commit(http, repo: str, *lines: tuple[str, dict]):
    return http.post(f"/api/models/{repo}/commit/main", content=ndjson(HEADER, *lines),
                     headers={"content-type": "application/x-ndjson"})


@pytest.fixture(scope="module")
def repos(store) -> None:
    from huggingface_hub import constants

    alice = store.api("alice")
    alice.create_repo("alice/secret", private=True)
    with pytest.MonkeyPatch.context() as patch:  # the module fixture runs before the autouse xet_off
        patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        alice.upload_file(path_or_fileobj=SECRET, path_in_repo="secret.bin", repo_id="alice/secret")
    alice.create_repo("alice/pub")
    alice.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id="alice/pub")
    store.api("bob").create_repo("bob/thief")


def assert_bob_cannot_read_the_secret(store) -> None:
    """Nothing bob can name gives him alice's bytes: not a commit, not a download."""
    with store.http("bob") as bob:
        stolen = commit(bob, "bob/thief", lfs_file("stolen.bin", SECRET_OID, len(SECRET)))
        assert stolen.status_code == 400, stolen.text
        download = bob.get("/bob/thief/resolve/main/stolen.bin")
        assert download.status_code == 404 and download.content != SECRET
        assert bob.get("/alice/secret/resolve/main/secret.bin").status_code == 404


# -- 9: knowing a digest never grants content -------------------------------------------------------
def test_crafted_part_etags_cannot_claim_another_users_private_blob(store, repos):
    store.require_disk("part etags naming DATA/blobs paths: disk blobs only (S3: test_s3_blobs.py::test_etags_of_another_upload_cannot_complete_this_one)")
    with store.http("bob") as bob, store.http() as anonymous:
        offer = batch(bob, "bob/thief", [{"oid": SECRET_OID, "size": len(SECRET)}])[0]
        assert "actions" in offer, "knowing a digest must not skip the upload"
        href = offer["actions"]["upload"]["href"]
        # a larger declared size gets part URLs; one uploaded part creates bob's staging folder
        fake = batch(bob, "bob/thief", [{"oid": SECRET_OID, "size": 2 * MiB}])[0]
        assert anonymous.put(fake["actions"]["upload"]["header"]["1"], content=os.urandom(256 * KiB)).status_code == 200
        blob = store.data / "blobs" / "sha256" / SECRET_OID
        for etag in [f"../../../blobs/sha256/{SECRET_OID}", f"../../../../data/blobs/sha256/{SECRET_OID}",
                     str(blob), f'"../../../blobs/sha256/{SECRET_OID}"']:
            response = bob.post(href, json={"oid": SECRET_OID, "parts": [{"partNumber": 1, "etag": etag}]})
            assert response.status_code == 400, (etag, response.text)
            assert "etag" in response.json()["error"]
        verify = bob.post("/bob/thief.git/info/lfs/objects/verify", json={"oid": SECRET_OID, "size": 1})
        assert verify.status_code == 404 and str(len(SECRET)) not in verify.text
    assert_bob_cannot_read_the_secret(store)


@pytest.mark.parametrize("etag", ["/etc/passwd", "../", "../../../../../../../../etc/passwd", "..", ".", "",
                                  "A" * 64, "0" * 63, "0" * 64 + "/x"])
def test_etags_that_are_not_this_uploads_part_ids_are_400_and_reveal_nothing(store, repos, etag):
    store.require_disk("the disk store's part ids: disk blobs only (S3 checks its own etags: test_s3_blobs.py::test_a_multipart_upload_of_wrong_bytes_is_refused_at_completion)")
    passwd = Path("/etc/passwd").read_bytes()
    with store.http("bob") as bob:
        href = batch(bob, "bob/thief", [{"oid": SECRET_OID, "size": len(SECRET)}])[0]["actions"]["upload"]["href"]
        response = bob.post(href, json={"oid": SECRET_OID, "parts": [{"partNumber": 1, "etag": etag}]})
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert "etag" in message or "part 1" in message
    for secret in (str(len(passwd)), hashlib.sha256(passwd).hexdigest()[:8], str(len(SECRET)), "passwd",
                   str(store.data)):
        assert secret not in response.text, secret


def test_part_ids_of_another_repos_upload_are_refused(store, repos):
    """bob learns the part ids of alice's upload in flight; completing with them gets him nothing."""
    store.require_disk("the disk store's part ids: disk blobs only (S3: test_s3_blobs.py::test_etags_of_another_upload_cannot_complete_this_one)")
    data = os.urandom(1280 * KiB)  # multipart: 5 parts of 256 KiB
    oid = hashlib.sha256(data).hexdigest()
    part_ids = [hashlib.sha256(data[i:i + 256 * KiB]).hexdigest() for i in range(0, len(data), 256 * KiB)]
    completion = {"oid": oid, "parts": [{"partNumber": n, "etag": e} for n, e in enumerate(part_ids, 1)]}
    with store.http("alice") as alice, store.http("bob") as bob, store.http() as anonymous:
        offer = batch(alice, "alice/secret", [{"oid": oid, "size": len(data)}])[0]["actions"]["upload"]
        for n in range(1, len(part_ids) + 1):
            put = anonymous.put(offer["header"][str(n)], content=data[(n - 1) * 256 * KiB:n * 256 * KiB])
            assert put.status_code == 200 and put.headers["etag"].strip('"') == part_ids[n - 1]
        href = batch(bob, "bob/thief", [{"oid": oid, "size": len(data)}])[0]["actions"]["upload"]["href"]
        response = bob.post(href, json=completion)
        assert response.status_code == 400, response.text
        assert commit(bob, "bob/thief", lfs_file("stolen.bin", oid, len(data))).status_code == 400
        assert bob.get("/bob/thief/resolve/main/stolen.bin").status_code == 404
        # alice's own upload is untouched and completes
        assert alice.post(offer["href"], json=completion).status_code == 200
        assert commit(alice, "alice/secret", lfs_file("big.bin", oid, len(data))).status_code == 200
        assert alice.get("/alice/secret/resolve/main/big.bin").content == data


def test_a_commit_does_not_reveal_whether_or_how_big_another_users_object_is(store, repos):
    unknown = hashlib.sha256(b"nobody uploaded this").hexdigest()
    with store.http("bob") as bob:
        for size in (None, 1):
            known = commit(bob, "bob/thief", lfs_file("x.bin", SECRET_OID, size))
            other = commit(bob, "bob/thief", lfs_file("x.bin", unknown, size))
            assert known.status_code == other.status_code == 400
            assert str(len(SECRET)) not in known.text
            assert known.json()["error"].replace(SECRET_OID[:12], "<oid>") == \
                other.json()["error"].replace(unknown[:12], "<oid>")


# -- 10: absurd declared sizes ---------------------------------------------------------------
@pytest.mark.parametrize("size,needle", [(10**18, "larger"), (50 * 1024**3 + 1, "larger"),
                                         (10_001 * 256 * KiB, "parts")])
def test_lfs_batch_with_an_absurd_size_answers_quickly_with_an_error(store, repos, size, needle):
    start = time.monotonic()
    with store.http("bob") as bob:
        response = bob.post("/bob/thief.git/info/lfs/objects/batch", timeout=10,
                            json={"operation": "upload", "transfers": ["basic", "multipart"],
                                  "objects": [{"oid": "ab" * 32, "size": size},
                                              {"oid": "cd" * 32, "size": 10}]})
    assert time.monotonic() - start < 5
    if response.status_code == 200:
        first, second = response.json()["objects"]
        assert 400 <= first["error"]["code"] < 500 and needle in first["error"]["message"]
        assert "actions" not in first and "actions" in second  # the sane object is still served
    else:
        assert 400 <= response.status_code < 500 and needle in response.json()["error"]


def test_max_object_size_is_configurable(tmp_path):
    from gptstore.testing import SMALL, start_store

    server = start_store(tmp_path, [*SMALL, "--max-object-size", "1MiB"])
    try:
        with server.http("bob") as bob:
            bob.post("/api/repos/create", json={"name": "capped", "organization": "bob"}).raise_for_status()
            big, small = batch(bob, "bob/capped", [{"oid": "ab" * 32, "size": MiB + 1},
                                                   {"oid": "cd" * 32, "size": MiB}])
    finally:
        server.stop()
    assert big["error"]["code"] == 413 and f"limit of {MiB} bytes" in big["error"]["message"]
    assert "actions" in small


# -- 11: YAML bombs in model cards -------------------------------------------------------------
def _bomb(levels: int = 5) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels + 1):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    return "---\n" + "\n".join(lines) + "\n---\n# bomb\n"


def test_a_readme_with_a_yaml_bomb_is_refused_and_listings_stay_fast(store, repos):
    bob = store.api("bob")
    big = "---\n" + "".join(f"k{n}: {'v' * 60}\n" for n in range(1200)) + "---\n"
    for readme, needle in [(_bomb(), "anchor"), ("---\nx: " + "[" * 50 + "]" * 50 + "\n---\n", "nested"),
                           (big, "64 KiB")]:
        # the stock client asks the store's validate-yaml first and stops with the store's reason
        with pytest.raises(ValueError, match=needle):
            bob.upload_file(path_or_fileobj=readme.encode(), path_in_repo="README.md", repo_id="bob/thief")
        # a client that skips that check is refused by the commit itself
        with store.http("bob") as http:
            file = ("file", {"path": "README.md", "content": base64.b64encode(readme.encode()).decode(),
                             "encoding": "base64"})
            response = commit(http, "bob/thief", file)
        assert response.status_code == 400 and needle in response.json()["error"], response.text
        assert "README.md" in response.json()["error"]
    assert "README.md" not in [s.rfilename for s in bob.model_info("bob/thief").siblings]
    start = time.monotonic()
    listed = list(bob.list_models(full=True, cardData=True))
    assert "bob/thief" in [m.id for m in listed] and time.monotonic() - start < 2


@pytest.mark.parametrize("content,needle", [
    (_bomb(), "alias"),
    ("---\nbase: &b {license: mit}\n---\n", "anchor"),
    ("---\nx: " + "[" * 30000 + "]" * 30000 + "\n---\n", "nested"),
    ("---\nx: " + "[" * 100 + "]" * 100 + "\n---\n", "nested"),
    ("---\n" + "".join(f"{' ' * 2 * n}k{n}:\n" for n in range(60)) + "---\n", "nested"),
    ("---\n" + "k: " + "v" * 70000 + "\n---\n", "64 KiB"),
    ("---\n" + "k: v\n" * 20000, "64 KiB"),  # never closed within the limit
    ("---\nx: .nan\n---\n", "NaN"),
    ("---\nx: !!binary aGVsbG8=\n---\n", "binary"),
    ("---\nx: !!python/object:os.system ls\n---\n", "YAML"),
])
def test_validate_yaml_refuses_bombs_and_deep_nesting_quickly(store, content, needle):
    start = time.monotonic()
    with store.http() as http:
        response = http.post("/api/validate-yaml", json={"content": content}, timeout=10)
    assert time.monotonic() - start < 3
    assert response.status_code == 400, response.text
    assert needle in response.json()["errors"][0]["message"]


def test_validate_yaml_accepts_a_real_card(store):
    card = ("---\nlicense: mit\ndate: 2024-05-01\ntags: [a, b]\nmodel-index:\n- name: tiny\n  results:\n"
            "  - task: {type: text-generation}\n    metrics:\n    - {type: perplexity, value: 12.5}\n---\n# Tiny\n")
    with store.http() as http:
        response = http.post("/api/validate-yaml", json={"content": card})
    assert response.status_code == 200 and response.json()["errors"] == []


# -- 14: no 500s, no silent drops ------------------------------------------------------------------
@pytest.mark.parametrize("manifest", [
    b'{"schema_version": ' + b"9" * 5000 + b"}",
    b'{"schema_version": 1, "x": NaN}',
    b'{"schema_version": 1, "x": ' + b"[" * 100000 + b"]" * 100000 + b"}",
    b"[" * 100000,
])
def test_a_hostile_manifest_is_4xx(store, repos, manifest):
    with store.http("bob") as bob:
        file = ("file", {"path": "gptstore.json", "content": base64.b64encode(manifest).decode(),
                         "encoding": "base64"})
        response = commit(bob, "bob/thief", file)
    assert 400 <= response.status_code < 500, response.text
    assert "gptstore.json" in response.json()["error"]


def test_too_many_query_parameters_are_400(store, repos):
    with store.http() as http:
        response = http.get("/api/models", params=[("filter", f"t{n}") for n in range(1100)])
        assert response.status_code == 400 and "filter" in response.json()["error"]
        assert http.get("/api/models", params=[("filter", "gptstore")] * 3).status_code == 200


@pytest.mark.parametrize("revision", ["%00", "main%00", "main%0A", "%1B%5B31mred", "ma%0Din", "main%7F"])
def test_control_characters_in_a_revision_are_400_with_a_reason(store, repos, revision):
    with store.http("alice") as http:
        for method, url in [("GET", f"/api/models/alice/pub/revision/{revision}"),
                            ("GET", f"/api/models/alice/pub/tree/{revision}"),
                            ("GET", f"/api/models/alice/pub/commits/{revision}"),
                            ("GET", f"/alice/pub/resolve/{revision}/a.txt"),
                            ("HEAD", f"/alice/pub/resolve/{revision}/a.txt"),
                            ("DELETE", f"/api/models/alice/pub/tag/{revision}"),
                            ("DELETE", f"/api/models/alice/pub/branch/{revision}")]:
            response = http.request(method, url)
            assert response.status_code == 400, (url, response.status_code)
            assert "control character" in response.headers["x-error-message"]
            assert all(ord(c) >= 32 for c in response.headers["x-error-message"])
        commit_ = http.post(f"/api/models/alice/pub/commit/{revision}", content=ndjson(HEADER))
        assert commit_.status_code == 400


def test_control_characters_never_reach_a_header(store, repos):
    with store.http() as http:
        response = http.get("/alice/pub/resolve/main/a%00b%0D%0AX-Evil:%201")
    assert response.status_code == 404 and "x-evil" not in response.headers
    assert all(ord(c) >= 32 for value in response.headers.values() for c in value)


@pytest.mark.parametrize("url", ["/api/repos/create", "/api/validate-yaml", "/bob/thief.git/info/lfs/objects/batch",
                                 "/api/models/bob/thief/preupload/main"])
def test_deep_json_bodies_are_400(store, repos, url):
    with store.http("bob") as bob:
        for body in (b"[" * 100000, b'{"name": ' + b'{"a": ' * 50000 + b"1" + b"}" * 50000 + b"}"):
            response = bob.post(url, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400, (url, response.text)
            assert response.json().get("error") or response.json().get("errors")


# -- 15: names with trailing newlines or other whitespace --------------------------------------
@pytest.mark.parametrize("body", [{"name": "bob/evil\n"}, {"name": "evil\n", "organization": "bob"},
                                  {"name": "bob/evil "}, {"name": "bob/ev\til"}, {"name": "bob/evil\r\n"},
                                  {"name": "evil", "organization": "bob\n"}, {"name": "bob/\nevil"}])
def test_repo_ids_with_whitespace_or_control_characters_are_refused(store, repos, body):
    with store.http("bob") as bob:
        response = bob.post("/api/repos/create", json=body)
        assert response.status_code == 400, response.text
        assert "invalid repo id" in response.json()["error"]
        names = [m["id"] for m in bob.get("/api/models", params={"author": "bob"}).json()]
        assert not [n for n in names if n.strip() != n or "evil" in n]


@pytest.mark.parametrize("name", ["dev\n", "dev\r", "dev ", "de\tv", "dev\x00", "\ndev"])
def test_branch_and_tag_names_with_whitespace_or_control_characters_are_refused(store, repos, name):
    from urllib.parse import quote

    with store.http("alice") as alice:
        before = alice.get("/api/models/alice/pub/refs").json()
        branch = alice.post(f"/api/models/alice/pub/branch/{quote(name, safe='')}", json={})
        assert branch.status_code == 400 and "invalid branch name" in branch.json()["error"], branch.text
        tag = alice.post("/api/models/alice/pub/tag/main", json={"tag": name})
        assert tag.status_code == 400 and "invalid tag name" in tag.json()["error"], tag.text
        assert alice.get("/api/models/alice/pub/refs").json() == before


def test_the_server_checks_repo_ids_itself(monkeypatch):
    """Even with a lenient ``refs.check_segment`` (the old one used ``$``), the server refuses."""
    from gptstore.server import api_repos
    from gptstore.server.http import HubError

    monkeypatch.setattr(api_repos, "check_segment", lambda segment, text, what: None)

    class Caller:
        principal = None

    for namespace, name in [("bob", "evil\n"), ("bob", "evil "), ("bob", "ev\x00il"), ("bob\n", "evil")]:
        with pytest.raises(HubError) as refused:
            api_repos._target(Caller(), api_repos.RepoName(name=name, organization=namespace))
        assert refused.value.status == 400 and "invalid repo id" in refused.value.message
    assert api_repos._target(Caller(), api_repos.RepoName(name="ok", organization="bob")) == ("bob", "ok")
