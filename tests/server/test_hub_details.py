"""Hub details seen through the stock huggingface_hub client against a real server process:
validate-yaml's errors and warnings, ``expand=true`` (lastCommit, securityFileStatus), folder
deletes, ref and commit error answers with the Hub's texts, whoami's display names, paged commit
listings, refs with pull requests and backslashed paths (422)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, ModelCard, constants
from huggingface_hub.errors import BadRequestError, HfHubHTTPError, RevisionNotFoundError

from gptstore.server.accounts import Accounts
from gptstore.server.db import SCHEMA_VERSION, connect

VALID_CARD = ("---\nlicense: mit\nlanguage: [en, fr]\ndatasets: wikitext\ntags: [poetry]\npipeline_tag: text-generation\n"
              "base_model: openai-community/gpt2\nmodel-index:\n- name: tiny\n  results:\n"
              "  - task: {type: text-generation}\n    dataset: {type: wikitext, name: WikiText}\n"
              "    metrics:\n    - {type: perplexity, value: 12.5}\n---\n# Tiny\n")


def _add(path: str, data: bytes) -> CommitOperationAdd:
    return CommitOperationAdd(path_in_repo=path, path_or_fileobj=data)


def _errors(store, content: str) -> tuple[int, list[str], list[str]]:
    with store.http() as http:
        response = http.post("/api/validate-yaml", json={"content": content, "repoType": "model"})
    body = response.json()
    return response.status_code, [e["message"] for e in body["errors"]], [w["message"] for w in body["warnings"]]


# -- 5: validate-yaml ----------------------------------------------------------------------
def test_model_card_validate_raises_the_hubs_errors(store, monkeypatch):
    monkeypatch.setattr(constants, "ENDPOINT", store.url)  # ModelCard.validate asks constants.ENDPOINT
    ModelCard(VALID_CARD).validate()
    with pytest.raises(ValueError, match='- Error: "license" must be a string'):
        ModelCard("---\nlicense: [mit]\n---\n\nA card with invalid metadata.\n").validate()
    card = ModelCard(VALID_CARD)
    card.data.tags = "poetry"
    card.data.datasets = {"name": "wikitext"}
    with pytest.raises(ValueError) as invalid:
        card.validate()
    assert str(invalid.value).splitlines() == ['- Error: "datasets" must be one of [string, array]',
                                               '- Error: "tags" must be an array']


@pytest.mark.parametrize("metadata,error", [
    ("license: [mit]", '"license" must be a string'),
    ("tags: poetry", '"tags" must be an array'),
    ("tags: [poetry, 3]", '"tags[1]" must be a string'),
    ("datasets: {name: wikitext}", '"datasets" must be one of [string, array]'),
    ("datasets: [wikitext, [x]]", '"datasets[1]" must be a string'),
    ("language: 7", '"language" must be one of [string, array]'),
    ("pipeline_tag: [text-generation]", '"pipeline_tag" must be a string'),
    ("library_name: {x: 1}", '"library_name" must be a string'),
    ("base_model: /workspace/checkpoints/run1", '"base_model" with value "/workspace/checkpoints/run1" is not valid'),
    ("base_model_relation: copy", '"base_model_relation" must be one of [adapter, merge, quantized, finetune]'),
    ("model-index: foo", '"model-index" must be an array'),
    ("model-index:\n- results: []", '"model-index[0].name" is required'),
    ("model-index:\n- name: x\n  results:\n  - metrics: []", '"model-index[0].results[0].task" is required'),
    ("model-index:\n- name: x\n  results:\n  - task: {type: t}\n    metrics: [{type: acc}]",
     '"model-index[0].results[0].metrics[0].value" is required'),
])
def test_validate_yaml_answers_errors_for_invalid_metadata(store, metadata, error):
    status, errors, warnings = _errors(store, f"---\n{metadata}\n---\n# Card\n")
    assert status == 400 and any(e.startswith(error) for e in errors), errors
    assert warnings == []


def test_validate_yaml_accepts_valid_metadata_and_warns_about_none(store):
    assert _errors(store, VALID_CARD) == (200, [], [])
    for card in ("# No metadata at all\n", "---\n---\n# An empty block\n"):
        status, errors, warnings = _errors(store, card)
        assert status == 200 and errors == [] and "Empty or missing yaml metadata" in warnings[0]


def test_hfapi_refuses_an_invalid_card_before_uploading_and_warns_about_a_bare_one(store):
    api = store.api("alice")
    api.create_repo("alice/details-card")
    with pytest.raises(ValueError, match='Invalid metadata in README.md.\n- "model-index" must be an array'):
        api.create_commit("alice/details-card", [_add("README.md", b"---\nmodel-index: foo\n---\n"),
                                                  _add("file.txt", b"content")], commit_message="invalid")
    assert "file.txt" not in api.list_repo_files("alice/details-card")
    with pytest.warns(UserWarning, match="Warnings while validating metadata in README.md"):
        api.create_commit("alice/details-card", [_add("README.md", b"A card without metadata")],
                          commit_message="bare card")
    assert "README.md" in api.list_repo_files("alice/details-card")


# -- 7: expand=true ------------------------------------------------------------------------
def test_paths_info_and_tree_expand_carry_last_commit_and_security(store):
    api = store.api("alice")
    repo = "alice/details-expand"
    api.create_repo(repo)
    first = api.create_commit(repo, [_add(p, p.encode()) for p in (
        "a.txt", "keep.txt", "sub/b.txt", "sub/c.txt", "pytorch_model.bin", "model.safetensors", "deep/x/y.txt")],
        commit_message="add files")
    second = api.create_commit(repo, [_add("a.txt", b"changed")], commit_message="change a")
    third = api.create_commit(repo, [CommitOperationDelete("sub/c.txt")], commit_message="remove c")
    expected = {"a.txt": second, "keep.txt": first, "sub": third, "sub/b.txt": first, "pytorch_model.bin": first,
                "model.safetensors": first, "deep": first, "deep/x": first, "deep/x/y.txt": first}
    titles = {first.oid: "add files", second.oid: "change a", third.oid: "remove c"}

    info = {e.path: e for e in api.get_paths_info(repo, list(expected), expand=True)}
    tree = {e.path: e for e in api.list_repo_tree(repo, recursive=True, expand=True)}  # pages of 3
    for listing in (info, tree):
        for path, commit in expected.items():
            last = listing[path].last_commit
            assert last is not None and last.oid == commit.oid, path
            assert last.title == titles[commit.oid] and isinstance(last.date, datetime)
        assert listing["pytorch_model.bin"].security.status == "unsafe"
        assert not listing["pytorch_model.bin"].security.safe
        assert listing["model.safetensors"].security.safe and listing["a.txt"].security.status == "safe"
    assert not hasattr(info["sub"], "security")  # folders carry lastCommit only, as on the Hub
    assert tree[".gitattributes"].last_commit.title == "initial commit"

    at_second = {e.path: e for e in api.get_paths_info(repo, ["sub", "a.txt"], revision=second.oid, expand=True)}
    assert at_second["sub"].last_commit.oid == first.oid and at_second["a.txt"].last_commit.oid == second.oid
    plain = api.get_paths_info(repo, ["a.txt"]) + list(api.list_repo_tree(repo))
    assert all(e.last_commit is None for e in plain)
    assert all(getattr(e, "security", None) is None for e in plain)


# -- 8: commit details ---------------------------------------------------------------------
def test_folder_deletes_delete_the_folder(store):
    api = store.api("alice")
    repo = "alice/details-delete"
    api.create_repo(repo)
    api.create_commit(repo, [_add(p, b"data") for p in ("1/a.md", "1/b.md", "2/c.md", "3/d/e.md", "4/f.md", "keep.md")],
                      commit_message="init")
    api.create_commit(repo, [CommitOperationDelete("1/")], commit_message="delete folder 1")
    assert sorted(api.list_repo_files(repo)) == [".gitattributes", "2/c.md", "3/d/e.md", "4/f.md", "keep.md"]
    api.delete_folder("3", repo_id=repo)
    api.create_commit(repo, [CommitOperationDelete("4")], commit_message="a folder named like a file")
    assert sorted(api.list_repo_files(repo)) == [".gitattributes", "2/c.md", "keep.md"]
    with pytest.raises(HfHubHTTPError) as missing:
        api.delete_folder("nothing-here", repo_id=repo)
    assert missing.value.response.status_code == 404


def test_ref_and_commit_errors_are_the_hubs(store):
    api = store.api("alice")
    repo = "alice/details-refs"
    api.create_repo(repo)
    parent = api.model_info(repo).sha
    with pytest.raises(RevisionNotFoundError):  # the revision is checked before the tag's name
        api.create_tag(repo, tag="invalid tag", revision="foobar")
    with pytest.raises(BadRequestError):
        api.create_tag(repo, tag="invalid tag")
    api.create_tag(repo, tag="t1")
    with pytest.raises(HfHubHTTPError, match="Reference refs/tags/t1 already exists") as tag_twice:
        api.create_tag(repo, tag="t1")
    assert tag_twice.value.response.status_code == 409
    api.create_tag(repo, tag="t1", exist_ok=True)
    api.create_branch(repo, branch="cool-branch")
    for branch in ("cool-branch", "main"):
        with pytest.raises(HfHubHTTPError, match=f"Reference refs/heads/{branch} already exists") as twice:
            api.create_branch(repo, branch=branch)
        assert twice.value.response.status_code == 409
        api.create_branch(repo, branch=branch, exist_ok=True)
    with pytest.raises(HfHubHTTPError, match="Cannot delete refs/heads/main") as main:
        api.delete_branch(repo, branch="main")
    assert main.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError, match="Invalid rev id"):
        api.delete_branch(repo, branch="no-such-branch")
    api.upload_file(path_or_fileobj=b"moves main", path_in_repo="new.txt", repo_id=repo)
    with pytest.raises(HfHubHTTPError) as stale:
        api.create_commit(repo, [_add("late.txt", b"late")], commit_message="late", parent_commit=parent)
    assert stale.value.response.status_code == 412
    assert "The branch was updated since you opened this page. Please refresh and try again." in str(stale.value)


def test_whoami_carries_display_names(store):
    store.admin("user", "add", "dora", "--fullname", "Dora Márquez")
    store.admin("org", "add", "dlabs", "--member", "dora", "--member", "alice", "--fullname", "Dora's Labs")
    token = store.admin("token", "create", "dora", "--scope", "read")
    from huggingface_hub import HfApi

    me = HfApi(endpoint=store.url, token=token).whoami()
    assert me["name"] == "dora" and me["fullname"] == "Dora Márquez"
    assert [(o["name"], o["fullname"]) for o in me["orgs"]] == [("dlabs", "Dora's Labs")]
    alice = store.api("alice").whoami()  # no --fullname: the name itself
    assert alice["fullname"] == "alice"
    assert {o["name"]: o["fullname"] for o in alice["orgs"]} == {"acme": "acme", "dlabs": "Dora's Labs"}


def test_fullname_is_checked(tmp_path):
    accounts = Accounts(connect(tmp_path / "catalog.db"))
    for bad in ("line\nbreak", "x" * 101):
        with pytest.raises(Exception, match="invalid full name"):
            accounts.add_user("eve", fullname=bad)
    accounts.add_user("eve", fullname="  ")
    assert accounts.fullnames(("eve",)) == {"eve": "eve"}


def test_a_catalog_of_schema_2_opens_and_takes_display_names(tmp_path):
    path = tmp_path / "catalog.db"
    Accounts(connect(path)).add_user("old")
    conn = sqlite3.connect(path)  # as gptstore with schema 2 wrote it: no fullname column
    conn.execute("ALTER TABLE namespaces DROP COLUMN fullname")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    db = connect(path)
    assert db.one("PRAGMA user_version")[0] == SCHEMA_VERSION
    accounts = Accounts(db)
    accounts.add_user("new", fullname="New User")
    assert accounts.fullnames(("old", "new")) == {"old": "old", "new": "New User"}


def test_list_repo_commits_follows_pages(store):
    api = store.api("alice")
    repo = "alice/details-commits"
    api.create_repo(repo)
    made = [api.upload_file(path_or_fileobj=f"v{i}".encode(), path_in_repo="f.txt", repo_id=repo,
                            commit_message=f"commit {i}").oid for i in range(7)]
    commits = api.list_repo_commits(repo)
    assert [c.commit_id for c in commits][:7] == made[::-1]
    assert [c.title for c in commits] == [f"commit {i}" for i in reversed(range(7))] + ["initial commit"]
    assert all(c.authors == ["alice"] for c in commits)
    with store.http("alice") as http:  # really paged: 3 per page on this server
        first = http.get(f"/api/models/{repo}/commits/main", params={"expand[]": "formatted"})
    assert len(first.json()) == 3 and 'rel="next"' in first.headers["link"]
    assert first.json()[0]["formatted"]["title"] == "commit 6"


def test_list_repo_refs_with_pull_requests(store):
    api = store.api("alice")
    repo = "alice/details-prs"
    api.create_repo(repo)
    api.create_branch(repo, branch="dev")
    refs = api.list_repo_refs(repo, include_pull_requests=True)
    assert refs.pull_requests == [] and {b.name for b in refs.branches} == {"main", "dev"}
    assert api.list_repo_refs(repo).pull_requests is None


def test_backslashed_paths_are_answered_422(store):
    api = store.api("alice")
    repo = "alice/details-backslash"
    api.create_repo(repo)
    for path in ("..\\ddd", "dir\\file.txt"):
        with pytest.raises(HfHubHTTPError) as refused:
            api.upload_file(path_or_fileobj=b"content", path_in_repo=path, repo_id=repo)
        assert refused.value.response.status_code == 422 and "backslash" in str(refused.value)
    assert api.list_repo_files(repo) == [".gitattributes"]
