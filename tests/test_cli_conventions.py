"""The CLI's conventions (issue 13, item 12), through the real CLI against a real `gptstore server`:
`whoami`, `logout`, the `ls` alias, did-you-mean for a mistyped command, `--token` on every
command that talks to a store, the same `--json` keys everywhere (docs/cli.md), and transformers
kept quiet unless `--verbose`."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from gptstore.cli._commands import COMMANDS, builtin_command
from gptstore.cli._options import token_option

ROOT = Path(__file__).resolve().parents[1]
SHA = re.compile(r"^sha256:[0-9a-f]{64}$")


# -- names -------------------------------------------------------------------------------------

def test_a_mistyped_command_suggests_the_closest_one(run_cli):
    result = run_cli("pul", "acme/poet")
    assert result.exit_code == 2
    assert "No such command 'pul'. Did you mean 'pull'?" in result.output


def test_a_mistyped_subcommand_suggests_the_closest_one(run_cli):
    result = run_cli("keys", "exprot", "acme")
    assert result.exit_code == 2
    assert "No such command 'exprot'. Did you mean 'export'?" in result.output


def test_every_command_group_suggests(run_cli, tmp_path):
    """Every group of gptstore's own CLI, top level or nested, is a SuggestingGroup."""
    import click

    from gptstore.cli._commands import SuggestingGroup
    from gptstore.cli.main import cli

    def groups(group, path):
        for name in group.list_commands(click.Context(group)):
            command = group.get_command(click.Context(group), name)
            # gptstore's own groups (a plugin's group, e.g. gptstore-guard's, is the plugin's choice)
            if isinstance(command, click.Group) and command.callback.__module__.startswith("gptstore.cli"):
                yield f"{path} {name}", command
                yield from groups(command, f"{path} {name}")

    found = dict(groups(cli, "gptstore"))
    assert {"gptstore keys", "gptstore plugins", "gptstore server", "gptstore server token", "gptstore manifest"} <= set(found)
    assert [path for path, group in found.items() if not isinstance(group, SuggestingGroup)] == []
    result = run_cli("server", "--data", str(tmp_path), "tokn", "list")
    assert result.exit_code == 2 and "No such command 'tokn'. Did you mean 'token'?" in result.output


def test_ls_typos_suggest_list(run_cli):
    assert "Did you mean 'list'?" in run_cli("lis").output


def test_a_command_far_from_any_name_is_only_refused(run_cli):
    result = run_cli("xyzzy")
    assert result.exit_code == 2
    assert "No such command 'xyzzy'." in result.output and "Did you mean" not in result.output


def test_ls_is_list(run_cli, tiny_gpt):
    from gptstore.library import Library
    from gptstore.packaging import package

    package(tiny_gpt, name="acme/poet", version="1.0.0")
    Library().publish(tiny_gpt)
    assert run_cli("ls").output == run_cli("list").output
    assert "acme/poet:1.0.0" in run_cli("ls").output
    commands = [line.split()[0] for line in run_cli("--help").output.split("Commands:")[1].splitlines() if line.strip()]
    assert "list" in commands and "ls" not in commands  # an alias is not a second line of the root help


# -- whoami / logout ---------------------------------------------------------------------------

def test_whoami_names_the_user_of_a_given_token_and_saves_nothing(run_cli, store_server, gptstore_home):
    result = run_cli("whoami", "--store", store_server.url, "--token", store_server.tokens["bob:write"])
    assert result.exit_code == 0, result.output
    assert result.output == f"bob on {store_server.url}\n"
    assert not (gptstore_home / "credentials.json").exists()


def test_whoami_uses_the_saved_login_then_logout_forgets_it(run_cli, store_server, monkeypatch):
    monkeypatch.setenv("GPTSTORE_STORE", store_server.url)  # both default to GPTSTORE_STORE
    assert run_cli("login", "--store", store_server.url, "--token", store_server.tokens["alice:read"]).exit_code == 0
    who = run_cli("whoami", "--json")
    assert who.exit_code == 0, who.output
    assert json.loads(who.stdout) == {"store": store_server.url, "user": "alice"}

    out = run_cli("logout")
    assert out.exit_code == 0 and f"Logged out of {store_server.url}" in out.output
    after = run_cli("whoami")
    assert after.exit_code == 1
    assert f"no token for {store_server.url}" in after.output and "gptstore login" in after.output
    again = run_cli("logout", "--store", store_server.url)
    assert again.exit_code == 2 and "not logged in" in again.output


