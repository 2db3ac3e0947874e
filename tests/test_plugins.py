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
from gptstore.errors import ManifestError, PluginError, UnknownComponent
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
    with pytest.raises(ManifestError, match="plugin 'sneaky' tried to change files in prepare_manifest"):
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


def test_a_plugin_registering_a_builtin_name_overrides_it_on_purpose(register_plugin, run_cli):
    """Built-ins register trylast, so a plugin that registers the same name is called first and
    its registration stays; nobody has a problem, and `gptstore plugins` shows the override."""
    class Replacement(TransformersAdapter):
        pass

    class Plugin:
        @hookimpl
        def register_adapters(self, register):
            register(Replacement())

    register_plugin(Plugin(), name="replacement")
    assert type(adapters()["transformers"]) is Replacement
    info = {p["name"]: p for p in json.loads(run_cli("plugins", "--json").output)}
    assert info["replacement"]["overrides"] == ["adapter 'transformers' of gptstore.adapters.transformers"]
    assert info["replacement"]["errors"] == [] and info["gptstore.adapters.transformers"]["errors"] == []
    assert "ok; overrides adapter 'transformers' of gptstore.adapters.transformers" in run_cli("plugins").output


def test_two_plugins_registering_one_name_first_in_call_order_stays(register_plugin):
    """Without tryfirst/trylast pluggy calls the last registered plugin first: its name stays and
    the other plugin, which tried to take it, is reported."""
    def store_plugin(tag):
        class Plugin:
            @hookimpl
            def register_stores(self, register):
                register("mem", lambda url: tag)

        return Plugin()

    register_plugin(store_plugin("earlier"), name="earlier")
    register_plugin(store_plugin("later"), name="later")
    assert stores()["mem"]("mem://x") == "later"
    assert [p.error for p in plugins.problems() if p.plugin == "earlier"] == [
        "store scheme 'mem' is already registered by later; the first one stays"]
    assert not [p for p in plugins.problems() if p.plugin == "later"]


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


# -- entry-point plugins in a real process --------------------------------------------------------

GOOD = """\
import gptstore

@gptstore.hookimpl
def register_commands(cli):
    import click

    @cli.command()
    def good():
        click.echo('good ran')
"""
TYPO = """\
import gptstore

@gptstore.hookimpl
def register_engine(register):  # the hook is register_engines
    raise AssertionError('never called')
"""
RAISING = """\
import gptstore

@gptstore.hookimpl
def register_adapters(register):
    raise RuntimeError('no adapters today')
"""
FAKE_DISTS = [("good_plug", GOOD), ("bad_plug", "raise ImportError('missing dependency xyz')\n"),
              ("typo_plug", TYPO), ("raising_plug", RAISING)]


@pytest.fixture
def fake_site(tmp_path):
    """A directory to put on the path with four installed 'distributions', each one plugin: good,
    bad (fails to import), typo (a misspelled hook) and raising (raises while registering)."""
    site = tmp_path / "site"
    site.mkdir()
    for dist, body in FAKE_DISTS:
        (site / f"{dist}.py").write_text(body)
        info = site / f"{dist}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[gptstore]\n{dist} = {dist}\n")
    return site


def _run(args, site, **env):
    """`gptstore ARGS` in a fresh process with ``site`` on its path and, unless ``env`` says
    otherwise, every installed plugin allowed (the test kit pins GPTSTORE_LOAD_PLUGINS="")."""
    full = dict(os.environ, PYTHONPATH=str(site), **env)
    if "GPTSTORE_LOAD_PLUGINS" not in env:
        full.pop("GPTSTORE_LOAD_PLUGINS", None)
    return subprocess.run([GPTSTORE, *args], capture_output=True, text=True, env=full, timeout=60)


