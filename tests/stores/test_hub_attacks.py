"""Issue 11, items 4, 5 and 13 (client half) against a real `gptstore server`: a re-pointed version
tag (rollback), remote code declared in config.json, and racing pushes of one version."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from gptstore import signing
from gptstore.errors import ConflictError, ManifestError, UnsafeContentError
from gptstore.library import Library
from gptstore.manifest import dumps, load_manifest
from gptstore.packaging import package
from gptstore.pulling import pull
from gptstore.stores import get_store
from gptstore.trust import TrustStore


@pytest.fixture(autouse=True)
def _alice(store_server, monkeypatch):
    monkeypatch.setenv("GPTSTORE_TOKEN", store_server.tokens["alice:write"])


@pytest.fixture(autouse=True)
def _stock_clients_without_xet(monkeypatch):
    """The attacker and the other push here are stock huggingface_hub clients (``store_server.api()``):
    like any such client, they need Xet off to upload to a gptstore server (gptstore's own client
    switches it off for its own uploads only, see tests/stores/test_hub.py)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


def publish(source, tmp_path, name, version, *, sign=None, **fields):
    """A package published in its own library (so two contents of one version can coexist)."""
    target = tmp_path / f"{name.replace('/', '_')}-{version}-{fields.get('description', '')[:8]}"
    shutil.copytree(source, target)
    package(target, name=name, version=version, **fields)
    if sign:
        signing.sign_package(target, key=sign)
    return Library().publish(target)


def use_home(tmp_path, monkeypatch, name):
    monkeypatch.setenv("GPTSTORE_HOME", str(tmp_path / name))


def main_manifest(api, repo_id, revision="main"):
    from gptstore.manifest import parse_bytes

    with open(api.hf_hub_download(repo_id, "gptstore.json", revision=revision), "rb") as handle:
        return parse_bytes(handle.read())


def tag_target(api, repo_id, tag):
    return {t.name: t.target_commit for t in api.list_repo_refs(repo_id).tags}.get(tag)


# -- item 4: rollback --------------------------------------------------------------------------
def test_version_tag_repointed_to_an_older_signed_release_is_refused(store_server, tiny_gpt_dir, tmp_path,
                                                                     monkeypatch, run_cli):
    use_home(tmp_path, monkeypatch, "provider")
    signing.generate_key("alice-key")
    public = signing.export_public_key("alice-key")
    store = get_store(store_server.url)
    store.push(publish(tiny_gpt_dir, tmp_path, "alice/roll", "0.9.0", sign="alice-key", description="old"))
    store.push(publish(tiny_gpt_dir, tmp_path, "alice/roll", "1.0.0", sign="alice-key", description="new"))
    api = store_server.api()
    old_commit = tag_target(api, "alice/roll", "v0.9.0")
    api.delete_tag("alice/roll", tag="v1.0.0")  # the attacker (or a compromised store) re-points the tag
    api.create_tag("alice/roll", tag="v1.0.0", revision=old_commit)

    use_home(tmp_path, monkeypatch, "consumer")
    with TrustStore.edit() as trust:
        trust.add_key("alice", public)
        trust.set_policy("require", "alice")
    with pytest.raises(ManifestError, match=r"alice/roll:1.0.0 on .* holds a manifest of version 0.9.0; refusing"):
        pull("alice/roll:1.0.0", store=store_server.url)
    result = run_cli("pull", "alice/roll:1.0.0", "--store", store_server.url)
    assert result.exit_code == 1 and "rollback" in result.output
    assert Library().refs() == [] and list(Library().blobs.all()) == []  # latest never moved to 0.9.0
    assert pull("alice/roll:0.9.0", store=store_server.url).model.manifest.version == "0.9.0"  # asked for: fine
    assert {e.tag for e in Library().refs()} == {"0.9.0", "latest"}


