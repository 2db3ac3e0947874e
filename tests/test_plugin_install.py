"""`gptstore plugins install` / `uninstall`: real pip runs on tiny local plugins, offline.

pip runs in a throw-away virtual environment that sees gptstore's own site-packages (through a
.pth file) but installs into itself, so these tests never change the environment the rest of
the suite runs in; every test uninstalls what it installed in a ``finally`` all the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from gptstore.errors import UsageError
from gptstore.plugin_install import install_args, normalize

OFFLINE = ["--", "--no-build-isolation", "--no-deps", "--no-index"]
HINT = "; run again with --verbose to see pip's warnings and errors"


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A virtual environment without pip of its own that imports gptstore (and pip, setuptools)
    from this one's site-packages; ``python -m pip`` there installs into it."""
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "_gptstore_parent.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python


def gptstore(python: Path, *args: str, home: Path) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, GPTSTORE_HOME=str(home))
    env.pop("GPTSTORE_LOAD_PLUGINS", None)
    return subprocess.run([str(python), "-c", "from gptstore.cli.main import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def pip_uninstall(python: Path, name: str) -> None:
    subprocess.run([str(python), "-m", "pip", "uninstall", "--yes", "--quiet", name], capture_output=True, timeout=120)


def make_plugin(root: Path, dist: str, module: str, body: str, *, entry_point: str | None) -> Path:
    path = root / dist
    (path / module).mkdir(parents=True)
    eps = f'\n[project.entry-points.gptstore]\n{entry_point} = "{module}"\n' if entry_point else ""
    (path / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=69"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "0.3.0"
        dependencies = ["gptstore"]
        """) + eps)
    (path / module / "__init__.py").write_text(textwrap.dedent(body))
    return path


HELLO = """\
    import gptstore

    @gptstore.hookimpl
    def register_commands(cli):
        import click

        @cli.command()
        def itest_hello():
            click.echo("hello from an installed plugin")
    """

HOOKS_ROW = "itest-hello  0.3.0    register_commands  ok"


@pytest.mark.slow
def test_install_editable_list_run_uninstall(venv, tmp_path):
    plugin = make_plugin(tmp_path, "gptstore-itest-hello", "gptstore_itest_hello", HELLO, entry_point="itest-hello")
    home = tmp_path / "home"
    try:
        installed = gptstore(venv, "plugins", "install", "-e", str(plugin), *OFFLINE, home=home)
        assert installed.returncode == 0, installed.stderr
        assert installed.stdout.splitlines() == ["Installed gptstore-itest-hello 0.3.0 (editable)",
                                                 "PLUGIN       VERSION  HOOKS              STATUS", HOOKS_ROW]
        ran = gptstore(venv, "itest-hello", home=home)
        assert ran.returncode == 0 and ran.stdout == "hello from an installed plugin\n"
        listed = {p["name"]: p for p in json.loads(gptstore(venv, "plugins", "--json", home=home).stdout)}
        assert listed["itest-hello"] == {"name": "itest-hello", "version": "0.3.0", "hooks": ["register_commands"],
                                         "builtin": False, "errors": []}

        again = gptstore(venv, "plugins", "install", "gptstore_itest_hello", "--json", *OFFLINE, home=home)
        data = json.loads(again.stdout)
        assert again.returncode == 0 and data["already"] is True and data["problems"] == []
        assert [(d["name"], d["editable"]) for d in data["installed"]] == [("gptstore-itest-hello", True)]

        removed = gptstore(venv, "plugins", "uninstall", "itest-hello", home=home)  # by its plugin name
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout == "Uninstalled gptstore-itest-hello 0.3.0 (plugin itest-hello)\n"
        listed = {p["name"] for p in json.loads(gptstore(venv, "plugins", "--json", home=home).stdout)}
        assert "itest-hello" not in listed

        gone = gptstore(venv, "plugins", "uninstall", "itest-hello", home=home)
        assert gone.returncode == 1
        assert gone.stderr == "Error: no installed plugin is named 'itest-hello'; see `gptstore plugins`\n"
    finally:
        pip_uninstall(venv, "gptstore-itest-hello")


@pytest.mark.slow
def test_install_a_directory_with_upgrade_and_uninstall_by_distribution(venv, tmp_path):
    plugin = make_plugin(tmp_path, "gptstore-itest-hello", "gptstore_itest_hello", HELLO, entry_point="itest-hello")
    home = tmp_path / "home"
    try:
        installed = gptstore(venv, "plugins", "install", "--upgrade", str(plugin), *OFFLINE, home=home)
        assert installed.returncode == 0, installed.stderr
        assert installed.stdout.splitlines()[0] == "Installed gptstore-itest-hello 0.3.0"
        assert installed.stdout.splitlines()[-1] == HOOKS_ROW
        removed = gptstore(venv, "plugins", "uninstall", "GPTStore_Itest.Hello", "--json", home=home)
        assert removed.returncode == 0, removed.stderr
        assert json.loads(removed.stdout)["uninstalled"]["name"] == "gptstore-itest-hello"
    finally:
        pip_uninstall(venv, "gptstore-itest-hello")


@pytest.mark.slow
def test_a_distribution_that_is_not_a_plugin_is_a_warning_and_is_left_alone(venv, tmp_path):
    plain = make_plugin(tmp_path, "itest-plain", "itest_plain", "VALUE = 1\n", entry_point=None)
    home = tmp_path / "home"
    try:
        installed = gptstore(venv, "plugins", "install", str(plain), *OFFLINE, home=home)
        assert installed.returncode == 1 and installed.stdout == ""
        assert installed.stderr == ("Warning: itest-plain 0.3.0 is installed, but it is not a gptstore plugin "
                                    "(no entry point in group 'gptstore'); remove it with `pip uninstall itest-plain`\n")
        refused = gptstore(venv, "plugins", "uninstall", "itest-plain", home=home)
        assert refused.returncode == 1
        assert refused.stderr == ("Error: itest-plain 0.3.0 is not a gptstore plugin (no entry point in group "
                                  "'gptstore'); leaving it alone; use `pip uninstall itest-plain` if you mean it\n")
    finally:
        pip_uninstall(venv, "itest-plain")


@pytest.mark.slow
def test_a_plugin_that_fails_to_load_is_shown_with_its_error_and_a_warning(venv, tmp_path):
    broken = make_plugin(tmp_path, "itest-broken", "itest_broken", "raise ImportError('needs libfoo')\n",
                         entry_point="itest-broken")
    home = tmp_path / "home"
    try:
        installed = gptstore(venv, "plugins", "install", str(broken), *OFFLINE, home=home)
        assert installed.returncode == 1
        assert installed.stdout.splitlines()[0] == "Installed itest-broken 0.3.0"
        assert "error: load: ImportError: needs libfoo" in installed.stdout.splitlines()[-1]
        assert installed.stderr == "Warning: plugin 'itest-broken' failed: load: ImportError: needs libfoo\n"
    finally:
        pip_uninstall(venv, "itest-broken")


def test_a_pip_failure_is_one_line_and_installs_nothing(venv, tmp_path):
    (tmp_path / "not-a-project").mkdir()
    result = gptstore(venv, "plugins", "install", str(tmp_path / "not-a-project"), *OFFLINE, home=tmp_path / "h")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"Error: pip could not install {tmp_path / 'not-a-project'}: Directory "
                             f"'{tmp_path / 'not-a-project'}' is not installable. Neither 'setup.py' nor "
                             f"'pyproject.toml' found{HINT}\n")
    unknown = gptstore(venv, "plugins", "install", "itest-no-such-plugin", *OFFLINE, home=tmp_path / "h")
    assert unknown.returncode == 1 and len(unknown.stderr.splitlines()) == 1
    assert unknown.stderr.startswith("Error: pip could not install itest-no-such-plugin: ")


# -- in-process: errors found before pip runs, and the pure helpers -----------------------------

def test_usage_errors_exit_2_before_pip_runs(run_cli, tmp_path):
    missing = run_cli("plugins", "install", str(tmp_path / "nope"))
    assert missing.exit_code == 2
    assert missing.stderr == (f"Error: {tmp_path / 'nope'}: no such file or directory; give a plugin directory, "
                              "a wheel or a name on the package index\n")
    editable = run_cli("plugins", "install", "-e", "gptstore-guard")
    assert editable.exit_code == 2
    assert editable.stderr == ("Error: --editable needs a plugin directory; give its path, e.g. gptstore plugins "
                               "install -e ./gptstore-guard\n")


@pytest.mark.parametrize("name, message", [
    ("itest-nothing-here", "no installed plugin is named 'itest-nothing-here'; see `gptstore plugins`"),
    ("click", "is not a gptstore plugin (no entry point in group 'gptstore'); leaving it alone; "
              "use `pip uninstall click` if you mean it"),
    ("gptstore", "is not a gptstore plugin"),
    ("gptstore.trust", "gptstore.trust is built into gptstore and cannot be uninstalled"),
])
def test_uninstall_refuses_what_is_not_an_installed_plugin(run_cli, name, message):
    result = run_cli("plugins", "uninstall", name)
    assert result.exit_code == 1 and result.stderr.startswith("Error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_install_args(tmp_path):
    assert install_args("gptstore-guard") == ["gptstore-guard"]
    assert install_args("gptstore-guard>=0.1", upgrade=True, pip_args=["--pre"]) == [
        "--upgrade", "--pre", "gptstore-guard>=0.1"]
    assert install_args(str(tmp_path), editable=True, pip_args=["--no-deps"]) == [
        "--no-deps", "--editable", str(tmp_path)]
    assert install_args("git+https://example.com/x.git#egg=x", editable=True)[-2:] == [
        "--editable", "git+https://example.com/x.git#egg=x"]
    with pytest.raises(UsageError, match="no such file or directory"):
        install_args("./missing-dir")
    assert normalize("GPTStore_Itest.Hello") == "gptstore-itest-hello"


def test_plugins_listing_still_works(run_cli):
    table = run_cli("plugins")
    assert table.exit_code == 0 and table.output.splitlines()[0].split() == ["PLUGIN", "VERSION", "HOOKS", "STATUS"]
    names = {p["name"] for p in json.loads(run_cli("plugins", "--json").output)}
    assert "gptstore.trust" in names


def test_a_complaint_from_a_successful_pip_is_kept_as_one_line():
    from gptstore.plugin_install import _pip_complaint

    stderr = ("WARNING: something harmless\n"
              "ERROR: pip's dependency resolver does not currently take into account all the packages.\n"
              "itest-x 0.3.0 requires pydantic<2, but you have pydantic 2.14.4 which is incompatible.\n")
    assert _pip_complaint(stderr) == ("pip's dependency resolver does not currently take into account all the "
                                      "packages.; itest-x 0.3.0 requires pydantic<2, but you have pydantic 2.14.4 "
                                      "which is incompatible.")
    assert _pip_complaint("WARNING: only a warning\n") is None


def test_pip_writes_its_report_to_stdout_and_it_is_read(tmp_path):
    """``--quiet --report -``: stdout is the JSON report alone (no temporary file), read whole."""
    from gptstore.plugin_install import _install_report, _requested, pip

    plugin = make_plugin(tmp_path, "gptstore-itest-report", "gptstore_itest_report", HELLO,
                         entry_point="itest-report")
    run = pip("install", "--quiet", "--report", "-", "--dry-run", *OFFLINE[1:], str(plugin), report=True)
    assert run.returncode == 0, run.stderr
    report = _install_report(run)
    assert report is not None and not run.stdout_truncated
    assert _requested(report) == ["gptstore-itest-report"]


def test_pip_output_is_read_to_its_end_but_kept_only_up_to_a_limit():
    import io

    from gptstore.plugin_install import PipRun, _install_report, _read_capped

    into: dict = {}
    _read_capped(io.BytesIO(b"x" * 200_000), 1000, into)
    assert into == {"data": "x" * 1000, "over": True}
    _read_capped(io.BytesIO(b'{"install": []}'), 1000, into)
    assert into == {"data": '{"install": []}', "over": False}
    assert _install_report(PipRun(0, '{"install": []', stdout_truncated=True)) is None  # too large: not parsed
    assert _install_report(PipRun(0, "Requirement already satisfied: x")) is None
    assert _install_report(PipRun(0, "[1, 2]")) is None
    assert _install_report(PipRun(0, '{"install": []}')) == {"install": []}


def test_an_oversized_report_is_a_problem_not_a_crash(monkeypatch):
    from gptstore import plugin_install

    monkeypatch.setattr(plugin_install, "pip", lambda *args, **kwargs: plugin_install.PipRun(
        0, '{"install": [' + '{"metadata": {"name": "x"}}, ' * 10, stdout_truncated=True))
    result = plugin_install.install("itest-not-installed-anywhere")
    assert not result.already and result.dists == []
    assert result.problems == [
        "pip's installation report was not readable (larger than 16 MiB, or not JSON); check `gptstore plugins`",
        "pip reported itest-not-installed-anywhere as installed, but it cannot be found"]


@pytest.mark.parametrize("report, names", [
    ({"install": [{"metadata": {"name": "a"}, "requested": True}, {"metadata": {"name": "dep"}}]}, ["a"]),
    ({"install": [{"metadata": {"name": "a"}, "requested": "yes"}]}, []),
    ({"install": ["a", None, {"metadata": "a", "requested": True}, {"requested": True}]}, []),
    ({"install": {"a": 1}}, []),
    ({}, []),
])
def test_requested_names_come_only_from_well_formed_entries(report, names):
    from gptstore.plugin_install import _requested

    assert _requested(report) == names


@pytest.mark.parametrize("spec, name", [
    ("gptstore-guard", "gptstore-guard"),
    ("gptstore_guard>=0.1", "gptstore_guard"),
    ("gptstore-guard[extra]==1.0", "gptstore-guard"),
    ("dist/gptstore_guard-0.1.0-py3-none-any.whl", "gptstore_guard"),
    ("./gptstore-guard", None),
    ("git+https://example.com/x.git", None),
    ("-e", None),
])
def test_what_an_already_installed_spec_names(spec, name):
    from gptstore.plugin_install import _named_in

    assert _named_in(spec) == name
