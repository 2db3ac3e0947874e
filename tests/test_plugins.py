"""The plugin system: built-ins through hooks, isolation of broken plugins, load limits."""

import json
import os
import subprocess
import sys
import textwrap

import click
import pytest

from gptstore import hookimpl, plugins
from gptstore.adapters import adapters
from gptstore.adapters.transformers import TransformersAdapter
from gptstore.errors import PluginError, UnknownComponent
from gptstore.packaging import package
from gptstore.stores import get_store, stores

GPTSTORE = os.path.join(os.path.dirname(sys.executable), "gptstore")


def test_hook_register_adapters(tiny_gpt, register_plugin):
    class Renamed(TransformersAdapter):
        name = "hf-copy"

        def detect(self, path):
            return False

    class Plugin:
        @hookimpl
        def register_adapters(self, register):
            register(Renamed())

    register_plugin(Plugin(), name="hf-copy-plugin")
    assert set(adapters()) >= {"transformers", "hf-copy"}
    manifest = package(tiny_gpt, name="acme/tiny", version="1.0.0", adapter="hf-copy")
    assert manifest.format.adapter == "hf-copy"


def test_hook_register_stores(register_plugin, tmp_path):
    from gptstore.stores.local import LocalStore

    made = []

    class Plugin:
        @hookimpl
        def register_stores(self, register):
            def factory(url):
                made.append(url)
                return LocalStore(tmp_path / "mem")

            register("mem", factory)

    register_plugin(Plugin(), name="mem-store")
    assert "mem" in stores() and "file" in stores()
    store = get_store("mem://anything")
    assert made == ["mem://anything"] and store.search() == []
    with pytest.raises(UnknownComponent, match="unknown store scheme 'nope'"):
        get_store("nope://x")


def test_hook_register_commands(register_plugin, run_cli):
    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            @click.argument("name")
            def hello(name):
                """Say hello."""
                click.echo(f"hello {name}")

    register_plugin(Plugin(), name="hello-plugin")
    result = run_cli("hello", "world")
    assert result.exit_code == 0 and result.output == "hello world\n"
    assert "hello" in run_cli("--help").output


def test_hook_prepare_manifest(tiny_gpt, register_plugin):
    calls = []

    class Plugin:
        @hookimpl
        def prepare_manifest(self, manifest, path):
            calls.append((manifest.name, path))
            return {"tags": manifest.tags + ["enriched"], "description": "added by plugin"}

    register_plugin(Plugin(), name="enricher")
    manifest = package(tiny_gpt, name="acme/tiny", version="1.0.0", tags=["base"])
    assert calls == [("tiny", tiny_gpt)]
    assert manifest.tags == ["base", "enriched"] and manifest.description == "added by plugin"
    assert json.loads((tiny_gpt / "gptstore.json").read_text())["description"] == "added by plugin"


def test_prepare_manifest_cannot_touch_files_and_errors_name_plugin(tiny_gpt, register_plugin):
    class Sneaky:
        @hookimpl
        def prepare_manifest(self, manifest):
            return {"files": []}

    name = register_plugin(Sneaky(), name="sneaky")
    with pytest.raises(Exception, match="plugin 'sneaky' tried to change files"):
        package(tiny_gpt, name="acme/tiny", version="1.0.0")
    plugins.unregister(name)

    class Broken:
        @hookimpl
        def prepare_manifest(self, manifest):
            raise RuntimeError("boom")

    register_plugin(Broken(), name="broken-enricher")
    with pytest.raises(PluginError, match="plugin 'broken-enricher' failed in prepare_manifest: RuntimeError: boom"):
        package(tiny_gpt, name="acme/tiny", version="1.0.0")
    assert not (tiny_gpt / "gptstore.json").exists()


def test_raising_registration_is_reported_and_others_work(register_plugin, run_cli):
    class Broken:
        @hookimpl
        def register_adapters(self, register):
            raise ValueError("cannot start")

    register_plugin(Broken(), name="broken-adapters")
    assert "transformers" in adapters()
    result = run_cli("plugins", "--json")
    info = {p["name"]: p for p in json.loads(result.output)}
    assert info["broken-adapters"]["errors"] == ["register_adapters: ValueError: cannot start"]
    assert info["gptstore.adapters.transformers"]["errors"] == []


