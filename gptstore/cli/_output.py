"""Shared output helpers for commands: tables, sizes, JSON."""

from __future__ import annotations

import json
from typing import Any, Collection, Iterable, Sequence

import click


def human_size(n: int | float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, indent: int = 0,
          right: Collection[int] = ()) -> None:
    """Print a plain aligned table (like `docker images`): the one table style of the CLI.

    ``indent`` spaces go before every line (a table inside a report, e.g. `gptstore show`'s
    files); the columns whose indexes are in ``right`` are right-aligned (sizes, counts).
    """
    rows = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    pad = " " * indent

    def line(cells: Sequence[str]) -> str:
        return pad + "  ".join(c.rjust(w) if i in right else c.ljust(w)
                               for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    click.echo(line(headers))
    for row in rows:
        click.echo(line(row))


def short(digest: str) -> str:
    return digest[:12]
