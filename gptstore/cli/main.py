"""Assembles the ``gptstore`` CLI and formats every error in one place.

Command modules are imported lazily (only the one being run; the table of built-ins is
:data:`gptstore.cli._commands.COMMANDS`), and plugins add commands through the
``register_commands`` hook. ``gptstore --help`` imports neither torch nor transformers, nor
any command module, nor pydantic.

The root help lists each built-in command with its own short help (``get_short_help_str``).
Those lines come from :data:`gptstore.cli._summaries.SUMMARIES`, a table *generated* from the
commands by ``python -m gptstore.cli._summaries``, not kept by hand: deriving them at help time
would mean importing every command module (``run`` builds its options from the pydantic
``GenerationParams``) or re-parsing their sources (about 10 ms of a 130 ms start, and a second
reading of click's decorators). ``tests/test_cli_main.py`` fails as soon as a command's help and
the table differ, and checks that the root help reads the same with every command imported.
"""

from __future__ import annotations

import sys
import traceback

import click

from ._commands import ALIASES, COMMANDS, SuggestingGroup, builtin_command
from ._summaries import SUMMARIES


def short_help(name: str, limit: int) -> str:
    """The root help's line for built-in ``name`` when its module is not imported: its summary
    shortened to ``limit`` exactly as click shortens the command's own help."""
    return click.Command(name, help=SUMMARIES[name]).get_short_help_str(limit=limit)


def one_line(text: str) -> str:
    """``text`` as one line: a multi-line message (e.g. a plugin's pydantic ValidationError) has
    its lines joined with "; "."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


class CLIError(click.ClickException):
    """A GPTStoreError shown as one line, with the error's exit code."""

    def __init__(self, error: Exception) -> None:
        super().__init__(one_line(str(error)))
        self.exit_code = getattr(error, "exit_code", 1)


class LazyGroup(SuggestingGroup):
    aliases = ALIASES
    _plugins_key: tuple = ()
    _owners: dict[str, str] = {}

    def load_plugin_commands(self) -> None:
        """Let plugins add commands (again whenever the set of plugins changed).

        A plugin command whose name a built-in or an earlier plugin already has is reported and
        the first one stays.
        """
        from .. import plugins

        plugins.load_plugins()
        key = tuple(sorted(name for name, _ in plugins.pm.list_name_plugin()))
        if key == self._plugins_key:
            return
        self._plugins_key = key
        self._owners = {}
        before = dict(self.commands)
        for name, _ in plugins.call_each("register_commands", strict=False, cli=self):
            for cmd_name, command in list(self.commands.items()):
                if before.get(cmd_name) is command:
                    continue
                owner = self._owners.get(cmd_name) or ("gptstore" if cmd_name in COMMANDS else None)
                if owner is not None:
                    plugins.report(name, "register_commands",
                                   f"command {cmd_name!r} is already provided by {owner}; the first one stays")
                    if cmd_name in before:
                        self.commands[cmd_name] = before[cmd_name]
                    else:
                        del self.commands[cmd_name]
                    continue
                self._owners[cmd_name] = name
                before[cmd_name] = command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_plugin_commands()
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self.load_plugin_commands()
        if name in self.commands:
            return self.commands[name]
        if name in ALIASES:  # `ls` is `list`; hidden from the root help, which lists each command once
            name = ALIASES[name]
            if name in self.commands:
                return self.commands[name]
        if name not in COMMANDS:
            return None
        command = self.commands[name] = builtin_command(name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command and its short help; a built-in whose module is not imported yet is read
        from :data:`SUMMARIES` (one missing from the table, e.g. hidden, is imported to know)."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(name) for name in names), default=0)  # as click's Group
        rows = []
        for name in names:
            if name in self.commands or name not in SUMMARIES:
                command = self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit=limit)))
            else:
                rows.append((name, short_help(name, limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        from ..errors import GPTStoreError
        from .. import config

        try:
            return super().invoke(ctx)
        except GPTStoreError as exc:
            if config.debug():
                raise
            raise CLIError(exc) from exc
        except click.exceptions.Exit as exc:
            if exc.exit_code == 0:
                raise
            # main() runs click with standalone_mode=False, which turns ctx.exit(N) into a return
            # value; exit here so that a command's (or a plugin command's) exit code is kept
            sys.exit(exc.exit_code)


def _version() -> str:
    from importlib.metadata import version

    return version("gptstore")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gptstore", message="gptstore %(version)s")
@click.option("-v", "--verbose", is_flag=True,
              help="Let transformers print its own warnings and progress bars (also GPTSTORE_VERBOSE=1).")
def cli(verbose: bool) -> None:
    """gptstore: package, sign, publish, pull, verify and run GPT models.

    \b
    Provider:  package → publish → push
    Consumer:  search → show → pull → verify → run
    Set GPTSTORE_HOME to choose where the local library lives.
    """
    if verbose:
        from ..transformers_logging import set_verbose

        set_verbose()


def main(argv: list[str] | None = None) -> None:
    from .. import config

    try:
        cli.main(args=argv, prog_name="gptstore", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # an unexpected bug: one line unless debugging
        if config.debug():
            traceback.print_exc()
        else:
            click.echo(f"Error: unexpected {type(exc).__name__}: {one_line(str(exc))} "
                       "(set GPTSTORE_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)
