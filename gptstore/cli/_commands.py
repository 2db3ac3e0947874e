"""The built-in commands: name → where the command lives, imported only when it is used.

A module of its own (not in :mod:`gptstore.cli.main`) so that the generator of the root help's
table (:mod:`gptstore.cli._summaries`) can read the commands without importing ``main``, which
imports that table: the two would otherwise import each other.
"""

from __future__ import annotations

import importlib

import click

#: command name -> "module:attribute"; modules are imported only when the command is used
COMMANDS: dict[str, str] = {
    "package": "gptstore.cli.models:package",
    "publish": "gptstore.cli.models:publish",
    "list": "gptstore.cli.models:list_models",
    "show": "gptstore.cli.models:show",
    "verify": "gptstore.cli.models:verify",
    "rm": "gptstore.cli.models:rm",
    "plugins": "gptstore.cli.plugins:plugins",
    "run": "gptstore.cli.run:run",
    "usage": "gptstore.cli.usage:usage",
    "manifest": "gptstore.cli.manifest:manifest",
    "server": "gptstore.cli.server:server",
    "finetune": "gptstore.cli.train:finetune",
    "eval": "gptstore.cli.evaluate:eval_command",
    "demo": "gptstore.cli.demo:demo",
    "search": "gptstore.cli.remote:search",
    "push": "gptstore.cli.remote:push",
    "pull": "gptstore.cli.remote:pull",
    "lock": "gptstore.cli.remote:lock",
    "login": "gptstore.cli.remote:login",
    "keys": "gptstore.cli.keys:keys",
    "trust": "gptstore.cli.keys:trust",
    "sign": "gptstore.cli.keys:sign",
}


def builtin_command(name: str) -> click.Command:
    """The built-in command ``name`` (a key of :data:`COMMANDS`), importing its module."""
    module, _, attr = COMMANDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)
