"""Model cards as safe HTML.

A model card is the provider's Markdown, i.e. hostile input shown to every visitor. It is
rendered by markdown-it (CommonMark plus tables) with raw HTML *off*, so ``<script>``,
``<iframe>``, ``onerror=`` and the like come out as visible text; every link and image URL must be
http(s), mailto or relative (``javascript:``, ``data:``, ``vbscript:`` and ``file:`` become plain
text), and links carry ``rel="nofollow noopener noreferrer"``. The YAML front matter is not shown.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

#: longest card rendered (bigger ones are cut, with a note)
MAX_CARD_CHARS = 200_000
_FRONT_MATTER = re.compile(r"\A---\r?\n.*?\r?\n---\r?\n", re.S)
_SAFE_SCHEMES = {"http", "https", "mailto", ""}


def safe_url(url: str) -> bool:
    """Whether ``url`` may be a link or image source: http(s), mailto or relative; no control
    characters, no scheme hidden behind whitespace or entities."""
    if any(ord(ch) < 0x20 or ch in "\\\x7f" for ch in url):
        return False
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return False
    return scheme in _SAFE_SCHEMES


@lru_cache(maxsize=1)
def _renderer():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
    md.validateLink = safe_url

    def link_open(renderer, tokens, idx, options, env):
        tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    return md


def strip_front_matter(text: str) -> str:
    return _FRONT_MATTER.sub("", text, count=1)


def render_card(text: str) -> str:
    """``text`` (a README.md) as HTML that is safe to embed in a page."""
    text = strip_front_matter(text)
    cut = len(text) > MAX_CARD_CHARS
    html = _renderer().render(text[:MAX_CARD_CHARS])
    if cut:
        html += "<p><em>(the card is longer than this page shows)</em></p>"
    return html
