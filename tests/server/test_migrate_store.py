"""Moving a store: ``gptstore server migrate --from DATA --to-catalog URL --to-blobs URL``.

A real store on SQLite + disk (users, tokens, an org, repos with regular and LFS files, a tag, a
branch, a moved repo's redirect, a review, a gated repo, a gptstore package) is moved to PostgreSQL
+ S3 (moto), and a server started on the target serves all of it to the stock client and to
`gptstore pull`. Then: pushes to the source are brought over by a re-run (only what is new is
copied, nothing is duplicated, a deleted branch goes too), a re-run with nothing new copies nothing,
a corrupt source blob fails the run naming it, and a target holding another store is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd

from gptstore.testing import (SMALL, StoreServer, admin, postgres_server, publish_package, s3_blobs_options,
                              start_store)


@pytest.fixture(scope="module")
def backend() -> str:
    """The source is the embedded default (SQLite + disk); the target is chosen per test."""
    return "sqlite+disk"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory):
    from huggingface_hub import constants

    tmp = tmp_path_factory.mktemp("source")
    server = start_store(tmp, backend="sqlite+disk")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        alice = server.api("alice")
        alice.create_repo("alice/model")
        alice.create_commit("alice/model", [CommitOperationAdd("README.md", b"---\nlicense: mit\n---\n# Model\n"),
                                             CommitOperationAdd("weights.bin", os.urandom(300 * 1024))],
                            commit_message="first")
        alice.create_tag("alice/model", tag="v1")
        alice.create_branch("alice/model", branch="dev")
        alice.upload_file(path_or_fileobj=b"dev only", path_in_repo="dev.txt", repo_id="alice/model", revision="dev")
        alice.update_repo_settings("alice/model", gated="auto")
        alice.create_repo("alice/mv-old", private=True)
        alice.upload_file(path_or_fileobj=b"moved bytes", path_in_repo="a.txt", repo_id="alice/mv-old")
        alice.move_repo("alice/mv-old", "acme/moved")
        publish_package(server, tmp, "alice/pkg", user="alice", readme="# Pkg\nA helpful package.\n")
        review = server.http("bob").put("/api/gptstore/models/alice/pkg/reviews", json={"stars": 4, "text": "good"})
        assert review.status_code == 201, review.text
    yield server
    server.stop()


@pytest.fixture(scope="module")
def target():
    """A fresh PostgreSQL database and a fresh prefix in the session's moto bucket: (catalog, blobs, env)."""
    catalog = postgres_server().create_database()
    args, env = s3_blobs_options()
    return catalog, args[1], env


def migrate(run_cli, source: StoreServer, target, *extra: str):
    catalog, blobs, env = target
    return run_cli("server", "migrate", "--from", str(source.data), "--to-catalog", catalog, "--to-blobs", blobs,
                   "--json", *extra, env=env)


def summary(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def serve(source: StoreServer, target, root: Path) -> StoreServer:
    catalog, blobs, env = target
    server = StoreServer(root / "data", root / "server.log", [*SMALL, "--blobs", blobs], env=env, catalog=catalog,
                         tokens=dict(source.tokens))
    server.start()
    return server


def download(server: StoreServer, repo_id: str, filename: str, cache: Path, revision: str | None = None,
             user: str = "alice") -> bytes:
    path = server.api(user).hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache)
    return Path(path).read_bytes()


