"""One version, one content: the version tag is created with the commit that brings the manifest.

Two providers racing to push different contents of ``alice/race:1.0.0`` used to leave tag
``v1.0.0`` on one content and ``main`` on the other (4 of 6 rounds): the commit and the tag were
two requests. Now a commit to main that brings ``gptstore.json`` creates ``v<version>`` in the same
transaction, and a commit that would publish a version again with other content gets 409; so one
push wins whole and the other fails clearly (412 with a stale ``parent_commit``, 409 without).
"""

from __future__ import annotations

import hashlib
import threading

import pytest
from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import HfHubHTTPError

from gptstore import manifest as m
from gptstore.manifest import MANIFEST_FILE

ROUNDS = 6


def package(repo: str, payload: bytes, version: str = "1.0.0") -> tuple[list[CommitOperationAdd], str]:
    """Commit operations for a one-file package of ``repo`` at ``version``, and its manifest digest."""
    namespace, name = repo.split("/")
    manifest = m.validate({
        "namespace": namespace, "name": name, "version": version,
        "format": {"adapter": "transformers", "architecture": "GPT2LMHeadModel", "parameters": 1,
                   "context_length": 8, "dtype": "float32"},
        "files": [{"path": "model.bin", "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}],
        "created_at": "2026-01-02T03:04:05Z",
    })
    ops = [CommitOperationAdd("model.bin", payload), CommitOperationAdd(MANIFEST_FILE, m.dumps(manifest))]
    return ops, manifest.digest


def published_digest(store, repo: str, revision: str) -> str:
    with store.http("alice") as http:
        response = http.get(f"/{repo}/resolve/{revision}/{MANIFEST_FILE}")
    assert response.status_code == 200, response.text
    return m.parse_bytes(response.content).digest


def tags(store, repo: str) -> dict[str, str]:
    return {t.name: t.target_commit for t in store.api("alice").list_repo_refs(repo).tags}


def status(error: HfHubHTTPError) -> int:
    return error.response.status_code


def test_a_commit_bringing_a_manifest_creates_its_version_tag(store):
    api = store.api("alice")
    api.create_repo("alice/tagged")
    ops, digest = package("alice/tagged", b"weights")
    info = api.create_commit("alice/tagged", ops, commit_message="1.0.0")
    assert tags(store, "alice/tagged") == {"v1.0.0": info.oid}
    assert published_digest(store, "alice/tagged", "v1.0.0") == digest
    # the Hub's answer to tagging again; a client pushing the tag itself takes it as "already there"
    with pytest.raises(HfHubHTTPError) as err:
        api.create_tag("alice/tagged", tag="v1.0.0", revision=info.oid)
    assert status(err.value) == 409

    # the same manifest again (other bytes, same digest) and a README edit are fine; the tag stays
    same = m.parse_bytes(package("alice/tagged", b"weights")[0][1].path_or_fileobj).canonical_json()
    api.create_commit("alice/tagged", [CommitOperationAdd(MANIFEST_FILE, same)], commit_message="compact manifest")
    readme = api.upload_file(path_or_fileobj=b"# tagged\n", path_in_repo="README.md", repo_id="alice/tagged")
    assert tags(store, "alice/tagged") == {"v1.0.0": info.oid}
    # a new version gets its own tag
    newer = api.create_commit("alice/tagged", package("alice/tagged", b"better", "1.1.0")[0], commit_message="1.1.0",
                              parent_commit=readme.oid)
    assert tags(store, "alice/tagged") == {"v1.0.0": info.oid, "v1.1.0": newer.oid}


def test_publishing_a_version_again_with_other_content_is_409_and_changes_nothing(store):
    api = store.api("alice")
    api.create_repo("alice/frozen")
    ops, digest = package("alice/frozen", b"first")
    first = api.create_commit("alice/frozen", ops, commit_message="1.0.0")

    with pytest.raises(HfHubHTTPError) as err:  # no parent_commit: the version check alone refuses it
        api.create_commit("alice/frozen", package("alice/frozen", b"second")[0], commit_message="other 1.0.0")
    assert status(err.value) == 409
    assert "alice/frozen:1.0.0 is already published with other content; bump the version" in str(err.value)
    assert api.model_info("alice/frozen").sha == first.oid

    # main's manifest holds the version even when its tag was deleted
    api.delete_tag("alice/frozen", tag="v1.0.0")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit("alice/frozen", package("alice/frozen", b"third")[0], commit_message="other 1.0.0")
    assert status(err.value) == 409
    # and an old version's tag keeps it after main moved on
    api.create_tag("alice/frozen", tag="v1.0.0", revision=first.oid)
    api.create_commit("alice/frozen", package("alice/frozen", b"next", "1.1.0")[0], commit_message="1.1.0")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit("alice/frozen", package("alice/frozen", b"fourth")[0], commit_message="other 1.0.0")
    assert status(err.value) == 409
    assert published_digest(store, "alice/frozen", "v1.0.0") == digest
    assert published_digest(store, "alice/frozen", "main") == package("alice/frozen", b"next", "1.1.0")[1]


def push(store, repo: str, payload: bytes, parent: str | None, start: threading.Barrier) -> dict:
    """What one provider does: commit (on top of ``parent`` when given), then tag its commit."""
    api = store.api("alice")
    ops, digest = package(repo, payload)
    start.wait()
    try:
        info = api.create_commit(repo, ops, commit_message=f"push {payload!r}", parent_commit=parent)
    except HfHubHTTPError as exc:
        return {"refused": status(exc), "message": str(exc)}
    try:
        api.create_tag(repo, tag="v1.0.0", revision=info.oid)
    except HfHubHTTPError as exc:  # 409 is fine when the tag is already on this very commit
        if status(exc) != 409 or tags(store, repo).get("v1.0.0") != info.oid:
            return {"refused": status(exc), "message": str(exc), "committed": info.oid}
    return {"commit": info.oid, "digest": digest}


@pytest.mark.parametrize("with_parent", [True, False], ids=["parent_commit", "no_parent_commit"])
def test_racing_pushes_of_one_version_leave_one_whole_winner(store, with_parent):
    api = store.api("alice")
    for round_ in range(ROUNDS // 2):
        repo = f"alice/race-{'p' if with_parent else 'n'}{round_}"
        api.create_repo(repo)
        head = api.model_info(repo).sha if with_parent else None
        start = threading.Barrier(2)
        results: list[dict] = [{}, {}]

        def run(i: int, payload: bytes) -> None:
            results[i] = push(store, repo, payload, head, start)

        threads = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate([b"content A", b"content B"])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        winners = [r for r in results if "commit" in r]
        losers = [r for r in results if "refused" in r]
        assert len(winners) == 1 and len(losers) == 1, f"round {round_}: {results}"
        loser = losers[0]
        assert "committed" not in loser, f"round {round_}: the loser's commit landed: {loser}"
        if loser["refused"] == 412:
            assert "parent commit" in loser["message"] and "is not the head of main" in loser["message"]
        else:
            assert loser["refused"] == 409, loser
            assert f"{repo}:1.0.0 is already published with other content; bump the version" in loser["message"]
        winner = winners[0]
        assert tags(store, repo) == {"v1.0.0": winner["commit"]}
        assert api.model_info(repo).sha == winner["commit"]
        assert published_digest(store, repo, "v1.0.0") == published_digest(store, repo, "main") == winner["digest"]
