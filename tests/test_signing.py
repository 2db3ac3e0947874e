"""Signing keys and DSSE signatures (gptstore.signing)."""

from __future__ import annotations

import base64
import hashlib
import json
import stat

import pytest

from gptstore import plugins, signing
from gptstore.errors import (ConflictError, DigestMismatch, ManifestError, NotFoundError, TrustError,
                             UnlistedFile, UsageError)
from gptstore.library import Library
from gptstore.manifest import load_manifest
from gptstore.packaging import package
from gptstore.trust import TrustStore, authenticity, read_signature


@pytest.fixture
def pkg(tiny_gpt):
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    return tiny_gpt


def test_pae_matches_the_dsse_spec():
    assert (signing.pae("http://example.com/HelloWorld", b"hello world")
            == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world")


def test_generate_writes_a_key_pair_with_safe_permissions(gptstore_home):
    from cryptography.hazmat.primitives import serialization

    info = signing.generate_key("release")
    key_file = gptstore_home / "keys" / "release.key"
    assert info.path == key_file and not info.encrypted
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    pem = (gptstore_home / "keys" / "release.pub").read_text()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and pem == info.public_key
    raw = serialization.load_pem_public_key(pem.encode()).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert info.keyid == hashlib.sha256(raw).hexdigest()[:16]
    assert [(k.name, k.keyid) for k in signing.list_keys()] == [("release", info.keyid)]


def test_generate_refuses_an_existing_name_unless_forced():
    first = signing.generate_key("release")
    with pytest.raises(ConflictError, match="already exists.*--force"):
        signing.generate_key("release")
    assert signing.generate_key("release", force=True).keyid != first.keyid


@pytest.mark.parametrize("name", ["", "a b", "../evil", "-dash", "x" * 65, "release\n", "release\n../x"])
def test_invalid_key_names_are_usage_errors(name):
    with pytest.raises(UsageError, match="invalid key name"):
        signing.generate_key(name)


def test_an_unknown_key_says_how_to_make_one():
    with pytest.raises(NotFoundError, match="no signing key named 'nope'.*keys generate nope"):
        signing.get_key("nope")


def test_export_is_pem_with_a_key_id_comment():
    info = signing.generate_key("release")
    text = signing.export_public_key("release")
    assert text.splitlines()[0] == f"# gptstore key 'release', keyid {info.keyid}"
    assert "-----BEGIN PUBLIC KEY-----" in text
    assert signing.key_id(signing.load_public_key(text)) == info.keyid


def test_a_private_key_others_can_read_is_refused(pkg):
    info = signing.generate_key("release")
    info.path.chmod(0o644)
    with pytest.raises(TrustError, match=r"permissions 0644 for private key .* are too open") as caught:
        signing.sign_package(pkg, key="release")
    assert f"chmod 600 {info.path}" in str(caught.value)
    assert not (pkg / "gptstore.sig").exists()
    info.path.chmod(0o600)
    signing.sign_package(pkg, key="release")


def test_a_passphrase_protected_key(pkg, monkeypatch):
    monkeypatch.delenv("GPTSTORE_KEY_PASSPHRASE", raising=False)
    info = signing.generate_key("vault", passphrase="correct horse")
    assert info.encrypted and b"ENCRYPTED PRIVATE KEY" in info.path.read_bytes()
    with pytest.raises(TrustError, match="protected by a passphrase.*GPTSTORE_KEY_PASSPHRASE"):
        signing.sign_package(pkg, key="vault")
    with pytest.raises(TrustError, match="wrong passphrase for key 'vault'"):
        signing.sign_package(pkg, key="vault", passphrase="battery staple")
    assert not (pkg / "gptstore.sig").exists()
    assert signing.sign_package(pkg, key="vault", passphrase="correct horse").keyid == info.keyid
    (pkg / "gptstore.sig").unlink()
    monkeypatch.setenv("GPTSTORE_KEY_PASSPHRASE", "correct horse")
    assert signing.sign_package(pkg, key="vault").keyid == info.keyid


def test_the_env_passphrase_does_not_break_unprotected_keys(pkg, monkeypatch):
    monkeypatch.setenv("GPTSTORE_KEY_PASSPHRASE", "unused")
    info = signing.generate_key("plain", passphrase=None)
    assert not info.encrypted
    assert signing.sign_package(pkg, key="plain").keyid == info.keyid
    check = signing.check_signature(load_manifest(pkg), (pkg / "gptstore.sig").read_bytes(),
                                    {info.keyid: info.public_key})
    assert check.ok and check.keyid == info.keyid


def test_the_envelope_is_dsse_over_the_manifest_digest(pkg):
    info = signing.generate_key("release")
    result = signing.sign_package(pkg, key="release")
    manifest = load_manifest(pkg)
    assert (result.reference, result.digest, result.keyid) == ("acme/tiny:1.0.0", manifest.digest, info.keyid)
    envelope = json.loads((pkg / "gptstore.sig").read_text())
    assert set(envelope) == {"payloadType", "payload", "signatures"}
    assert envelope["payloadType"] == "application/vnd.gptstore.manifest+json"
    payload = base64.b64decode(envelope["payload"])
    statement = json.loads(payload)
    assert statement["digest"] == f"sha256:{manifest.digest}"
    assert statement["reference"] == "acme/tiny:1.0.0"
    [entry] = envelope["signatures"]
    assert entry["keyid"] == info.keyid
    # anyone with the public key can check it with plain cryptography, over PAE(type, payload)
    signing.load_public_key(info.public_key).verify(
        base64.b64decode(entry["sig"]), signing.pae(envelope["payloadType"], payload))


def test_signing_refuses_files_that_differ_from_the_manifest(pkg):
    signing.generate_key("release")
    (pkg / "config.json").write_text("{}")
    with pytest.raises(DigestMismatch, match=r"cannot sign .*config\.json.*gptstore package"):
        signing.sign_package(pkg, key="release")
    assert not (pkg / "gptstore.sig").exists()


def test_signing_refuses_a_same_size_change_and_unlisted_files(pkg):
    signing.generate_key("release")
    weights = pkg / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="model.safetensors does not match its sha256"):
        signing.sign_package(pkg, key="release")
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    (pkg / "notes.txt").write_text("extra")
    with pytest.raises(UnlistedFile, match="notes.txt is present but not listed"):
        signing.sign_package(pkg, key="release")


