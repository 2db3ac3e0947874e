"""A plugin that raises inside prepare_manifest, before_generate or after_generate fails that
operation with one line naming the plugin and exit code 1, in-process and in a real `gptstore`
process; nothing half-done is left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gptstore import hookimpl, usage
from gptstore.library import Library
from gptstore.packaging import package
from gptstore.testing import tree_state

GPTSTORE = os.path.join(os.path.dirname(sys.executable), "gptstore")
HINT = "; update or uninstall it, or skip plugins with GPTSTORE_LOAD_PLUGINS=''"


@pytest.fixture
def published(tiny_gpt):
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    Library().publish(tiny_gpt)
    return "acme/tiny"


def one_line_error(result, expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr == f"Error: {expected}\n"


class RaisingBefore:
    @hookimpl
    def before_generate(self, prompts):
        raise RuntimeError("boom before")


class RaisingAfter:
    @hookimpl
    def after_generate(self, completions):
        raise KeyError("boom after")


class MultiLine:
    @hookimpl
    def after_generate(self, completions):
        from gptstore.engines.completion import Completion

        Completion(text=1, finish_reason="nope")  # pydantic: a multi-line ValidationError


class WrongReturn:
    @hookimpl
    def after_generate(self, completions):
        return "not a list"


class RaisingManifest:
    @hookimpl
    def prepare_manifest(self, manifest, path):
        raise ValueError("no metrics found")


@pytest.mark.parametrize("as_json", [False, True], ids=["stream", "json"])
def test_run_before_generate_raising_fails_naming_the_plugin(published, register_plugin, run_cli, as_json):
    register_plugin(RaisingBefore(), name="exploding-before")
    args = ["run", published, "Return the", "--max-new-tokens", "4"] + (["--json"] if as_json else [])
    result = run_cli(*args)
    one_line_error(result, f"plugin 'exploding-before' failed in before_generate: RuntimeError: boom before{HINT}")
    assert result.stdout == ""
    assert usage.records() == []  # nothing was generated, nothing recorded


def test_run_after_generate_raising_fails_naming_the_plugin(published, register_plugin, run_cli):
    register_plugin(RaisingAfter(), name="exploding-after")
    result = run_cli("run", published, "Return the", "--max-new-tokens", "4", "--json")
    one_line_error(result, f"plugin 'exploding-after' failed in after_generate: KeyError: 'boom after'{HINT}")
    assert result.stdout == ""  # with --json nothing is printed before the hooks ran


def test_run_with_a_raising_output_filter_prints_no_unfiltered_text(published, register_plugin, run_cli):
    """With an after_generate plugin `gptstore run` does not stream (the plugin may rewrite the
    text): when that plugin fails, the run ends with one line on stderr, exit code 1, and none of
    the unfiltered text on stdout."""
    register_plugin(RaisingAfter(), name="exploding-after")
    result = run_cli("run", published, "Return the", "--max-new-tokens", "4")
    one_line_error(result, f"plugin 'exploding-after' failed in after_generate: KeyError: 'boom after'{HINT}")
    assert result.stdout == ""


def test_sdk_stream_after_generate_raising_fails_after_the_text(published, register_plugin):
    """Model.stream yields the text as it is produced and runs after_generate at the end: the
    failure comes after the text, naming the plugin."""
    import gptstore
    from gptstore.errors import PluginError

    register_plugin(RaisingAfter(), name="exploding-after")
    pieces = []
    with gptstore.load(published) as model:
        stream = model.stream("Return the", max_new_tokens=4)
        with pytest.raises(PluginError, match="plugin 'exploding-after' failed in after_generate: KeyError"):
            for piece in stream:
                pieces.append(piece)
    assert len(pieces) >= 1 and "".join(pieces).strip()


def test_run_multi_line_plugin_error_is_one_line(published, register_plugin, run_cli):
    register_plugin(MultiLine(), name="multi-line")
    result = run_cli("run", published, "Return the", "--max-new-tokens", "4", "--json")
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Error: plugin 'multi-line' failed in after_generate: ValidationError: ")
    assert result.stderr.endswith(f"{HINT}\n")


def test_run_wrong_return_type_names_the_plugin(published, register_plugin, run_cli):
    register_plugin(WrongReturn(), name="wrong-return")
    result = run_cli("run", published, "Return the", "--max-new-tokens", "4", "--json")
    one_line_error(result, "plugin 'wrong-return' failed in after_generate: "
                           f"TypeError: must return None or 1 Completion(s){HINT}")


def test_package_prepare_manifest_raising_fails_naming_the_plugin(tiny_gpt, register_plugin, run_cli):
    register_plugin(RaisingManifest(), name="exploding-manifest")
    before = tree_state(tiny_gpt)
    result = run_cli("package", str(tiny_gpt), "--name", "acme/tiny", "--version", "1.0.0")
    one_line_error(result, f"plugin 'exploding-manifest' failed in prepare_manifest: ValueError: no metrics found{HINT}")
    assert tree_state(tiny_gpt) == before  # no gptstore.json written


def test_a_plugin_refusing_on_purpose_reaches_the_user_unchanged(published, register_plugin, run_cli):
    from gptstore.errors import GPTStoreError

    class Refuser:
        @hookimpl
        def before_generate(self, prompts):
            raise GPTStoreError("prompt refused by policy", hint="ask nicely")

    register_plugin(Refuser(), name="refuser")
    result = run_cli("run", published, "Return the", "--max-new-tokens", "4")
    one_line_error(result, "prompt refused by policy; ask nicely")


# -- in a real `gptstore` process (entry-point plugins, main()'s error handling) ----------------

PLUGIN = '''
import gptstore

@gptstore.hookimpl
def before_generate(prompts):
    raise RuntimeError("boom\\nsecond line")

@gptstore.hookimpl
def prepare_manifest(manifest, path):
    raise ValueError("bad manifest")

@gptstore.hookimpl
def register_commands(cli):
    import click

    @cli.command()
    @click.pass_context
    def exploding_exit(ctx):
        click.echo("exiting with 3")
        ctx.exit(3)
'''


@pytest.fixture
def exploding_site(tmp_path):
    """A directory on PYTHONPATH holding an installed distribution whose plugin raises."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "exploding_plug.py").write_text(PLUGIN)
    info = site / "exploding_plug-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: exploding-plug\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[gptstore]\nexploding = exploding_plug\n")
    return site


