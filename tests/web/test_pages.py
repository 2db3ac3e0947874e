"""The storefront's public pages through a real ``gptstore server``, at the HTTP level: the home
page, the listing with its filters, sorts and pages, the model page with every field, provider
profiles, reviews through the page's form, privacy on every page, hostile cards rendered inert,
404 and 400 pages, and links under a public URL prefix."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from html import unescape

import httpx
import pytest

from gptstore.testing import StoreServer, publish_package

from ._shop import PERPLEXITY_DATA, browser, csrf, sign_in

pytest.importorskip("cryptography")


def listed(page: httpx.Response) -> list[str]:
    """The model ids of a page's cards, in order."""
    return re.findall(r'<article class="card model-card" data-model="([^"]+)"', page.text)


def get(shop: StoreServer, path: str, user: str | None = None, **params) -> httpx.Response:
    return shop.http(user).get(path, params=params)


# -- home ---------------------------------------------------------------------------------------
def test_home_has_search_categories_trending_newest_and_top_rated(shop):
    page = get(shop, "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert 'action="/models"' in page.text and 'name="q"' in page.text
    for category in ("chat", "code", "legal", "other"):
        assert f'href="/models?category={category}"' in page.text
    for section in ('id="trending"', 'id="newest"', 'id="rating"'):
        assert section in page.text
    assert {"alice/helpdesk", "alice/coder", "acme/lawyer"} <= set(listed(page))
    assert "<script" not in page.text


# -- listing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, expected", [
    ({"category": "chat"}, {"alice/helpdesk"}),
    ({"category": ["chat", "legal"]}, {"alice/helpdesk", "acme/lawyer"}),
    ({"license": "MIT"}, {"alice/helpdesk", "acme/lawyer"}),
    ({"max_price": "0", "category": ["code", "other"]}, {"alice/coder", "labs/hostile"}),
    ({"min_price": "0.01", "max_price": "1"}, {"alice/helpdesk"}),
    ({"min_parameters": "100000"}, {"alice/helpdesk", "acme/lawyer"}),
    ({"min_parameters": "1000", "max_parameters": "5000", "category": "code"}, {"alice/coder"}),
    ({"format": "adapter"}, {"alice/coder"}),
    ({"format": "full", "category": "legal"}, {"acme/lawyer"}),
    ({"verified": "true"}, {"alice/helpdesk"}),
    ({"language": "DE"}, {"alice/coder"}),
    ({"q": "support"}, {"alice/helpdesk"}),
    ({"q": "contracts"}, {"acme/lawyer"}),
    ({"q": "sql", "format": "", "license": "", "min_price": ""}, {"alice/coder"}),  # a form's empty fields
])
def test_listing_filters(shop, params, expected):
    page = shop.http().get("/models", params=params)
    assert page.status_code == 200, page.text
    assert set(listed(page)) == expected


def test_listing_cards_show_every_fact_and_the_form_keeps_its_values(shop):
    page = get(shop, "/models", category="chat", sort="price", verified="true")
    card = page.text[page.text.index('data-model="alice/helpdesk"'):]
    card = card[:card.index("</article>")]
    for fact in ('href="/alice/helpdesk"', ">Alice Labs<", "Answers customers politely. Second line.", ">chat<",
                 "0.02 USD / 1k tokens", "no ratings", "downloads", "✓ signed"):
        assert fact in card, fact
    assert re.search(r'value="chat" checked', page.text)
    assert re.search(r'<option value="price" selected>', page.text)
    assert 'name="verified" value="true" checked' in page.text


def test_listing_sorts(shop):
    by_price = listed(get(shop, "/models", sort="price", category=["chat", "legal", "code"]))
    assert by_price == ["alice/coder", "alice/helpdesk", "acme/lawyer"]
    assert listed(get(shop, "/models", sort="downloads"))[0] == "alice/coder"
    assert listed(get(shop, "/models", sort="trending"))[0] == "alice/coder"
    assert listed(get(shop, "/models", sort="newest"))[0] == "labs/hostile"


