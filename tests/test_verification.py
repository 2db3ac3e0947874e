"""The verification layer (gptstore.verification, ``gptstore.verify``): every layer in one call,
strict or collected, registered checks, warnings returned (never logged), the remote pre-check."""

import json
import logging
import os

import pytest

import gptstore
from gptstore import hookimpl, signing, verification
from gptstore.checks import CheckResult
from gptstore.errors import (DigestMismatch, IntegrityError, PluginError, TrustError, UnsafeContentError,
                             UsageError)
from gptstore.library import Library
from gptstore.packaging import package
from gptstore.stores.base import Located
from gptstore.trust import TrustStore

UNSIGNED = "authenticity warning: acme/tiny:1.0.0 is not signed (no gptstore.sig)"


@pytest.fixture
def model(tiny_gpt):
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    return Library().publish(tiny_gpt)


def _replace(path, data: bytes):
    """Put other bytes at a snapshot path without writing through the link to the blob."""
    path.unlink()
    path.write_bytes(data)


def test_gptstore_verify_is_the_one_front_door():
    assert gptstore.verify is verification.verify
    assert gptstore.CheckResult is CheckResult and gptstore.VerificationReport is verification.VerificationReport


def test_a_model_by_object_or_reference_and_a_directory(model, tiny_gpt):
    report = gptstore.verify(model)
    assert report.ok and [c.name for c in report.checks] == ["integrity", "authenticity", "safety"]
    assert (report.reference, report.digest) == ("acme/tiny:1.0.0", model.digest)
    assert report.integrity.hashed == len(model.manifest.files)
    by_name = gptstore.verify("acme/tiny")
    assert by_name.ok and by_name.digest == model.digest and by_name.integrity.hashed == 0  # the stamp cache
    assert gptstore.verify("acme/tiny", full=True).integrity.hashed == len(model.manifest.files)
    for directory in (tiny_gpt, str(tiny_gpt)):
        draft = gptstore.verify(directory)
        assert draft.ok and draft.reference == str(tiny_gpt) and draft.digest == model.digest
        assert draft.integrity.hashed == len(model.manifest.files)  # a directory is always re-hashed
    data = report.to_dict()
    assert data["digest"] == f"sha256:{model.digest}" and data["ok"] and len(data["checks"]) == 3


def test_another_library(model, tmp_path):
    other = Library(tmp_path / "other")
    there = other.publish(model.path)
    assert gptstore.verify("acme/tiny", library=other).digest == there.digest
    assert (other.root / "stamps" / f"{there.digest}.json").is_file()


def test_strict_raises_the_first_failure_and_lenient_collects(model):
    _replace(model.path / "model.safetensors", b"0")
    report = gptstore.verify(model, strict=False)
    assert not report.ok and not report.checks[0].ok and report.checks[0].name == "integrity"
    assert [c.name for c in report.checks] == ["integrity", "authenticity", "safety"]  # the others still ran
    with pytest.raises(DigestMismatch, match="model.safetensors") as caught:
        gptstore.verify(model)
    assert caught.value.path == "model.safetensors"


def test_hook_register_verifiers(model, register_plugin):
    seen = []

    class Plugin:
        @hookimpl
        def register_verifiers(self, register):
            def check(manifest, path):
                seen.append((manifest.repo_id, os.path.isdir(path)))
                return CheckResult("license", manifest.license != "other", f"license {manifest.license}")

            register("license", check)

    register_plugin(Plugin(), name="license-check")
    report = gptstore.verify(model, strict=False)
    assert seen == [("acme/tiny", True)]
    # integrity, then the built-in verifiers, then the plugins'
    assert [c.name for c in report.checks] == ["integrity", "authenticity", "safety", "license"]
    assert not report.ok and not report.check("license").ok
    with pytest.raises(IntegrityError, match=r"^acme/tiny:1\.0\.0 failed the license check: license other"):
        gptstore.verify(model)
    assert gptstore.verify(model, skip={"license"}).ok


