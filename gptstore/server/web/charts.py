"""Small inline SVG charts, built as escaped text (no script, no external files)."""

from __future__ import annotations

from html import escape
from typing import Sequence


def bar_chart(points: Sequence[tuple[str, int]], *, width: int = 600, height: int = 120,
              label: str = "downloads per day") -> str:
    """A bar chart of ``(label, value)`` points as an ``<svg>`` element; each bar has a
    ``<title>`` (its label and value) so it reads as a tooltip and to screen readers."""
    count = max(len(points), 1)
    peak = max((value for _, value in points), default=0) or 1
    step = width / count
    bar = max(step - 2, 1)
    parts = [f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{width}" height="{height + 16}" '
             f'viewBox="0 0 {width} {height + 16}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(label)}</title>",
             f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#999" stroke-width="1"/>']
    for index, (name, value) in enumerate(points):
        tall = round(height * value / peak, 1)
        x = round(index * step + 1, 1)
        parts.append(f'<rect x="{x}" y="{round(height - tall, 1)}" width="{round(bar, 1)}" height="{tall}" '
                     f'fill="#3b6ea5"><title>{escape(str(name))}: {int(value)}</title></rect>')
    parts.append(f'<text x="0" y="{height + 13}" font-size="11" fill="#555">{escape(points[0][0]) if points else ""}</text>')
    if points:
        parts.append(f'<text x="{width}" y="{height + 13}" font-size="11" fill="#555" text-anchor="end">'
                     f"{escape(points[-1][0])}</text>")
    parts.append("</svg>")
    return "".join(parts)