@pytest.mark.parametrize("params, words", [
    ({"min_price": "-1"}, "min_price"),
    ({"category": "poetry"}, "category"),
    ({"format": "lora"}, "format"),
    ({"max_parameters": "lots"}, "max_parameters"),
    ({"verified": "maybe"}, "verified"),
    ({"sort": "stars"}, "unknown sort"),
    ({"page": "0"}, "page"),
    ({"page": "x"}, "page"),
    ({"q": "word " * 40}, "too long"),
])
def test_bad_filter_values_are_a_400_page(shop, params, words):
    page = shop.http().get("/models", params=params)
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    message = re.search(r'<p class="error" role="alert">(.*?)</p>', page.text, re.S)
    assert message and words in unescape(message.group(1)), page.text[-1500:]
    assert 'id="filters"' in page.text  # the form is still there to fix the value


# -- model page ---------------------------------------------------------------------------------
def test_the_url_push_prints_opens_the_model_page(shop):
    page = get(shop, "/alice/helpdesk/tree/v1.0.0")  # stores/hub_push.py prints ENDPOINT/ID/tree/TAG
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Answers customers politely." in unescape(page.text)


def test_model_page_shows_every_field(shop):
    page = get(shop, "/alice/helpdesk")
    assert page.status_code == 200
    text = unescape(page.text)
    info = shop.http().get("/api/models/alice/helpdesk").json()["gptstore"]
    expected = [
        "Answers customers politely.", "customer-support replies", "FAQ answers",  # description, use cases
        "perplexity", "12.5", "heldout.txt", PERPLEXITY_DATA, "held-out",  # metrics: data digest and split
        "re-checkable: gptstore eval --data heldout.txt, data sha256 aaaaaaaaaaaa…",  # as `gptstore show` says
        "gptstore eval alice/helpdesk:1.1.0 --check",
        "0.02 USD / 1k tokens", '<td class="license">mit</td>', "No use for spam.",  # pricing, license, terms
        f'Signed by <code class="signer">{info["signer"]}</code>', "registered for alice",  # signature
        "v1.0.0", "v1.1.0",  # versions ...
        f"gptstore pull --store {shop.url} alice/helpdesk:1.1.0",  # snippets
        'gptstore run alice/helpdesk:1.1.0 "Hello"',
        f'gptstore.load("alice/helpdesk:1.1.0", store="{shop.url}")',
        '<svg class="chart"', "Downloads, last 30 days",  # the chart
        'id="reviews"', "Sign in</a> to rate",  # reviews, and how to write one
        '<strong>customers</strong>', 'href="https://example.com/docs" rel="nofollow noopener noreferrer"',  # card
    ]
    for field in expected:
        assert field in text, field
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert re.search(r'<tr class="version"><td>v1\.1\.0</td><td>' + today, text)  # ... with dates
    weights = next(row for row in shop.http().get("/api/models/alice/helpdesk/tree/main").json()
                   if row["path"] == "weights.bin")
    assert f'<td>weights.bin</td><td class="size">{weights["size"]} bytes</td>' in text  # files with sizes


def test_adapter_page_links_its_base_and_charts_its_downloads(shop):
    text = get(shop, "/alice/coder").text
    assert '<a class="base-link" href="/alice/helpdesk">alice/helpdesk:1.0.0</a>' in text
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert f"<title>{today}: 2</title>" in text  # bob's and an anonymous download, today
    assert "Not signed." in text and "Free" in text


def test_a_signature_by_an_unregistered_key_is_shown_as_such(shop):
    text = unescape(get(shop, "/acme/lawyer").text)
    assert "not by a key registered for acme" in text and 'class="signer"' in text
    assert "10 EUR flat" in text and "✓ signed" not in text


