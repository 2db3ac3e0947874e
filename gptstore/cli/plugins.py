"""``gptstore plugins``: what is installed, which hooks it implements, what failed; and
``plugins install`` / ``plugins uninstall``, thin wrappers over pip."""

from __future__ import annotations

import click

from ._options import json_option
from ._commands import SuggestingGroup
from ._output import echo_json, table

PLUGINS_EXAMPLES = """
\b
Examples:
  gptstore plugins
  gptstore plugins install gptstore-guard
  gptstore plugins install -e ./plugins/gptstore-guard
  gptstore plugins install ./my-plugin -- --no-deps --no-build-isolation
  gptstore plugins uninstall guard
"""


def _status(info: dict) -> str:
    status = "error: " + "; ".join(info["errors"]) if info["errors"] else "ok"
    overrides = info.get("overrides") or []
    return f"{status}; overrides {', '.join(overrides)}" if overrides else status


def _table(infos: list[dict]) -> None:
    table(["PLUGIN", "VERSION", "HOOKS", "STATUS"],
          [[i["name"], i["version"] or ("built-in" if i["builtin"] else "-"), ", ".join(i["hooks"]) or "-",
            _status(i)] for i in infos])


@click.group(cls=SuggestingGroup, invoke_without_command=True, epilog=PLUGINS_EXAMPLES)
@json_option
@click.pass_context
def plugins(ctx, as_json):
    """List plugins, their hooks and load errors; install, uninstall.

    Each plugin is shown with its version and the hooks it implements. An error is a plugin
    that failed to load, raised while registering, registered a name that was taken, or
    implements a hook that does not exist (a misspelled name is never called).
    """
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import asdict

    from .. import plugins as registry

    # "overrides" only where there are some, so the familiar shape of a plugin's entry stays
    infos = [{k: v for k, v in asdict(i).items() if k != "overrides" or v} for i in registry.describe()]
    if as_json:
        echo_json(infos)
        return
    _table(infos)


@plugins.command(epilog=PLUGINS_EXAMPLES)
@click.argument("spec", metavar="NAME|PATH")
@click.argument("pip_args", nargs=-1, metavar="[-- PIP_ARGS...]")
@click.option("-e", "--editable", is_flag=True, help="Install a plugin directory in editable mode, for development.")
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade the plugin if it is installed.")
@click.option("-v", "--verbose", is_flag=True, help="Show pip's warnings and errors as they happen.")
@json_option
def install(spec, pip_args, editable, upgrade, verbose, as_json):
    """Install a plugin with pip, into gptstore's own environment.

    NAME is a distribution on the package index; PATH a plugin directory, a wheel or an sdist.
    Arguments after -- go to pip as they are. Then the plugin is loaded in a fresh process and
    shown as `gptstore plugins` shows it; a distribution that is not a plugin, or a plugin that
    fails to load, is a warning and exit code 1 (it stays installed).
    """
    from dataclasses import asdict

    from ..plugin_install import install as pip_install

    result = pip_install(spec, editable=editable, upgrade=upgrade, pip_args=pip_args, verbose=verbose)
    if as_json:
        echo_json({"installed": [asdict(d) for d in result.dists], "already": result.already,
                   "plugins": result.plugins, "problems": result.problems})
    else:
        for dist in result.dists:
            how = " (editable)" if dist.editable else ""
            click.echo(f"{dist.name} {dist.version} was already installed{how}" if result.already
                       else f"Installed {dist.name} {dist.version}{how}")
        if result.plugins:
            _table(result.plugins)
        for problem in result.problems:
            click.echo(f"Warning: {problem}", err=True)
    if result.problems:
        raise SystemExit(1)


@plugins.command()
@click.argument("name")
@click.option("-v", "--verbose", is_flag=True, help="Show pip's output.")
@json_option
def uninstall(name, verbose, as_json):
    """Uninstall the plugin NAME (as `gptstore plugins` lists it, or its distribution) with pip.

    A distribution that is not a gptstore plugin is left alone.
    """
    from dataclasses import asdict

    from ..plugin_install import uninstall as pip_uninstall

    dist = pip_uninstall(name, verbose=verbose)
    if as_json:
        echo_json({"uninstalled": asdict(dist)})
        return
    click.echo(f"Uninstalled {dist.name} {dist.version} (plugin{'s' if len(dist.plugins) > 1 else ''} "
               f"{', '.join(dist.plugins)})")
