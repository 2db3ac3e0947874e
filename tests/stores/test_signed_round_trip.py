"""Issue 7 end to end: sign → publish → push → pull → load under `require`, and tampering on the way."""

from __future__ import annotations

import json
import shutil

import pytest

import gptstore
from gptstore import signing
from gptstore.errors import DigestMismatch, IntegrityError, TrustError, UnlistedFile, UnsafeContentError
from gptstore.library import Library
from gptstore.manifest import dumps, load_manifest
from gptstore.packaging import package
from gptstore.pulling import pull
from gptstore.stores import get_store
from gptstore.trust import TrustStore


@pytest.fixture(autouse=True)
def _alice(store_server, monkeypatch):
    monkeypatch.setenv("GPTSTORE_TOKEN", store_server.tokens["alice:write"])


def signed_push(store_server, source, tmp_path, name, *, key="alice-key", **fields):
    target = tmp_path / name.replace("/", "_")
    shutil.copytree(source, target)
    package(target, name=name, version="1.0.0", **fields)
    signing.sign_package(target, key=key)
    model = Library().publish(target)
    get_store(store_server.url).push(model)
    return model


@pytest.fixture
def provider(tmp_path, monkeypatch):
    """alice's key; returns its exported public key file (what a consumer would be handed)."""
    monkeypatch.setenv("GPTSTORE_HOME", str(tmp_path / "provider"))
    signing.generate_key("alice-key")
    signing.generate_key("mallory")
    public = tmp_path / "alice.pub"
    public.write_text(signing.export_public_key("alice-key"))
    return public


def as_consumer(tmp_path, monkeypatch, public_key, name="consumer", policy=None):
    monkeypatch.setenv("GPTSTORE_HOME", str(tmp_path / name))
    with TrustStore.edit() as store:
        store.add_key("alice", public_key.read_text())
        if policy:
            store.set_policy(policy, "alice")


def test_round_trip_under_require(store_server, tiny_gpt_dir, tmp_path, monkeypatch, provider):
    model = signed_push(store_server, tiny_gpt_dir, tmp_path, "alice/signed")
    as_consumer(tmp_path, monkeypatch, provider)
    result = pull("alice/signed", store=store_server.url)
    assert result.model.digest == model.digest
    loaded = gptstore.load("alice/signed", device="cpu")
    summary = {c.name: c.summary for c in loaded.checks}
    assert "trusted: alice" in summary["authenticity"] and "policy require" in summary["authenticity"]
    assert loaded.generate("The", max_new_tokens=3).usage.completion_tokens == 3


def test_manifest_edited_on_the_store_is_refused_before_weights(store_server, tiny_gpt_dir, tmp_path,
                                                                monkeypatch, provider, caplog):
    model = signed_push(store_server, tiny_gpt_dir, tmp_path, "alice/priced")
    edited = model.manifest.model_copy(update={"pricing": model.manifest.pricing.model_copy(
        update={"model": "per_1k_tokens", "amount": 99.0})})
    # the store itself refuses other content for a published version (409), so the tampering
    # operator first removes the version's tag and manifest
    api = store_server.api()
    api.delete_tag("alice/priced", tag="v1.0.0")
    api.delete_file("gptstore.json", repo_id="alice/priced", commit_message="unpublish")
    api.upload_file(path_or_fileobj=dumps(edited), path_in_repo="gptstore.json",
                    repo_id="alice/priced", commit_message="raise the price")
    as_consumer(tmp_path, monkeypatch, provider)
    with pytest.raises(TrustError, match="alice/priced:1.0.0 has a manifest that differs from the signed one"):
        pull("alice/priced", store=store_server.url)
    assert list(Library().blobs.all()) == []
    with TrustStore.edit() as store:
        store.set_policy("warn", "alice")
    pulled = pull("alice/priced", store=store_server.url)  # warn: loads with one warning line
    assert pulled.model.manifest.pricing.amount == 99.0
    assert any("authenticity warning" in r.getMessage() for r in caplog.records)


def test_signature_from_another_key_or_model_is_refused(store_server, tiny_gpt_dir, tmp_path, monkeypatch, provider):
    signed_push(store_server, tiny_gpt_dir, tmp_path, "alice/forged", key="mallory")
    other = signed_push(store_server, tiny_gpt_dir, tmp_path, "alice/original")
    copied = tmp_path / "copied"
    shutil.copytree(tiny_gpt_dir, copied)
    package(copied, name="alice/copycat", version="1.0.0", description="not what alice signed")
    shutil.copy(other.path / "gptstore.sig", copied / "gptstore.sig")
    get_store(store_server.url).push(Library().publish(copied))
    as_consumer(tmp_path, monkeypatch, provider)
    with pytest.raises(TrustError, match="alice/forged:1.0.0"):
        pull("alice/forged", store=store_server.url)
    with pytest.raises(TrustError, match="alice/copycat:1.0.0"):
        pull("alice/copycat", store=store_server.url)
    assert Library().refs() == []


def test_tampered_snapshot_refused_on_load_even_under_warn(store_server, tiny_gpt_dir, tmp_path, monkeypatch, provider):
    signed_push(store_server, tiny_gpt_dir, tmp_path, "alice/local")
    as_consumer(tmp_path, monkeypatch, provider, policy="warn")
    model = pull("alice/local", store=store_server.url).model
    weights = model.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.chmod(0o644)  # a link to a read-only blob: damaged here on purpose
    weights.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="model.safetensors"):
        gptstore.load("alice/local", device="cpu")
    weights.write_bytes(bytes(data[:-1]) + bytes([data[-1] ^ 1]))  # restore
    (model.path / "evil.pkl").write_bytes(b"\x80\x04cos\nsystem\n")
    with pytest.raises(UnlistedFile, match="evil.pkl"):
        gptstore.load("alice/local", device="cpu")
    (model.path / "evil.pkl").unlink()
    (model.path / "tokenizer.json").unlink()
    with pytest.raises(IntegrityError, match="tokenizer.json"):
        gptstore.load("alice/local", device="cpu")


def test_pickle_in_a_pushed_package_needs_allow_unsafe(store_server, tiny_gpt_dir, tmp_path, monkeypatch, provider):
    target = tmp_path / "pickled"
    shutil.copytree(tiny_gpt_dir, target)
    (target / "optimizer.pt").write_bytes(b"\x80\x04pickle")
    package(target, name="alice/pickled", version="1.0.0", allow_unsafe=True)
    signing.sign_package(target, key="alice-key")
    get_store(store_server.url).push(Library().publish(target, allow_unsafe=True))
    as_consumer(tmp_path, monkeypatch, provider)
    with pytest.raises(UnsafeContentError, match="optimizer.pt"):
        pull("alice/pickled", store=store_server.url)
    assert Library().refs() == []
    assert pull("alice/pickled", store=store_server.url, allow_unsafe=True).model.manifest.file("optimizer.pt")
