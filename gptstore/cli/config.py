"""``gptstore config``: the effective settings (the store a command without --store uses, the
Hub endpoint, offline mode, the home, tokens set or not), each with where it came from."""

from __future__ import annotations

import click

from ._options import json_option
from ._output import echo_json, table


@click.command("config")
@json_option
def config_command(as_json):
    """Show the effective settings: default store, Hub endpoint, offline, home.

    \b
    The store is what pull, search, show, run and load use without --store:
    GPTSTORE_STORE if set, else hf:// (huggingface.co, or HF_ENDPOINT).
    Tokens are shown as set or unset, never their value.
    """
    from .. import config

    data = config.settings()
    if as_json:
        echo_json(data)
        return
    table(["SETTING", "VALUE", "FROM"], [[name, str(item["value"]), str(item["source"])] for name, item in data.items()])


__all__ = ["config_command"]
