"""``gptstore demo``: the whole provider and consumer flow, offline, in about a minute."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("gptstore-demo"),
              show_default=True, help="Where the demo writes its files and its store (replaced each run).")
def demo(workdir):
    """Run the end-to-end demo on the local library (GPTSTORE_HOME).

    \b
    Provider: build a tiny GPT, fine-tune it on a topic, evaluate, package with pricing,
              sign, publish to a store (a library directory under --workdir).
    Consumer: pull it into the local library, verify, check its claim, generate.
    It adds demo/tiny-base and demo/cli-docs to the library and trusts the demo key for demo/*.
    """
    from ..demo import run_demo

    run = run_demo(workdir, echo=click.echo)
    click.echo(run.summary())
