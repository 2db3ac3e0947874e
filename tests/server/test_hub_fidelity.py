"""Hub fidelity seen through the stock huggingface_hub client: LFS decided by ``.gitattributes``
(not only by size) and ``.gitignore`` honoured by preupload, against a real server process."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import hf_hub_download

from gptstore.server.gitpatterns import GitAttributes, GitIgnore


def lfs_by_path(api, repo_id: str) -> dict[str, object]:
    """path → the ``lfs`` that tree reports; paths-info must report the same."""
    tree = {f.path: f.lfs for f in api.list_repo_tree(repo_id, recursive=True) if hasattr(f, "lfs")}
    info = {f.path: f.lfs for f in api.get_paths_info(repo_id, list(tree))}
    assert {p: lfs is None for p, lfs in info.items()} == {p: lfs is None for p, lfs in tree.items()}
    return tree


def test_a_new_repo_has_the_hubs_gitattributes_and_small_weights_go_lfs(store, tmp_path, hf_cache):
    api = store.api("alice")
    api.create_repo("alice/fidelity-lfs")
    attributes = Path(hf_hub_download("alice/fidelity-lfs", ".gitattributes", endpoint=store.url, token=False,
                                      cache_dir=hf_cache)).read_text()
    assert "*.safetensors filter=lfs diff=lfs merge=lfs -text" in attributes
    assert "saved_model/**/* filter=lfs" in attributes and "*tfevents* filter=lfs" in attributes
    folder = tmp_path / "small"
    (folder / "sub").mkdir(parents=True)
    weights = os.urandom(2048)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "sub" / "pytorch_model.bin").write_bytes(b"tiny")
    (folder / "notes.txt").write_text("small and regular")
    api.upload_folder(folder_path=folder, repo_id="alice/fidelity-lfs")
    lfs = lfs_by_path(api, "alice/fidelity-lfs")
    assert lfs["model.safetensors"] is not None and lfs["model.safetensors"].size == 2048
    assert lfs["sub/pytorch_model.bin"] is not None
    assert lfs["notes.txt"] is None and lfs[".gitattributes"] is None
    path = hf_hub_download("alice/fidelity-lfs", "model.safetensors", endpoint=store.url, token=False,
                           cache_dir=hf_cache)
    assert Path(path).read_bytes() == weights


def test_a_committed_gitattributes_pattern_takes_effect(store):
    api = store.api("alice")
    api.create_repo("alice/fidelity-attrs")
    api.upload_file(path_or_fileobj=b"before", path_in_repo="before.dat", repo_id="alice/fidelity-attrs")
    api.upload_file(path_or_fileobj=b"*.dat filter=lfs diff=lfs merge=lfs -text\n*.bin -filter\n",
                    path_in_repo=".gitattributes", repo_id="alice/fidelity-attrs")
    api.upload_file(path_or_fileobj=b"after", path_in_repo="data/after.dat", repo_id="alice/fidelity-attrs")
    api.upload_file(path_or_fileobj=b"plain", path_in_repo="plain.bin", repo_id="alice/fidelity-attrs")
    lfs = lfs_by_path(api, "alice/fidelity-attrs")
    assert lfs["data/after.dat"] is not None and lfs["data/after.dat"].size == 5
    assert lfs["before.dat"] is None  # committed before the pattern: stays as it was
    assert lfs["plain.bin"] is None  # the repo's own .gitattributes replaced the default list


def test_upload_folder_skips_what_the_gitignore_ignores(store, tmp_path):
    api = store.api("alice")
    api.create_repo("alice/fidelity-ignore")
    folder = tmp_path / "project"
    for name in ("a.log", "keep.log", "build/out.txt", "secret.txt", "sub/secret.txt", "model.txt", "logs/x.log"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)
    (folder / ".gitignore").write_text("*.log\n!keep.log\nbuild/\n/secret.txt\n")
    api.upload_folder(folder_path=folder, repo_id="alice/fidelity-ignore")
    assert sorted(api.list_repo_files("alice/fidelity-ignore")) == [
        ".gitattributes", ".gitignore", "keep.log", "model.txt", "sub/secret.txt"]
    # a later commit without a .gitignore of its own: the committed one still applies
    later = tmp_path / "later"
    later.mkdir()
    (later / "late.log").write_text("ignored")
    (later / "late.txt").write_text("kept")
    api.upload_folder(folder_path=later, repo_id="alice/fidelity-ignore")
    files = set(api.list_repo_files("alice/fidelity-ignore"))
    assert "late.txt" in files and "late.log" not in files


def test_gitignore_and_gitattributes_semantics():
    ignore = GitIgnore("*.log\n!keep.log\nbuild/\n/root.txt\ncache/**\n**/tmp\n\\#hash\nsub/*.c\n[abc].x\n"
                       "dir/\n!dir/inside.txt\n")
    expected = {"a.log": True, "d/a.log": True, "keep.log": False, "build/x": True, "a/build/x": True,
                "build": False, "root.txt": True, "d/root.txt": False, "cache/a/b": True, "a/b/tmp": True,
                "a/tmp/z": True, "#hash": True, "sub/a.c": True, "sub/d/a.c": False, "b.x": True, "d.x": False,
                "dir/inside.txt": True}  # nothing below an ignored folder can be re-included
    assert {path: ignore.ignores(path) for path in expected} == expected
    attributes = GitAttributes("*.bin filter=lfs\nsaved_model/**/* filter=lfs\ndocs/**/*.md filter=lfs\n"
                               "*.bin -filter\n# *.txt filter=lfs\n")
    expected = {"x.bin": False, "saved_model/a/b.pb": True, "x/saved_model/v": False, "docs/a.md": True,
                "docs/x/y/a.md": True, "a.md": False, "a.txt": False}
    assert {path: attributes.is_lfs(path) for path in expected} == expected
    assert not GitIgnore("*a*a*a*a*a*a*a*a*a*a*a*a*b\n").ignores("a" * 1024)  # linear, no backtracking