def error_lines(stderr: str) -> list[str]:
    """stderr without the log's warnings (e.g. "authenticity warning: ... is not signed")."""
    return [line for line in stderr.splitlines() if "warning:" not in line]


def _gptstore(args, site):
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("GPTSTORE_LOAD_PLUGINS", None)
    return subprocess.run([GPTSTORE, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow
def test_real_process_run_and_package_fail_with_one_line(published, exploding_site, tiny_gpt_dir, tmp_path):
    ran = _gptstore(["run", published, "Return the", "--max-new-tokens", "4"], exploding_site)
    assert ran.returncode == 1 and ran.stdout == ""
    # stderr may also carry the log's "not signed" warning; the error is one line, the last
    assert error_lines(ran.stderr) == [f"Error: plugin 'exploding' failed in before_generate: "
                                       f"RuntimeError: boom; second line{HINT}"]
    assert ran.stderr.endswith("\n") and ran.stderr.splitlines()[-1].startswith("Error: ")

    import shutil

    model = tmp_path / "to-package"
    shutil.copytree(tiny_gpt_dir, model)
    packaged = _gptstore(["package", str(model), "--name", "acme/other", "--version", "1.0.0"], exploding_site)
    assert packaged.returncode == 1 and packaged.stdout == ""
    assert error_lines(packaged.stderr) == [
        f"Error: plugin 'exploding' failed in prepare_manifest: ValueError: bad manifest{HINT}"]
    assert not (model / "gptstore.json").exists()


def test_real_process_keeps_a_plugin_commands_exit_code(exploding_site):
    """`ctx.exit(3)` in a plugin's command is exit code 3 in a real process, as under CliRunner."""
    result = _gptstore(["exploding-exit"], exploding_site)
    assert (result.returncode, result.stdout) == (3, "exiting with 3\n")
