"""The root command: `gptstore --help` lists each built-in command with the command's own short
help, read from a generated table (gptstore.cli._summaries) that must say what the commands say."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from gptstore.cli import _summaries, main
from gptstore.cli.main import COMMANDS, builtin_command, short_help


def test_the_summaries_table_is_what_the_commands_say():
    """Fails when a command's help changed and the table was not regenerated."""
    assert _summaries.SUMMARIES == _summaries.generate(), (
        "a command's help and gptstore/cli/_summaries.py differ: run `python -m gptstore.cli._summaries`")
    visible = {name for name in COMMANDS if not builtin_command(name).hidden}
    assert set(_summaries.SUMMARIES) == visible


@pytest.mark.parametrize("limit", [12, 30, 45, 64, 500])
def test_a_summary_is_shortened_exactly_as_click_shortens_the_command(limit):
    for name in _summaries.SUMMARIES:
        assert short_help(name, limit) == builtin_command(name).get_short_help_str(limit=limit), name


def _root_help(*, import_commands: bool) -> str:
    """`gptstore --help` in a fresh process at 80 columns, with or without every command imported first."""
    code = "from gptstore.cli.main import COMMANDS, cli, main\n"
    if import_commands:
        code += "for name in COMMANDS:\n    cli.get_command(None, name)\n"
    code += "import sys\nsys.argv = ['gptstore', '--help']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
    env = dict(os.environ, COLUMNS="80", GPTSTORE_LOAD_PLUGINS="")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_root_help_reads_the_same_with_every_command_imported():
    lazy_help, loaded_help = _root_help(import_commands=False), _root_help(import_commands=True)
    assert lazy_help == loaded_help
    for name in COMMANDS:
        assert f"\n  {name} " in lazy_help, name
    assert "  run       Generate text from REFERENCE for PROMPT (default: stdin).\n" in lazy_help


def test_a_command_missing_from_the_table_is_asked_itself(run_cli, monkeypatch):
    """A built-in left out of the table (e.g. one added without regenerating) still gets its line."""
    monkeypatch.setattr(main, "SUMMARIES", {k: v for k, v in _summaries.SUMMARIES.items() if k != "list"})
    monkeypatch.setattr(main.cli, "commands", {})
    out = run_cli("--help").output
    assert "  list " in out and "List models in the local library." in out


def test_write_regenerates_a_stale_table_and_then_changes_nothing(tmp_path):
    source = tmp_path / "_summaries.py"
    stale = open(_summaries.__file__, encoding="utf-8").read().replace(
        _summaries.SUMMARIES["list"], "An old summary.")
    source.write_text(stale, encoding="utf-8")
    assert _summaries.write(source) is True
    tree = ast.parse(source.read_text(encoding="utf-8"))
    (table,) = [node.value for node in tree.body
                if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "SUMMARIES"]
    assert ast.literal_eval(table) == _summaries.generate()
    assert _summaries.write(source) is False
