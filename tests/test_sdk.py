"""The front door (gptstore.sdk): every step of a flow is one call on `gptstore`, with plain arguments.

Tested through the public surface only (`gptstore.push(...)`, not the module), against a real
`gptstore server` where a store is involved.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest

import gptstore
from gptstore.errors import AuthError, ClaimMismatch, DigestMismatch, ModelNotFound, UsageError
from gptstore.manifest import load_manifest

FRONT_DOOR = ("pull", "push", "search", "sign", "verify", "finetune", "evaluate")


# -- the names ---------------------------------------------------------------------------------

def test_the_front_door_is_on_gptstore():
    import gptstore.sdk

    for name in FRONT_DOOR:
        assert name in gptstore.__all__ and callable(getattr(gptstore, name)), name
    assert gptstore.verify is importlib.import_module("gptstore.verification").verify
    assert gptstore.pull is gptstore.sdk.pull and gptstore.evaluate is gptstore.sdk.evaluate


@pytest.mark.parametrize("name", [n for n in gptstore.__all__ if n != "__version__"])
def test_no_submodule_is_named_like_a_public_name(name):
    """Importing a submodule sets the package attribute of its name: a module gptstore/pull.py
    would turn `gptstore.pull` into a module for the rest of the process."""
    assert importlib.util.find_spec(f"gptstore.{name}") is None, f"gptstore/{name}.py shadows gptstore.{name}"


def test_the_front_door_survives_every_module_being_imported():
    """In a fresh interpreter: import the modules behind the front door and the CLI's, then the names
    are still the functions (as they were not, for `verify`, while gptstore/verify.py existed)."""
    code = ("import gptstore, importlib\n"
            "for m in ('pulling', 'sdk', 'verification', 'evaluation', 'signing', 'lockfile', 'model',\n"
            "          'cli.remote', 'cli.models', 'cli.keys', 'cli.train', 'cli.evaluate'):\n"
            "    importlib.import_module('gptstore.' + m)\n"
            "import types\n"
            f"bad = [n for n in {FRONT_DOOR!r} if isinstance(getattr(gptstore, n), types.ModuleType)]\n"
            "print('BAD', bad)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "BAD []"


# -- push, search, pull against a store server ---------------------------------------------------

def _publish(tiny_gpt_dir, tmp_path, name, **fields):
    target = tmp_path / name.replace("/", "_")
    shutil.copytree(tiny_gpt_dir, target)
    gptstore.package(target, name=name, version="1.0.0", **fields)
    return gptstore.Library().publish(target)


def _consumer(tmp_path, monkeypatch, name="consumer"):
    monkeypatch.setenv("GPTSTORE_HOME", str(tmp_path / name))


def test_push_search_pull_verify(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    token = store_server.tokens["alice:write"]
    model = _publish(tiny_gpt_dir, tmp_path, "alice/front", description="Front door haiku", tags=["frontdoor"])
    with pytest.raises(AuthError, match="not authorised"):  # no token given, none in the environment
        gptstore.push("alice/front", store=store_server.url)

    pushed = gptstore.push("alice/front", store=store_server.url, token=token)
    assert (pushed.reference, pushed.digest, pushed.store) == ("alice/front:1.0.0", model.digest, store_server.url)
    assert pushed.to_dict()["digest"] == f"sha256:{model.digest}" and "alice/front" in pushed.url
    again = gptstore.push("alice/front:1.0.0", store=store_server.url, token=token)  # nothing to upload
    assert again.digest == model.digest

    _consumer(tmp_path, monkeypatch)
    hits = gptstore.search("front door", store=store_server.url)
    assert [h.reference for h in hits] == ["alice/front:1.0.0"] and hits[0].description == "Front door haiku"
    assert [h.reference for h in gptstore.search(store=store_server.url, tag="frontdoor", sort="recent")] == [
        "alice/front:1.0.0"]
    assert gptstore.search("no such words anywhere", store=store_server.url) == []

    pulled = gptstore.pull("alice/front", store=store_server.url)
    assert pulled.model.digest == model.digest and pulled.fetched_files == len(model.manifest.files)
    assert pulled.to_dict() | {"fetched_bytes": 0} == {
        "reference": pulled.model.name, "digest": f"sha256:{model.digest}", "fetched_files": len(model.manifest.files),
        "fetched_bytes": 0, "reused_files": 0, "repaired_files": 0, "resumed_bytes": 0, "path": str(pulled.model.path)}
    assert [c.name for c in pulled.checks] == ["integrity", "authenticity", "safety"]
    assert gptstore.verify("alice/front", full=True).ok
    assert gptstore.pull("alice/front:1.0.0", store=store_server.url).fetched_files == 0


def test_a_token_is_for_the_named_store_and_this_call_only(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    _publish(tiny_gpt_dir, tmp_path, "alice/hidden", description="Private front door model")
    gptstore.push("alice/hidden", store=store_server.url, token=store_server.tokens["alice:write"], private=True)
    _consumer(tmp_path, monkeypatch)
    read = store_server.tokens["alice:read"]
    assert gptstore.search("private front door", store=store_server.url) == []  # invisible without the token
    assert [h.reference for h in gptstore.search("private front door", store=store_server.url, token=read)] == [
        "alice/hidden:1.0.0"]
    with pytest.raises(ModelNotFound, match="private and you are not authorised"):  # a private repo is a 404
        gptstore.pull("alice/hidden", store=store_server.url)
    with pytest.raises(ModelNotFound):  # bob's token is valid, but the model is not his to see
        gptstore.pull("alice/hidden", store=store_server.url, token=store_server.tokens["bob:write"])
    assert gptstore.pull("alice/hidden", store=store_server.url, token=read).fetched_files > 0
    # the token was used for that call only: nothing was saved, a later call without it is anonymous
    assert not (tmp_path / "consumer" / "credentials.json").exists()
    assert gptstore.search("private front door", store=store_server.url) == []


def test_push_needs_a_store_other_than_the_library(tiny_gpt_dir, tmp_path, gptstore_home):
    _publish(tiny_gpt_dir, tmp_path, "acme/local")
    with pytest.raises(UsageError, match="in the local library already") as raised:
        gptstore.push("acme/local")  # neither store= nor GPTSTORE_STORE
    assert "--store" in raised.value.hint
    with pytest.raises(UsageError, match="in the local library already"):
        gptstore.push("acme/local", store=str(gptstore_home))
    with pytest.raises(ModelNotFound):
        gptstore.push("acme/absent", store=str(tmp_path))


def test_push_to_a_library_directory_then_search_and_pull_from_it(tiny_gpt_dir, tmp_path, monkeypatch):
    model = _publish(tiny_gpt_dir, tmp_path, "acme/shared", description="Shared through a directory")
    team = tmp_path / "team-store"
    team.mkdir()
    pushed = gptstore.push("acme/shared", store=str(team))
    assert pushed.store == f"file://{team}" and pushed.digest == model.digest
    assert [h.reference for h in gptstore.search("shared", store=str(team))] == ["acme/shared:1.0.0"]
    _consumer(tmp_path, monkeypatch)
    assert gptstore.pull("acme/shared", store=f"file://{team}").model.digest == model.digest


@pytest.mark.parametrize("kwargs, message", [
    ({"sort": "stars"}, "cannot sort search results by 'stars'"),
    ({"limit": 0}, "from 1 to 1000"),
    ({"limit": 1001}, "from 1 to 1000"),
    ({"limit": True}, "from 1 to 1000"),
    ({"limit": 2.5}, "from 1 to 1000"),
])
def test_search_refuses_bad_arguments_before_asking_a_store(kwargs, message):
    with pytest.raises(UsageError, match=message):
        gptstore.search("x", store="http://127.0.0.1:9", **kwargs)  # nothing listens there


# -- sign ----------------------------------------------------------------------------------------

def test_sign_writes_a_signature_that_verify_accepts(tiny_gpt, gptstore_home):
    from gptstore.signing import export_public_key, generate_key
    from gptstore.trust import TrustStore

    gptstore.package(tiny_gpt, name="acme/signed", version="1.0.0")
    info = generate_key("release")
    signed = gptstore.sign(tiny_gpt, key="release")
    assert signed.path == tiny_gpt / "gptstore.sig" and signed.path.is_file()
    assert (signed.key, signed.keyid, signed.digest) == ("release", info.keyid, load_manifest(tiny_gpt).digest)
    with TrustStore.edit() as trust:
        trust.add_key("acme", export_public_key("release"))
    report = gptstore.verify(tiny_gpt, strict=False)
    assert report.ok and "signed by key" in report.check("authenticity").summary


def test_sign_refuses_a_package_whose_files_changed(tiny_gpt, gptstore_home):
    from gptstore.signing import generate_key

    gptstore.package(tiny_gpt, name="acme/changed", version="1.0.0")
    generate_key("release")
    (tiny_gpt / "config.json").write_text((tiny_gpt / "config.json").read_text() + " ")
    with pytest.raises(DigestMismatch, match="cannot sign"):
        gptstore.sign(tiny_gpt, key="release")
    assert not (tiny_gpt / "gptstore.sig").exists()


# -- finetune and evaluate -----------------------------------------------------------------------

def _texts(tmp_path):
    from gptstore.training.tiny import stdlib_docstrings

    docs = stdlib_docstrings(modules=("argparse", "optparse", "getopt"))
    train, heldout = tmp_path / "train.txt", tmp_path / "heldout.txt"
    train.write_text("\n\n".join(d for i, d in enumerate(docs) if i % 6 != 3), encoding="utf-8")
    heldout.write_text("\n\n".join(docs[3::6]), encoding="utf-8")
    return train, heldout


def test_finetune_then_evaluate_the_claim(tiny_gpt, tmp_path):
    train, heldout = _texts(tmp_path)
    out = tmp_path / "poet"
    result = gptstore.finetune(tiny_gpt, train, out, name="acme/poet", version="0.2.0", eval_data=heldout,
                               max_steps=2, learning_rate=3e-3, seed=0, save_steps=1000, device="cpu",
                               checkpoint_dir=tmp_path / "ckpt")
    assert (result.global_step, result.method, result.device) == (2, "full", "cpu")
    assert result.manifest.digest == load_manifest(out).digest
    assert result.manifest.provenance.hyperparameters["learning_rate"] == 3e-3

    report = gptstore.evaluate(out, heldout, check=True, device="cpu")
    assert report.claim is not None and report.claim.ok and report.claim.tolerance == 0.02
    assert report.perplexity == pytest.approx(result.perplexity, rel=1e-3)
    report.raise_for_claim()
    strict = gptstore.evaluate(out, heldout, check=True, tolerance=0.0, device="cpu")
    assert strict.claim.tolerance == 0.0
    with pytest.raises(UsageError, match="not on train.txt"):  # a claim is only comparable on its own data
        gptstore.evaluate(out, train, check=True)
    assert gptstore.evaluate(out, train, device="cpu").claim is None  # measuring alone is fine


def test_evaluate_raises_for_an_inflated_claim(tiny_gpt, tmp_path):
    train, heldout = _texts(tmp_path)
    out = tmp_path / "inflated"
    gptstore.finetune(tiny_gpt, train, out, name="acme/inflated", eval_data=heldout, max_steps=1, seed=0,
                      save_steps=1000, device="cpu", checkpoint_dir=tmp_path / "ckpt")
    manifest = load_manifest(out)
    metrics = [m.model_dump(mode="json") | ({"value": m.value / 2} if m.name == "perplexity" else {})
               for m in manifest.metrics]
    gptstore.package(out, name="acme/inflated", version=manifest.version, metrics=metrics)
    report = gptstore.evaluate(out, heldout, check=True, device="cpu")
    assert report.claim is not None and not report.claim.ok
    with pytest.raises(ClaimMismatch, match="claims perplexity"):
        report.raise_for_claim()


@pytest.mark.parametrize("kwargs, message", [
    ({"epoch": 2}, "invalid fine-tuning option epoch"),
    ({"learning_rate": -1}, "invalid fine-tuning option learning_rate"),
    ({"method": "nope"}, "unknown method 'nope'"),
    ({"method_options": {"r": 8}}, "method 'full' takes no options"),
    ({"version": "one"}, "not a semantic version"),
])
def test_finetune_refuses_bad_options_before_writing_anything(tiny_gpt, tmp_path, kwargs, message):
    train, _ = _texts(tmp_path)
    out = tmp_path / "never"
    with pytest.raises(UsageError, match=message):
        gptstore.finetune(tiny_gpt, train, out, **kwargs)
    assert not out.exists()


def test_finetune_takes_a_config_or_options_not_both(tiny_gpt, tmp_path):
    from gptstore.training.config import FinetuneConfig

    train, _ = _texts(tmp_path)
    with pytest.raises(UsageError, match=r"either config= or the options \(max_steps\)"):
        gptstore.finetune(tiny_gpt, train, tmp_path / "out", config=FinetuneConfig(), max_steps=3)
    assert not (tmp_path / "out").exists()