# -- profiles -------------------------------------------------------------------------------------
def test_provider_profile(shop):
    alice = get(shop, "/alice")
    assert alice.status_code == 200
    assert "verified publisher" in alice.text
    assert set(listed(alice)) == {"alice/helpdesk", "alice/coder"}
    assert '<td class="total-downloads">2</td>' in alice.text and '<td class="total-models">2</td>' in alice.text
    labs = get(shop, "/labs")
    assert "Labs &lt;b&gt;&amp; Co&lt;/b&gt;" in labs.text and "verified publisher" not in labs.text
    assert "no ratings yet" in labs.text
    assert get(shop, "/ALICE").status_code == 200  # namespaces match without case, as ids do


# -- reviews through the page -------------------------------------------------------------------------
def test_review_form_writes_edits_and_deletes_the_users_review(shop):
    with browser(shop) as client:
        sign_in(shop, client, "bob")
        page = client.get("/alice/coder")
        assert 'class="review-form"' in page.text and "Rate this model" in page.text
        answer = client.post("/alice/coder/reviews", data={"csrf": csrf(page), "stars": "4",
                                                           "text": "Writes good SQL.\r\nFast too."})
        assert answer.status_code == 303 and answer.headers["location"] == "/alice/coder?saved=1#reviews"
        page = client.get("/alice/coder?saved=1")
        review = page.text[page.text.index('<article class="review" data-user="bob">'):]
        assert "★★★★☆" in review and "downloaded this model" in review and "Writes good SQL.\nFast too." in review
        assert "Your review is saved." in page.text and "Edit your review" in page.text
        api = shop.http().get("/api/gptstore/models/alice/coder/reviews").json()
        assert api["rating"] == {"average": 4.0, "count": 1} and api["reviews"][0]["downloaded"] is True
        client.post("/alice/coder/reviews", data={"csrf": csrf(page), "stars": "2", "text": "Changed my mind."})
        assert shop.http().get("/api/gptstore/models/alice/coder/reviews").json()["rating"] == {
            "average": 2.0, "count": 1}
        bad = client.post("/alice/coder/reviews", data={"csrf": csrf(page), "stars": "9"})
        assert bad.status_code == 400 and "stars" in bad.text
        answer = client.post("/alice/coder/reviews/delete", data={"csrf": csrf(page)})
        assert answer.status_code == 303
        assert shop.http().get("/api/gptstore/models/alice/coder/reviews").json()["reviews"] == []


def test_reviews_show_on_cards_and_profiles_and_carry_no_downloaded_mark_without_a_download(shop):
    with browser(shop) as client:
        sign_in(shop, client, "carol")
        page = client.get("/alice/helpdesk")
        client.post("/alice/helpdesk/reviews", data={"csrf": csrf(page), "stars": "5", "text": "<b>bold</b>"})
        text = client.get("/alice/helpdesk").text
    review = text[text.index('data-user="carol"'):]
    review = review[:review.index("</article>")]
    assert "downloaded this model" not in review and "&lt;b&gt;bold&lt;/b&gt;" in review
    assert "★ 5.0 (1)" in get(shop, "/models", category="chat").text
    assert "★ 5.00 (1 reviews)" in get(shop, "/alice").text


def test_the_publisher_and_strangers_cannot_review(shop):
    with browser(shop) as client:
        sign_in(shop, client, "alice")
        page = client.get("/alice/coder")
        assert 'class="review-form"' not in page.text and "you cannot review it" in unescape(page.text)
        answer = client.post("/alice/coder/reviews", data={"csrf": csrf(page), "stars": "5"})
        assert answer.status_code == 403 and answer.headers["content-type"].startswith("text/html")
    with browser(shop) as anonymous:
        page = anonymous.get("/login")  # the only form an anonymous visitor gets a CSRF token from
        answer = anonymous.post("/alice/coder/reviews", data={"csrf": csrf(page), "stars": "5"})
        assert answer.status_code == 403
        forged = anonymous.post("/alice/coder/reviews", data={"stars": "5"})
        assert forged.status_code == 403
    assert shop.http().get("/api/gptstore/models/alice/coder/reviews").json()["reviews"] == []


