"""The trust policy (gptstore.trust) and the authenticity verifier on published models."""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil

import pytest

from gptstore import plugins, signing
from gptstore.errors import NotFoundError, TrustError, UsageError
from gptstore.library import Library
from gptstore.manifest import Metric, Pricing, load_manifest, save as save_manifest
from gptstore.packaging import package
from gptstore.trust import TrustStore, authenticity, read_signature, trust_file


# -- the store and policy resolution ------------------------------------------------------------

def _pem(name: str = "release") -> str:
    signing.generate_key(name)
    return signing.export_public_key(name)


def test_defaults_warn_and_require_once_a_key_is_trusted():
    store = TrustStore.load()
    assert store.effective_policy("acme") == ("warn", "default")
    with TrustStore.edit() as store:
        key, added = store.add_key("acme", _pem())
    assert added and key.keyid == signing.get_key("release").keyid
    store = TrustStore.load()
    assert store.effective_policy("acme") == ("require", "trusted key")
    assert store.effective_policy("other") == ("warn", "default")


def test_a_namespace_policy_wins_over_keys_and_the_global_default():
    with TrustStore.edit() as store:
        store.add_key("acme", _pem())
        store.set_policy("warn", "acme")
        store.set_policy("off")
        store.set_policy("require", "strict")
    store = TrustStore.load()
    assert store.effective_policy("acme") == ("warn", "namespace policy")
    assert store.effective_policy("strict") == ("require", "namespace policy")
    assert store.effective_policy("nobody") == ("off", "default")
    with TrustStore.edit() as store:
        store.set_policy(None, "acme")  # back to the rules: it has a key, so require
    assert TrustStore.load().effective_policy("acme") == ("require", "trusted key")


def test_a_global_require_applies_to_every_namespace():
    with TrustStore.edit() as store:
        store.set_policy("require")
    assert TrustStore.load().effective_policy("anyone") == ("require", "default")


def test_the_store_is_json_and_adding_twice_keeps_one_key(gptstore_home):
    pem = _pem()
    for _ in range(2):
        with TrustStore.edit() as store:
            _, added = store.add_key("acme", pem)
    assert not added
    data = json.loads(trust_file().read_text())
    assert trust_file() == gptstore_home / "trust.json"
    assert data["default_policy"] == "warn"
    [entry] = data["namespaces"]["acme"]["keys"]
    assert entry["keyid"] == signing.get_key("release").keyid
    assert entry["public_key"].startswith("-----BEGIN PUBLIC KEY-----")


def test_remove_one_key_by_prefix_or_all_keys():
    with TrustStore.edit() as store:
        first, _ = store.add_key("acme", _pem("a"))
        second, _ = store.add_key("acme", _pem("b"))
    with TrustStore.edit() as store:
        assert store.remove("acme", first.keyid[:6]) == [first]
    assert [k.keyid for k in TrustStore.load().keys_for("acme")] == [second.keyid]
    with TrustStore.edit() as store:
        assert store.remove("acme") == [second]
    store = TrustStore.load()
    assert store.keys_for("acme") == [] and store.effective_policy("acme") == ("warn", "default")
    with pytest.raises(NotFoundError, match="no key is trusted for namespace acme"):
        store.remove("acme")
    with pytest.raises(NotFoundError, match="no key 123 is trusted"):
        store.remove("acme", "123")


def test_bad_input_is_refused_clearly(tmp_path):
    store = TrustStore.load()
    with pytest.raises(UsageError, match="unknown trust policy 'strict'"):
        store.set_policy("strict")
    with pytest.raises(UsageError, match="invalid namespace"):
        store.add_key("not/one", _pem())
    with pytest.raises(TrustError, match="holds no PEM public key"):
        store.add_key("acme", "hello")
    with pytest.raises(TrustError, match="holds no PEM public key"):
        store.add_key("acme", signing.get_key("release").path.read_text())  # a private key
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from cryptography.hazmat.primitives.asymmetric import rsa

    ec_pem = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(TrustError, match="not P-256"):  # P-256 keys are accepted (OpenSSF model.sig)
        store.add_key("acme", ec_pem)
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(TrustError, match="not an Ed25519 or P-256 key"):
        store.add_key("acme", rsa_pem)


def test_a_damaged_trust_file_is_an_error_not_an_empty_policy():
    trust_file().parent.mkdir(parents=True, exist_ok=True)
    trust_file().write_text("{not json")
    with pytest.raises(TrustError, match="trust policy file .* is damaged"):
        TrustStore.load()


