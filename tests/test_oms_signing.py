"""OpenSSF model signatures (``model.sig``, OMS v1.0) made by ``gptstore sign --format oms`` and
checked with the ``model_signing`` CLI and library, and by gptstore's own authenticity check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gptstore.cli.main import cli
from gptstore.manifest import OMS_SIGNATURE_FILE, SIGNATURE_FILE, load_manifest
from gptstore.oms import check_oms, read_oms
from gptstore.packaging import package
from gptstore.signing import check_signature, export_public_key
from gptstore.trust import TrustStore, authenticity, read_signature

pytest.importorskip("model_signing")
MODEL_SIGNING = Path(sys.executable).with_name("model_signing")


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def oms_verify(directory: Path, pub: Path, signature: Path | None = None) -> subprocess.CompletedProcess:
    """The OpenSSF tool itself: ``model_signing verify key --signature S --public_key K DIR``."""
    signature = signature or directory / OMS_SIGNATURE_FILE
    return subprocess.run([str(MODEL_SIGNING), "verify", "key", "--signature", str(signature),
                           "--public_key", str(pub), str(directory)], capture_output=True, text=True, timeout=120)


def make_key(name: str, tmp_path: Path) -> tuple[str, Path]:
    out = run("keys", "generate", name, "--type", "ec-p256", "--json")
    pub = tmp_path / f"{name}.pub"
    pub.write_text(export_public_key(name))
    assert '"type": "ec-p256"' in out
    return out.split('"keyid": "')[1].split('"')[0], pub


@pytest.fixture
def signed(tiny_gpt, tmp_path, gptstore_home):
    """A package of acme/tiny signed in both formats with a P-256 key; (dir, pub)."""
    _, pub = make_key("oms", tmp_path)
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    out = run("sign", str(tiny_gpt), "--key", "oms", "--format", "both")
    assert SIGNATURE_FILE in out and OMS_SIGNATURE_FILE in out
    return tiny_gpt, pub


def trusted(pub: Path) -> dict[str, str]:
    store = TrustStore(Path("/nonexistent"))
    key, _ = store.add_key("acme", pub.read_bytes())
    return {key.keyid: key.public_key}


def test_model_signing_cli_and_library_verify_a_signed_package(signed):
    root, pub = signed
    result = oms_verify(root, pub)
    assert result.returncode == 0, result.stderr
    import model_signing

    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(root, root / OMS_SIGNATURE_FILE)
    manifest = load_manifest(root)
    keys = trusted(pub)
    assert check_oms(manifest, read_oms(root), keys).ok
    assert check_signature(manifest, read_signature(root), keys).ok  # the same P-256 key signs gptstore.sig


def test_the_statement_lists_every_file_and_the_manifest(signed):
    import base64
    import json

    root, _ = signed
    bundle = json.loads((root / OMS_SIGNATURE_FILE).read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    names = {s["name"] for s in statement["subject"]} | {r["name"] for r in statement["predicate"]["resources"]}
    manifest = load_manifest(root)
    assert {f.path for f in manifest.files} | {"gptstore.json"} <= names
    assert SIGNATURE_FILE not in names and OMS_SIGNATURE_FILE not in names
    assert statement["predicateType"].startswith("https://model_signing/signature")


def test_oms_needs_a_p256_key(tiny_gpt, gptstore_home):
    run("keys", "generate", "ed")
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    result = CliRunner().invoke(cli, ["sign", str(tiny_gpt), "--key", "ed", "--format", "oms"])
    assert result.exit_code != 0 and "needs a P-256 key" in result.output
    assert not (tiny_gpt / OMS_SIGNATURE_FILE).exists()


# -- the seven tamper cases, against both formats ---------------------------------------------------

def _byte_change(root: Path, other: Path) -> None:
    path = root / "config.json"
    path.write_bytes(path.read_bytes().replace(b"{", b"{ ", 1))


def _added_file(root: Path, other: Path) -> None:
    (root / "extra.txt").write_text("not signed")


def _removed_file(root: Path, other: Path) -> None:
    (root / "config.json").unlink()


def _renamed_file(root: Path, other: Path) -> None:
    (root / "config.json").rename(root / "config2.json")


def _edited_manifest(root: Path, other: Path) -> None:
    path = root / "gptstore.json"
    path.write_text(path.read_text().replace('"version": "1.0.0"', '"version": "1.0.1"'))


def _foreign_key(root: Path, other: Path) -> None:
    run("keys", "generate", "mallory", "--type", "ec-p256")
    run("sign", str(root), "--key", "mallory", "--format", "both")


def _copied_signature(root: Path, other: Path) -> None:
    for name in (SIGNATURE_FILE, OMS_SIGNATURE_FILE):
        shutil.copy(other / name, root / name)


TAMPER = [_byte_change, _added_file, _removed_file, _renamed_file, _edited_manifest, _foreign_key, _copied_signature]


@pytest.mark.parametrize("tamper", TAMPER, ids=lambda f: f.__name__.strip("_"))
def test_tampering_fails_both_formats(signed, tamper, tiny_gpt_dir, tmp_path):
    root, pub = signed
    other = tmp_path / "other"
    shutil.copytree(tiny_gpt_dir, other)
    (other / "README.md").write_text("another package")
    package(other, name="acme/other", version="1.0.0")
    run("sign", str(other), "--key", "oms", "--format", "both")
    keys = trusted(pub)
    tamper(root, other)

    result = oms_verify(root, pub)
    assert result.returncode != 0, result.stdout
    assert "Verification failed" in result.stderr

    # gptstore's checks: the signature files against the manifest, then the files against it
    from gptstore.integrity import check_integrity

    manifest = load_manifest(root)
    for check in (check_oms(manifest, read_oms(root), keys), check_signature(manifest, read_signature(root), keys)):
        files_ok = check_integrity(root, manifest, mode="full").ok
        assert not (check.ok and files_ok), (tamper.__name__, check)


def test_authenticity_accepts_a_package_signed_only_with_oms(signed, gptstore_home):
    root, pub = signed
    (root / SIGNATURE_FILE).unlink()
    run("trust", "add", "acme", str(pub))
    manifest = load_manifest(root)
    result = authenticity(manifest, read_signature(root), oms_signature=read_oms(root))
    assert result.ok and not result.warning and result.details["signature_file"] == OMS_SIGNATURE_FILE
    assert "model.sig" in result.summary
    # another namespace's key is not enough: the same trust store and per-namespace policy
    with TrustStore.edit() as store:
        store.remove("acme")
        store.set_policy("require", "acme")
    from gptstore.errors import TrustError

    with pytest.raises(TrustError, match="model.sig"):
        authenticity(manifest, None, oms_signature=read_oms(root))


# -- through a real store: pushed, pulled, verified by the OpenSSF tool and trusted ------------------

def _as(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("GPTSTORE_HOME", str(home))


def test_a_pulled_snapshot_verifies_with_model_signing(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    from gptstore.library import Library

    monkeypatch.setenv("GPTSTORE_TOKEN", store_server.tokens["alice:write"])
    _as(tmp_path / "provider", monkeypatch)
    _, pub = make_key("alice-oms", tmp_path)
    root = tmp_path / "pkg"
    shutil.copytree(tiny_gpt_dir, root)
    run("package", str(root), "--name", "alice/oms-both", "--version", "1.0.0")
    run("sign", str(root), "--key", "alice-oms", "--format", "both")
    run("publish", str(root))
    run("push", "alice/oms-both:1.0.0", "--store", store_server.url)

    _as(tmp_path / "consumer", monkeypatch)
    run("trust", "add", "alice", str(pub))
    import json

    pulled = json.loads(run("pull", "alice/oms-both:1.0.0", "--store", store_server.url, "--json"))
    snapshot = Path(pulled[0]["path"] if isinstance(pulled, list) else pulled["path"])
    assert snapshot == Library().get("alice/oms-both:1.0.0").path
    assert (snapshot / OMS_SIGNATURE_FILE).read_bytes() == (root / OMS_SIGNATURE_FILE).read_bytes()
    result = oms_verify(snapshot, pub)
    assert result.returncode == 0, result.stderr
    assert "signed by key" in run("verify", "alice/oms-both:1.0.0")
    # `gptstore show` asks the store: both signatures come with the manifest and are checked
    shown = json.loads(run("show", "alice/oms-both:1.0.0", "--store", store_server.url, "--json"))["signatures"]
    assert shown[OMS_SIGNATURE_FILE]["verified"] and shown[SIGNATURE_FILE]["verified"]


def test_show_gives_the_status_of_both_signature_files(signed, gptstore_home):
    root, pub = signed
    run("publish", str(root))
    out = run("show", "acme/tiny:1.0.0")
    line = next(line for line in out.splitlines() if line.startswith("  signatures: "))
    assert line.startswith("  signatures: gptstore.sig: signed by untrusted key ")
    assert line.endswith("; model.sig: signed by untrusted key")
    keyid = run("trust", "add", "acme", str(pub), "--json").split('"keyid": "')[1].split('"')[0]
    out = run("show", "acme/tiny:1.0.0")
    assert f"signatures: gptstore.sig: key {keyid} (trusted); model.sig: key {keyid} (trusted)" in out
    import json

    data = json.loads(run("show", "acme/tiny:1.0.0", "--json"))
    assert data["signed"] and data["signatures"][OMS_SIGNATURE_FILE] == {
        "present": True, "verified": True, "keyid": keyid, "status": f"key {keyid} (trusted)"}


def test_show_names_a_model_signed_only_with_model_signing(signed, gptstore_home, tmp_path):
    root, pub = signed
    (root / SIGNATURE_FILE).unlink()
    run("trust", "add", "acme", str(pub))
    run("publish", str(root))
    out = run("show", "acme/tiny:1.0.0")
    assert "signed:     yes" in out
    assert "signatures: gptstore.sig: none; model.sig: key " in out and "(trusted)" in out


def test_a_model_signed_only_with_model_signing_is_pulled_and_trusted(store_server, tiny_gpt_dir, tmp_path,
                                                                      monkeypatch):
    """The author signs with the OpenSSF tool before the model ever meets gptstore; gptstore
    packages it, and a consumer who trusts the author's P-256 key pulls it under `require`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    import gptstore

    key = ec.generate_private_key(ec.SECP256R1())
    private, pub = tmp_path / "author.key", tmp_path / "author.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    root = tmp_path / "author-model"
    shutil.copytree(tiny_gpt_dir, root)
    signed = subprocess.run([str(MODEL_SIGNING), "sign", "key", "--signature", str(root / OMS_SIGNATURE_FILE),
                             "--private_key", str(private), str(root)], capture_output=True, text=True, timeout=120)
    assert signed.returncode == 0, signed.stderr

    monkeypatch.setenv("GPTSTORE_TOKEN", store_server.tokens["alice:write"])
    _as(tmp_path / "packager", monkeypatch)
    run("package", str(root), "--name", "alice/oms-only", "--version", "1.0.0")
    assert not (root / SIGNATURE_FILE).exists()
    assert OMS_SIGNATURE_FILE not in {f.path for f in load_manifest(root).files}
    run("publish", str(root))
    run("push", "alice/oms-only:1.0.0", "--store", store_server.url)

    _as(tmp_path / "consumer", monkeypatch)
    run("trust", "add", "alice", str(pub))
    run("trust", "policy", "require", "--namespace", "alice")
    run("pull", "alice/oms-only:1.0.0", "--store", store_server.url)
    loaded = gptstore.load("alice/oms-only:1.0.0", device="cpu")
    summary = {c.name: c.summary for c in loaded.checks}["authenticity"]
    assert "model.sig" in summary and "trusted: alice" in summary and "policy require" in summary

    # the same bundle for other files is refused under require: a consumer trusting nobody else
    other = tmp_path / "other"
    shutil.copytree(root, other)
    (other / "extra.txt").write_text("added after the author signed")
    (other / "gptstore.json").unlink()
    _as(tmp_path / "packager", monkeypatch)
    run("package", str(other), "--name", "alice/oms-copied", "--version", "1.0.0")
    _as(tmp_path / "consumer", monkeypatch)
    from gptstore.errors import TrustError

    with pytest.raises(TrustError, match="model.sig lists|model.sig does not list"):
        authenticity(load_manifest(other), None, oms_signature=read_oms(other))


