"""``gptstore server --require-signed``: commits that bring a manifest need a signature by a key
registered for its namespace (``gptstore server key add``), checked against a real server process
with the stock huggingface_hub client."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import CommitOperationDelete
from huggingface_hub.errors import BadRequestError

from gptstore.cli.main import cli
from gptstore.manifest import MANIFEST_FILE, OMS_SIGNATURE_FILE, SIGNATURE_FILE, dumps, validate
from gptstore.packaging import package
from gptstore.server.db import SCHEMA_VERSION, connect
from gptstore.server.keys import SigningKeys, needs_signature
from gptstore.server.storage import regular_row
from gptstore.signing import check_signature, export_public_key, generate_key, sign_package
from gptstore.testing import SMALL, StoreServer, start_store


@pytest.fixture(scope="module")
def signed_store(every_backend, tmp_path_factory: pytest.TempPathFactory):
    server = start_store(tmp_path_factory.mktemp("signed-store"), [*SMALL, "--require-signed"])
    yield server
    server.stop()


def make_key(name: str, tmp_path: Path) -> tuple[str, Path]:
    """A fresh key in this test's GPTSTORE_HOME; returns (keyid, exported public key file)."""
    info = generate_key(name)
    pub = tmp_path / f"{name}.pub"
    pub.write_text(export_public_key(name))
    return info.keyid, pub


def register(server: StoreServer, namespace: str, pub: Path) -> None:
    assert server.admin("key", "add", namespace, str(pub)).startswith("registered key")


def make_package(tiny_gpt_dir: Path, root: Path, name: str, version: str = "1.0.0", *,
                 key: str | None = None, description: str = "A tiny poet") -> Path:
    target = root / f"{name.replace('/', '--')}-{version}"
    if not target.exists():
        shutil.copytree(tiny_gpt_dir, target)
    package(target, name=name, version=version, description=description, license="mit")
    if key:
        sign_package(target, key=key)
    return target


def upload(server: StoreServer, folder: Path, repo_id: str, user: str = "alice"):
    api = server.api(user)
    api.create_repo(repo_id, exist_ok=True)
    return api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message=f"upload {folder.name}")


def refused(server: StoreServer, folder: Path, repo_id: str, match: str, user: str = "alice") -> str:
    """Upload, expect a 400 matching ``match`` and no change to the repo; returns the message."""
    api = server.api(user)
    api.create_repo(repo_id, exist_ok=True)
    before = api.list_repo_commits(repo_id)
    with pytest.raises(BadRequestError) as err:
        api.upload_folder(folder_path=folder, repo_id=repo_id)
    response = err.value.response
    message = response.json()["error"]
    assert response.status_code == 400 and "\n" not in message
    assert message.startswith("this store accepts signed packages only: "), message
    assert match in message, message
    assert response.headers["x-error-message"] == message  # so the client prints it once
    assert str(err.value).count(message) == 1
    assert api.list_repo_commits(repo_id) == before  # nothing was written
    return message


# -- accepted ------------------------------------------------------------------------------------
def test_package_signed_by_a_registered_key_is_accepted(signed_store, tiny_gpt_dir, tmp_path):
    keyid, pub = make_key("alice-release", tmp_path)
    register(signed_store, "alice", pub)
    folder = make_package(tiny_gpt_dir, tmp_path, "alice/poet", key="alice-release")
    info = upload(signed_store, folder, "alice/poet")
    api = signed_store.api("alice")
    assert [(t.name, t.target_commit) for t in api.list_repo_refs("alice/poet").tags] == [("v1.0.0", info.oid)]
    model = api.model_info("alice/poet", revision="v1.0.0")
    assert {MANIFEST_FILE, SIGNATURE_FILE} <= {s.rfilename for s in model.siblings}
    assert model.gptstore["version"] == "1.0.0"
    # what is stored is what was signed: the signature checks against the exported key
    from gptstore.manifest import load_manifest

    sig = Path(api.hf_hub_download("alice/poet", SIGNATURE_FILE, revision="v1.0.0")).read_bytes()
    assert check_signature(load_manifest(folder), sig, {keyid: pub.read_text()}).ok