# -- privacy --------------------------------------------------------------------------------------
PAGES = ["/", "/models", "/models?q=secret", "/models?category=chat", "/models?sort=newest", "/bob"]


@pytest.mark.parametrize("user", [None, "carol"])
def test_private_models_never_appear_to_others(shop, user):
    for path in PAGES:
        page = shop.http(user).get(path)
        assert page.status_code == 200, path
        assert "bob/secret" not in page.text and "Bob&#39;s private helper" not in page.text, path
    page = shop.http(user).get("/bob/secret")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "secret" not in page.text.split("<main>")[1].replace("/bob/secret", "")
    assert '<td class="total-models">0</td>' in shop.http(user).get("/bob").text
    with browser(shop) as client:
        if user:
            sign_in(shop, client, user)
        assert client.get("/bob/secret").status_code == 404
        answer = client.post("/bob/secret/reviews", data={"csrf": csrf(client.get("/login")), "stars": "5"})
        assert answer.status_code in (403, 404) and "bob/secret" not in answer.text.split("<main>")[-1]


def test_private_models_show_to_their_owner(shop):
    assert "bob/secret" in listed(get(shop, "/models", "bob", q="secret"))  # a bearer token
    with browser(shop) as client:  # a session
        sign_in(shop, client, "bob")
        assert client.get("/bob/secret").status_code == 200
        assert "bob/secret" in listed(client.get("/bob"))
        assert "bob/secret" in listed(client.get("/models", params={"category": "chat"}))


# -- hostile content -----------------------------------------------------------------------------------
def test_a_hostile_card_renders_inert(shop):
    page = get(shop, "/labs/hostile")
    assert page.status_code == 200
    main = page.text.split("<main>")[1]
    assert "<script" not in main.lower() and "<iframe" not in main.lower()
    assert not re.search(r"<[a-z][^>]*\son\w+\s*=", main, re.I)  # no event-handler attribute on any tag
    assert not re.search(r"""(href|src)\s*=\s*["']?\s*(javascript|data|vbscript):""", main, re.I)
    assert "&lt;script&gt;window.pwned = 1" in main and "&lt;script&gt;window.pwned = 4" in main  # shown as text
    assert "script" not in page.headers["content-security-policy"]
    listing = get(shop, "/models", q="hostile").text.split("<main>")[1]
    assert "<script" not in listing and not re.search(r"<[a-z][^>]*\son\w+\s*=", listing, re.I)


# -- 404s and reserved paths -------------------------------------------------------------------------------
def test_unknown_models_and_namespaces_are_404_pages(shop):
    for path in ("/nobody", "/alice/nothing", "/nobody/nothing"):
        page = get(shop, path)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), path
        assert "Not found" in page.text
    api = get(shop, "/api/nothing")  # the API's own 404 stays JSON with its error code
    assert api.status_code == 404 and api.headers["x-error-code"] == "EntryNotFound"
    assert get(shop, "/api/models/alice/nothing").headers["x-error-code"] == "RepoNotFound"


def test_store_paths_win_over_namespaces_of_the_same_name(shop, run_cli):
    for name in ("models", "Login", "healthz"):  # refused as names now
        result = run_cli("server", "--data", str(shop.data), *(["--catalog", shop.catalog] if shop.catalog else []),
                         "user", "add", name)
        assert result.exit_code != 0 and "serves its own pages and API" in result.output, result.output
    from gptstore.server.db import connect

    db = connect(shop.catalog or f"sqlite:///{shop.data / 'catalog.sqlite3'}")
    try:  # a catalog made before those names were reserved may hold them: the store's pages still win
        for name in ("models", "login"):
            db.execute("INSERT INTO namespaces (name, kind, created_at) VALUES (?, 'user', 'then')", (name,))
    finally:
        db.close()
    assert listed(get(shop, "/models"))  # the listing, not the user's profile
    assert 'name="token"' in get(shop, "/login").text
    assert get(shop, "/api").headers.get("x-error-code") == "EntryNotFound"
    assert get(shop, "/logout").status_code == 404