def test_whoami_with_a_refused_token_says_so_in_one_line(run_cli, store_server):
    result = run_cli("whoami", "--store", store_server.url, "--token", "gst_not_a_token")
    assert result.exit_code == 1
    assert "did not accept the token" in result.output and len(result.output.strip().splitlines()) == 1


# -- --token on every command that talks to a store --------------------------------------------

def test_every_command_with_store_takes_token():
    """A command that can reach a remote store (it takes --store) also takes --token, as defined once."""
    missing = []
    for name in sorted(COMMANDS):
        command = builtin_command(name)
        for sub in getattr(command, "commands", {}).values() or [command]:
            flags = {opt for p in sub.params for opt in p.opts}
            if "--store" in flags and name != "logout" and token_option.flag not in flags:
                missing.append(f"{name} {sub.name}" if sub is not command else name)
    assert not missing, f"--store without --token: {missing}"


def test_show_and_run_with_token_reach_a_private_model(run_cli, store_server, tiny_gpt, monkeypatch):
    from gptstore.library import Library
    from gptstore.packaging import package

    package(tiny_gpt, name="alice/secret", version="1.0.0")
    Library().publish(tiny_gpt)
    token = store_server.tokens["alice:write"]
    assert run_cli("push", "alice/secret", "--store", store_server.url, "--token", token,
                   "--private").exit_code == 0
    assert run_cli("show", "alice/secret", "--store", store_server.url).exit_code == 1
    shown = run_cli("show", "alice/secret", "--store", store_server.url, "--token", token, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["reference"] == "alice/secret:1.0.0"

    from gptstore.library import Library as Lib

    Lib().remove("alice/secret")  # run must pull it, with the token, from the store
    monkeypatch.delenv("GPTSTORE_TOKEN", raising=False)
    refused = run_cli("run", "alice/secret", "Hi", "--store", store_server.url, "--max-new-tokens", "2")
    assert refused.exit_code == 1
    ran = run_cli("run", "alice/secret", "Hi", "--store", store_server.url, "--token", token,
                  "--max-new-tokens", "2", "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["usage"]["completion_tokens"] <= 2
    import os

    assert "GPTSTORE_TOKEN" not in os.environ  # the token was for that command only


# -- one JSON vocabulary -----------------------------------------------------------------------

def test_json_keys_are_the_same_in_every_command(run_cli, store_server, tiny_gpt):
    """reference and digest (always sha256:…) wherever a model is named; price as {model, amount,
    currency} wherever a price is; docs/cli.md documents each of these keys."""
    token = store_server.tokens["alice:write"]
    store = ["--store", store_server.url, "--token", token]

    def js(*args):
        result = run_cli(*args, "--json")
        assert result.exit_code == 0, (args, result.output)
        data = json.loads(result.stdout)  # progress and warnings go to stderr
        return data if isinstance(data, list) else [data]

    outputs = {
        "package": js("package", str(tiny_gpt), "--name", "alice/poet", "--version", "1.0.0",
                      "--price-model", "per_1k_tokens", "--price", "0.5", "--currency", "EUR"),
        "publish": js("publish", str(tiny_gpt)),
        "list": js("list"),
        "verify": js("verify", "alice/poet"),
        "push": js("push", "alice/poet", *store),
        "search": js("search", "poet", *store),
        "show": js("show", "alice/poet", *store),
        "lock": None,
        "pull": js("pull", "alice/poet:1.0.0", *store),
    }
    del outputs["lock"]
    price = {"model": "per_1k_tokens", "amount": 0.5, "currency": "EUR"}
    for command, records in outputs.items():
        assert records, command
        for record in records:
            assert re.fullmatch(r"alice/poet:(1\.0\.0|latest)", record["reference"]), (command, record)
            assert SHA.match(record["digest"]), (command, record)
            if "price" in record:
                assert record["price"] == price, (command, record)
    for command in ("search", "show", "list"):
        assert outputs[command][0]["price"] == price, command

    documented = (ROOT / "docs" / "cli.md").read_text()
    keys = {key for records in outputs.values() for record in records for key in record}
    for key in sorted(keys):
        assert f"`{key}`" in documented, f"docs/cli.md does not document the --json key {key!r}"


# -- transformers' own output ------------------------------------------------------------------

def test_transformers_is_quiet_unless_verbose(monkeypatch):
    from transformers.utils import logging as hf_logging

    from gptstore.transformers_logging import quiet_transformers

    hf_logging.get_logger()  # transformers configures its root logger on first use
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logging.getLogger("transformers").addHandler(handler)
    logger = hf_logging.get_logger("transformers.gptstore_test")
    try:
        monkeypatch.setenv("GPTSTORE_VERBOSE", "")
        with quiet_transformers():
            logger.warning("a transformers warning")
            assert not hf_logging.is_progress_bar_enabled()
        assert said == []

        monkeypatch.setenv("GPTSTORE_VERBOSE", "1")
        with quiet_transformers():
            logger.warning("a verbose transformers warning")
            assert hf_logging.is_progress_bar_enabled()
        assert said == ["a verbose transformers warning"]
    finally:
        logging.getLogger("transformers").removeHandler(handler)


def test_the_global_verbose_flag_lets_transformers_speak(run_cli, monkeypatch):
    from gptstore.transformers_logging import verbose

    monkeypatch.setenv("GPTSTORE_VERBOSE", "")
    assert run_cli("list").exit_code == 0 and not verbose()
    assert run_cli("--verbose", "list").exit_code == 0 and verbose()


# -- progress ----------------------------------------------------------------------------------

def test_the_progress_line_has_rate_and_eta():
    from gptstore.cli._output import TransferProgress

    lines: list[tuple[str, bool]] = []
    clock = iter([0.0, 1.0, 2.0, 4.0])
    show = TransferProgress(lambda text, last: lines.append((text, last)), clock=lambda: next(clock))
    for done in (0, 1_000_000, 2_000_000, 4_000_000):
        show(done, 4_000_000)
    assert lines[1] == ("\r  1.0 MB / 4.0 MB (25%)  1.0 MB/s  ETA 3s", False)
    assert lines[2] == ("\r  2.0 MB / 4.0 MB (50%)  1.0 MB/s  ETA 2s", False)
    assert lines[-1] == ("\r  4.0 MB / 4.0 MB (100%)  1.0 MB/s in 4s", True)


def test_pull_on_a_terminal_shows_rate_and_eta(store_server, tiny_gpt, tmp_path):
    """A real `gptstore pull` process whose stderr is a terminal."""
    import os
    import pty
    import subprocess
    import sys

    from gptstore.library import Library
    from gptstore.packaging import package
    from gptstore.sdk import push

    package(tiny_gpt, name="acme/progress", version="1.0.0")
    Library().publish(tiny_gpt)
    push("acme/progress", store=store_server.url, token=store_server.tokens["alice:write"])
    controller, terminal = pty.openpty()
    env = {**os.environ, "GPTSTORE_HOME": str(tmp_path / "consumer"), "GPTSTORE_LOAD_PLUGINS": ""}
    proc = subprocess.run([sys.executable, "-c", "from gptstore.cli.main import main; main()", "pull",
                           "acme/progress", "--store", store_server.url], stderr=terminal,
                          stdout=subprocess.PIPE, env=env, timeout=120)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert proc.returncode == 0, shown
    assert b"Pulled acme/progress:1.0.0" in proc.stdout
    assert re.search(rb"\(100%\)  [0-9.]+ [KMG]?B/s in \d+", shown), shown



def test_push_says_what_it_uploaded_and_what_it_reused(run_cli, store_server, tiny_gpt):
    """A second version that changes one file sends that file only."""
    from gptstore.library import Library
    from gptstore.packaging import package

    token = store_server.tokens["alice:write"]
    package(tiny_gpt, name="acme/reuse", version="1.0.0")
    Library().publish(tiny_gpt)
    first = run_cli("push", "acme/reuse:1.0.0", "--store", store_server.url, "--token", token)
    assert first.exit_code == 0, first.output
    assert re.search(r"uploaded 5 files \([0-9.]+ KB\), reused 0$", first.stdout.strip()), first.stdout

    (tiny_gpt / "generation_config.json").write_text('{"max_new_tokens": 7}')
    package(tiny_gpt, name="acme/reuse", version="1.1.0")
    Library().publish(tiny_gpt)
    second = run_cli("push", "acme/reuse:1.1.0", "--store", store_server.url, "--token", token, "--json")
    assert second.exit_code == 0, second.output
    data = json.loads(second.stdout)
    assert (data["uploaded_files"], data["reused_files"]) == (1, 4)
    assert data["uploaded_bytes"] == (tiny_gpt / "generation_config.json").stat().st_size
