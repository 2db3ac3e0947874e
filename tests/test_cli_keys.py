"""CLI: gptstore keys, sign and trust."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gptstore import signing
from gptstore.library import Library
from gptstore.packaging import package
from gptstore.trust import TrustStore, authenticity, read_signature


def _error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture
def pkg(tiny_gpt):
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    return tiny_gpt


def test_keys_generate_list_export(run_cli, gptstore_home, tmp_path):
    result = run_cli("keys", "generate", "release")
    assert result.exit_code == 0, result.output
    keyid = signing.get_key("release").keyid
    assert f"Generated key release (keyid {keyid}, no passphrase)" in result.output

    listed = json.loads(run_cli("keys", "list", "--json").output)
    assert [(k["name"], k["keyid"], k["encrypted"]) for k in listed] == [("release", keyid, False)]
    assert listed[0]["path"] == str(gptstore_home / "keys" / "release.key")
    table = run_cli("keys", "list").output.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "KEYID", "PASSPHRASE", "PATH"]
    assert table[1].split()[:4] == ["release", "ed25519", keyid, "no"]

    exported = run_cli("keys", "export", "release")
    assert exported.exit_code == 0
    assert exported.output.startswith(f"# gptstore key 'release', keyid {keyid}\n-----BEGIN PUBLIC KEY-----")
    as_json = json.loads(run_cli("keys", "export", "release", "--json").output)
    assert as_json["keyid"] == keyid and as_json["public_key"].startswith("-----BEGIN PUBLIC KEY-----")


def test_keys_errors_are_one_line(run_cli):
    run_cli("keys", "generate", "release")
    again = run_cli("keys", "generate", "release")
    assert again.exit_code == 1 and "already exists" in _error_line(again)
    bad = run_cli("keys", "generate", "bad name")
    assert bad.exit_code == 2 and "invalid key name" in _error_line(bad)
    missing = run_cli("keys", "export", "nope")
    assert missing.exit_code == 1 and "keys generate nope" in _error_line(missing)
    usage = run_cli("keys", "generate")
    assert usage.exit_code == 2 and "Missing argument 'NAME'" in usage.output
    assert json.loads(run_cli("keys", "list", "--json").output)[0]["name"] == "release"


def test_keys_list_without_keys(run_cli):
    assert "No keys" in run_cli("keys", "list").output
    assert json.loads(run_cli("keys", "list", "--json").output) == []


def test_sign_and_publish_round_trip(run_cli, pkg, tmp_path):
    run_cli("keys", "generate", "release")
    result = run_cli("sign", str(pkg), "--key", "release", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    keyid = signing.get_key("release").keyid
    assert data["reference"] == "acme/tiny:1.0.0" and data["keyid"] == keyid
    assert data["path"] == str(pkg / "gptstore.sig") and (pkg / "gptstore.sig").is_file()
    text = run_cli("sign", str(pkg), "--key", "release")
    assert text.output.startswith(f"Signed acme/tiny:1.0.0 (sha256:{data['digest'][:12]}) with key release ({keyid})")

    pub = tmp_path / "release.pub"
    pub.write_text(run_cli("keys", "export", "release").output)
    added = run_cli("trust", "add", "acme", str(pub))
    assert added.exit_code == 0 and f"Trusted key {keyid} for acme (policy require" in added.output
    model = Library().publish(pkg)
    result = authenticity(model.manifest, read_signature(model.path))
    assert result.ok and not result.warning and "policy require" in result.summary


def test_sign_refusals(run_cli, pkg):
    missing = run_cli("sign", str(pkg), "--key", "nope")
    assert missing.exit_code == 1 and "no signing key named 'nope'" in _error_line(missing)
    info = signing.generate_key("release")
    info.path.chmod(0o640)
    loose = run_cli("sign", str(pkg), "--key", "release")
    assert loose.exit_code == 1
    assert "permissions 0640 for private key" in _error_line(loose) and "chmod 600" in loose.output
    info.path.chmod(0o600)
    (pkg / "config.json").write_text("{}")
    changed = run_cli("sign", str(pkg), "--key", "release")
    assert changed.exit_code == 1 and "cannot sign" in _error_line(changed)
    assert not (pkg / "gptstore.sig").exists()
    usage = run_cli("sign", str(pkg))
    assert usage.exit_code == 2 and "--key" in usage.output


def test_passphrase_prompts_and_env(run_cli, pkg, monkeypatch):
    monkeypatch.delenv("GPTSTORE_KEY_PASSPHRASE", raising=False)
    made = run_cli("keys", "generate", "vault", "--passphrase", input="s3cret\ns3cret\n")
    assert made.exit_code == 0, made.output
    assert "passphrase-protected" in made.output
    assert signing.get_key("vault").encrypted

    wrong = run_cli("sign", str(pkg), "--key", "vault", input="nope\n")
    assert wrong.exit_code == 1 and "wrong passphrase for key 'vault'" in wrong.output
    prompted = run_cli("sign", str(pkg), "--key", "vault", input="s3cret\n")
    assert prompted.exit_code == 0, prompted.output
    (pkg / "gptstore.sig").unlink()
    given = run_cli("sign", str(pkg), "--key", "vault", "--passphrase", "s3cret")
    assert given.exit_code == 0
    bad = run_cli("sign", str(pkg), "--key", "vault", "--passphrase", "nope")
    assert bad.exit_code == 1 and "wrong passphrase" in _error_line(bad)
    env = run_cli("sign", str(pkg), "--key", "vault", env={"GPTSTORE_KEY_PASSPHRASE": "s3cret"})
    assert env.exit_code == 0, env.output


def test_trust_add_list_rm_policy(run_cli, tmp_path):
    signing.generate_key("release")
    keyid = signing.get_key("release").keyid
    pub = tmp_path / "release.pub"
    pub.write_text(signing.export_public_key("release"))

    added = json.loads(run_cli("trust", "add", "acme", str(pub), "--json").output)
    assert added == {"namespace": "acme", "keyid": keyid, "added": True, "policy": "require"}
    again = json.loads(run_cli("trust", "add", "acme", str(pub), "--json").output)
    assert again["added"] is False
    from_stdin = run_cli("trust", "add", "beta", "-", input=pub.read_text())
    assert from_stdin.exit_code == 0, from_stdin.output

    listed = json.loads(run_cli("trust", "list", "--json").output)
    assert listed["default_policy"] == "warn"
    acme = listed["namespaces"]["acme"]
    assert [k["keyid"] for k in acme["keys"]] == [keyid]
    assert (acme["effective_policy"], acme["policy_source"], acme["policy"]) == ("require", "trusted key", None)
    text = run_cli("trust", "list").output
    assert "Global policy: warn" in text and f"acme       require (trusted key)  {keyid}" in text

    assert run_cli("trust", "policy", "warn", "--namespace", "acme").output.strip() == \
        "Trust policy for acme: warn (namespace policy)"
    assert TrustStore.load().effective_policy("acme") == ("warn", "namespace policy")
    shown = json.loads(run_cli("trust", "policy", "-n", "acme", "--json").output)
    assert shown == {"namespace": "acme", "policy": "warn", "policy_source": "namespace policy"}
    run_cli("trust", "policy", "inherit", "-n", "acme")
    assert TrustStore.load().effective_policy("acme") == ("require", "trusted key")

    off = run_cli("trust", "policy", "off")
    assert off.exit_code == 0 and "Global trust policy: off" in off.output
    assert "Still require (they have trusted keys): acme, beta" in off.output
    assert json.loads(run_cli("trust", "policy", "--json").output) == {
        "default_policy": "off", "require_by_trusted_key": ["acme", "beta"]}

    removed = json.loads(run_cli("trust", "rm", "acme", keyid[:8], "--json").output)
    assert removed == {"namespace": "acme", "removed": [keyid], "policy": "off"}
    assert run_cli("trust", "rm", "beta").output.startswith(f"Removed {keyid} from beta")
    assert "No trusted keys" in run_cli("trust", "list").output


def test_trust_errors(run_cli, tmp_path):
    junk = tmp_path / "junk.pub"
    junk.write_text("hello")
    bad_file = run_cli("trust", "add", "acme", str(junk))
    assert bad_file.exit_code == 1 and "holds no PEM public key" in _error_line(bad_file)
    no_file = run_cli("trust", "add", "acme", str(tmp_path / "missing.pub"))
    assert no_file.exit_code == 2
    assert run_cli("trust", "add", "a/b", "-", input=_pub()).exit_code == 2
    unknown = run_cli("trust", "rm", "acme")
    assert unknown.exit_code == 1 and "no key is trusted for namespace acme" in _error_line(unknown)
    assert run_cli("trust", "policy", "sometimes").exit_code == 2
    inherit = run_cli("trust", "policy", "inherit")
    assert inherit.exit_code == 2 and "--namespace" in _error_line(inherit)


def _pub() -> str:
    signing.generate_key("k")
    return signing.export_public_key("k")


def test_help_does_not_import_cryptography():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from gptstore.cli.main import cli\n"
        "for args in (['--help'], ['keys', '--help'], ['trust', '--help'], ['sign', '--help'],\n"
        "             ['trust', 'policy', '--help']):\n"
        "    result = CliRunner().invoke(cli, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "from gptstore import plugins; plugins.load_plugins()\n"
        "assert 'gptstore.trust' in dict(plugins.pm.list_name_plugin())\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('cryptography', 'torch', 'transformers')]\n"
        "assert not bad, bad\n"
    )
    env = dict(os.environ, GPTSTORE_LOAD_PLUGINS="")
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
