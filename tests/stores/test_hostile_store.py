"""Issue 11, items 1–3: a hostile Hub-compatible store (tests/stores/fake_hub.py, on 127.0.0.1)
cannot write outside GPTSTORE_HOME, cannot make a pull endless, oversized or stuck, and never
receives a token meant for another store."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from gptstore import verify
from gptstore.blobs import BlobStore
from gptstore.errors import DigestMismatch, ManifestError, StoreError, UsageError
from gptstore.library import Library
from gptstore.pulling import pull
from gptstore.stores.auth import save_login
from gptstore.stores.bounded_http import MAX_MANIFEST_BYTES, BoundedHTTP

from .fake_hub import COMMIT, REPO, FakeHub

WEIGHTS = "model.safetensors"


@pytest.fixture
def hub():
    store = FakeHub()
    yield store
    store.close()


@pytest.fixture
def other_hub():
    store = FakeHub()
    yield store
    store.close()


def outside(tmp_path, home) -> dict[str, int]:
    """Every file under the test's tmp dir but outside GPTSTORE_HOME, with its size."""
    return {str(p): p.stat().st_size for p in tmp_path.rglob("*")
            if p.is_file() and home not in p.parents}


def sha(hub: FakeHub, path: str) -> str:
    return hashlib.sha256(hub.files[path]).hexdigest()


def assert_nothing_pulled(home, hub: FakeHub) -> None:
    library = Library()
    assert library.refs() == []
    assert sha(hub, WEIGHTS) not in set(library.blobs.all())
    assert not [p for p in (home / "blobs" / "tmp").glob("pull-*") if p.suffix != ".lock"]


# -- item 1: nothing a store sends becomes a path ---------------------------------------------
@pytest.mark.parametrize("headers", [
    {"ETag": '"../../../../x.pth"'},  # old code: the hub cache wrote tmp/x.pth (site-packages/x.pth in the wild)
    {"ETag": '"/tmp/evil.pth"', "X-Repo-Commit": "../../../../evil", "Location": "../../../../y.pth"},
])
def test_store_headers_never_become_paths(hub, tmp_path, gptstore_home, run_cli, headers):
    """ETag / X-Repo-Commit / Location naming paths: ignored, nothing written outside GPTSTORE_HOME."""
    hub.headers = headers
    before = outside(tmp_path, gptstore_home)
    shown = run_cli("show", REPO, "--store", hub.url)
    assert shown.exit_code == 0, shown.output
    pulled = run_cli("pull", f"{REPO}:1.0.0", "--store", hub.url)
    assert pulled.exit_code == 0, pulled.output
    assert run_cli("verify", REPO, "--full").exit_code == 0
    assert outside(tmp_path, gptstore_home) == before
    assert not list(tmp_path.rglob("*.pth")) and not list(tmp_path.rglob("evil*"))


@pytest.mark.parametrize("bad", ["../../../../../tmp/evil", "C0FFEE" + "0" * 34, COMMIT + "\n", COMMIT[:39],
                                 42, None])
def test_store_commit_id_is_checked_before_use(hub, tmp_path, gptstore_home, run_cli, bad):
    hub.sha = bad
    before = outside(tmp_path, gptstore_home)
    shown = run_cli("show", REPO, "--store", hub.url)
    assert shown.exit_code == 1 and "invalid commit id" in shown.output
    assert len(shown.output.strip().splitlines()) <= 2  # error + hint
    with pytest.raises(StoreError, match="invalid commit id"):
        pull(REPO, store=hub.url)
    assert outside(tmp_path, gptstore_home) == before
    assert_nothing_pulled(gptstore_home, hub)


def test_refs_with_a_bad_commit_id_are_refused(hub):
    manifest_digest = json.loads(hub.manifest)  # any pinned digest makes the client read the refs
    assert manifest_digest
    hub.tags = {"v1.0.0": "../../../x"}
    with pytest.raises(StoreError, match="invalid commit id"):
        pull(f"{REPO}@sha256:{'a' * 64}", store=hub.url)