def test_a_commit_that_leaves_manifest_and_signature_alone_is_accepted(signed_store, tiny_gpt_dir, tmp_path):
    _, pub = make_key("k", tmp_path)
    register(signed_store, "alice", pub)
    upload(signed_store, make_package(tiny_gpt_dir, tmp_path, "alice/readme", key="k"), "alice/readme")
    api = signed_store.api("alice")
    info = api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n# Readme\nNow with words.\n",
                           path_in_repo="README.md", repo_id="alice/readme")
    assert api.model_info("alice/readme").sha == info.oid
    # a repo without any manifest takes any file
    api.create_repo("alice/notes")
    api.upload_file(path_or_fileobj=b"just notes", path_in_repo="notes.txt", repo_id="alice/notes")
    # re-uploading the same signed package (nothing changes) is fine too
    upload(signed_store, tmp_path / "alice--readme-1.0.0", "alice/readme")


def test_the_same_unsigned_upload_is_accepted_without_the_flag(store, tiny_gpt_dir, tmp_path):
    folder = make_package(tiny_gpt_dir, tmp_path, "alice/unsigned")
    info = upload(store, folder, "alice/unsigned")
    assert store.api("alice").model_info("alice/unsigned").sha == info.oid


# -- refused -------------------------------------------------------------------------------------
def test_unsigned_package_is_refused(signed_store, tiny_gpt_dir, tmp_path):
    folder = make_package(tiny_gpt_dir, tmp_path, "alice/unsigned")
    message = refused(signed_store, folder, "alice/unsigned", "alice/unsigned:1.0.0 is not signed (no gptstore.sig)")
    assert "gptstore sign DIR --key NAME" in message
    assert signed_store.api("alice").list_repo_files("alice/unsigned") == [".gitattributes"]
    assert "signed packages only, but no key is registered yet" in signed_store.log.read_text()  # at start


def test_signature_by_a_key_not_registered_for_the_namespace_is_refused(signed_store, tiny_gpt_dir, tmp_path):
    keyid, _ = make_key("stray", tmp_path)
    folder = make_package(tiny_gpt_dir, tmp_path, "alice/stray", key="stray")
    message = refused(signed_store, folder, "alice/stray", f"is signed by key {keyid}, which is not registered "
                                                           "for alice on this store")
    assert "gptstore server key add alice PUBKEY_FILE" in message
    # bob has no key at all; a key registered for another namespace does not count
    _, pub = make_key("bob-elsewhere", tmp_path)
    register(signed_store, "carol", pub)
    folder = make_package(tiny_gpt_dir, tmp_path, "bob/poem", key="bob-elsewhere")
    refused(signed_store, folder, "bob/poem", "and no key is registered for bob on this store", user="bob")


def test_signature_copied_from_another_model_is_refused(signed_store, tiny_gpt_dir, tmp_path):
    _, pub = make_key("copier", tmp_path)
    register(signed_store, "alice", pub)
    one = make_package(tiny_gpt_dir, tmp_path, "alice/one", key="copier")
    two = make_package(tiny_gpt_dir, tmp_path, "alice/two")
    shutil.copy(one / SIGNATURE_FILE, two / SIGNATURE_FILE)
    refused(signed_store, two, "alice/two", "carries a signature for another model: it signs alice/one:1.0.0")


def test_signature_of_another_version_is_refused(signed_store, tiny_gpt_dir, tmp_path):
    _, pub = make_key("versions", tmp_path)
    register(signed_store, "alice", pub)
    folder = make_package(tiny_gpt_dir, tmp_path, "alice/versions", "1.0.0", key="versions")
    upload(signed_store, folder, "alice/versions")
    old_sig = (folder / SIGNATURE_FILE).read_bytes()
    newer = make_package(tiny_gpt_dir, tmp_path, "alice/versions", "1.1.0")
    (newer / SIGNATURE_FILE).write_bytes(old_sig)  # the 1.0.0 signature beside the 1.1.0 manifest
    refused(signed_store, newer, "alice/versions",
            "carries a signature for another model: it signs alice/versions:1.0.0")
    assert signed_store.api("alice").model_info("alice/versions").gptstore["version"] == "1.0.0"


