"""One options vocabulary (gptstore.cli._options): a flag that several commands take means the same
in each, and is declared once."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

import gptstore.cli
from gptstore.cli._options import SHARED, SharedOption, json_option, store_option
from gptstore.cli.main import COMMANDS, builtin_command

CLI_DIR = Path(gptstore.cli.__file__).parent


def _every_command() -> list[tuple[str, click.Command]]:
    found = []

    def walk(path: str, command: click.Command) -> None:
        found.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(f"{path} {name}", sub)

    for name in COMMANDS:
        walk(name, builtin_command(name))
    return found


def test_a_shared_flag_has_one_parameter_name_and_kind_everywhere():
    """`--json` is always the flag `as_json`, `--store` always the value `store_url`, and so on."""
    seen = {shared.flag: 0 for shared in SHARED}
    for path, command in _every_command():
        for param in command.params:
            for shared in SHARED:
                if shared.flag in getattr(param, "opts", ()):
                    seen[shared.flag] += 1
                    assert param.name == shared.dest, f"{path} {shared.flag}"
                    assert getattr(param, "is_flag", False) == shared.attrs.get("is_flag", False), f"{path} {shared.flag}"
    assert all(seen.values()), seen  # every shared option is used by some command


def test_no_command_module_declares_a_shared_flag_itself():
    for path in sorted(CLI_DIR.glob("*.py")):
        if path.name == "_options.py":
            continue
        source = path.read_text(encoding="utf-8")
        declared = [s.flag for s in SHARED if re.search(rf"click\.option\(\s*[\"']{s.flag}[\"']", source)]
        assert not declared, f"{path.name} declares {declared} itself: use gptstore.cli._options"


def test_replace_changes_settings_but_keeps_the_flag_and_the_parameter_name():
    login_store = store_option.replace(required=True, help="Store URL to log in to.")
    assert isinstance(login_store, SharedOption)
    assert (login_store.flag, login_store.dest) == ("--store", "store_url")
    assert store_option.attrs.get("required") is None  # the shared one is untouched

    @click.command()
    @login_store
    @json_option.replace(help="Print the token as JSON.")
    def login(store_url, as_json):
        click.echo(f"{store_url} {as_json}")

    from click.testing import CliRunner

    runner = CliRunner()
    assert runner.invoke(login, ["--store", "http://127.0.0.1:1", "--json"]).output == "http://127.0.0.1:1 True\n"
    missing = runner.invoke(login, [])
    assert missing.exit_code == 2 and "Missing option '--store'" in missing.output
    assert "Print the token as JSON." in runner.invoke(login, ["--help"]).output


@pytest.mark.parametrize("args, expected", [
    (["run", "--help"], "Store to pull the model from when the local library lacks it"),
    (["show", "--help"], "Store URL: hf://, http(s)://host:port or a library path"),
    (["package", "--help"], "Accept pickle-based weights (.bin .pt .pth .pkl .ckpt)"),
    (["keys", "list", "--help"], "Print JSON for scripts."),
])
def test_commands_show_the_shared_help(run_cli, args, expected):
    out = run_cli(*args).output
    assert " ".join(expected.split()) in " ".join(out.split())