def test_lock_file_revision_must_be_a_commit_id(hub, tmp_path, run_cli):
    lock = tmp_path / "gptstore.lock"
    lock.write_text(json.dumps({"version": 1, "models": [
        {"store": hub.url, "reference": REPO, "digest": f"sha256:{'a' * 64}", "revision": "../../../etc"}]}))
    result = run_cli("pull", "--lock", str(lock))
    assert result.exit_code == 2 and "not a valid gptstore lock file" in result.output
    with pytest.raises(UsageError, match="invalid revision"):
        from gptstore.stores import get_store
        from gptstore.refs import parse_reference

        get_store(hub.url).locate(parse_reference(REPO), revision="main/../../x")
    assert hub.seen == []


# -- item 2: endless, oversized, stalled --------------------------------------------------------
def test_endless_body_stops_at_the_manifest_size(hub, gptstore_home):
    hub.behaviour[WEIGHTS] = hub.endless(WEIGHTS)
    started = time.monotonic()
    with pytest.raises(DigestMismatch, match="sent more than the manifest's 131072 bytes"):
        pull(REPO, store=hub.url)
    assert time.monotonic() - started < 10
    assert hub.sent[WEIGHTS] < 32 * 1024 * 1024  # the client hung up (old code read all 256 MiB)
    assert_nothing_pulled(gptstore_home, hub)


def test_body_longer_than_the_manifest_says_is_refused(hub, gptstore_home):
    hub.behaviour[WEIGHTS] = hub.longer(WEIGHTS)
    with pytest.raises(DigestMismatch, match="announced 135168 more bytes, the manifest says 131072"):
        pull(REPO, store=hub.url)
    assert_nothing_pulled(gptstore_home, hub)


@pytest.mark.parametrize("variable", ["GPTSTORE_HTTP_TIMEOUT", "GPTSTORE_STALL_TIMEOUT"])
def test_stalled_body_times_out_and_resumes_later(hub, gptstore_home, monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    hub.behaviour[WEIGHTS] = hub.stalled(WEIGHTS)
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"sent nothing for 1 s while sending alice/tiny:1.0.0 model.safetensors"):
        pull(REPO, store=hub.url)
    assert time.monotonic() - started < 10
    assert Library().refs() == []
    half = len(hub.files[WEIGHTS]) // 2
    assert (gptstore_home / "blobs" / "tmp" / f"pull-{sha(hub, WEIGHTS)}").stat().st_size == half
    del hub.behaviour[WEIGHTS]  # the store recovers: the pull resumes where it stopped
    assert pull(REPO, store=hub.url).resumed_bytes == half


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf", "nan"])
def test_timeouts_must_be_positive_numbers(hub, monkeypatch, run_cli, value):
    monkeypatch.setenv("GPTSTORE_HTTP_TIMEOUT", value)
    shown = run_cli("show", REPO, "--store", hub.url)
    assert shown.exit_code == 2
    assert f"GPTSTORE_HTTP_TIMEOUT={value!r} is not a positive number of seconds" in shown.output


def test_trickling_body_is_abandoned(hub, gptstore_home, monkeypatch):
    """One byte every 0.1 s never trips a read timeout; the stall window catches it."""
    monkeypatch.setenv("GPTSTORE_STALL_TIMEOUT", "1")
    hub.behaviour[WEIGHTS] = hub.trickle(WEIGHTS)
    started = time.monotonic()
    with pytest.raises(StoreError, match="stalled while sending"):
        pull(REPO, store=hub.url)
    assert time.monotonic() - started < 10
    assert Library().refs() == []


