"""``gptstore manifest``: tools for the manifest format."""

from __future__ import annotations

import click

from ._commands import SuggestingGroup


@click.group(cls=SuggestingGroup)
def manifest():
    """Manifest tools: the JSON Schema of gptstore.json."""


@manifest.command()
def schema():
    """Print the JSON Schema of gptstore.json."""
    from ..manifest import json_schema
    from ._output import echo_json

    echo_json(json_schema())
