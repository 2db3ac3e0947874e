"""The built-in commands: name → where the command lives, imported only when it is used.

A module of its own (not in :mod:`gptstore.cli.main`) so that the generator of the root help's
table (:mod:`gptstore.cli._summaries`) can read the commands without importing ``main``, which
imports that table: the two would otherwise import each other. :class:`SuggestingGroup` (did
you mean …? for a mistyped command) lives here too, for the root group and the command groups.
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
    "serve": "gptstore.cli.serve:serve",
    "finetune": "gptstore.cli.train:finetune",
    "eval": "gptstore.cli.evaluate:eval_command",
    "demo": "gptstore.cli.demo:demo",
    "search": "gptstore.cli.remote:search",
    "push": "gptstore.cli.remote:push",
    "pull": "gptstore.cli.remote:pull",
    "lock": "gptstore.cli.remote:lock",
    "login": "gptstore.cli.remote:login",
    "logout": "gptstore.cli.remote:logout",
    "whoami": "gptstore.cli.remote:whoami",
    "keys": "gptstore.cli.keys:keys",
    "trust": "gptstore.cli.keys:trust",
    "sign": "gptstore.cli.keys:sign",
    "config": "gptstore.cli.config:config_command",
}


#: other names of built-in commands (hidden from the root help): alias -> command
ALIASES: dict[str, str] = {"ls": "list"}


def builtin_command(name: str) -> click.Command:
    """The built-in command ``name`` (a key of :data:`COMMANDS`), importing its module."""
    module, _, attr = COMMANDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


class SuggestingGroup(click.Group):
    """A command group that answers a mistyped command with the closest name (``gptstore keys
    exprot`` → "No such command 'exprot'. Did you mean 'export'?", exit 2), as git and docker do.
    The root group (:class:`gptstore.cli.main.LazyGroup`) is one too."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = click.utils.make_str(args[0]) if args else ""
        if (name and not name.startswith("-") and not ctx.resilient_parsing
                and self.get_command(ctx, name) is None):
            import difflib

            names = [*self.list_commands(ctx), *self.aliases]
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            if close:
                ctx.fail(f"No such command {name!r}. Did you mean {self.aliases.get(close[0], close[0])!r}?")
        return super().resolve_command(ctx, args)

    #: other names of commands: alias -> command
    aliases: dict[str, str] = {}
