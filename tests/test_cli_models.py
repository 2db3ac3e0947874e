"""The provider/library commands end to end through the CLI."""

import json
import os
import subprocess
import sys

import pytest

from gptstore.testing import publish_copy, tree_state

GPTSTORE = os.path.join(os.path.dirname(sys.executable), "gptstore")


def test_package_publish_list_show_verify_rm(run_cli, tiny_gpt):
    out = run_cli("package", str(tiny_gpt), "--name", "acme/tiny", "--version", "1.0.0",
                  "--description", "A tiny GPT", "--tag", "test", "--license", "mit",
                  "--price-model", "per_1k_tokens", "--price", "0.02", "--category", "chat",
                  "--use-case", "FAQ answers", "--use-case", "ticket triage")
    assert out.exit_code == 0, out.output
    assert "Packaged acme/tiny:1.0.0 (transformers, GPT2LMHeadModel" in out.output
    assert run_cli("publish", str(tiny_gpt)).output.startswith("Published acme/tiny:1.0.0")

    listed = json.loads(run_cli("list", "--json").output)
    assert [r["reference"] for r in listed] == ["acme/tiny:1.0.0", "acme/tiny:latest"]
    assert "acme/tiny:latest" in run_cli("list").output

    shown = json.loads(run_cli("show", "acme/tiny", "--json").output)
    assert shown["pricing"] == {"amount": 0.02, "currency": "USD", "model": "per_1k_tokens"}
    assert shown["digest"] == listed[0]["digest"]
    text = run_cli("show", "acme/tiny:1.0.0").output
    assert "price: 0.02 USD/1k tokens" in text and "model.safetensors" in text
    assert "category:   chat" in text and "use cases:  FAQ answers; ticket triage" in text

    verified = run_cli("verify", "acme/tiny", "--json")
    assert verified.exit_code == 0
    report = json.loads(verified.output)
    assert report["ok"] and [c["name"] for c in report["checks"]] == ["integrity", "authenticity", "safety"]
    assert run_cli("verify", "acme/tiny", "--full").exit_code == 0
    assert run_cli("verify", str(tiny_gpt)).exit_code == 0  # a package directory too

    removed = run_cli("rm", "acme/tiny")
    assert removed.exit_code == 0 and "Removed acme/tiny:latest" in removed.output
    assert json.loads(run_cli("list", "--json").output) == []


def test_verify_fails_with_exit_1_and_names_file(run_cli, tiny_gpt):
    run_cli("package", str(tiny_gpt), "--name", "acme/tiny", "--version", "1.0.0")
    run_cli("publish", str(tiny_gpt))
    snapshot = json.loads(run_cli("publish", str(tiny_gpt), "--json").output)["path"]
    os.chmod(os.path.join(snapshot, "tokenizer.json"), 0o644)  # a read-only blob, damaged on purpose
    with open(os.path.join(snapshot, "tokenizer.json"), "ab") as f:
        f.write(b" ")
    result = run_cli("verify", "acme/tiny")
    assert result.exit_code == 1
    assert "FAIL integrity" in result.output and "tokenizer.json" in result.output


@pytest.mark.parametrize("args,code,needle", [
    (["show", "not-a-ref"], 2, "invalid reference 'not-a-ref'"),
    (["show", "acme/missing"], 1, "model acme/missing:latest not found"),
    (["rm", "acme/missing"], 1, "not found"),
    (["verify", "acme/missing"], 1, "not found"),
    (["package", "/nonexistent", "--name", "a/b", "--version", "1.0.0"], 2, "is not a directory"),
    (["publish", "/nonexistent"], 2, "is not a directory"),
    (["list", "--bogus"], 2, "No such option"),
])
def test_errors_are_one_line_with_exit_code(run_cli, args, code, needle):
    result = run_cli(*args)
    assert result.exit_code == code
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert needle in result.output
    if code == 1 or "invalid reference" in needle:
        assert len(lines) == 1 and lines[0].startswith("Error: ")