def test_a_passphrase_protected_p256_key_signs_both_formats(tiny_gpt, tmp_path, gptstore_home, monkeypatch):
    monkeypatch.setenv("GPTSTORE_KEY_PASSPHRASE", "s3cret")
    run("keys", "generate", "locked", "--type", "ec-p256")
    pub = tmp_path / "locked.pub"
    pub.write_text(export_public_key("locked"))
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    run("sign", str(tiny_gpt), "--key", "locked", "--format", "oms")
    assert not (tiny_gpt / SIGNATURE_FILE).exists()
    assert oms_verify(tiny_gpt, pub).returncode == 0
    monkeypatch.setenv("GPTSTORE_KEY_PASSPHRASE", "wrong")
    result = CliRunner().invoke(cli, ["sign", str(tiny_gpt), "--key", "locked", "--format", "both"])
    assert result.exit_code != 0 and "wrong passphrase" in result.output


def test_repackaging_drops_a_model_sig_that_covered_the_old_manifest(signed, tmp_path, caplog):
    """model.sig from `--format oms` lists gptstore.json: a rewritten manifest makes it stale, and it
    goes with gptstore.sig, so the package reads as unsigned rather than as tampered with."""
    import logging

    root, pub = signed
    run("trust", "add", "acme", str(pub))
    with caplog.at_level(logging.WARNING):
        run("package", str(root), "--name", "acme/tiny", "--version", "1.0.1")
    assert not (root / SIGNATURE_FILE).exists() and not (root / OMS_SIGNATURE_FILE).exists()
    lines = [r.getMessage() for r in caplog.records if r.name == "gptstore.packaging"]
    assert len(lines) == 2 and f"removed {root / OMS_SIGNATURE_FILE}: it covered the previous gptstore.json" in lines[1]
    verified = CliRunner().invoke(cli, ["verify", str(root)])
    assert "manifest changed after signing" not in verified.output and "unsigned" in verified.output, verified.output


def test_repackaging_keeps_a_model_sig_over_the_files_only(tiny_gpt, tmp_path, gptstore_home):
    """An author's model_signing signature made before packaging covers the files, not gptstore.json."""
    _, pub = make_key("author", tmp_path)
    private = gptstore_home / "keys" / "author.key"
    result = subprocess.run([str(MODEL_SIGNING), "sign", "key", "--private_key", str(private),
                             "--signature", str(tiny_gpt / OMS_SIGNATURE_FILE), str(tiny_gpt)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    signature = (tiny_gpt / OMS_SIGNATURE_FILE).read_bytes()
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    package(tiny_gpt, name="acme/tiny", version="1.0.1")
    assert (tiny_gpt / OMS_SIGNATURE_FILE).read_bytes() == signature
