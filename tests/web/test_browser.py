"""The storefront in a real headless Chromium (Playwright): search and filter, a model page with
every field, sign-in and rating through the form, and a hostile model card that runs nothing.
Screenshots land in each test's tmp dir. Skips with a message when no Chromium is installed."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("cryptography")


def cards(page) -> list[str]:
    return page.locator("article.model-card").evaluate_all("nodes => nodes.map(n => n.dataset.model)")


def test_search_and_filter(shop, page, tmp_path):
    page.goto(shop.url + "/")
    page.locator("header input[name=q]").fill("support")
    page.locator("header input[name=q]").press("Enter")
    page.wait_for_url(re.compile(r"/models\?q=support"))
    assert cards(page) == ["alice/helpdesk"]
    page.screenshot(path=str(tmp_path / "search.png"), full_page=True)

    form = page.locator("#filters")
    form.locator("input[name=q]").fill("")
    form.locator("input[name=category][value=legal]").check()
    form.locator("input[name=category][value=chat]").check()
    form.locator("select[name=sort]").select_option("price")
    form.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"category=legal"))
    assert cards(page) == ["alice/helpdesk", "acme/lawyer"]  # cheapest first
    form = page.locator("#filters")
    form.locator("input[name=verified]").check()
    form.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"verified=true"))
    assert cards(page) == ["alice/helpdesk"]
    page.screenshot(path=str(tmp_path / "filtered.png"), full_page=True)

    page.goto(shop.url + "/models?min_price=-3")
    assert "min_price" in page.locator("p.error").inner_text()
    page.screenshot(path=str(tmp_path / "bad-filter.png"), full_page=True)


def test_open_a_model_page_and_find_every_field(shop, page, tmp_path):
    page.goto(shop.url + "/models?category=chat")
    page.locator("a.model-link", has_text="alice/helpdesk").click()
    page.wait_for_url(shop.url + "/alice/helpdesk")
    signer = shop.http().get("/api/models/alice/helpdesk").json()["gptstore"]["signer"]
    expect = {
        "#description": "Answers customers politely.",
        "#use-cases": "customer-support replies",
        "#metrics .data-digest": "a" * 64,
        "#metrics": "held-out",
        "#metrics .recheck": "re-checkable: gptstore eval --data heldout.txt",
        "#pricing .price": "0.02 USD / 1k tokens",
        "#pricing .license": "mit",
        "#pricing .terms": "No use for spam.",
        "#signature .signer": signer,
        "#versions": "v1.0.0",
        "#files": "weights.bin",
        "pre.snippet-pull": f"gptstore pull --store {shop.url} alice/helpdesk:1.1.0",
        "pre.snippet-run": "gptstore run alice/helpdesk:1.1.0",
        "pre.snippet-python": 'gptstore.load("alice/helpdesk:1.1.0"',
        "#card .card-body strong": "customers",
        "#reviews": "Sign in",
    }
    for selector, text in expect.items():
        assert text in page.locator(selector).first.inner_text(), selector
    assert page.locator("#versions tr.version").count() == 2
    assert page.locator("#downloads svg.chart rect").count() == 30
    page.screenshot(path=str(tmp_path / "model.png"), full_page=True)

    page.goto(shop.url + "/alice/coder")
    page.locator("#base-model a.base-link").click()
    page.wait_for_url(shop.url + "/alice/helpdesk")
    page.goto(shop.url + "/alice")
    assert "verified publisher" in page.locator("h1").inner_text()
    assert sorted(cards(page)) == ["alice/coder", "alice/helpdesk"]
    page.screenshot(path=str(tmp_path / "profile.png"), full_page=True)


def test_sign_in_and_rate_a_model(shop, page, tmp_path):
    page.goto(shop.url + "/alice/coder")
    page.locator("#reviews a", has_text="Sign in").click()
    page.locator("#token").fill(shop.tokens["bob:write"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(shop.url + "/alice/coder")
    assert page.locator("a.whoami").inner_text() == "bob"
    form = page.locator("form.review-form")
    form.locator("input[name=stars][value='4']").check()
    form.locator("textarea[name=text]").fill("Good SQL.\nQuick.")
    form.get_by_role("button", name="Post review").click()
    page.wait_for_url(re.compile(r"/alice/coder\?saved=1"))
    review = page.locator("article.review[data-user=bob]")
    assert "★★★★☆" in review.inner_text() and "downloaded this model" in review.inner_text()
    assert page.locator("p.notice").is_visible()
    page.screenshot(path=str(tmp_path / "rated.png"), full_page=True)

    page.locator("form.review-form input[name=stars][value='5']").check()
    page.get_by_role("button", name="Update review").click()
    page.wait_for_url(re.compile(r"saved=1"))
    assert "★★★★★" in page.locator("article.review[data-user=bob]").inner_text()
    assert shop.http().get("/api/gptstore/models/alice/coder/reviews").json()["rating"] == {
        "average": 5.0, "count": 1}
    page.get_by_role("button", name="Delete my review").click()
    page.wait_for_load_state()
    assert page.locator("article.review[data-user=bob]").count() == 0
    assert "★" not in page.locator("header").inner_text()
    page.screenshot(path=str(tmp_path / "deleted.png"), full_page=True)


#: dispatch the events an inline handler could hang on, to every element of the page's main part
HOVER_EVERYTHING = """() => {
  for (const node of document.querySelectorAll('main *'))
    for (const kind of ['mouseover', 'mouseenter', 'focus', 'load', 'error', 'animationstart'])
      node.dispatchEvent(new Event(kind));
}"""


@pytest.mark.parametrize("bypass_csp", [False, True])
def test_a_hostile_card_runs_no_script(shop, chromium, tmp_path, bypass_csp):
    """Inert even with the Content-Security-Policy switched off: the markup itself holds no script."""
    context = chromium.new_context(bypass_csp=bypass_csp)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        for path in ("/labs/hostile", "/models?q=hostile", "/labs"):
            page.goto(shop.url + path)
            page.wait_for_load_state("load")
            page.evaluate(HOVER_EVERYTHING)  # would fire any inline on…= handler the markup carried
            assert page.evaluate("typeof window.pwned") == "undefined", path
        page.goto(shop.url + "/labs/hostile")
        assert page.locator("#card iframe, #card script, #card img[src=x]").count() == 0
        assert page.locator("a[href^='javascript:' i], img[src^='javascript:' i]").count() == 0
        assert "<script>window.pwned = 1" in page.locator("#card").inner_text()  # shown as text
        page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
        assert dialogs == []
    finally:
        context.close()