def test_a_store_moved_to_postgresql_and_s3_serves_everything(source, target, run_cli, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    first = summary(migrate(run_cli, source, target))
    assert first["tables"]["repos"] == {"rows": 3, "new": 3, "removed": 0}
    assert first["tables"]["tokens"]["new"] == 4 and first["tables"]["reviews"]["new"] == 1
    assert first["tables"]["repo_redirects"]["new"] == 1 and first["tables"]["repo_gating"]["new"] == 1
    assert first["blobs_copied"] > 0 and first["bytes_copied"] > 300 * 1024
    assert first["blobs_verified"] == first["blobs_copied"]

    moved = serve(source, target, tmp_path / "target")
    try:
        for repo_id, filename, revision in [("alice/model", "weights.bin", None), ("alice/model", "README.md", "v1"),
                                            ("alice/model", "dev.txt", "dev"), ("acme/moved", "a.txt", None)]:
            assert download(moved, repo_id, filename, tmp_path / "new", revision) == \
                download(source, repo_id, filename, tmp_path / "old", revision), (repo_id, filename)
        assert moved.http("alice").get("/alice/mv-old/resolve/main/a.txt", follow_redirects=True).text == "moved bytes"
        assert moved.http("bob").get("/acme/moved/resolve/main/a.txt").status_code == 404  # private stays private
        assert moved.api("alice").whoami()["name"] == "alice"  # the source's tokens work on the target
        assert moved.api("alice").model_info("alice/model").gated == "auto"
        refs = moved.api("alice").list_repo_refs("alice/model")
        assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1"]
        assert "alice/pkg" in [m.id for m in moved.api(None).list_models(search="pkg")]
        assert moved.http().get("/api/gptstore/models/alice/pkg/reviews").json()["rating"] == {"average": 4.0, "count": 1}
        created = moved.api("bob").create_repo("bob/new-on-target")  # ids continue past the copied ones
        assert created.repo_id == "bob/new-on-target"
        monkeypatch.setenv("GPTSTORE_TOKEN", moved.tokens["alice:read"])
        pulled = run_cli("pull", "alice/pkg", "--store", moved.url, "--allow-unsafe", "--json")
        assert pulled.exit_code == 0, pulled.output
        assert json.loads(pulled.output)[0]["digest"].startswith("sha256:")
        moved.api("bob").delete_repo("bob/new-on-target")  # the target took no write the source lacks
    finally:
        moved.stop()


def test_a_re_run_catches_up_with_new_pushes_and_copies_nothing_twice(source, target, run_cli, tmp_path,
                                                                     monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    again = summary(migrate(run_cli, source, target))
    changed = {name: t for name, t in again["tables"].items() if t["new"] or t.get("removed")}
    assert again["blobs_copied"] == 0 and not changed, changed
    alice = source.api("alice")
    alice.upload_file(path_or_fileobj=os.urandom(400 * 1024), path_in_repo="more.bin", repo_id="alice/model")
    alice.create_repo("alice/later")
    alice.upload_file(path_or_fileobj=b"later", path_in_repo="later.txt", repo_id="alice/later")
    alice.delete_branch("alice/model", branch="dev")
    caught_up = summary(migrate(run_cli, source, target, "--verify-all"))
    assert caught_up["tables"]["repos"]["new"] == 1
    assert caught_up["tables"]["commits"]["new"] == 3  # the new repo's first commit and 2 pushes
    assert caught_up["tables"]["refs"]["removed"] == 1  # the deleted branch
    assert caught_up["blobs_copied"] == 2 and caught_up["bytes_copied"] == 400 * 1024 + len(b"later")
    assert caught_up["blobs_verified"] == caught_up["blobs_skipped"] + caught_up["blobs_copied"]
    moved = serve(source, target, tmp_path / "target")
    try:
        assert download(moved, "alice/model", "more.bin", tmp_path / "new") == \
            download(source, "alice/model", "more.bin", tmp_path / "old")
        assert moved.http("alice").get("/alice/later/resolve/main/later.txt").text == "later"
        assert {b.name for b in moved.api("alice").list_repo_refs("alice/model").branches} == {"main"}
        files = moved.api("alice").list_repo_files("alice/model")
        assert sorted(files) == sorted(set(files))  # nothing duplicated
    finally:
        moved.stop()
    assert summary(migrate(run_cli, source, target))["blobs_copied"] == 0


def test_a_corrupt_source_blob_fails_the_migration_naming_it(source, target, run_cli, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    data = os.urandom(260 * 1024)
    source.api("alice").upload_file(path_or_fileobj=data, path_in_repo="bad.bin", repo_id="alice/model")
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    blob = source.data / "blobs" / "sha256" / sha
    blob.chmod(0o644)
    blob.write_bytes(b"X" + data[1:])
    failed = migrate(run_cli, source, target)
    assert failed.exit_code != 0 and sha in failed.output and "corrupt" in failed.output, failed.output
    catalog, blobs, env = target
    from gptstore.server.objectstore import S3Blobs

    with monkeypatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert not S3Blobs(blobs).has(sha)  # never stored as if good
    blob.write_bytes(data)  # restored: the next run brings it over
    assert summary(migrate(run_cli, source, target))["blobs_copied"] == 1


def test_a_target_holding_another_store_is_refused(source, target, run_cli, tmp_path):
    other = tmp_path / "other"
    admin(other, "user", "add", "zed")
    catalog, blobs, env = target
    result = run_cli("server", "migrate", "--from", str(other), "--to-catalog", catalog, "--to-blobs", blobs, env=env)
    assert result.exit_code != 0 and "the target catalog has repo" in result.output, result.output
    itself = run_cli("server", "migrate", "--from", str(source.data), "--to-catalog",
                     f"sqlite:///{source.data / 'catalog.sqlite3'}", "--to-blobs", str(tmp_path / "x"))
    assert itself.exit_code != 0 and "the source's own catalog" in itself.output


def test_a_target_whose_repo_ids_name_other_repos_is_refused(target, run_cli, tmp_path):
    other = start_store(tmp_path, backend="sqlite+disk")
    try:
        other.api("bob").create_repo("bob/other")  # repo id 1 here; alice/model's id 1 in the target
    finally:
        other.stop()
    catalog, blobs, env = target
    result = run_cli("server", "migrate", "--from", str(other.data), "--to-catalog", catalog, "--to-blobs", blobs,
                     env=env)
    assert result.exit_code != 0 and "holds a different store: repo id 1 is alice/model there, bob/other in " \
        "the source" in result.output, result.output


def test_a_store_moves_to_another_sqlite_catalog_and_data_directory(source, run_cli, tmp_path):
    new = tmp_path / "new"
    moved_summary = summary(run_cli("server", "migrate", "--from", str(source.data), "--to-catalog",
                                    f"sqlite:///{new / 'catalog.sqlite3'}", "--to-blobs", str(new), "--json"))
    assert moved_summary["tables"]["repos"]["new"] == moved_summary["tables"]["repos"]["rows"]
    moved = StoreServer(new, tmp_path / "server.log", list(SMALL), tokens=dict(source.tokens))
    moved.start()
    try:
        assert moved.http("alice").get("/alice/model/resolve/main/README.md").text == \
            source.http("alice").get("/alice/model/resolve/main/README.md").text
        assert "alice/pkg" in [m.id for m in moved.api(None).list_models(search="pkg")]
    finally:
        moved.stop()
