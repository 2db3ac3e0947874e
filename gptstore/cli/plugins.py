"""``gptstore plugins``: what is installed, which hooks it implements, what failed."""

from __future__ import annotations

import click

from ._output import echo_json, table


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def plugins(ctx, as_json):
    """List plugins: name, version, hooks and load errors."""
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import asdict

    from .. import plugins as registry

    infos = registry.describe()
    if as_json:
        echo_json([asdict(i) for i in infos])
        return
    table(["PLUGIN", "VERSION", "HOOKS", "STATUS"],
          [[i.name, i.version or ("built-in" if i.builtin else "-"), ", ".join(i.hooks) or "-",
            "error: " + "; ".join(i.errors) if i.errors else "ok"] for i in infos])
