"""HubStore against a real `gptstore server` process: push, search, show, pull, lock, auth, faults."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import gptstore
from gptstore.errors import AuthError, ConflictError, DigestMismatch, ManifestError, ModelNotFound, StoreError
from gptstore.library import Library
from gptstore.packaging import package
from gptstore.pulling import pull
from gptstore.stores import get_store
from gptstore.testing import tree_state


@pytest.fixture(autouse=True)
def _alice(store_server, monkeypatch):
    monkeypatch.setenv("GPTSTORE_TOKEN", store_server.tokens["alice:write"])


def publish(source, tmp_path, name, version="1.0.0", *, extra: dict[str, bytes] | None = None, **fields):
    target = tmp_path / f"{name.replace('/', '_')}-{version}"
    shutil.copytree(source, target)
    for rel, data in (extra or {}).items():
        (target / rel).write_bytes(data)
    package(target, name=name, version=version, **fields)
    return Library().publish(target)


def count_lfs_uploads(monkeypatch) -> list[str]:
    """The paths huggingface_hub uploads over LFS from now on (the list fills as it uploads)."""
    from huggingface_hub import _commit_api

    uploads: list[str] = []
    original = _commit_api.lfs_upload

    def counting(*, operation, **kwargs):
        uploads.append(operation.path_in_repo)
        return original(operation=operation, **kwargs)

    monkeypatch.setattr(_commit_api, "lfs_upload", counting)
    return uploads


def consumer_home(tmp_path, monkeypatch, name="consumer"):
    home = tmp_path / name
    monkeypatch.setenv("GPTSTORE_HOME", str(home))
    return home


def test_push_search_show_pull_verify_run(store_server, tiny_gpt_dir, tmp_path, monkeypatch, run_cli):
    model = publish(tiny_gpt_dir, tmp_path, "alice/poet", description="Writes haiku about rivers",
                    tags=["haiku"], provider={"name": "Alice Labs"}, license="mit",
                    pricing={"model": "per_1k_tokens", "amount": 0.5, "currency": "EUR"})
    pushed = run_cli("push", "alice/poet", "--store", store_server.url)
    assert pushed.exit_code == 0, pushed.output
    assert "Pushed alice/poet:1.0.0" in pushed.output
    again = run_cli("push", "alice/poet", "--store", store_server.url)
    assert again.exit_code == 0  # same content: nothing to do
    api = store_server.api()
    assert {t.name for t in api.list_repo_refs("alice/poet").tags} == {"v1.0.0"}
    card = api.model_info("alice/poet").card_data  # the card's metadata as huggingface_hub reads it back
    assert (card.library_name, card.pipeline_tag, card.license) == ("gptstore", "text-generation", "mit")
    assert card.tags == ["gptstore", "haiku"]

    consumer_home(tmp_path, monkeypatch)
    found = run_cli("search", "haiku rivers", "--store", store_server.url)
    assert found.exit_code == 0
    assert "alice/poet:1.0.0" in found.output and "Alice Labs" in found.output and "0.5 EUR/1k tokens" in found.output
    hits = json.loads(run_cli("search", "--store", store_server.url, "--tag", "haiku", "--json").output)
    assert [h["reference"] for h in hits] == ["alice/poet:1.0.0"] and hits[0]["license"] == "mit"
    shown = run_cli("show", "alice/poet", "--store", store_server.url)
    assert shown.exit_code == 0 and f"sha256:{model.digest}" in shown.output and "model.safetensors" in shown.output
    assert Library().refs() == []  # show downloads no weights

    pulled = json.loads(run_cli("pull", "alice/poet", "--store", store_server.url, "--json").output)
    assert pulled[0]["digest"] == f"sha256:{model.digest}" and pulled[0]["fetched_files"] == len(model.manifest.files)
    assert run_cli("verify", "alice/poet", "--full").exit_code == 0
    out = run_cli("run", "alice/poet", "Rivers", "--max-new-tokens", "5", "--json")
    assert out.exit_code == 0 and json.loads(out.output)["usage"]["completion_tokens"] == 5
    repull = pull("alice/poet", store=store_server.url)
    assert repull.fetched_files == 0 and repull.fetched_bytes == 0


def test_second_model_fetches_only_new_bytes(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    publish(tiny_gpt_dir, tmp_path, "alice/share-a")
    other = publish(tiny_gpt_dir, tmp_path, "alice/share-b", extra={"notes.txt": b"only in b" * 100})
    store = get_store(store_server.url)
    store.push(Library().get("alice/share-a"))
    store.push(other)
    consumer_home(tmp_path, monkeypatch)
    first = pull("alice/share-a", store=store_server.url)
    second = pull("alice/share-b", store=store_server.url)
    assert second.fetched_files == 1 and second.fetched_bytes == 900
    assert second.reused_files == len(first.model.manifest.files)


def test_version_conflict_and_latest(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    publish(tiny_gpt_dir, tmp_path, "alice/moving", description="first")
    store = get_store(store_server.url)
    store.push(Library().get("alice/moving"))
    changed = tmp_path / "changed"
    shutil.copytree(tiny_gpt_dir, changed)
    package(changed, name="alice/moving", version="1.0.0", description="other content")
    Library().publish(changed, force=True)
    with pytest.raises(ConflictError, match="alice/moving:1.0.0 is already on .* with other content"):
        store.push(Library().get("alice/moving"))


def test_lock_file_reproduces_exact_digest_after_latest_moved(store_server, tiny_gpt_dir, tmp_path,
                                                               monkeypatch, run_cli):
    v1 = publish(tiny_gpt_dir, tmp_path, "alice/locked", "1.0.0", description="v1")
    store = get_store(store_server.url)
    store.push(v1)
    lock = run_cli("lock", "alice/locked", "--store", store_server.url)
    assert lock.exit_code == 0
    lock_path = tmp_path / "gptstore.lock"
    lock_path.write_text(lock.output)
    v2 = publish(tiny_gpt_dir, tmp_path, "alice/locked", "2.0.0", description="v2")
    store.push(v2)
    assert store.resolve(gptstore.parse_reference("alice/locked")) == v2.digest  # latest moved
    consumer_home(tmp_path, monkeypatch)
    result = run_cli("pull", "--lock", str(lock_path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["digest"] == f"sha256:{v1.digest}"
    # a lock that names a digest the revision does not have fails
    data = json.loads(lock_path.read_text())
    data["models"][0]["digest"] = f"sha256:{v2.digest}"
    lock_path.write_text(json.dumps(data))
    bad = run_cli("pull", "--lock", str(lock_path))
    assert bad.exit_code == 1 and "not found" in bad.output


def test_private_models_need_the_right_token(store_server, tiny_gpt_dir, tmp_path, monkeypatch, run_cli):
    model = publish(tiny_gpt_dir, tmp_path, "alice/secret")
    assert run_cli("push", "alice/secret", "--store", store_server.url, "--private").exit_code == 0
    consumer_home(tmp_path, monkeypatch)
    monkeypatch.delenv("GPTSTORE_TOKEN")
    anonymous = run_cli("pull", "alice/secret", "--store", store_server.url)
    assert anonymous.exit_code == 1 and "not authorised" in anonymous.output and "--token" in anonymous.output
    bob = run_cli("pull", "alice/secret", "--store", store_server.url, "--token", store_server.tokens["bob:write"])
    assert bob.exit_code == 1 and "not found" in bob.output
    assert "alice/secret" not in run_cli("search", "secret", "--store", store_server.url).output
    ok = run_cli("pull", "alice/secret", "--store", store_server.url, "--token", store_server.tokens["alice:read"])
    assert ok.exit_code == 0 and Library().resolve("alice/secret")[1] == model.digest
    wrong = run_cli("push", "alice/secret", "--store", store_server.url, "--token", "gst_not_a_token")
    assert wrong.exit_code == 1 and "not authorised" in wrong.output


def test_token_scope_and_login(store_server, tiny_gpt_dir, tmp_path, monkeypatch, run_cli):
    publish(tiny_gpt_dir, tmp_path, "alice/scoped")
    monkeypatch.delenv("GPTSTORE_TOKEN")
    read_only = run_cli("push", "alice/scoped", "--store", store_server.url, "--token", store_server.tokens["alice:read"])
    assert read_only.exit_code == 1 and "refused to write" in read_only.output and "read-only" in read_only.output
    other_ns = run_cli("push", "alice/scoped", "--store", store_server.url, "--token", store_server.tokens["bob:write"])
    assert other_ns.exit_code == 1 and "bob may not write to the namespace 'alice'" in other_ns.output
    bad_login = run_cli("login", "--store", store_server.url, "--token", "gst_wrong")
    assert bad_login.exit_code == 1 and "did not accept the token" in bad_login.output
    login = run_cli("login", "--store", store_server.url, "--token", store_server.tokens["alice:write"])
    assert login.exit_code == 0 and "as alice" in login.output
    credentials = tmp_path / "gptstore-home" / "credentials.json"
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"
    assert run_cli("push", "alice/scoped", "--store", store_server.url).exit_code == 0


def test_corrupted_server_blob_is_caught_and_leaves_nothing(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    model = publish(tiny_gpt_dir, tmp_path, "alice/corrupt", extra={"vocab-notes.txt": b"x" * 5000})
    get_store(store_server.url).push(model)
    entry = model.manifest.file("vocab-notes.txt")
    store_server.rewrite_blob(entry.sha256, lambda old: b"y" * len(old))  # same size, other bytes: a rotten store
    home = consumer_home(tmp_path, monkeypatch)
    with pytest.raises(DigestMismatch, match="vocab-notes.txt"):
        pull("alice/corrupt", store=store_server.url)
    library = Library()
    assert library.refs() == []
    assert entry.sha256 not in set(library.blobs.all())
    assert not [p for p in home.rglob("pull-*") if p.suffix != ".lock"]  # no partial download kept


def test_invalid_remote_manifest_refused_before_any_weight(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    import hashlib

    from gptstore.manifest import dumps

    model = publish(tiny_gpt_dir, tmp_path, "alice/badmanifest")
    get_store(store_server.url).push(model)
    store_server.rewrite_blob(hashlib.sha256(dumps(model.manifest)).hexdigest(),
                              lambda old: old.replace(b'"version": "1.0.0"', b'"version": "1.0.x"'))
    consumer_home(tmp_path, monkeypatch)
    with pytest.raises(ManifestError, match="version: must be a semantic version"):
        pull("alice/badmanifest", store=store_server.url)
    assert list(Library().blobs.all()) == [] and Library().refs() == []


SLOW_PULL = """
import sys, time
from gptstore.blobs import BlobWriter
original = BlobWriter.write
def slow(self, data):  # a slow network: 64 KiB every 20 ms
    for start in range(0, len(data), 65536):
        time.sleep(0.02)
        original(self, data[start:start + 65536])
