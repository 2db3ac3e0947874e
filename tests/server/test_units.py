"""The server's pure pieces: ranges, paths, commit operations, search terms, cards, signing."""

from __future__ import annotations

import pytest

from gptstore.server.auth import UrlSigner
from gptstore.server.commits import Add, Delete, apply_operations, check_path
from gptstore.server.http import HubError, parse_range
from gptstore.server.metadata import parse_card, repo_metadata
from gptstore.server.search import fts_query
from gptstore.server.storage import git_blob_id, lfs_row, regular_row


def test_parse_range():
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-", 10) == (0, 9)
    assert parse_range("bytes=2-4", 10) == (2, 4)
    assert parse_range("bytes=5-100", 10) == (5, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=0-1,3-4", 10) is None  # multiple ranges: the whole file
    assert parse_range("items=0-1", 10) is None
    for bad in ("bytes=10-", "bytes=4-2"):
        with pytest.raises(HubError) as err:
            parse_range(bad, 10)
        assert err.value.status == 416


@pytest.mark.parametrize("path", ["a.txt", "dir/sub/file.bin", "dots.in.name", "..hidden-ish"])
def test_check_path_accepts(path):
    assert check_path(path) == path


@pytest.mark.parametrize("path", ["", "/abs", "a/../b", "..", ".git/x", "a/.cache/b", "a//b", "a\\b", "a\x00b"])
def test_check_path_rejects(path):
    with pytest.raises(HubError) as err:
        check_path(path)
    assert err.value.status == (422 if "\\" in path else 400)  # backslashes: 422, as on the Hub


def test_apply_operations():
    a, b = regular_row("a.txt", b"a", "1" * 64), regular_row("d/b.txt", b"b", "2" * 64)
    files = apply_operations({}, [Add(a), Add(b)])
    assert sorted(files) == ["a.txt", "d/b.txt"]
    assert sorted(apply_operations(files, [Delete("d", folder=True)])) == ["a.txt"]
    assert sorted(apply_operations(files, [Delete("a.txt", folder=False)])) == ["d/b.txt"]
    for op in (Delete("missing", folder=False), Delete("missing", folder=True)):
        with pytest.raises(HubError) as err:
            apply_operations(files, [op])
        assert err.value.code == "EntryNotFound"
    with pytest.raises(HubError, match="both a file and a folder"):
        apply_operations(files, [Add(regular_row("a.txt/c", b"c", "3" * 64))])


def test_git_ids_match_git():
    assert git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object
    assert lfs_row("w.bin", "a" * 64, 5).git_oid == git_blob_id(
        b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 5\n")


def test_fts_query_quotes_words():
    assert fts_query("tiny poet") == '"tiny"* "poet"*'
    assert fts_query('" OR 1=1 --') == '"OR"* "1"* "1"*'
    assert fts_query("--") is None


def test_card_and_metadata():
    assert parse_card("# no front matter") == {}
    card = parse_card("---\nlicense: mit\ntags: [a, b]\nlibrary_name: transformers\n---\nbody")
    assert card == {"license": "mit", "tags": ["a", "b"], "library_name": "transformers"}
    with pytest.raises(ValueError, match="YAML"):
        parse_card("---\nkey: [unclosed\n---\n")
    with pytest.raises(ValueError, match="mapping"):
        parse_card("---\n- a list\n---\n")
    meta = repo_metadata(card, {"task": "text-generation", "tags": ["haiku"], "license": "mit"})
    assert meta.library_name == "transformers" and meta.pipeline_tag == "text-generation"
    assert meta.tags == ["a", "b", "gptstore", "haiku", "license:mit", "transformers", "text-generation"]


def test_url_signer():
    signer = UrlSigner(b"key", ttl=60)
    query = dict(pair.split("=") for pair in signer.sign("upload", "a/b", "f" * 64, 10).split("&"))
    assert signer.check("upload", "a/b", "f" * 64, query) == 10
    for action, repo in (("part1", "a/b"), ("upload", "a/c")):
        with pytest.raises(HubError):
            signer.check(action, repo, "f" * 64, query)
    with pytest.raises(HubError, match="expired"):
        UrlSigner(b"key", ttl=-1).check("upload", "a/b", "f" * 64, dict(
            pair.split("=") for pair in UrlSigner(b"key", ttl=-1).sign("upload", "a/b", "f" * 64, 10).split("&")))
