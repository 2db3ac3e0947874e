"""``gptstore demo``: the whole flow, offline, in a few minutes."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("gptstore-demo"),
              show_default=True, help="Where the demo writes its model directories (replaced each run).")
def demo(workdir):
    """Run the end-to-end demo on the local library (GPTSTORE_HOME)."""
    from ..demo import run_demo

    run = run_demo(workdir, echo=click.echo)
    click.echo(run.summary())