def test_listing_pages_with_previous_and_next(shop):
    api = shop.api("bob")
    for i in range(22):
        api.create_repo(f"bob/pager-{i:02d}")
    first = get(shop, "/models", q="pager", sort="newest")
    assert len(listed(first)) == 20 and 'class="next"' in first.text and 'class="prev"' not in first.text
    link = unescape(re.search(r'class="next" href="([^"]+)"', first.text).group(1))
    second = shop.http().get(link)
    assert set(listed(second)) == {"bob/pager-00", "bob/pager-01"}
    assert 'class="prev"' in second.text and 'class="next"' not in second.text
    assert set(listed(first)) & set(listed(second)) == set()


# -- a public URL with a path -----------------------------------------------------------------------------
class PrefixedServer(StoreServer):
    """A store whose public URL has the path ``/store`` (clients use that URL)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/store"


def test_links_respect_the_public_url_prefix(tmp_path):
    server = PrefixedServer(tmp_path / "data", tmp_path / "server.log", [])
    server.args = ["--public-url", server.url]
    server.admin("user", "add", "alice")
    server.tokens["alice:write"] = server.admin("token", "create", "alice", "--scope", "write")
    server.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            from huggingface_hub import constants

            patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
            publish_package(server, tmp_path / "pkg", "alice/poet", user="alice", category="writing")
        client = httpx.Client(base_url=server.url, timeout=30)
        for path in ("/", "/models", "/alice", "/alice/poet"):
            page = client.get(path)
            assert page.status_code == 200, path
            hrefs = re.findall(r'(?:href|action)="([^"]+)"', page.text)
            local = [h for h in hrefs if not h.startswith(("http://", "https://", "#"))]
            assert local and all(h.startswith("/store/") for h in local), (path, local)
        assert 'href="/store/alice/poet"' in client.get("/models").text
    finally:
        server.stop()


def test_model_page_says_which_metrics_can_be_re_checked_as_show_does(shop, tmp_path):
    """Harness task claims and perplexity claims, re-checkable or not, in ``gptstore show``'s words
    (published last in this module, so the listings the tests above count do not see it)."""
    harness = {"name": "acc", "value": 0.5, "task": "tiny_mc", "task_version": "1.0", "task_hash": "b" * 64,
               "dataset": "mc.jsonl", "dataset_sha256": "c" * 64, "num_fewshot": 2, "limit": 4, "seed": 1234,
               "harness": "lm-eval 0.4.13"}
    metrics = [harness, {**harness, "name": "acc_norm", "task_hash": None},
               {"name": "perplexity", "value": 9.5, "dataset": "heldout.txt", "dataset_sha256": "d" * 64},
               {"name": "perplexity", "value": 11.0, "dataset": "other.txt"}]
    with pytest.MonkeyPatch.context() as patch:
        from huggingface_hub import constants

        patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        publish_package(shop, tmp_path, "alice/evaluated", user="alice", category="other", metrics=metrics)
    page = get(shop, "/alice/evaluated")
    assert page.status_code == 200
    cells = [unescape(re.sub(r"<[^>]+>", "", c)) for c in
             re.findall(r'<span class="recheck[^"]*">(.*?)</span>', page.text, re.S)]
    assert cells == [
        "re-checkable: harness task tiny_mc v1.0 (lm-eval 0.4.13), 2-shot, limit 4, seed 1234, "
        "data sha256 cccccccccccc…",
        "cannot be re-checked: the harness claim records no task hash",
        "re-checkable: gptstore eval --data heldout.txt, data sha256 dddddddddddd…",
        "cannot be re-checked: the claim records no sha256 of its data",
    ]
    assert "<td>tiny_mc</td>" in page.text  # measured on: the harness task
    assert "gptstore eval alice/evaluated:1.0.0 --check" in unescape(page.text)