# -- item 5: config.json with auto_map is refused before any weight ------------------------------
def test_config_with_auto_map_is_refused_before_any_weight(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    target = tmp_path / "automap"
    shutil.copytree(tiny_gpt_dir, target)
    package(target, name="alice/automap", version="1.0.0")  # clean, then made to declare remote code
    config = json.loads((target / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    data = json.dumps(config).encode()
    (target / "config.json").write_bytes(data)
    manifest = load_manifest(target)
    files = [f.model_copy(update={"size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
             if f.path == "config.json" else f for f in manifest.files]
    (target / "gptstore.json").write_bytes(dumps(manifest.model_copy(update={"files": files})))
    api = store_server.api()
    api.create_repo("alice/automap", exist_ok=True)
    api.upload_folder(folder_path=str(target), repo_id="alice/automap")  # raw files: push would refuse

    use_home(tmp_path, monkeypatch, "consumer")
    with pytest.raises(UnsafeContentError, match=r"alice/automap:1.0.0 contains custom code \(config.json auto_map\)"):
        pull("alice/automap", store=store_server.url)
    library = Library()
    assert library.refs() == []
    weights = {f.sha256 for f in manifest.files if f.path != "config.json"}
    assert set(library.blobs.all()) == {hashlib.sha256(data).hexdigest()}  # the config only
    assert not weights & set(library.blobs.all())


# -- item 13, client half: racing pushes of one version -------------------------------------------
def commit_to_branch(api, model, repo_id, branch):
    """What another pusher's commit of ``model`` looks like, on a branch of its own."""
    from huggingface_hub import CommitOperationAdd

    api.create_branch(repo_id, branch=branch, exist_ok=True)
    ops = [CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(model.path / f.path))
           for f in model.manifest.files]
    ops.append(CommitOperationAdd(path_in_repo="gptstore.json", path_or_fileobj=dumps(model.manifest)))
    return api.create_commit(repo_id, ops, commit_message="the other push", revision=branch).oid


def test_push_loses_when_main_moves_under_it(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    """Another push of alice/race:1.0.0 lands between our read of main and our commit: we fail
    cleanly (parent_commit), and main and the tag keep the winner's content."""
    use_home(tmp_path, monkeypatch, "a")
    winner = publish(tiny_gpt_dir, tmp_path, "alice/race", "1.0.0", description="winner")
    use_home(tmp_path, monkeypatch, "b")
    loser = publish(tiny_gpt_dir, tmp_path, "alice/race", "1.0.0", description="loser")
    store = get_store(store_server.url)
    store.push(publish(tiny_gpt_dir, tmp_path, "alice/race", "0.9.0", description="before"))
    original = store.api.create_commit

    def racing(*args, **kwargs):
        get_store(store_server.url).push(winner)  # the other push, whole
        return original(*args, **kwargs)

    monkeypatch.setattr(store.api, "create_commit", racing)
    with pytest.raises(ConflictError, match=r"another push of alice/race:1.0.0 won on .*; bump the version"):
        store.push(loser)
    api = store_server.api()
    assert main_manifest(api, "alice/race").digest == winner.digest
    assert main_manifest(api, "alice/race", tag_target(api, "alice/race", "v1.0.0")).digest == winner.digest


def test_push_that_lost_the_tag_puts_main_back(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    """Our commit went in, but the version tag names another push's commit with other content
    (a plain Hub, where commit and tag are two requests): main is rolled back to what it was."""
    use_home(tmp_path, monkeypatch, "a")
    winner = publish(tiny_gpt_dir, tmp_path, "alice/late", "1.0.0", description="winner")
    use_home(tmp_path, monkeypatch, "b")
    loser = publish(tiny_gpt_dir, tmp_path, "alice/late", "1.0.0", description="loser",
                    tags=["only-in-loser"])
    store = get_store(store_server.url)
    before = publish(tiny_gpt_dir, tmp_path, "alice/late", "0.9.0", description="before")
    store.push(before)
    api = store_server.api()
    files_before = sorted(api.list_repo_files("alice/late"))
    other_commit = commit_to_branch(api, winner, "alice/late", "other")
    original = store.api.create_tag

    def racing(repo_id, *, tag, revision, **kwargs):
        try:  # the other push's tag wins (on gptstore server our commit already holds it: take it)
            api.delete_tag(repo_id, tag=tag)
        except Exception:
            pass
        api.create_tag(repo_id, tag=tag, revision=other_commit)
        return original(repo_id, tag=tag, revision=revision, **kwargs)

    monkeypatch.setattr(store.api, "create_tag", racing)
    with pytest.raises(ConflictError, match=r"another push of alice/late:1.0.0 won on .*; bump the version"):
        store.push(loser)
    assert tag_target(api, "alice/late", "v1.0.0") == other_commit
    assert main_manifest(api, "alice/late").digest == before.digest  # main agrees again: no loser content
    assert sorted(api.list_repo_files("alice/late")) == files_before
    history = [c.title for c in api.list_repo_commits("alice/late")]
    assert history[0].startswith("gptstore: undo push of alice/late:1.0.0")


def test_push_of_a_version_tagged_with_other_content_changes_nothing(store_server, tiny_gpt_dir, tmp_path,
                                                                      monkeypatch):
    use_home(tmp_path, monkeypatch, "a")
    first = publish(tiny_gpt_dir, tmp_path, "alice/taken", "1.0.0", description="first")
    use_home(tmp_path, monkeypatch, "b")
    second = publish(tiny_gpt_dir, tmp_path, "alice/taken", "1.0.0", description="second")
    store = get_store(store_server.url)
    store.push(first)
    api = store_server.api()
    head = api.list_repo_refs("alice/taken").branches[0].target_commit
    with pytest.raises(ConflictError, match="alice/taken:1.0.0 is already on .* with other content"):
        store.push(second)
    assert api.list_repo_refs("alice/taken").branches[0].target_commit == head
    assert store.push(first).endswith("/alice/taken/tree/v1.0.0")  # the same content again: fine