def test_safety_is_a_built_in_verifier_that_gets_allow_unsafe(model):
    from gptstore import plugins

    registered = verification.verifiers()
    assert list(registered)[:2] == ["authenticity", "safety"]
    assert registered["safety"].plugin == "gptstore.safety" and registered["safety"].options == ("allow_unsafe",)
    assert "gptstore.safety" in plugins.DEFAULT_PLUGINS
    with pytest.raises(UsageError, match="the safety check cannot be skipped"):
        gptstore.verify(model, skip={"safety"})


def test_a_verifier_gets_the_options_it_asks_for_and_no_others(model, register_plugin):
    calls = []

    class Plugin:
        @hookimpl
        def register_verifiers(self, register):
            def wants(manifest, path, *, allow_unsafe):
                calls.append(("wants", allow_unsafe))
                return CheckResult("wants", True, "ok")

            def plain(manifest, path):
                calls.append(("plain",))
                return CheckResult("plain", True, "ok")

            register("wants", wants, options=("allow_unsafe",))
            register("plain", plain)

    register_plugin(Plugin(), name="options")
    assert gptstore.verify(model, allow_unsafe=True).ok
    assert calls == [("wants", True), ("plain",)]


def test_a_verifier_asking_for_an_unknown_option_is_a_plugin_error(model, register_plugin):
    class Plugin:
        @hookimpl
        def register_verifiers(self, register):
            register("odd", lambda manifest, path, **kw: CheckResult("odd", True, ""), options=("telepathy",))

    register_plugin(Plugin(), name="odd-options")
    with pytest.raises(PluginError, match=r"plugin 'odd-options' failed in verifier 'odd'.*unknown verification options \['telepathy'\]"):
        gptstore.verify(model)


def test_a_plugin_replacing_the_safety_verifier_is_shown_and_still_cannot_be_skipped(model, register_plugin):
    from gptstore import plugins

    class Plugin:
        @hookimpl
        def register_verifiers(self, register):
            register("safety", lambda manifest, path, *, allow_unsafe: CheckResult("safety", True, "mine"),
                     options=("allow_unsafe",))

    register_plugin(Plugin(), name="my-safety")
    report = gptstore.verify(model)
    assert report.check("safety").summary == "mine"
    mine = next(info for info in plugins.describe() if info.name == "my-safety")
    assert mine.overrides == ["verifier 'safety' of gptstore.safety"]
    with pytest.raises(UsageError, match="cannot be skipped"):
        gptstore.verify(model, skip={"safety"})


def test_a_check_that_breaks_names_its_plugin(model, register_plugin):
    class Plugin:
        @hookimpl
        def register_verifiers(self, register):
            register("shape", lambda manifest, path: "fine")

    register_plugin(Plugin(), name="sloppy")
    with pytest.raises(PluginError, match=r"plugin 'sloppy' failed in verifier 'shape': TypeError: returned str"):
        gptstore.verify(model)
    failed = gptstore.verify(model, strict=False).check("shape")
    assert failed is not None and not failed.ok and "sloppy" in failed.summary


def test_skip_leaves_out_registered_checks_only(model):
    with TrustStore.edit() as store:
        store.set_policy("require")
    with pytest.raises(TrustError, match="is not signed"):
        gptstore.verify(model)
    draft = gptstore.verify(model, skip={"authenticity"})
    assert draft.ok and [c.name for c in draft.checks] == ["integrity", "safety"]
    for layer in ("integrity", "safety"):
        with pytest.raises(UsageError, match=f"the {layer} check cannot be skipped"):
            gptstore.verify(model, skip={layer})


def test_context_names_the_target_and_keeps_the_error(model):
    _replace(model.path / "config.json", b"{}")
    with pytest.raises(DigestMismatch) as caught:
        gptstore.verify(model, context="base acme/tiny:1.0.0 of acme/lora:0.1.0")
    error = caught.value
    assert str(error).startswith("base acme/tiny:1.0.0 of acme/lora:0.1.0: config.json has 2 bytes")
    assert (error.path, error.reference, error.expected) == ("config.json", "acme/tiny:1.0.0",
                                                             str(model.manifest.file("config.json").size))
    assert error.__cause__ is not None and error.__cause__.message.startswith("config.json has 2 bytes")