# -- the verifier on published models -----------------------------------------------------------

@pytest.fixture
def signed(tiny_gpt):
    """acme/tiny:1.0.0 packaged and signed with key "release", which is trusted for acme."""
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    signing.generate_key("release")
    signing.sign_package(tiny_gpt, key="release")
    with TrustStore.edit() as store:
        store.add_key("acme", signing.export_public_key("release"))
    return tiny_gpt


def _publish_and_check(pkg, **kwargs):
    model = Library().publish(pkg, force=True)
    return authenticity(model.manifest, read_signature(model.path), **kwargs)


def edit_pricing(pkg, tmp_path):
    manifest = load_manifest(pkg)
    manifest.pricing = Pricing(model="per_1k_tokens", amount=9.99)
    save_manifest(manifest, pkg)


def edit_metrics(pkg, tmp_path):
    manifest = load_manifest(pkg)
    manifest.metrics = [Metric(name="perplexity", value=1.01, dataset="made-up")]
    save_manifest(manifest, pkg)


def sign_with_another_key(pkg, tmp_path):
    signing.generate_key("mallory")
    signing.sign_package(pkg, key="mallory")


def forge_the_trusted_keyid(pkg, tmp_path):
    trusted = signing.get_key("release").keyid
    sign_with_another_key(pkg, tmp_path)
    envelope = json.loads((pkg / "gptstore.sig").read_text())
    envelope["signatures"][0]["keyid"] = trusted
    (pkg / "gptstore.sig").write_text(json.dumps(envelope))