def test_signing_needs_a_manifest(tiny_gpt):
    signing.generate_key("release")
    with pytest.raises(ManifestError, match="no manifest"):
        signing.sign_package(tiny_gpt, key="release")


def test_round_trip_generate_sign_publish_verify_under_require(pkg):
    info = signing.generate_key("release")
    signing.sign_package(pkg, key="release")
    with TrustStore.edit() as store:
        store.add_key("acme", signing.export_public_key("release"))
    assert store.effective_policy("acme") == ("require", "trusted key")
    model = Library().publish(pkg)
    assert (model.path / "gptstore.sig").read_bytes() == (pkg / "gptstore.sig").read_bytes()

    found = plugins.collect("register_verifiers", "verifier", key=lambda name, check: name)
    owner, (name, check), _ = found["authenticity"]
    assert owner == "gptstore.trust"
    result = check(model.manifest, model.path)
    assert (result.name, result.ok, result.warning) == ("authenticity", True, False)
    assert result.summary == f"signed by key {info.keyid} (trusted: acme), policy require"
    assert result.details["policy"] == "require" and result.details["keyid"] == info.keyid

    library = Library()
    direct = authenticity(library.get("acme/tiny:latest").manifest, library.signature(model.digest))
    assert direct.ok and not direct.warning


def test_a_cosignature_by_an_unknown_key_does_not_hide_a_trusted_one(pkg):
    signing.generate_key("release")
    signing.generate_key("other")
    signing.sign_package(pkg, key="release")
    envelope = json.loads((pkg / "gptstore.sig").read_text())
    payload = base64.b64decode(envelope["payload"])
    other, other_info = signing.load_private_key("other")
    sig = other.sign(signing.pae(signing.PAYLOAD_TYPE, payload))
    envelope["signatures"].insert(0, {"keyid": other_info.keyid, "sig": base64.b64encode(sig).decode()})
    (pkg / "gptstore.sig").write_text(json.dumps(envelope))
    with TrustStore.edit() as store:
        store.add_key("acme", signing.export_public_key("release"))
    result = authenticity(load_manifest(pkg), read_signature(pkg))
    assert result.ok and result.details["keyid"] == signing.get_key("release").keyid
