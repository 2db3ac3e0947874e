"""A store with a few published models of different kinds, for the storefront's page tests.

    alice/helpdesk  chat, signed by alice's registered key, 0.02 USD / 1k tokens, metrics, terms,
                    two versions (1.0.0, 1.1.0), a model card (priced: gated by default)
    alice/coder     code, an adapter over alice/helpdesk, free, unsigned; downloaded by bob and anonymously
    acme/lawyer     legal, 10 EUR flat, signed by a key nobody registered
    labs/hostile    other, a card and description full of script, javascript: links and raw HTML
    bob/secret      private (chat): bob's alone
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from gptstore.testing import SMALL, StoreServer, publish_package, register_key, signing_key, start_store

HOSTILE_CARD = """---
license: mit
---
# Hostile

<script>window.pwned = 1; alert("card")</script>

<img src="x" onerror="window.pwned = 2; alert('img')">

<iframe src="javascript:alert('frame')"></iframe>

[click me](javascript:window.pwned=3) and [data](data:text/html,<script>alert(1)</script>)

![pic](javascript:alert('pic'))

<a href="javascript:alert('raw')">raw link</a>
"""
HOSTILE_DESCRIPTION = '<script>window.pwned = 4</script><b onmouseover="alert(1)">bold</b>'
HELPDESK_CARD = "# Helpdesk\n\nAnswers **customers** politely. See [the docs](https://example.com/docs).\n"
PERPLEXITY_DATA = "a" * 64


def start_shop(root: Path) -> StoreServer:
    """The store above, running (stop it when done)."""
    from huggingface_hub import constants

    shop = start_store(root, [*SMALL[:-2], "--page-size", "100"])
    try:
        shop.admin("org", "add", "labs", "--member", "carol", "--fullname", "Labs <b>& Co</b>")
        shop.tokens["carol:labs"] = shop.tokens["carol:write"]
        tmp = root / "packages"
        alice_key, stranger_key = signing_key(), signing_key()
        register_key(shop, "alice", alice_key, root)
        with pytest.MonkeyPatch.context() as patch:  # LFS, not Xet
            patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
            helpdesk = dict(category="chat", license="mit", languages=["en"], parameters=124_000_000,
                            use_cases=["customer-support replies", "FAQ answers"],
                            description="Answers customers politely.\nSecond line.",
                            provider={"name": "Alice Labs"},
                            pricing={"model": "per_1k_tokens", "amount": 0.02},
                            terms="No use for spam.",
                            metrics=[{"name": "perplexity", "value": 12.5, "dataset": "heldout.txt",
                                      "dataset_sha256": PERPLEXITY_DATA, "split": "held-out"}])
            publish_package(shop, tmp, "alice/helpdesk", user="alice", key=alice_key, readme=HELPDESK_CARD,
                            **helpdesk)
            publish_package(shop, tmp, "alice/helpdesk", user="alice", key=alice_key, readme=HELPDESK_CARD,
                            version="1.1.0", create=False, **helpdesk)
            publish_package(shop, tmp, "alice/coder", user="alice", category="code", license="apache-2.0",
                            adapter=True, use_cases=["SQL from questions"], languages=["en", "de"],
                            parameters=5000, description="Writes SQL.")
            publish_package(shop, tmp, "acme/lawyer", user="carol", key=stranger_key, category="legal",
                            license="mit", parameters=100_000, description="Reads contracts.",
                            pricing={"model": "flat", "amount": 10, "currency": "EUR"})
            publish_package(shop, tmp, "labs/hostile", user="carol", category="other", readme=HOSTILE_CARD,
                            description=HOSTILE_DESCRIPTION)
            publish_package(shop, tmp, "bob/secret", user="bob", private=True, category="chat",
                            description="Bob's private helper.", use_cases=["customer-support"])
        for user in ("bob", None):
            answer = shop.http(user).get("/alice/coder/resolve/main/gptstore.json")
            assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    except BaseException:
        shop.stop()
        raise
    return shop


def csrf(page: httpx.Response | str) -> str:
    text = page if isinstance(page, str) else page.text
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', text)
    assert found, text[:2000]
    return found.group(1)


def browser(shop: StoreServer) -> httpx.Client:
    """A cookie-keeping client that does not follow redirects (like a browser we can inspect)."""
    return httpx.Client(base_url=shop.url, timeout=30, follow_redirects=False)


def sign_in(shop: StoreServer, client: httpx.Client, user: str) -> None:
    page = client.get("/login")
    answer = client.post("/login", data={"csrf": csrf(page), "token": shop.tokens[f"{user}:write"], "next": "/"})
    assert answer.status_code == 303, answer.text