def copy_from_another_model(pkg, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(pkg, other)
    (other / "gptstore.sig").unlink(missing_ok=True)  # (package would drop it as stale, with a warning)
    package(other, name="acme/other", version="1.0.0")
    signing.sign_package(other, key="release")
    shutil.copy(other / "gptstore.sig", pkg / "gptstore.sig")


def copy_from_another_version(pkg, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(pkg, other)
    (other / "gptstore.sig").unlink(missing_ok=True)  # (package would drop it as stale, with a warning)
    package(other, name="acme/tiny", version="1.0.1")
    signing.sign_package(other, key="release")
    shutil.copy(other / "gptstore.sig", pkg / "gptstore.sig")


def remove_signature(pkg, tmp_path):
    (pkg / "gptstore.sig").unlink()


def garble_signature(pkg, tmp_path):
    (pkg / "gptstore.sig").write_text("not an envelope")


def change_payload_type(pkg, tmp_path):
    envelope = json.loads((pkg / "gptstore.sig").read_text())
    envelope["payloadType"] = "application/vnd.in-toto+json"
    (pkg / "gptstore.sig").write_text(json.dumps(envelope))


def swap_payload(pkg, tmp_path):
    envelope = json.loads((pkg / "gptstore.sig").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["reference"] = "acme/tiny:9.9.9"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (pkg / "gptstore.sig").write_text(json.dumps(envelope))


TAMPERS = [
    (edit_pricing, r"manifest that differs from the signed one.*changed after signing"),
    (edit_metrics, r"manifest that differs from the signed one.*changed after signing"),
    (sign_with_another_key, r"signed by key [0-9a-f]{16}, which is not trusted for acme.*trust add acme"),
    (forge_the_trusted_keyid, r"claims trusted key [0-9a-f]{16} but does not verify"),
    (copy_from_another_model, r"signature for another model: it signs acme/other:1\.0\.0 .* not acme/tiny:1\.0\.0"),
    (copy_from_another_version, r"signature for another model: it signs acme/tiny:1\.0\.1"),
    (remove_signature, r"acme/tiny:1\.0\.0 is not signed"),
    (garble_signature, r"malformed signature \(gptstore\.sig: not JSON\)"),
    (change_payload_type, r"malformed signature \(gptstore\.sig: payloadType is 'application/vnd\.in-toto\+json'"),
    (swap_payload, r"claims trusted key .* but does not verify"),
]
IDS = [t[0].__name__ for t in TAMPERS]


def test_a_signed_and_trusted_model_passes(signed, caplog):
    result = _publish_and_check(signed)
    assert result.ok and not result.warning and "policy require" in result.summary
    assert not caplog.records


@pytest.mark.parametrize("tamper, message", TAMPERS, ids=IDS)
def test_require_refuses_each_tampering(signed, tmp_path, tamper, message):
    tamper(signed, tmp_path)
    with pytest.raises(TrustError, match=message) as caught:
        _publish_and_check(signed)
    assert str(caught.value).startswith("refused by the trust policy for acme (require): acme/tiny:1.0.0 ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("tamper, message", TAMPERS, ids=IDS)
def test_warn_returns_one_line_and_goes_on(signed, tmp_path, tamper, message, caplog):
    with TrustStore.edit() as store:
        store.set_policy("warn", "acme")
    tamper(signed, tmp_path)
    with caplog.at_level(logging.DEBUG, logger="gptstore"):
        result = _publish_and_check(signed)
    assert result.ok and result.warning and result.summary.endswith("policy warn")
    assert not caplog.records  # the check never logs: the operation that asked shows the line
    text = result.note
    assert result.warning_line == text
    assert text.startswith("authenticity warning: acme/tiny:1.0.0 ") and "\n" not in text
    assert re.search(message, text)


@pytest.mark.parametrize("tamper", [t[0] for t in TAMPERS], ids=IDS)
def test_off_is_silent(signed, tmp_path, tamper, caplog):
    with TrustStore.edit() as store:
        store.set_policy("off", "acme")
    tamper(signed, tmp_path)
    result = _publish_and_check(signed)
    assert result.ok and not result.warning and result.summary == "not checked (policy off)"
    assert not caplog.records


def test_an_unsigned_model_needs_no_advice_a_badly_signed_one_gets_it(signed, tmp_path):
    with TrustStore.edit() as store:
        store.set_policy("warn", "acme")
    remove_signature(signed, tmp_path)
    result = _publish_and_check(signed)
    assert result.summary == "unsigned, policy warn"
    assert result.note == "authenticity warning: acme/tiny:1.0.0 is not signed (no gptstore.sig)"
    sign_with_another_key(signed, tmp_path)
    assert _publish_and_check(signed).note.endswith("run `gptstore trust add acme PUBKEY_FILE` with their public key")


def test_the_check_takes_signature_bytes_not_a_directory(signed):
    manifest = load_manifest(signed)
    data = (signed / "gptstore.sig").read_bytes()
    assert authenticity(manifest, data).ok
    with pytest.raises(TrustError, match="malformed signature"):
        authenticity(manifest, data[:-20])
    with pytest.raises(TrustError, match=r"malformed signature \(gptstore\.sig: larger than 1 MiB\)"):
        authenticity(manifest, b" " * (signing.MAX_SIGNATURE_BYTES + 1))
    (signed / "gptstore.sig").write_bytes(b" " * (2 * signing.MAX_SIGNATURE_BYTES))
    assert len(read_signature(signed)) == signing.MAX_SIGNATURE_BYTES + 1  # never read whole
    assert read_signature(signed / "nowhere") is None


def test_the_override_wins_over_the_store(signed, tmp_path):
    remove_signature(signed, tmp_path)
    assert _publish_and_check(signed, policy_override="off").summary == "not checked (policy off)"
    assert _publish_and_check(signed, policy_override="warn").warning
    with pytest.raises(UsageError, match="unknown trust policy"):
        _publish_and_check(signed, policy_override="maybe")


def test_unsigned_models_warn_by_default(tiny_gpt):
    package(tiny_gpt, name="bob/tiny", version="1.0.0")
    result = _publish_and_check(tiny_gpt)
    assert result.warning and result.details["policy_source"] == "default"
    assert "bob/tiny:1.0.0 is not signed" in result.note


def test_global_require_without_a_trusted_key_says_so(tiny_gpt):
    package(tiny_gpt, name="bob/tiny", version="1.0.0")
    signing.generate_key("bob")
    signing.sign_package(tiny_gpt, key="bob")
    with TrustStore.edit() as store:
        store.set_policy("require")
    with pytest.raises(TrustError, match=r"signed by key [0-9a-f]{16}, and no key is trusted for bob"):
        _publish_and_check(tiny_gpt)


def test_a_key_trusted_for_another_namespace_is_not_trusted_here(signed):
    with TrustStore.edit() as store:
        store.remove("acme")
        store.add_key("other", signing.export_public_key("release"))
        store.set_policy("require", "acme")
    with pytest.raises(TrustError, match="no key is trusted for acme"):
        _publish_and_check(signed)


def test_the_registered_verifier_refuses_under_require(signed, tmp_path):
    remove_signature(signed, tmp_path)
    model = Library().publish(signed)
    found = plugins.collect("register_verifiers", "verifier", key=lambda name, check: name)
    check = found["authenticity"][1][1]
    with pytest.raises(TrustError, match="is not signed"):
        check(model.manifest, model.path)