def test_trickling_manifest_is_abandoned(hub, monkeypatch, run_cli):
    monkeypatch.setenv("GPTSTORE_STALL_TIMEOUT", "1")
    hub.behaviour["gptstore.json"] = hub.trickle("gptstore.json")
    started = time.monotonic()
    shown = run_cli("show", REPO, "--store", hub.url)
    assert shown.exit_code == 1 and "stalled while sending gptstore.json" in shown.output
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("announced", [True, False])
def test_huge_manifest_is_refused(hub, gptstore_home, run_cli, announced):
    huge = b'{"description": "' + b"x" * (MAX_MANIFEST_BYTES + 1024) + b'"}'
    if announced:
        hub.manifest = huge
    else:
        hub.behaviour["gptstore.json"] = lambda h, data: hub.stream(
            h, "gptstore.json", [huge[i:i + 65536] for i in range(0, len(huge), 65536)])
    shown = run_cli("show", REPO, "--store", hub.url)
    assert shown.exit_code == 1, shown.output
    assert f"more than the limit of {MAX_MANIFEST_BYTES} bytes" in shown.output or \
        f"more than {MAX_MANIFEST_BYTES} bytes" in shown.output
    assert not (gptstore_home / "hub-cache").exists()


def test_oversized_partial_is_discarded_not_wedging_pulls(hub, gptstore_home):
    partial = gptstore_home / "blobs" / "tmp" / f"pull-{sha(hub, WEIGHTS)}"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"z" * (len(hub.files[WEIGHTS]) + 100))  # larger than the file: never a prefix
    result = pull(REPO, store=hub.url)
    assert result.resumed_bytes == 0 and not partial.exists()
    assert verify(result.model, full=True).ok


def test_blob_writer_never_grows_past_the_expected_size(tmp_path):
    blobs = BlobStore(tmp_path / "blobs")
    with blobs.writer(expected_size=4, resume_name="pull-x") as writer:
        writer.write(b"1234")
        with pytest.raises(DigestMismatch, match="more than the expected 4 bytes"):
            writer.write(b"5")
    assert list(blobs.tmp.iterdir()) == [] and list(blobs.all()) == []
    with pytest.raises(ValueError):
        blobs.path("../../etc/passwd")
    assert not blobs.has("../../etc/passwd")
    with pytest.raises(ValueError):
        blobs.writer(resume_name="../escape")


# -- redirects ------------------------------------------------------------------------------------
def test_redirect_to_another_host_gets_no_token(hub, other_hub, monkeypatch):
    monkeypatch.setenv("GPTSTORE_TOKEN", "gst_named_store_secret")
    hub.behaviour[WEIGHTS] = hub.redirect(f"{other_hub.url}/{REPO}/resolve/{COMMIT}/{WEIGHTS}")
    pull(REPO, store=hub.url)
    assert hub.authorizations() and set(hub.authorizations()) == {"Bearer gst_named_store_secret"}
    assert [s.path for s in other_hub.seen] == [f"/{REPO}/resolve/{COMMIT}/{WEIGHTS}"]
    assert other_hub.authorizations() == []


@pytest.mark.parametrize("location, message", [
    ("file:///etc/passwd", "non-HTTP location"),
    (f"/{REPO}/resolve/{COMMIT}/{WEIGHTS}", "more than 10 times"),  # itself, forever
])
def test_bad_redirects_fail_clearly(hub, gptstore_home, location, message):
    hub.behaviour[WEIGHTS] = hub.redirect(location)
    with pytest.raises(StoreError, match=message):
        pull(REPO, store=hub.url)
    assert_nothing_pulled(gptstore_home, hub)


def test_odd_answers_fail_clearly(hub, run_cli):
    def no_location(h, data):
        h.send_response(302)
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"{}")

    hub.behaviour["gptstore.json"] = no_location
    shown = run_cli("show", REPO, "--store", hub.url)
    assert shown.exit_code == 1 and "answered gptstore.json of alice/tiny with HTTP 302, not 200" in shown.output
    del hub.behaviour["gptstore.json"]
    hub.headers = {"Content-Encoding": "gzip"}  # bytes that do not decode
    shown = run_cli("show", REPO, "--store", hub.url)
    assert shown.exit_code == 1 and "sent a broken answer" in shown.output