def test_entry_point_plugins_load_in_isolation(fake_site):
    result = _run(["plugins", "--json"], fake_site)
    assert result.returncode == 0, result.stderr
    info = {p["name"]: p for p in json.loads(result.stdout)}
    assert info["good_plug"]["version"] == "1.2.3"
    assert info["good_plug"]["hooks"] == ["register_commands"] and info["good_plug"]["errors"] == []
    assert info["bad_plug"]["errors"] == ["load: ImportError: missing dependency xyz"]
    assert info["typo_plug"]["errors"] == [
        "register_engine: no such hook, so it is never called; did you mean 'register_engines'?"]
    # reported by `gptstore plugins` itself, not only once something needed the adapters
    assert info["raising_plug"]["errors"] == ["register_adapters: RuntimeError: no adapters today"]
    ran = _run(["good"], fake_site)
    assert ran.returncode == 0 and ran.stdout == "good ran\n"
    table = _run(["plugins"], fake_site).stdout
    assert "bad_plug" in table and "error: load: ImportError" in table
    assert "error: register_engine: no such hook" in table


def test_load_plugins_env_limits_loading(fake_site):
    none = json.loads(_run(["plugins", "--json"], fake_site, GPTSTORE_LOAD_PLUGINS="").stdout)
    assert {p["name"] for p in none} == set(plugins.DEFAULT_PLUGINS)
    only = json.loads(_run(["plugins", "--json"], fake_site, GPTSTORE_LOAD_PLUGINS="good_plug").stdout)
    assert {p["name"] for p in only} == set(plugins.DEFAULT_PLUGINS) | {"good_plug"}


def test_trace_plugins_prints_hook_calls(fake_site):
    result = _run(["good"], fake_site, GPTSTORE_TRACE_PLUGINS="1")
    assert result.returncode == 0 and result.stdout == "good ran\n"
    assert "[gptstore] register_commands(cli=" in result.stderr
    assert "-> good_plug" in result.stderr and "[gptstore] register_commands <- good_plug: []" in result.stderr


def test_every_hookspec_argument_is_documented():
    from gptstore import hookspecs

    for name in plugins.HOOKS:
        caller = getattr(plugins.pm.hook, name)
        doc = caller.spec.function.__doc__ or ""
        for arg in caller.spec.argnames:
            assert f":param {arg}:" in doc, f"{name} does not document {arg}"
    assert hookspecs.hookimpl.project_name == "gptstore"


# -- pluggy's call order, tryfirst and trylast ----------------------------------------------------

def _store_plugin(scheme, calls, label, **opts):
    class Plugin:
        @hookimpl(**opts)
        def register_stores(self, register):
            calls.append(label)
            register(scheme, lambda url: label)

    return Plugin()


def test_hook_call_order_is_pluggys_tryfirst_last_registered_first_then_trylast(register_plugin):
    calls = []
    register_plugin(_store_plugin("s-last", calls, "last", trylast=True), name="last")
    register_plugin(_store_plugin("s-one", calls, "one"), name="one")
    register_plugin(_store_plugin("s-first", calls, "first", tryfirst=True), name="first")
    register_plugin(_store_plugin("s-two", calls, "two"), name="two")
    stores()
    assert calls == ["first", "two", "one", "last"]
    order = plugins.call_order("register_stores")
    assert [name for name in order if name in {"first", "two", "one", "last"}] == calls
    # the built-ins are trylast: after every plain plugin, before a trylast plugin registered later
    assert order.index("one") < order.index("gptstore.stores.local") < order.index("last")


def test_hook_tryfirst_plugin_wins_a_name_clash(register_plugin):
    calls = []
    register_plugin(_store_plugin("mem", calls, "eager", tryfirst=True), name="eager")
    register_plugin(_store_plugin("mem", calls, "plain"), name="plain")
    assert stores()["mem"]("mem://x") == "eager"
    assert [p.error for p in plugins.problems() if p.plugin == "plain"] == [
        "store scheme 'mem' is already registered by eager; the first one stays"]