def test_package_errors_change_nothing(run_cli, tiny_gpt, gptstore_home):
    (tiny_gpt / "weights.pt").write_bytes(b"pickle")
    result = run_cli("package", str(tiny_gpt), "--name", "acme/tiny", "--version", "1.0.0")
    assert result.exit_code == 1 and "pickle-based weights" in result.output and "--allow-unsafe" in result.output
    assert not (tiny_gpt / "gptstore.json").exists()
    bad = run_cli("package", str(tiny_gpt), "--name", "acme/tiny", "--version", "one", "--allow-unsafe")
    assert bad.exit_code == 1 and "version: must be a semantic version" in bad.output
    assert tree_state(gptstore_home) == {}


def test_publish_conflict_needs_force(run_cli, tiny_gpt, gptstore_home):
    run_cli("package", str(tiny_gpt), "--name", "acme/tiny", "--version", "1.0.0")
    run_cli("publish", str(tiny_gpt))
    run_cli("package", str(tiny_gpt), "--name", "acme/tiny", "--version", "1.0.0", "--description", "new")
    state = tree_state(gptstore_home)
    result = run_cli("publish", str(tiny_gpt))
    assert result.exit_code == 1 and "already published with other content" in result.output
    assert "--force" in result.output
    assert tree_state(gptstore_home) == state
    assert run_cli("publish", str(tiny_gpt), "--force").exit_code == 0


def test_real_process_error_output_and_debug(tmp_path):
    env = dict(os.environ, GPTSTORE_HOME=str(tmp_path))
    result = subprocess.run([GPTSTORE, "show", "acme/missing"], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    env["GPTSTORE_DEBUG"] = "1"
    debug = subprocess.run([GPTSTORE, "show", "acme/missing"], capture_output=True, text=True, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ModelNotFound" in debug.stderr
    version = subprocess.run([GPTSTORE, "--version"], capture_output=True, text=True, env=env)
    assert version.stdout.startswith("gptstore ")


def test_rm_of_a_base_an_adapter_pins_refuses_and_names_it(run_cli, tiny_gpt, tmp_path):
    from gptstore.library import Library

    base = publish_copy(tiny_gpt, tmp_path / "base", "acme/base", "1.0.0")
    publish_copy(tiny_gpt, tmp_path / "lora", "acme/lora", "0.1.0", base=base)
    refused = run_cli("rm", "acme/base")
    assert refused.exit_code == 1
    assert refused.output.strip() == ("Error: acme/base is the base of the installed adapter acme/lora:0.1.0; "
                                      "removing it would break it; remove acme/lora:0.1.0 first, or pass --force")
    assert Library().has_manifest(base.digest) and len(Library().tags("acme/base")) == 2
    assert run_cli("rm", "acme/base:1.0.0").exit_code == 0  # latest still holds the base: allowed

    forced = run_cli("rm", "acme/base", "--force")
    assert forced.exit_code == 0 and "Removed acme/base:latest" in forced.output
    assert "acme/lora:0.1.0 lost its base model" in forced.output
    assert not Library().has_manifest(base.digest)
    assert run_cli("rm", "acme/lora").exit_code == 0


def test_rm_of_a_tag_says_which_tags_still_hold_the_model(run_cli, tiny_gpt, tmp_path):
    from gptstore.library import Library

    model = publish_copy(tiny_gpt, tmp_path / "m", "acme/tagged", "1.0.0")
    one = run_cli("rm", "acme/tagged:1.0.0")
    assert one.exit_code == 0
    assert one.output.strip() == (f"Removed tag acme/tagged:1.0.0; latest still points at it "
                                  f"(sha256:{model.digest[:12]}), so no data was deleted")
    assert Library().has_manifest(model.digest)
    last = json.loads(run_cli("rm", "acme/tagged:latest", "--json").stdout)
    assert last == [{"reference": "acme/tagged:latest", "digest": f"sha256:{model.digest}", "still_tagged": []}]
    assert not Library().has_manifest(model.digest)
