"""Repo management as on the Hub, through the stock huggingface_hub client and `hf` CLI against a
real server process: move (with the old id redirecting), duplicate, `hf repos ls`, auth_check,
case-insensitive repo ids, namespace-less ids, and a catalog from before these opening."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from gptstore.server import ServerSettings
from gptstore.testing import start_store


def hf(store, user: str, *args: str, home: Path) -> subprocess.CompletedProcess:
    """The stock `hf` CLI as ``user`` (write token) against the store."""
    env = {**os.environ, "HF_ENDPOINT": store.url, "HF_TOKEN": store.tokens[f"{user}:write"], "HF_HOME": str(home),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "NO_COLOR": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "hf"), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def status_of(call) -> int:
    with pytest.raises(HfHubHTTPError) as caught:
        call()
    return caught.value.response.status_code


def test_move_renames_into_an_org_and_the_old_id_redirects(store, hf_cache):
    api = store.api("alice")
    api.create_repo("alice/mv-old", private=True)
    api.upload_file(path_or_fileobj=b"moved bytes", path_in_repo="notes.txt", repo_id="alice/mv-old")
    api.move_repo("alice/mv-old", "acme/mv-new")
    info = api.model_info("alice/mv-old")  # the old id answers with the repo under its new id
    assert info.id == "acme/mv-new" and info.private
    assert api.model_info("acme/mv-new").sha == info.sha
    assert api.repo_exists("alice/mv-old") and "notes.txt" in api.list_repo_files("alice/mv-old")
    path = hf_hub_download("alice/mv-old", "notes.txt", endpoint=store.url, token=store.tokens["alice:write"],
                           cache_dir=hf_cache)
    assert Path(path).read_bytes() == b"moved bytes"
    # carol (acme member) reads it now; bob and anonymous callers see no repo, not its new id
    assert store.api("carol").model_info("alice/mv-old").id == "acme/mv-new"
    for other in (store.api("bob"), store.api(None)):
        with pytest.raises(RepositoryNotFoundError):
            other.model_info("alice/mv-old")
    answer = store.http("bob").get("/api/models/alice/mv-old")
    assert answer.status_code == 404 and answer.headers["x-error-code"] == "RepoNotFound"
    assert "location" not in answer.headers
    # commits through the old id land in the moved repo
    api.upload_file(path_or_fileobj=b"later", path_in_repo="later.txt", repo_id="alice/mv-old")
    assert "later.txt" in api.list_repo_files("acme/mv-new")
    # a new repo may take the old id; the redirect is gone then
    api.create_repo("alice/mv-old")
    assert api.model_info("alice/mv-old").id == "alice/mv-old"
    assert "notes.txt" in api.list_repo_files("acme/mv-new")


def test_move_errors_are_the_hubs(store, tmp_path):
    alice, bob = store.api("alice"), store.api("bob")
    alice.create_repo("alice/mv-a")
    alice.create_repo("alice/mv-b")
    bob.create_repo("bob/mv-mine")
    assert status_of(lambda: alice.move_repo("alice/mv-a", "alice/MV-B")) == 409  # taken, in any case
    assert status_of(lambda: bob.move_repo("bob/mv-mine", "acme/mv-mine")) == 403  # bob is not in acme
    assert status_of(lambda: alice.move_repo("alice/mv-a", "bob/mv-a")) == 403
    assert status_of(lambda: bob.move_repo("alice/mv-a", "bob/mv-a")) == 403  # may read, not write
    assert status_of(lambda: store.api("alice", "read").move_repo("alice/mv-a", "alice/mv-c")) == 403
    assert status_of(lambda: store.api(None).move_repo("alice/mv-a", "alice/mv-c")) == 401
    with pytest.raises(RepositoryNotFoundError):
        alice.move_repo("alice/mv-nothing", "alice/mv-c")
    assert status_of(lambda: alice.move_repo("alice/mv-a", "alice/bad name")) == 400
    # the stock CLI: a rename within the namespace, and a case-only rename of the same repo
    result = hf(store, "alice", "repos", "move", "alice/mv-a", "alice/mv-renamed", home=tmp_path)
    assert result.returncode == 0, result.stderr
    alice.move_repo("alice/mv-renamed", "alice/MV-Renamed")
    assert alice.model_info("alice/mv-a").id == "alice/MV-Renamed"
    assert alice.model_info("alice/mv-renamed").id == "alice/MV-Renamed"


def test_duplicate_copies_files_history_branches_and_tags(store, hf_cache):
    alice, bob = store.api("alice"), store.api("bob")
    alice.create_repo("alice/dup-src")
    alice.upload_file(path_or_fileobj=b"v1", path_in_repo="weights.safetensors", repo_id="alice/dup-src")
    alice.create_tag("alice/dup-src", tag="v1")
    alice.create_branch("alice/dup-src", branch="dev")
    alice.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\nreadme", path_in_repo="README.md",
                      repo_id="alice/dup-src")
    url = bob.duplicate_repo("alice/dup-src", "bob/dup-copy", private=True)
    assert url.repo_id == "bob/dup-copy" and not url.files_copy_pending
    info = bob.model_info("bob/dup-copy")
    assert info.private and sorted(s.rfilename for s in info.siblings) == [
        ".gitattributes", "README.md", "weights.safetensors"]
    refs = bob.list_repo_refs("bob/dup-copy")
    assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1"]
    assert [c.title for c in bob.list_repo_commits("bob/dup-copy")] == [
        c.title for c in alice.list_repo_commits("alice/dup-src")]
    assert "README.md" not in bob.list_repo_files("bob/dup-copy", revision="v1")
    path = hf_hub_download("bob/dup-copy", "weights.safetensors", revision="dev", endpoint=store.url,
                           token=store.tokens["bob:write"], cache_dir=hf_cache)
    assert Path(path).read_bytes() == b"v1"
    with pytest.raises(RepositoryNotFoundError):  # private, as asked
        store.api(None).model_info("bob/dup-copy")
    # the copy is a repo of its own: writes to one leave the other as it was
    bob.upload_file(path_or_fileobj=b"bob's", path_in_repo="extra.txt", repo_id="bob/dup-copy")
    assert "extra.txt" not in alice.list_repo_files("alice/dup-src")
    # defaults: the source's name in the caller's namespace, the source's visibility
    alice.create_repo("alice/dup-private", private=True)
    assert alice.duplicate_repo("alice/dup-private", "acme/dup-private").repo_id == "acme/dup-private"
    assert alice.model_info("acme/dup-private").private
    assert carol_copy(store) == "carol/dup-src"
    # errors: taken (409, and exist_ok gives its URL), an unreadable source, a namespace not written
    assert status_of(lambda: bob.duplicate_repo("alice/dup-src", "bob/DUP-copy")) == 409
    assert bob.duplicate_repo("alice/dup-src", "bob/dup-copy", exist_ok=True).repo_id == "bob/dup-copy"
    with pytest.raises(RepositoryNotFoundError):
        bob.duplicate_repo("alice/dup-private", "bob/stolen")
    assert status_of(lambda: bob.duplicate_repo("alice/dup-src", "acme/dup-src")) == 403


def carol_copy(store) -> str:
    return store.api("carol").duplicate_repo("alice/dup-src").repo_id


def test_hf_repos_ls_lists_the_callers_repos_with_storage(store, tmp_path):
    api = store.api("carol")
    for name in ("ls-a", "ls-b", "ls-c", "ls-d"):  # more than one page (pages of 3)
        api.create_repo(f"carol/{name}", private=name == "ls-b")
    api.upload_file(path_or_fileobj=b"x" * 1000, path_in_repo="data.bin", repo_id="carol/ls-a")
    api.upload_file(path_or_fileobj=b"x" * 1000, path_in_repo="copy.bin", repo_id="carol/ls-a")  # one blob
    repos = {r.id: r for r in api.list_user_repos()}
    assert {"carol/ls-a", "carol/ls-b", "carol/ls-c", "carol/ls-d"} <= set(repos)
    assert all(r.startswith("carol/") for r in repos)
    assert repos["carol/ls-b"].visibility == "private" and repos["carol/ls-a"].visibility == "public"
    gitattributes = repos["carol/ls-c"].storage
    assert gitattributes > 0 and repos["carol/ls-a"].storage == gitattributes + 1000
    assert 0 < repos["carol/ls-a"].storage_percent < 100
    result = hf(store, "carol", "repos", "ls", "--format", "json", "--limit", "0", home=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = {row["id"]: row for row in json.loads(result.stdout)}
    assert listed["carol/ls-b"]["visibility"] == "private" and listed["carol/ls-a"]["type"] == "model"
    # an org's repos, for its members only
    store.api("alice").create_repo("acme/ls-org")
    assert "acme/ls-org" in {r.id for r in api.list_user_repos(namespace="acme")}
    assert status_of(lambda: list(store.api("bob").list_user_repos(namespace="acme"))) == 403
    assert status_of(lambda: list(store.api(None).list_user_repos())) == 401


def test_auth_check_maps_to_the_hubs_errors(store):
    alice = store.api("alice")
    alice.create_repo("alice/auth-private", private=True)
    alice.create_repo("alice/auth-public")
    alice.auth_check("alice/auth-private")
    alice.auth_check("alice/auth-private", write=True)
    store.api("bob").auth_check("alice/auth-public")
    store.api(None).auth_check("alice/auth-public")
    for caller in (store.api("bob"), store.api(None)):
        with pytest.raises(RepositoryNotFoundError):
            caller.auth_check("alice/auth-private")
    with pytest.raises(RepositoryNotFoundError):
        alice.auth_check("alice/auth-nothing")
    assert status_of(lambda: store.api("bob").auth_check("alice/auth-public", write=True)) == 403
    assert status_of(lambda: store.api("alice", "read").auth_check("alice/auth-public", write=True)) == 403
    assert status_of(lambda: store.api(None).auth_check("alice/auth-public", write=True)) == 401


def test_repo_ids_match_without_case(store, hf_cache):
    alice = store.api("alice")
    url = alice.create_repo("alice/Case-Poet")
    assert url.repo_id == "alice/Case-Poet"
    assert status_of(lambda: alice.create_repo("alice/case-POET")) == 409
    assert alice.create_repo("ALICE/case-poet", exist_ok=True).repo_id == "alice/Case-Poet"
    alice.upload_file(path_or_fileobj=b"one repo", path_in_repo="a.txt", repo_id="Alice/CASE-POET")
    assert alice.model_info("alice/case-poet").id == "alice/Case-Poet"
    assert "a.txt" in alice.list_repo_files("alice/Case-Poet")
    path = hf_hub_download("ALICE/case-poet", "a.txt", endpoint=store.url, token=False, cache_dir=hf_cache)
    assert Path(path).read_bytes() == b"one repo"
    assert alice.file_exists("alice/CASE-poet", "a.txt")
    # a repo created in a namespace spelt in another case lands in that namespace as it was created
    assert alice.create_repo("ACME/case-org").repo_id == "acme/case-org"
    store.api("carol").upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="Acme/Case-Org")
    alice.delete_repo("ALICE/CASE-POET")
    assert not alice.repo_exists("alice/Case-Poet")


def test_a_namespace_less_id_is_repo_not_found(store, hf_cache):
    api = store.api(None)
    assert api.repo_exists("gpt2") is False
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("gpt2")
    with pytest.raises(RepositoryNotFoundError):
        api.list_repo_refs("gpt2")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("gpt2", "config.json", endpoint=store.url, token=False, cache_dir=hf_cache)
    answer = httpx.get(f"{store.url}/api/models/gpt2/revision/main")
    assert answer.status_code == 404 and answer.headers["x-error-code"] == "RepoNotFound"
    unknown = httpx.get(f"{store.url}/api/nothing-here")  # other unknown endpoints stay what they were
    assert unknown.status_code == 404 and unknown.headers["x-error-code"] == "EntryNotFound"


def test_a_catalog_from_before_opens_with_case_twins_reachable(tmp_path):
    """A store written by an earlier gptstore (schema 2: no redirects, ids matched with case, so
    ``alice/twin`` and ``alice/TWIN`` could both exist) opens, serves both, and moves repos."""
    store = start_store(tmp_path)
    try:
        store.require_sqlite()
        api = store.api("alice")
        for name in ("twin", "other"):
            api.create_repo(f"alice/{name}")
            api.upload_file(path_or_fileobj=name.encode(), path_in_repo="who.txt", repo_id=f"alice/{name}")
    finally:
        store.stop()
    conn = sqlite3.connect(ServerSettings(data=store.data).catalog_path)
    conn.executescript("DROP TABLE repo_redirects; DROP INDEX repos_id_nocase; PRAGMA user_version = 2;"
                       "UPDATE repos SET name = 'TWIN' WHERE name = 'other';")
    conn.close()
    store.start()
    try:
        api = store.api("alice")
        assert api.model_info("alice/twin").id == "alice/twin"
        assert api.model_info("alice/TWIN").id == "alice/TWIN"
        download = hf_hub_download("alice/TWIN", "who.txt", endpoint=store.url, token=False,
                                   cache_dir=tmp_path / "hf")
        assert Path(download).read_bytes() == b"other"
        api.move_repo("alice/TWIN", "acme/twin")
        assert api.model_info("acme/twin").id == "acme/twin"
        assert api.model_info("alice/twin").id == "alice/twin"  # the exact spelling wins over the redirect
    finally:
        store.stop()