BlobWriter.write = slow
from gptstore.pulling import pull
pull(sys.argv[1], store=sys.argv[2])
"""


@pytest.mark.slow
def test_interrupted_pull_resumes_and_ends_verified(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    big = os.urandom(6 * 1024 * 1024)
    model = publish(tiny_gpt_dir, tmp_path, "alice/big", extra={"big.dat": big})
    get_store(store_server.url).push(model)
    home = consumer_home(tmp_path, monkeypatch)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_PULL, "alice/big", store_server.url], env=dict(os.environ))
    partial = home / "blobs" / "tmp" / f"pull-{model.manifest.file('big.dat').sha256}"
    deadline = time.time() + 60
    while time.time() < deadline and not (partial.exists() and partial.stat().st_size > 1024 * 1024):
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    kept = partial.stat().st_size
    assert 0 < kept < len(big)
    assert Library().refs() == []  # no ref until every file is in
    result = pull("alice/big", store=store_server.url)
    assert result.resumed_bytes == kept
    assert gptstore.verify("alice/big", full=True).ok


def test_offline_makes_no_request(store_server, tiny_gpt_dir, tmp_path, monkeypatch, run_cli):
    model = publish(tiny_gpt_dir, tmp_path, "alice/offline")
    get_store(store_server.url).push(model)
    consumer_home(tmp_path, monkeypatch)
    pull("alice/offline", store=store_server.url)
    monkeypatch.setenv("GPTSTORE_OFFLINE", "1")
    dead = "http://127.0.0.1:9"  # nothing listens: any request would fail differently
    with pytest.raises(StoreError, match="offline"):
        pull("alice/missing", store=dead)
    loaded = gptstore.load("alice/offline", store=dead, device="cpu")  # already pulled: loads offline
    assert loaded.digest == model.digest
    result = run_cli("pull", "alice/missing", "--store", dead)
    assert result.exit_code == 1 and "offline" in result.output and "alice/missing" in result.output


def test_load_pulls_on_demand(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    model = publish(tiny_gpt_dir, tmp_path, "alice/ondemand")
    get_store(store_server.url).push(model)
    consumer_home(tmp_path, monkeypatch)
    loaded = gptstore.load("alice/ondemand", store=store_server.url, device="cpu")
    assert loaded.digest == model.digest and Library().resolve("alice/ondemand")[1] == model.digest


def test_unknown_model_and_unreachable_store(store_server, run_cli):
    missing = run_cli("show", "alice/nothing", "--store", store_server.url)
    assert missing.exit_code == 1 and "not found" in missing.output
    down = run_cli("show", "alice/x", "--store", "http://127.0.0.1:9")
    assert down.exit_code == 1 and "cannot reach http://127.0.0.1:9" in down.output


def test_push_uploads_only_what_the_store_lacks(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    """A second model sharing a large file with one already on the store sends none of its bytes."""
    uploads = count_lfs_uploads(monkeypatch)
    shared = os.urandom(400 * 1024)  # above the test server's LFS threshold (256 KiB)
    first = publish(tiny_gpt_dir, tmp_path, "alice/dedup-a", extra={"shared.dat": shared})
    second = publish(tiny_gpt_dir, tmp_path, "alice/dedup-b", extra={"shared.dat": shared})
    store = get_store(store_server.url)
    store.push(first)
    assert "shared.dat" in uploads
    uploads.clear()
    store.push(second)
    assert "shared.dat" not in uploads
    consumer_home(tmp_path, monkeypatch)
    assert pull("alice/dedup-b", store=store_server.url).model.manifest.file("shared.dat").size == len(shared)


CONCURRENT_PULL = """
import sys
from gptstore.pulling import pull
print(pull(sys.argv[1], store=sys.argv[2]).fetched_bytes)
"""


def test_concurrent_pulls_of_one_model_agree(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    model = publish(tiny_gpt_dir, tmp_path, "alice/twice", extra={"big.dat": os.urandom(3 * 1024 * 1024)})
    get_store(store_server.url).push(model)
    consumer_home(tmp_path, monkeypatch)
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_PULL, "alice/twice", store_server.url],
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ)) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(int(out.split()[-1]) for out in outputs) == model.manifest.total_size  # each blob fetched once
    assert gptstore.verify("alice/twice", full=True).ok
    assert not list(Library().blobs.tmp.glob("pull-*"))


def test_pull_reports_progress_in_bytes(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    model = publish(tiny_gpt_dir, tmp_path, "alice/progress", extra={"big.dat": os.urandom(2 * 1024 * 1024)})
    get_store(store_server.url).push(model)
    consumer_home(tmp_path, monkeypatch)
    seen: list[tuple[int, int]] = []
    pull("alice/progress", store=store_server.url, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (model.manifest.total_size, model.manifest.total_size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_push_to_a_gptstore_server_uses_lfs_and_leaves_xet_on_for_the_rest_of_the_process(
        store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    """A gptstore server has no Xet service: our client's uploads go over LFS, yet huggingface_hub's
    process-wide switch is never touched, so a huggingface.co upload elsewhere keeps Xet."""
    pytest.importorskip("hf_xet")
    from huggingface_hub import _commit_api, constants, hf_api

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    sent = count_lfs_uploads(monkeypatch)
    store = get_store(store_server.url)
    assert constants.HF_HUB_DISABLE_XET is False  # creating the store changed nothing process-wide
    model = publish(tiny_gpt_dir, tmp_path, "alice/lfs", extra={"big.dat": os.urandom(400 * 1024)})
    store.push(model)
    assert "big.dat" in sent  # above the server's LFS threshold, sent over LFS
    assert constants.HF_HUB_DISABLE_XET is False
    assert _commit_api.is_xet_available() and hf_api.is_xet_available()  # as huggingface_hub decides
    consumer_home(tmp_path, monkeypatch)
    assert pull("alice/lfs", store=store_server.url).model.manifest.file("big.dat").size == 400 * 1024


def test_xet_is_off_only_inside_our_uploads_in_their_own_thread(monkeypatch):
    pytest.importorskip("hf_xet")
    import threading

    from huggingface_hub import HfApi, _commit_api, constants

    from gptstore.stores.hub import HubStore, without_xet

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    monkeypatch.delenv("HF_ENDPOINT")  # hf:// is huggingface.co (nothing is sent in this test)
    hf = get_store("hf://")
    assert (hf.url, hf.endpoint) == ("hf://", "https://huggingface.co")
    assert type(hf.api) is HfApi  # huggingface.co: the stock client, Xet as the process has it
    local = HubStore("http://127.0.0.1:9/")
    assert local.url == "http://127.0.0.1:9" and isinstance(local.api, HfApi) and type(local.api) is not HfApi
    seen: dict[str, bool] = {}
    with without_xet():
        seen["inside"] = _commit_api.is_xet_available()
        other = threading.Thread(target=lambda: seen.setdefault("other thread", _commit_api.is_xet_available()))
        other.start()
        other.join()
    seen["after"] = _commit_api.is_xet_available()
    assert seen == {"inside": False, "other thread": True, "after": True}
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the user's own switch still rules outside
    assert _commit_api.is_xet_available() is False


def test_a_package_with_its_own_readme_keeps_it_on_the_store(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    """The generated card is written only when the package has no README.md of its own: a pinned
    README is never replaced (a pull would then fail its digest)."""
    readme = b"---\nlicense: mit\n---\n# Own words\nWritten by the provider.\n"
    model = publish(tiny_gpt_dir, tmp_path, "alice/own-readme", extra={"README.md": readme})
    assert model.manifest.file("README.md") is not None
    gptstore.push("alice/own-readme", store=store_server.url)
    consumer_home(tmp_path, monkeypatch)
    pulled = pull("alice/own-readme", store=store_server.url)
    assert (pulled.model.path / "README.md").read_bytes() == readme