def test_warnings_are_returned_never_logged(model, caplog):
    with caplog.at_level(logging.DEBUG, logger="gptstore"):
        report = gptstore.verify(model)
    assert report.ok and report.warnings == [UNSIGNED]
    auth = report.check("authenticity")
    assert auth.warning and auth.note == UNSIGNED and auth.summary == "unsigned, policy warn"
    assert not caplog.records


def test_show_warnings_logs_each_line_once(caplog):
    with caplog.at_level(logging.WARNING, logger="gptstore.verification"):
        verification.show_warnings(["a warning", "b warning", "a warning"])
    assert [r.getMessage() for r in caplog.records] == ["a warning", "b warning"]


def test_allowed_pickles_are_a_warning(tiny_gpt):
    (tiny_gpt / "training_args.bin").write_bytes(b"\x80\x04pickle")
    package(tiny_gpt, name="acme/tiny", version="1.0.0", allow_unsafe=True)
    with pytest.raises(UnsafeContentError, match="pickle-based weights"):
        gptstore.verify(tiny_gpt)
    report = gptstore.verify(tiny_gpt, allow_unsafe=True)
    assert report.ok and "safety warning: pickle files allowed by --allow-unsafe: training_args.bin" in report.warnings


def test_custom_code_in_a_config_is_refused_even_with_allow_unsafe(model):
    config = json.loads((model.path / "config.json").read_bytes())
    config["auto_map"] = {"AutoModelForCausalLM": "evil.Model"}
    _replace(model.path / "config.json", json.dumps(config).encode())
    failed = gptstore.verify(model, allow_unsafe=True, strict=False)
    assert not failed.check("safety").ok and "custom code (config.json auto_map)" in failed.check("safety").summary


# -- before a download ---------------------------------------------------------------------------

def _located(manifest, signature=None):
    from gptstore.refs import parse_reference

    return Located(parse_reference(f"{manifest.repo_id}:{manifest.version}"), manifest, manifest.digest, signature,
                   manifest.digest)


def test_verify_located_needs_only_the_manifest_and_signature_bytes(model):
    checks = verification.verify_located(_located(model.manifest))
    assert [c.name for c in checks] == ["safety", "authenticity"]
    assert checks[1].warning and checks[1].note == UNSIGNED
    signing.generate_key("release")
    with TrustStore.edit() as store:
        store.add_key("acme", signing.export_public_key("release"))
    with pytest.raises(TrustError, match="acme/tiny:1.0.0 is not signed"):
        verification.verify_located(_located(model.manifest))
    private, _info = signing.load_private_key("release")
    signed = verification.verify_located(_located(model.manifest, signing.make_envelope(model.manifest, private)))
    assert signed[1].ok and not signed[1].warning and "policy require" in signed[1].summary


def test_verify_located_refuses_pickles_unless_allowed(model):
    files = [f.model_dump() for f in model.manifest.files] + [{"path": "weights.pt", "size": 1, "sha256": "0" * 64}]
    manifest = model.manifest.model_copy(update={"files": [type(model.manifest.files[0])(**f) for f in files]})
    with pytest.raises(UnsafeContentError, match="weights.pt"):
        verification.verify_located(_located(manifest))
    assert verification.verify_located(_located(manifest), allow_unsafe=True)[0].warning


def test_the_layers_below_do_not_import_the_ones_above():
    """library, integrity and safety know nothing of verification; signing nothing of trust."""
    import subprocess
    import sys

    script = ("import sys\nimport gptstore.library, gptstore.signing, gptstore.integrity, gptstore.safety\n"
              "print(','.join(m for m in ('gptstore.verification', 'gptstore.trust', 'gptstore.plugins') "
              "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_cli_prints_the_report_and_each_warning_once(model, run_cli):
    text = run_cli("verify", "acme/tiny")
    assert text.exit_code == 0
    assert "warn authenticity  unsigned, policy warn" in text.stdout
    assert text.stderr.splitlines() == [UNSIGNED]
    as_json = run_cli("verify", "acme/tiny", "--json")
    assert as_json.stderr == ""
    [auth] = [c for c in json.loads(as_json.stdout)["checks"] if c["name"] == "authenticity"]
    assert auth["warning"] and auth["note"] == UNSIGNED