def test_https_never_redirects_to_plain_http():
    client = BoundedHTTP("https://store.example", "secret")
    with pytest.raises(StoreError, match="from https to plain http"):
        client._redirect_target("https://store.example/a", "http://store.example/b", "a file")
    headers = client._headers("https://cdn.example/b", None)
    assert "Authorization" not in headers
    assert client._headers("https://store.example:443/x", None)["Authorization"] == "Bearer secret"


def test_hostile_search_results_are_cleaned(hub, run_cli):
    hub.search = [1, "x", {"id": 5}, {"id": "alice/ok\x1b[31m", "downloads": "many", "gptstore": {
        "version": "1.0.0", "description": "\x1b]0;pwned\x07line\nbreak", "tags": "not-a-list",
        "pricing": {"model": "flat", "amount": float("nan"), "currency": ["USD"]}, "provider": "x"}}]
    found = run_cli("search", "--store", hub.url, "--json")
    assert found.exit_code == 0, found.output
    hits = json.loads(found.output)
    assert len(hits) == 1 and "\x1b" not in found.output and "\x07" not in found.output
    assert hits[0]["description"] == "]0;pwned line break" and hits[0]["downloads"] == 0
    assert hits[0]["price"] == {"model": "flat", "amount": 0.0, "currency": "USD"} and hits[0]["tags"] == []


# -- item 3: tokens go only where they belong ------------------------------------------------------
def lock_for(hub: FakeHub, tmp_path) -> str:
    from gptstore.manifest import parse_bytes

    digest = parse_bytes(hub.manifest).digest
    path = tmp_path / "gptstore.lock"
    path.write_text(json.dumps({"version": 1, "models": [
        {"store": hub.url, "reference": f"{REPO}:1.0.0", "digest": f"sha256:{digest}", "revision": COMMIT}]}))
    return str(path)


def test_lock_file_store_never_gets_the_named_token(hub, other_hub, tmp_path, monkeypatch, run_cli):
    """A stranger's lock file names their store: neither GPTSTORE_TOKEN nor --token goes there."""
    lock = lock_for(hub, tmp_path)
    monkeypatch.setenv("GPTSTORE_TOKEN", "gst_env_secret")
    result = run_cli("pull", "--lock", lock, "--token", "gst_cli_secret")
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("GPTSTORE_STORE", other_hub.url)  # the user's store is another one
    result = run_cli("pull", "--lock", lock, "--token", "gst_cli_secret")
    assert result.exit_code == 0, result.output
    assert hub.seen and hub.authorizations() == []
    # the store the user names does get the token, lock file or not
    result = run_cli("pull", "--lock", lock, "--store", hub.url + "/", "--token", "gst_cli_secret")
    assert result.exit_code == 0, result.output
    assert set(hub.authorizations()) == {"Bearer gst_cli_secret"}


def test_login_for_one_store_is_not_sent_to_another(hub, other_hub):
    save_login(hub.url, "gst_login_for_a")
    pull(REPO, store=other_hub.url)
    assert other_hub.seen and other_hub.authorizations() == []
    pull(REPO, store=hub.url)
    assert set(hub.authorizations()) == {"Bearer gst_login_for_a"}


def test_version_tag_must_hold_that_version(hub, gptstore_home):
    """The fake store serves 0.9.0 for :1.0.0 (the real-server rollback test is in test_hub_attacks)."""
    from .fake_hub import manifest_for

    hub.manifest = manifest_for(hub.files, version="0.9.0")
    with pytest.raises(ManifestError, match=r"alice/tiny:1.0.0 on .* holds a manifest of version 0.9.0"):
        pull(f"{REPO}:1.0.0", store=hub.url)
    assert_nothing_pulled(gptstore_home, hub)