def test_hook_trylast_plugin_loses_a_name_clash_even_to_builtins(register_plugin, run_cli):
    """trylast asks to come last: a trylast plugin's registration is a default that every other
    plugin and the built-ins win over (today's bug was the opposite). It is not a problem."""
    from gptstore.stores import local

    calls = []
    register_plugin(_store_plugin("file", calls, "fallback", trylast=True), name="fallback")
    register_plugin(_store_plugin("mem", calls, "fallback-mem", trylast=True), name="fallback-mem")
    register_plugin(_store_plugin("mem", calls, "plain"), name="plain")
    found = stores()
    assert found["file"] is local._from_url and found["mem"]("mem://x") == "plain"
    assert calls == ["plain", "fallback", "fallback-mem"]  # trylast ones in registration order; both lost
    assert not [p for p in plugins.problems() if p.plugin in {"fallback", "fallback-mem", "plain"}]
    info = {p["name"]: p for p in json.loads(run_cli("plugins", "--json").output)}
    assert info["gptstore.stores.local"]["overrides"] == ["store scheme 'file' of fallback"]
    assert info["plain"]["overrides"] == ["store scheme 'mem' of fallback-mem"]


def test_builtin_registrations_are_trylast():
    """So that a plugin overrides a built-in only by registering its name on purpose."""
    plugins.load_plugins()
    for name in plugins.DEFAULT_PLUGINS:
        module = plugins.pm.get_plugin(name)
        impls = [impl for caller in plugins.pm.get_hookcallers(module) for impl in caller.get_hookimpls()
                 if impl.plugin is module]
        assert impls, f"{name} implements no hook"
        for impl in impls:
            assert impl.trylast, f"{name}: @hookimpl(trylast=True) on {impl.function.__name__}"


# -- wrappers ------------------------------------------------------------------------------------

def test_hook_wrapper_wraps_its_own_plugins_implementation(tiny_gpt, register_plugin):
    """pluggy runs wrappers (new-style and old-style) around the plugin's own implementation: they
    see its result and may replace it, or catch what it raises."""
    seen = []

    class Enricher:
        @hookimpl
        def prepare_manifest(self, manifest):
            return {"tags": ["enriched"]}

        @hookimpl(wrapper=True, specname="prepare_manifest")
        def wrap(self, manifest):
            result = yield
            seen.append(("new", list(result)))
            return [{**update, "description": "wrapped"} for update in result]

    class Failing:
        @hookimpl
        def prepare_manifest(self, manifest):
            raise RuntimeError("boom")

        @hookimpl(hookwrapper=True, specname="prepare_manifest")
        def wrap(self, manifest):
            outcome = yield
            seen.append(("old", type(outcome.exception).__name__))
            outcome.force_result([{"license": "mit"}])

    register_plugin(Enricher(), name="enricher")
    register_plugin(Failing(), name="failing")
    manifest = package(tiny_gpt, name="acme/tiny", version="1.0.0")
    assert sorted(seen) == [("new", [{"tags": ["enriched"]}]), ("old", "RuntimeError")]
    assert manifest.tags == ["enriched"] and manifest.description == "wrapped" and manifest.license == "mit"
    assert not plugins.problems()


def test_hook_wrapper_without_an_implementation_is_reported_and_never_runs(register_plugin, run_cli):
    """A wrapper wraps only its own plugin's implementation (each plugin is called on its own): one
    with nothing to wrap is reported instead of silently doing nothing (or, as before, leaking an
    unstarted generator into the hook's results)."""
    class Lonely:
        @hookimpl(wrapper=True)
        def after_generate(self, completions):
            raise AssertionError("never runs")
            yield

    register_plugin(Lonely(), name="lonely")
    assert "lonely" not in plugins.call_order("after_generate")
    assert list(plugins.call_each("after_generate", strict=True, model=None, completions=[])) == []
    info = {p["name"]: p for p in json.loads(run_cli("plugins", "--json").output)}
    (error,) = info["lonely"]["errors"]
    assert error.startswith("after_generate: a wrapper wraps only its own plugin's implementation of the hook")


# -- misspelled hooks (pm.check_pending) ---------------------------------------------------------

def test_hook_with_no_spec_is_reported_as_a_problem_of_its_plugin(register_plugin, run_cli):
    class Typo:
        @hookimpl
        def register_engine(self, register):
            raise AssertionError("never called")

        @hookimpl(optionalhook=True)
        def maybe_later(self):
            """An optional hook of a newer gptstore: pluggy's check_pending allows it, so do we."""

    register_plugin(Typo(), name="typo")
    info = {p["name"]: p for p in json.loads(run_cli("plugins", "--json").output)}
    assert info["typo"]["errors"] == [
        "register_engine: no such hook, so it is never called; did you mean 'register_engines'?"]
    assert "typo" in run_cli("plugins").output and "error: register_engine: no such hook" in run_cli("plugins").output
    plugins.unregister("typo")
    assert not [p for p in plugins.problems() if p.plugin == "typo"]