def test_manifest_edited_after_signing_is_refused(signed_store, tiny_gpt_dir, tmp_path):
    _, pub = make_key("editor", tmp_path)
    register(signed_store, "alice", pub)
    folder = make_package(tiny_gpt_dir, tmp_path, "alice/edited", key="editor")
    old_signature = (folder / SIGNATURE_FILE).read_bytes()
    package(folder, name="alice/edited", version="1.0.0", description="Now free of charge!", license="mit")
    assert not (folder / SIGNATURE_FILE).exists()  # package drops a signature of the previous manifest
    (folder / SIGNATURE_FILE).write_bytes(old_signature)  # the attacker ships it anyway
    message = refused(signed_store, folder, "alice/edited", "has a manifest that differs from the signed one")
    assert "sign it again" in message


def test_malformed_and_forged_signatures_are_refused(signed_store, tiny_gpt_dir, tmp_path):
    keyid, pub = make_key("real", tmp_path)
    register(signed_store, "alice", pub)
    make_key("forger", tmp_path)
    folder = make_package(tiny_gpt_dir, tmp_path, "alice/forged")
    (folder / SIGNATURE_FILE).write_text("not an envelope")
    refused(signed_store, folder, "alice/forged", "has a malformed signature (gptstore.sig: not JSON)")
    sign_package(folder, key="forger")  # then claim the registered key's id
    envelope = json.loads((folder / SIGNATURE_FILE).read_text())
    envelope["signatures"][0]["keyid"] = keyid
    (folder / SIGNATURE_FILE).write_text(json.dumps(envelope))
    refused(signed_store, folder, "alice/forged", f"claims key {keyid} (registered for alice) but does not verify")
    assert base64.b64decode(envelope["payload"])  # (the payload itself was fine)


def test_removing_or_replacing_the_signature_of_a_signed_revision_is_refused(signed_store, tiny_gpt_dir,
                                                                           tmp_path):
    _, pub = make_key("keeper", tmp_path)
    register(signed_store, "alice", pub)
    upload(signed_store, make_package(tiny_gpt_dir, tmp_path, "alice/kept", key="keeper"), "alice/kept")
    api = signed_store.api("alice")
    head = api.model_info("alice/kept").sha
    with pytest.raises(BadRequestError, match="is not signed"):
        api.create_commit("alice/kept", [CommitOperationDelete(SIGNATURE_FILE)], commit_message="unsign")
    with pytest.raises(BadRequestError, match="malformed signature"):
        api.upload_file(path_or_fileobj=b"{}", path_in_repo=SIGNATURE_FILE, repo_id="alice/kept")
    assert api.model_info("alice/kept").sha == head
    # deleting the manifest with it leaves no package, which needs no signature
    api.create_commit("alice/kept", [CommitOperationDelete(SIGNATURE_FILE), CommitOperationDelete(MANIFEST_FILE)],
                      commit_message="not a package any more")


def test_manifest_must_name_the_repo_it_is_committed_to(signed_store, tiny_gpt_dir, tmp_path):
    _, pub = make_key("alice-own", tmp_path)
    register(signed_store, "alice", pub)
    folder = make_package(tiny_gpt_dir, tmp_path, "alice/named", key="alice-own")
    refused(signed_store, folder, "alice/elsewhere", "gptstore.json names alice/named, not this repo alice/elsewhere")
    # alice may write to acme, but her own signature does not make a package of acme's
    refused(signed_store, folder, "acme/named", "not this repo acme/named")


def test_keys_take_effect_at_once_on_a_running_server(signed_store, tiny_gpt_dir, tmp_path):
    keyid, pub = make_key("acme-release", tmp_path)
    folder = make_package(tiny_gpt_dir, tmp_path, "acme/poet", key="acme-release")
    refused(signed_store, folder, "acme/poet", "no key is registered for acme")
    register(signed_store, "acme", pub)
    with signed_store.http() as http:
        listed = http.get("/api/gptstore/keys/acme").json()
        assert listed["requireSigned"] is True and [k["keyid"] for k in listed["keys"]] == [keyid]
        assert http.get("/api/gptstore/keys/nobody").status_code == 404
    upload(signed_store, folder, "acme/poet", user="carol")  # any member may push acme's signed package
    assert signed_store.admin("key", "rm", "acme", keyid[:6]) == f"removed key {keyid} from acme"
    package(folder, name="acme/poet", version="1.0.1", license="mit")
    sign_package(folder, key="acme-release")
    refused(signed_store, folder, "acme/poet", "no key is registered for acme")


