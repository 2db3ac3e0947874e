"""Issue 13, item 8: package directories as other tools leave them.

A directory made by ``hf download --local-dir`` (here ``snapshot_download(local_dir=...)``, what
that command runs) from a real ``gptstore server`` holds, beside the package, the download cache
``.cache/huggingface/``, git's ``.gitattributes`` and the store's generated ``README.md`` card:
none of them is a package file (:func:`gptstore.fsutil.package_files`), so the directory verifies,
publishes and re-packages as it is. A README.md of the user's own stays a package file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gptstore.fsutil import is_generated_card, package_files
from gptstore.library import Library
from gptstore.packaging import package
from gptstore.stores import get_store


@pytest.fixture(scope="module")
def downloaded(store_server, tiny_gpt_dir, tmp_path_factory) -> Path:
    """acme/tiny 1.0.0 pushed to the store by gptstore, then fetched with huggingface_hub's
    ``snapshot_download(local_dir=...)``, the call behind ``hf download --local-dir``."""
    from huggingface_hub import snapshot_download

    root = tmp_path_factory.mktemp("local-dirs")
    source = root / "source"
    shutil.copytree(tiny_gpt_dir, source)
    package(source, name="acme/tiny", version="1.0.0")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GPTSTORE_HOME", str(root / "provider"))
        patch.setenv("HF_HOME", str(root / "hf"))
        get_store(store_server.url, token=store_server.tokens["alice:write"]).push(Library().publish(source))
        target = root / "acme-tiny"
        snapshot_download("acme/tiny", local_dir=target, endpoint=store_server.url,
                          token=store_server.tokens["alice:read"])
    return target


def test_the_download_holds_what_hf_download_leaves(downloaded):
    assert (downloaded / ".cache" / "huggingface").is_dir()
    assert (downloaded / ".gitattributes").is_file()
    assert is_generated_card(downloaded / "README.md")
    listed = {f["path"] for f in json.loads((downloaded / "gptstore.json").read_text())["files"]}
    assert set(package_files(downloaded, skip=frozenset({"gptstore.json", "gptstore.sig"}))) == listed


def test_verify_and_publish_a_downloaded_directory(downloaded, run_cli):
    result = run_cli("verify", str(downloaded))
    assert result.exit_code == 0, result.output
    assert "ok   integrity" in result.output
    published = run_cli("publish", str(downloaded), "--json")
    assert published.exit_code == 0, published.output
    assert json.loads(published.output)["reference"] == "acme/tiny:1.0.0"
    assert run_cli("verify", "acme/tiny:1.0.0").exit_code == 0


def test_repackaging_a_download_keeps_the_card_gitattributes_and_cache_out(downloaded, tmp_path, run_cli):
    copy = tmp_path / "copy"
    shutil.copytree(downloaded, copy)
    result = run_cli("package", str(copy), "--name", "acme/tiny", "--version", "1.0.1", "--json")
    assert result.exit_code == 0, result.output
    listed = {f["path"] for f in json.loads((copy / "gptstore.json").read_text())["files"]}
    assert listed == {f["path"] for f in json.loads((downloaded / "gptstore.json").read_text())["files"]}
    assert not {p for p in listed if p.startswith(".") or p == "README.md"}


def test_a_readme_of_your_own_is_a_package_file(tiny_gpt, run_cli):
    (tiny_gpt / "README.md").write_text("---\nlicense: mit\n---\n# My model\n")
    (tiny_gpt / "docs").mkdir()
    (tiny_gpt / "docs" / "README.md").write_text("---\nlibrary_name: gptstore\n---\n")  # only the root card
    package(tiny_gpt, name="acme/own", version="1.0.0")
    listed = {f["path"] for f in json.loads((tiny_gpt / "gptstore.json").read_text())["files"]}
    assert {"README.md", "docs/README.md"} <= listed
    (tiny_gpt / "README.md").write_text("# My model, edited\n")
    result = run_cli("verify", str(tiny_gpt))
    assert result.exit_code == 1 and "README.md" in result.output  # a listed README is checked


def test_an_edited_card_is_still_checked_when_the_manifest_lists_it(tiny_gpt, run_cli):
    (tiny_gpt / "README.md").write_text("---\nlibrary_name: gptstore\n---\n# card\n")
    package(tiny_gpt, name="acme/card", version="1.0.0")
    assert "README.md" not in {f["path"] for f in json.loads((tiny_gpt / "gptstore.json").read_text())["files"]}
    (tiny_gpt / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    (tiny_gpt / ".cache" / "huggingface" / "download").mkdir(parents=True)
    (tiny_gpt / ".cache" / "huggingface" / "download" / "x.metadata").write_text("abc\n")
    assert run_cli("verify", str(tiny_gpt)).exit_code == 0
    (tiny_gpt / ".cache" / "other.txt").write_text("not the download cache")
    result = run_cli("verify", str(tiny_gpt))
    assert result.exit_code == 1 and ".cache/other.txt is present but not listed" in result.output


@pytest.mark.parametrize("target, message", [
    ("./nowhere", "./nowhere: no such directory"),
    ("./empty", "./empty is a directory without a manifest (gptstore.json)"),
    ("acme/empty", "acme/empty is a directory without a manifest (gptstore.json), and no model acme/empty"),
])
def test_verify_a_directory_without_a_manifest_says_so(tmp_path, monkeypatch, run_cli, target, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "acme" / "empty").mkdir(parents=True)
    result = run_cli("verify", target)
    assert result.exit_code != 0
    assert message in result.output and "invalid reference" not in result.output
    assert result.output.count("\n") == 1