def test_duplicate_name_reported_first_stays(register_plugin):
    class Impostor(TransformersAdapter):
        def inspect(self, path, *, allow_unsafe=False):
            raise AssertionError("the built-in must stay")

    class Plugin:
        @hookimpl
        def register_adapters(self, register):
            register(Impostor())

    register_plugin(Plugin(), name="impostor")
    assert type(adapters()["transformers"]) is TransformersAdapter
    problems = [p for p in plugins.problems() if p.plugin == "impostor"]
    assert problems and "already registered by gptstore.adapters.transformers" in problems[0].error


def test_command_name_clash_reported(register_plugin, run_cli):
    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            @cli.command("list")
            def fake():
                click.echo("fake")

    register_plugin(Plugin(), name="clasher")
    result = run_cli("list")
    assert result.exit_code == 0 and "fake" not in result.output
    assert any("command 'list' is already provided by gptstore" in p.error for p in plugins.problems())


@pytest.fixture
def fake_site(tmp_path):
    """A directory on PYTHONPATH with two installed 'distributions': one good, one broken."""
    site = tmp_path / "site"
    site.mkdir()
    for dist, module, body in [
        ("good_plug", "good_plug", "import gptstore\n@gptstore.hookimpl\ndef register_commands(cli):\n"
                                   "    import click\n    @cli.command()\n    def good():\n        click.echo('good ran')\n"),
        ("bad_plug", "bad_plug", "raise ImportError('missing dependency xyz')\n"),
    ]:
        (site / f"{module}.py").write_text(body)
        info = site / f"{dist}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[gptstore]\n{dist} = {module}\n")
    return site


def _run(args, site, **env):
    full = dict(os.environ, PYTHONPATH=str(site), **env)
    return subprocess.run([GPTSTORE, *args], capture_output=True, text=True, env=full, timeout=60)


def test_entry_point_plugins_load_in_isolation(fake_site):
    result = _run(["plugins", "--json"], fake_site)
    assert result.returncode == 0, result.stderr
    info = {p["name"]: p for p in json.loads(result.stdout)}
    assert info["good_plug"]["version"] == "1.2.3"
    assert info["good_plug"]["hooks"] == ["register_commands"]
    assert info["bad_plug"]["errors"] == ["load: ImportError: missing dependency xyz"]
    ran = _run(["good"], fake_site)
    assert ran.returncode == 0 and ran.stdout == "good ran\n"
    table = _run(["plugins"], fake_site).stdout
    assert "bad_plug" in table and "error: load: ImportError" in table


def test_load_plugins_env_limits_loading(fake_site):
    none = json.loads(_run(["plugins", "--json"], fake_site, GPTSTORE_LOAD_PLUGINS="").stdout)
    assert {p["name"] for p in none} == set(plugins.DEFAULT_PLUGINS)
    only = json.loads(_run(["plugins", "--json"], fake_site, GPTSTORE_LOAD_PLUGINS="good_plug").stdout)
    assert {p["name"] for p in only} == set(plugins.DEFAULT_PLUGINS) | {"good_plug"}


def test_trace_plugins_prints_hook_calls(fake_site):
    result = _run(["good"], fake_site, GPTSTORE_TRACE_PLUGINS="1")
    assert "[gptstore] register_commands" in result.stderr and "good_plug" in result.stderr


def test_every_hookspec_argument_is_documented():
    from gptstore import hookspecs

    for name in plugins.pm.hook.__dict__:
        caller = getattr(plugins.pm.hook, name)
        if not hasattr(caller, "spec") or caller.spec is None:
            continue
        doc = caller.spec.function.__doc__ or ""
        for arg in caller.spec.argnames:
            assert f":param {arg}:" in doc, f"{name} does not document {arg}"
    assert hookspecs.hookimpl.project_name == "gptstore"
