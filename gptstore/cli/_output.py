"""Shared output helpers for commands: tables, sizes, JSON.

The ``--json`` vocabulary (documented in docs/cli.md) is kept here: a model is named by
``reference`` (``ns/name:tag``) and ``digest`` (always ``sha256:<hex>``, see :func:`json_digest`), a
price is ``{model, amount, currency}`` (:func:`json_price`), whatever the command.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Collection, Iterable, Sequence

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


def json_digest(digest: str | None) -> str | None:
    """A digest as every ``--json`` prints it: ``sha256:<hex>`` (None stays None)."""
    if not digest:
        return None
    return digest if digest.startswith("sha256:") else f"sha256:{digest}"


def json_price(pricing: Any) -> dict[str, Any]:
    """A price as every ``--json`` prints it: ``{"model", "amount", "currency"}``, from a
    :class:`~gptstore.manifest.Pricing` or a dict with those keys."""
    get = pricing.get if isinstance(pricing, dict) else lambda key: getattr(pricing, key)
    return {"model": get("model"), "amount": float(get("amount")), "currency": get("currency")}


class TransferProgress:
    """One progress line for a transfer: ``  1.2 MB / 5.9 MB (20%)  3.4 MB/s  ETA 1s``.

    Called with ``(done, total)`` bytes as a transfer advances; the rate is the mean since the
    first call and the ETA what is left at that rate. Redraws only when the percentage or the
    second changes; ``write`` gets each line (with ``\\r``; the last one ends the line).
    """

    def __init__(self, write: Callable[[str, bool], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._write = write
        self._clock = clock
        self._start: float | None = None
        self._shown: tuple[int, int] | None = None

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        if self._start is None:
            self._start = now
        elapsed = now - self._start
        percent = done * 100 // max(total, 1)
        key = (percent, int(elapsed))
        if key == self._shown and done < total:
            return
        self._shown = key
        self._write(f"\r{self.line(done, total, elapsed)}", done >= total)

    @staticmethod
    def line(done: int, total: int, elapsed: float) -> str:
        percent = done * 100 // max(total, 1)
        text = f"  {human_size(done)} / {human_size(total)} ({percent}%)"
        if elapsed <= 0 or done <= 0:
            return text
        rate = done / elapsed
        text += f"  {human_size(rate)}/s"
        if done < total:
            text += f"  ETA {_duration((total - done) / rate)}"
        else:
            text += f" in {_duration(elapsed)}"
        return text


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