def test_keys_endpoint_on_a_server_without_the_flag(store):
    with store.http() as http:
        assert http.get("/api/gptstore/keys/alice").json() == {"namespace": "alice", "requireSigned": False,
                                                                "keys": []}


# -- the admin CLI and the catalog ---------------------------------------------------------------
def server_cli(data: Path, *args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["server", "--data", str(data), *args], input=input)


def test_key_add_list_rm(tmp_path):
    data = tmp_path / "data"
    assert server_cli(data, "user", "add", "alice").exit_code == 0
    assert server_cli(data, "org", "add", "acme", "--member", "alice").exit_code == 0
    keyid, pub = make_key("release", tmp_path)
    added = server_cli(data, "key", "add", "alice", str(pub))
    assert added.exit_code == 0 and added.stdout == f"registered key {keyid} for alice\n"
    as_json = server_cli(data, "key", "add", "acme", "-", "--json", input=pub.read_text())  # stdin
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["keyid"] == keyid
    listing = server_cli(data, "key", "list")
    header, *rows = listing.stdout.splitlines()
    assert header.split() == ["NAMESPACE", "KEYID", "ADDED"]
    assert [line.split()[:2] for line in rows] == [["acme", keyid], ["alice", keyid]]
    [entry] = json.loads(server_cli(data, "key", "list", "alice", "--json").stdout)
    assert entry["namespace"] == "alice" and entry["keyid"] == keyid
    assert entry["public_key"].startswith("-----BEGIN PUBLIC KEY-----")  # the PEM, without the comment line
    assert SigningKeys(connect(data / "catalog.sqlite3")).trusted("acme") == {keyid: entry["public_key"]}
    removed = server_cli(data, "key", "rm", "alice", keyid)
    assert removed.exit_code == 0 and removed.stdout == f"removed key {keyid} from alice\n"
    assert [k["namespace"] for k in json.loads(server_cli(data, "key", "list", "--json").stdout)] == ["acme"]


def test_key_commands_refuse_bad_input_with_one_line(tmp_path):
    data = tmp_path / "data"
    assert server_cli(data, "user", "add", "alice").exit_code == 0
    keyid, pub = make_key("release", tmp_path)
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello\n")
    cases = [
        (["key", "add", "alice", str(not_a_key)], 1, "holds no PEM public key"),
        (["key", "add", "alice", str(pub.parent / "gptstore-home" / "keys" / "release.key")], 2, "private key"),
        (["key", "add", "ghost", str(pub)], 1, "no user or organisation 'ghost'"),
        (["key", "rm", "alice", keyid], 1, f"no key {keyid} is registered for alice"),
    ]
    for args, code, text in cases:
        result = server_cli(data, *args)
        assert result.exit_code == code and text in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
    missing = server_cli(data, "key", "add", "alice", str(tmp_path / "missing.pub"))  # click's own usage error
    assert missing.exit_code == 2 and "missing.pub" in missing.stderr
    assert server_cli(data, "key", "add", "alice", str(pub)).exit_code == 0
    again = server_cli(data, "key", "add", "alice", str(pub))
    assert again.exit_code == 1 and f"key {keyid} is already registered for alice" in again.stderr
    assert again.stderr.count("\n") == 1
    assert len(json.loads(server_cli(data, "key", "list", "--json").stdout)) == 1


