"""Model cards render as inert HTML: no raw markup, no script URLs, links marked nofollow."""

from __future__ import annotations

import pytest

from gptstore.server.web.charts import bar_chart
from gptstore.server.web.markdown import render_card, safe_url

HOSTILE = """---
license: mit
---
# Poet <script>alert(1)</script>

<img src=x onerror="alert(2)">
<iframe src="https://evil.example"></iframe>

[click](javascript:alert(3)) [data](data:text/html,<script>alert(4)</script>)
[spaced]( JAVASCRIPT:alert(5)) [entity](&#106;avascript:alert(6)) [vb](vbscript:msgbox)
[ok](https://example.com/docs) [rel](docs/usage.md) ![img](https://example.com/a.png)

| a | b |
|---|---|
| 1 | 2 |
"""


def test_hostile_card_renders_inert() -> None:
    html = render_card(HOSTILE)
    assert "<script" not in html and "<iframe" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html  # shown as text, not run
    lowered = html.lower()
    for scheme in ("javascript:", "vbscript:", "data:text"):
        assert f'href="{scheme}' not in lowered and f"href='{scheme}" not in lowered
    assert "alert(3)" in html  # the link text stays, as text
    assert '<a href="https://example.com/docs" rel="nofollow noopener noreferrer">ok</a>' in html
    assert '<a href="docs/usage.md" rel="nofollow noopener noreferrer">rel</a>' in html
    assert '<img src="https://example.com/a.png" alt="img"' in html
    assert "<table>" in html
    assert "license: mit" not in html  # front matter is metadata, not text


@pytest.mark.parametrize("url, ok", [("https://a.b/c", True), ("/x", True), ("#top", True), ("mailto:a@b.c", True),
                                     ("javascript:x", False), ("JaVaScRiPt:x", False), ("java\tscript:x", False),
                                     ("data:text/html,x", False), ("file:///etc/passwd", False), ("\\\\host", False)])
def test_safe_url(url: str, ok: bool) -> None:
    assert safe_url(url) is ok


def test_bar_chart_escapes_labels_and_scales_bars() -> None:
    svg = bar_chart([("2026-11-30", 5), ("<b>", 10)])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<b>" not in svg and "&lt;b&gt;: 10" in svg
    assert 'height="120.0"' in svg and 'height="60.0"' in svg
