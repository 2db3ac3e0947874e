"""The stock huggingface_hub client against a real gptstore server process."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from huggingface_hub import constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError,
                                    RevisionNotFoundError)

from gptstore.manifest import load_manifest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def local_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def published(store, tiny_package: Path) -> str:
    """alice/tiny: the packaged tiny GPT uploaded with upload_folder (LFS for the weights), tag v1.0.0."""
    saved, constants.HF_HUB_DISABLE_XET = constants.HF_HUB_DISABLE_XET, True
    try:
        api = store.api("alice")
        api.create_repo("alice/tiny")
        info = api.upload_folder(folder_path=tiny_package, repo_id="alice/tiny", commit_message="tiny 1.0.0")
        # no create_tag: a commit to main that brings gptstore.json 1.0.0 creates v1.0.0 itself
    finally:
        constants.HF_HUB_DISABLE_XET = saved
    return info.oid


def test_whoami_names_user_orgs_and_token_role(store):
    me = store.api("alice").whoami()
    assert me["name"] == "alice"
    assert [org["name"] for org in me["orgs"]] == ["acme"]
    assert me["auth"]["accessToken"]["role"] == "write"
    assert store.api("alice", "read").whoami()["auth"]["accessToken"]["role"] == "read"


def test_create_repo_public_private_and_exist_ok(store):
    api = store.api("alice")
    url = api.create_repo("alice/created")
    assert url.repo_id == "alice/created" and url.endpoint == store.url
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("alice/created")
    assert err.value.response.status_code == 409
    assert api.create_repo("alice/created", exist_ok=True).repo_id == "alice/created"
    info = api.model_info("alice/created")
    assert len(info.sha) == 40 and not info.private
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]
    api.create_repo("alice/secret", private=True)
    assert api.model_info("alice/secret").private
    assert api.create_repo("acme/shared").repo_id == "acme/shared"


def test_upload_folder_then_model_info_with_files_metadata(store, published, tiny_package):
    info = store.api("alice").model_info("alice/tiny", files_metadata=True)
    assert info.sha == published
    siblings = {s.rfilename: s for s in info.siblings}
    assert sorted(siblings) == sorted([".gitattributes", *local_files(tiny_package)])
    weights = siblings["model.safetensors"]
    assert weights.lfs is not None and weights.lfs.sha256 == sha256(tiny_package / "model.safetensors")
    assert weights.size == (tiny_package / "model.safetensors").stat().st_size
    assert siblings["config.json"].lfs is None
    assert siblings["config.json"].size == (tiny_package / "config.json").stat().st_size
    assert info.library_name == "gptstore" and info.pipeline_tag == "text-generation"
    assert {"gptstore", "haiku", "poetry", "license:mit"} <= set(info.tags)
    assert info.card_data["license"] == "mit"
    manifest = load_manifest(tiny_package)
    assert info.gptstore["version"] == "1.0.0" and info.gptstore["digest"] == manifest.digest
    assert info.gptstore["provider"] == {"name": "Alice Labs"}


def test_list_repo_files_and_tree(store, published, tiny_package):
    api = store.api("alice")
    assert api.list_repo_files("alice/tiny") == sorted([".gitattributes", *local_files(tiny_package)])
    api.create_repo("alice/nested")
    api.upload_file(path_or_fileobj=b"deep", path_in_repo="docs/a/b.txt", repo_id="alice/nested")
    api.upload_file(path_or_fileobj=b"top", path_in_repo="docs/top.txt", repo_id="alice/nested")
    top = {e.path: type(e).__name__ for e in api.list_repo_tree("alice/nested", path_in_repo="docs")}
    assert top == {"docs/a": "RepoFolder", "docs/top.txt": "RepoFile"}
    everything = [e.path for e in api.list_repo_tree("alice/nested", recursive=True)]
    assert everything == [".gitattributes", "docs", "docs/a", "docs/a/b.txt", "docs/top.txt"]  # 2 pages of 3
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree("alice/nested", path_in_repo="missing"))
    found = api.get_paths_info("alice/nested", ["docs/top.txt", "docs/a", "nope"])
    assert sorted(e.path for e in found) == ["docs/a", "docs/top.txt"]


def test_refs_commits_tags_and_branches(store, published):
    api = store.api("alice")
    api.create_branch("alice/tiny", branch="dev/x")
    refs = api.list_repo_refs("alice/tiny")
    assert sorted(b.name for b in refs.branches) == ["dev/x", "main"]
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0.0", published)]
    commits = api.list_repo_commits("alice/tiny")
    assert [c.title for c in commits] == ["tiny 1.0.0", "initial commit"]
    assert commits[0].commit_id == published and commits[0].authors == ["alice"]
    with pytest.raises(HfHubHTTPError) as err:
        api.create_tag("alice/tiny", tag="v1.0.0")
    assert err.value.response.status_code == 409
    api.create_tag("alice/tiny", tag="v1.0.0", exist_ok=True)
    api.create_branch("alice/tiny", branch="dev/x", exist_ok=True)
    api.upload_file(path_or_fileobj=b"only on dev", path_in_repo="dev.txt", repo_id="alice/tiny", revision="dev/x")
    assert api.file_exists("alice/tiny", "dev.txt", revision="dev/x")
    assert not api.file_exists("alice/tiny", "dev.txt")
    assert api.model_info("alice/tiny").sha == published
    with pytest.raises(RevisionNotFoundError):
        api.create_tag("alice/tiny", tag="v9", revision="no-such-branch")
    assert not api.revision_exists("alice/tiny", "no-such-branch")
    assert api.revision_exists("alice/tiny", published[:7])


def test_hf_hub_download_by_branch_tag_and_commit(store, published, tiny_package, hf_cache):
    for revision in ("main", "v1.0.0", published, published[:10]):
        path = hf_hub_download("alice/tiny", "config.json", revision=revision, endpoint=store.url,
                               token=store.tokens["bob:write"], cache_dir=hf_cache)
        assert Path(path).read_bytes() == (tiny_package / "config.json").read_bytes()
        assert f"snapshots/{published}/" in path
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/tiny", "nope.json", endpoint=store.url, token=False, cache_dir=hf_cache)


def test_snapshot_download_is_byte_identical(store, published, tiny_package, hf_cache):
    folder = Path(snapshot_download("alice/tiny", endpoint=store.url, token=False, cache_dir=hf_cache))
    assert folder.name == published
    for rel in local_files(tiny_package):
        assert (folder / rel).read_bytes() == (tiny_package / rel).read_bytes(), rel


def test_get_safetensors_metadata(store, published):
    meta = store.api(None).get_safetensors_metadata("alice/tiny")
    assert meta.parameter_count["F32"] > 100_000 and not meta.sharded


def test_list_models_search_filter_sort_and_pages(store, published):
    api = store.api("bob")
    for name in ("alpha", "beta", "gamma"):
        api.create_repo(f"bob/{name}")
    everything = [m.id for m in store.api(None).list_models()]  # pages of 3, followed through Link
    assert len(everything) == len(set(everything)) >= 6
    assert "alice/secret" not in everything  # private, anonymous caller
    assert [m.id for m in api.list_models(search="tiny")] == ["alice/tiny"]
    haiku = list(api.list_models(search="haiku"))  # only in the manifest, not in the id
    assert [m.id for m in haiku] == ["alice/tiny"]
    assert haiku[0].library_name == "gptstore" and haiku[0].gptstore["description"].startswith("A tiny poet")
    assert [m.id for m in api.list_models(filter="gptstore")] == ["alice/tiny"]
    assert [m.id for m in api.list_models(filter=["gptstore", "haiku"])] == ["alice/tiny"]
    assert list(api.list_models(filter=["gptstore", "sonnet"])) == []
    assert [m.id for m in api.list_models(author="bob", sort="created_at")] == ["bob/gamma", "bob/beta", "bob/alpha"]
    assert len(list(api.list_models(author="bob", limit=2))) == 2
    newest = next(iter(api.list_models(sort="last_modified", limit=1)))
    assert newest.last_modified.tzinfo is not None
    with store.http() as http:
        response = http.get("/api/models", params={"author": "bob", "limit": 2})
        link = response.headers["link"]
        assert link.startswith(f"<{store.url}/api/models?") and "author=bob" in link and 'rel="next"' in link
        assert len(response.json()) == 2


def test_downloads_count_gets_of_the_config(store, published, hf_cache):
    api = store.api("alice")
    before = api.model_info("alice/tiny").downloads
    with store.http() as http:
        assert http.head("/alice/tiny/resolve/main/config.json").status_code == 200
        assert http.get("/alice/tiny/resolve/main/gptstore.json").status_code == 200  # only looking
        assert http.get("/alice/tiny/resolve/main/config.json", headers={"range": "bytes=5-"}).status_code == 206
        assert http.get("/alice/tiny/resolve/main/config.json").status_code == 200
    hf_hub_download("alice/tiny", "config.json", endpoint=store.url, token=False, cache_dir=hf_cache)
    assert api.model_info("alice/tiny").downloads == before + 2
    ranked = [m.id for m in api.list_models(sort="downloads", limit=1)]
    assert ranked == ["alice/tiny"]


def test_delete_repo_and_commit_ids_are_never_reused(store):
    api = store.api("alice")
    api.create_repo("alice/gone")
    first = api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/gone").oid
    api.delete_repo("alice/gone")
    assert not api.repo_exists("alice/gone")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("alice/gone")
    api.delete_repo("alice/gone", missing_ok=True)
    with pytest.raises(RepositoryNotFoundError):
        api.delete_repo("alice/gone")
    api.create_repo("alice/gone")
    second = api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/gone").oid
    assert second != first
    assert not api.revision_exists("alice/gone", first)


def test_upload_with_xet_enabled_gets_regular_mode(store, monkeypatch, tmp_path, hf_cache):
    pytest.importorskip("hf_xet")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    (folder / "notes.dat").write_bytes(os.urandom(200 * 1024))  # below the threshold, no LFS pattern
    api = store.api("carol")
    api.create_repo("acme/xet-small")
    api.upload_folder(folder_path=folder, repo_id="acme/xet-small")
    path = hf_hub_download("acme/xet-small", "notes.dat", endpoint=store.url, token=False, cache_dir=hf_cache)
    assert Path(path).read_bytes() == (folder / "notes.dat").read_bytes()
    info = api.model_info("acme/xet-small", files_metadata=True)
    assert all(s.lfs is None for s in info.siblings)


@pytest.mark.parametrize("size,parts", [(300 * 1024, None), (1536 * 1024 + 17, 7)])
def test_lfs_upload_basic_and_multipart(store, tmp_path, hf_cache, size, parts):
    data = os.urandom(size)
    oid = hashlib.sha256(data).hexdigest()
    with store.http("alice") as http:
        batch = http.post("/alice/tiny.git/info/lfs/objects/batch",
                          json={"operation": "upload", "transfers": ["basic", "multipart"],
                                "objects": [{"oid": oid, "size": size}]}).json()
    header = batch["objects"][0]["actions"]["upload"].get("header")
    assert (header is None) if parts is None else (len(header) - 1 == parts and header["chunk_size"] == "262144")
    api = store.api("alice")
    api.create_repo(f"alice/lfs-{size}")
    commit = api.upload_file(path_or_fileobj=data, path_in_repo="blob.bin", repo_id=f"alice/lfs-{size}")
    info = api.model_info(f"alice/lfs-{size}", files_metadata=True)
    blob = next(s for s in info.siblings if s.rfilename == "blob.bin")
    assert blob.lfs.sha256 == oid and blob.size == size and info.sha == commit.oid
    path = hf_hub_download(f"alice/lfs-{size}", "blob.bin", endpoint=store.url, token=False, cache_dir=hf_cache)
    assert Path(path).read_bytes() == data
    assert not list((store.data / "uploads").glob(f"{oid}*"))  # parts cleaned after completion