# -- tracing -------------------------------------------------------------------------------------

def test_hook_calls_are_traced_by_pluggys_hookcall_monitoring(monkeypatch, capsys, register_plugin):
    """GPTSTORE_TRACE_PLUGINS=1 installs pluggy's monitoring, so even a plain pluggy call shows."""
    calls = []
    register_plugin(_store_plugin("mem", calls, "traced"), name="traced")
    monkeypatch.setenv("GPTSTORE_TRACE_PLUGINS", "1")
    plugins.load_plugins()
    plugins.pm.hook.register_stores(register=lambda *args: None)
    err = capsys.readouterr().err
    everyone = "traced, gptstore.stores.local, gptstore.stores.hub"  # in call order
    assert "[gptstore] register_stores(register=<function" in err and f") -> {everyone}\n" in err
    assert f"[gptstore] register_stores <- {everyone}: []\n" in err
    stores()
    assert "[gptstore] register_stores(register=<function" in capsys.readouterr().err  # per plugin
    monkeypatch.delenv("GPTSTORE_TRACE_PLUGINS")
    stores()
    assert capsys.readouterr().err == ""


# -- loading and the test kit --------------------------------------------------------------------

def test_entry_point_plugins_follow_gptstore_load_plugins_in_process(fake_site, monkeypatch):
    """The variable is read again on every load: a change loads or unloads entry-point plugins and
    what was reported about them."""
    monkeypatch.syspath_prepend(str(fake_site))
    names = {dist for dist, _ in FAKE_DISTS}
    assert names.isdisjoint(plugins.entry_point_plugins())  # the test kit pinned it to ""
    monkeypatch.setenv("GPTSTORE_LOAD_PLUGINS", "good-plug")  # a distribution, by any spelling
    assert {n: d for n, d in plugins.entry_point_plugins().items() if n in names} == {"good_plug": "good_plug"}
    monkeypatch.delenv("GPTSTORE_LOAD_PLUGINS")
    assert set(plugins.entry_point_plugins()) >= {"good_plug", "typo_plug", "raising_plug"}
    assert {p.plugin for p in plugins.problems()} >= {"bad_plug", "typo_plug"}
    monkeypatch.setenv("GPTSTORE_LOAD_PLUGINS", "")
    assert plugins.entry_point_plugins() == {}
    assert plugins.pm.get_plugin("good_plug") is None
    assert not [p for p in plugins.problems() if p.plugin in names]


def test_the_test_kit_keeps_installed_plugins_out_of_a_test():
    assert os.environ["GPTSTORE_LOAD_PLUGINS"] == ""
    assert plugins.entry_point_plugins() == {}
    for hook in plugins.HOOKS:
        assert set(plugins.call_order(hook)) <= set(plugins.DEFAULT_PLUGINS), hook


def test_the_entry_point_plugins_fixture_loads_them_for_one_test(fake_site, monkeypatch, request):
    from gptstore import testing

    monkeypatch.syspath_prepend(str(fake_site))
    monkeypatch.setattr(testing, "_SESSION_LOAD_PLUGINS", None)  # as if pytest started without it
    loaded = request.getfixturevalue("entry_point_plugins")
    assert loaded["good_plug"] == "good_plug" and "GPTSTORE_LOAD_PLUGINS" not in os.environ
    assert "good_plug" in plugins.call_order("register_commands")


def test_an_unhashable_plugin_object_is_refused_with_the_fix(register_plugin):
    from dataclasses import dataclass

    @dataclass
    class Plugin:  # eq=True makes instances unhashable
        @hookimpl
        def register_stores(self, register):
            register("mem", lambda url: url)

    with pytest.raises(TypeError, match="plugin 'dc' is unhashable .*a dataclass needs eq=False"):
        register_plugin(Plugin(), name="dc")
    assert plugins.pm.get_plugin("dc") is None and "file" in stores()