def test_a_schema_1_catalog_is_upgraded_in_place(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    db = connect(path)
    db.execute("INSERT INTO namespaces (name, kind, created_at) VALUES ('alice', 'user', 'then')")
    db.execute("DROP TABLE signing_keys")
    db.execute("PRAGMA user_version = 1")
    db.close()
    db = connect(path)
    assert db.one("PRAGMA user_version")[0] == SCHEMA_VERSION
    assert db.one("SELECT name FROM namespaces")["name"] == "alice"
    assert db.all("SELECT * FROM signing_keys") == []
    db.close()
    with sqlite3.connect(path) as raw:  # a key goes when its namespace goes
        raw.execute("PRAGMA foreign_keys = ON")
        raw.execute("INSERT INTO signing_keys VALUES ('alice', 'k', 'pem', 'now')")
        raw.execute("DELETE FROM namespaces WHERE name = 'alice'")
        assert raw.execute("SELECT COUNT(*) FROM signing_keys").fetchone()[0] == 0


def test_needs_signature_only_when_manifest_or_signature_change():
    manifest, sig, readme = (regular_row(p, d, f"{i}" * 64) for i, (p, d) in
                             enumerate([(MANIFEST_FILE, b"m"), (SIGNATURE_FILE, b"s"), ("README.md", b"r")], 1))
    base = {r.path: r for r in (manifest, sig)}
    assert not needs_signature(base, {**base, "README.md": readme})
    assert not needs_signature({}, {"README.md": readme})
    assert needs_signature({}, base)
    assert needs_signature(base, {MANIFEST_FILE: manifest})  # signature removed
    assert needs_signature(base, {**base, SIGNATURE_FILE: regular_row(SIGNATURE_FILE, b"t", "9" * 64)})
    assert not needs_signature(base, {})  # no manifest left: not a package


# -- OpenSSF model.sig (gptstore.oms) under --require-signed ------------------------------------------

def make_oms_package(tiny_gpt_dir: Path, root: Path, name: str, key: str) -> Path:
    from gptstore.oms import sign_package as sign_formats

    folder = make_package(tiny_gpt_dir, root, name)
    sign_formats(folder, key=key, format="oms")
    assert not (folder / SIGNATURE_FILE).exists()
    return folder


def make_p256_key(name: str, tmp_path: Path) -> Path:
    generate_key(name, type="ec-p256")
    pub = tmp_path / f"{name}.pub"
    pub.write_text(export_public_key(name))
    return pub


def test_a_package_signed_only_with_model_sig_by_a_registered_key_is_accepted(signed_store, tiny_gpt_dir, tmp_path):
    register(signed_store, "alice", make_p256_key("alice-oms", tmp_path))
    folder = make_oms_package(tiny_gpt_dir, tmp_path, "alice/oms-poet", "alice-oms")
    upload(signed_store, folder, "alice/oms-poet")
    model = signed_store.api("alice").model_info("alice/oms-poet", revision="v1.0.0")
    assert {MANIFEST_FILE, OMS_SIGNATURE_FILE} <= {s.rfilename for s in model.siblings}


def test_model_sig_by_an_unregistered_key_is_refused(signed_store, tiny_gpt_dir, tmp_path):
    make_p256_key("stranger-oms", tmp_path)
    folder = make_oms_package(tiny_gpt_dir, tmp_path, "alice/oms-stranger", "stranger-oms")
    refused(signed_store, folder, "alice/oms-stranger", "model.sig")


def test_model_sig_of_an_edited_manifest_or_other_files_is_refused(signed_store, tiny_gpt_dir, tmp_path):
    register(signed_store, "alice", make_p256_key("oms-editor", tmp_path))
    folder = make_oms_package(tiny_gpt_dir, tmp_path, "alice/oms-edited", "oms-editor")
    # edited by hand, model.sig kept (re-packaging would drop the stale model.sig, as it drops gptstore.sig)
    edited = json.loads((folder / MANIFEST_FILE).read_text())
    edited.update(description="Now free of charge!", license="mit")
    (folder / MANIFEST_FILE).write_bytes(dumps(validate(edited)))
    assert (folder / OMS_SIGNATURE_FILE).exists()
    message = refused(signed_store, folder, "alice/oms-edited", "has a manifest that differs from the signed one")
    assert "model.sig" in message
    one = make_oms_package(tiny_gpt_dir, tmp_path, "alice/oms-one", "oms-editor")
    two = make_package(tiny_gpt_dir, tmp_path, "alice/oms-two", description="another poet")
    shutil.copy(one / OMS_SIGNATURE_FILE, two / OMS_SIGNATURE_FILE)
    refused(signed_store, two, "alice/oms-two", "model.sig")


def test_changing_or_removing_model_sig_needs_a_signed_revision():
    manifest, oms = (regular_row(p, d, f"{i}" * 64) for i, (p, d) in
                     enumerate([(MANIFEST_FILE, b"m"), (OMS_SIGNATURE_FILE, b"o")], 1))
    base = {r.path: r for r in (manifest, oms)}
    assert needs_signature(base, {MANIFEST_FILE: manifest})  # model.sig removed
    assert needs_signature(base, {**base, OMS_SIGNATURE_FILE: regular_row(OMS_SIGNATURE_FILE, b"p", "9" * 64)})
    assert not needs_signature(base, dict(base))
