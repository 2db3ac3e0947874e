"""Gated access and the provider dashboard in headless Chromium, against a real ``gptstore server``:
bob requests access on the model page, alice approves it on her dashboard, then bob's
``gptstore pull`` succeeds. Screenshots of each step land in the test's tmp dir."""

from __future__ import annotations

import pytest

from gptstore.testing import publish_package as publish

PAID = {"model": "flat", "amount": 5, "currency": "EUR"}


@pytest.fixture(scope="module")
def shop(store_server, tmp_path_factory):
    """alice/paid: a priced model, so gated "manual" from its first commit."""
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        publish(store_server, tmp_path_factory.mktemp("pkg"), "alice/paid", user="alice", pricing=PAID,
                description="A paid poet")
    return store_server


def sign_in(page, shop, user: str, target: str) -> None:
    page.goto(f"{shop.url}/login?next={target}")
    page.fill("input[name=token]", shop.tokens[f"{user}:write"])
    page.locator("form:has(input[name=token]) [type=submit]").click()
    page.wait_for_url(f"{shop.url}{target}*")


def test_request_on_model_page_approve_on_dashboard_then_pull(shop, page, chromium, tmp_path, run_cli,
                                                              monkeypatch):
    monkeypatch.setenv("GPTSTORE_HOME", str(tmp_path / "consumer"))
    monkeypatch.setenv("GPTSTORE_TOKEN", shop.tokens["bob:write"])
    refused = run_cli("pull", "alice/paid", "--store", shop.url)
    assert refused.exit_code != 0 and f"request access at {shop.url}/alice/paid" in refused.output

    page.goto(f"{shop.url}/alice/paid")  # signed out: told to sign in
    assert "Sign in" in page.locator("#access").inner_text()
    sign_in(page, shop, "bob", "/alice/paid")
    page.fill("#access input[name=note]", "for my poetry app")
    page.click("#access button[type=submit]")
    page.wait_for_url(f"{shop.url}/alice/paid*")
    assert "Access pending" in page.locator("#access").inner_text()
    page.screenshot(path=str(tmp_path / "1-bob-pending.png"), full_page=True)
    page.goto(f"{shop.url}/bob/-/dashboard")  # his own namespace's dashboard: allowed
    assert page.locator("h1").inner_text().startswith("Dashboard of bob")
    assert page.goto(f"{shop.url}/alice/-/dashboard").status == 404  # not a member of alice

    alice = chromium.new_context()
    try:
        provider = alice.new_page()
        assert provider.goto(f"{shop.url}/alice/-/dashboard").url.startswith(f"{shop.url}/login?next=")
        sign_in(provider, shop, "alice", "/alice/-/dashboard")
        row = provider.locator("#access-requests tr.request[data-user=bob]")
        assert "for my poetry app" in row.inner_text() and "paid" in row.inner_text()
        assert provider.locator("#downloads tr[data-model=paid] svg.chart").count() == 1
        assert provider.locator("#ratings tr[data-model=paid]").count() == 1
        provider.screenshot(path=str(tmp_path / "2-alice-dashboard.png"), full_page=True)
        row.locator("button[value=approve]").click()
        provider.wait_for_url(f"{shop.url}/alice/-/dashboard*")
        assert provider.locator("#access-requests .no-requests").count() == 1
        provider.screenshot(path=str(tmp_path / "3-alice-approved.png"), full_page=True)
    finally:
        alice.close()

    page.goto(f"{shop.url}/alice/paid")
    assert "Access granted" in page.locator("#access").inner_text()
    page.screenshot(path=str(tmp_path / "4-bob-granted.png"), full_page=True)
    pulled = run_cli("pull", "alice/paid", "--store", shop.url, "--allow-unsafe")  # weights.bin: test bytes
    assert pulled.exit_code == 0, pulled.output
    assert [r.username for r in shop.api("alice").list_accepted_access_requests("alice/paid")] == ["bob"]


def test_dashboard_counts_downloads_per_day(shop, page, tmp_path):
    from huggingface_hub import hf_hub_download

    for n in range(2):  # the counting file (gptstore.json without config.json), fetched by the owner
        hf_hub_download("alice/paid", "gptstore.json", endpoint=shop.url, token=shop.tokens["alice:write"],
                        cache_dir=tmp_path / f"c{n}", force_download=True)
    sign_in(page, shop, "alice", "/alice/-/dashboard")
    row = page.locator("#downloads tr[data-model=paid]")
    assert int(row.locator("td.recent").inner_text()) >= 2
    assert page.locator("#downloads tr[data-model=paid] td.day-count").count() == 1


def test_dashboard_is_for_members_only_without_a_browser(shop):
    """Plain HTTP (always runs): sign-in redirect, 404 for others, no decide buttons for read tokens."""
    with shop.http() as anonymous:
        answer = anonymous.get("/alice/-/dashboard")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2Falice%2F-%2Fdashboard"
    with shop.http("bob") as bob:
        assert bob.get("/alice/-/dashboard").status_code == 404
        assert bob.get("/nobody/-/dashboard").status_code == 404
    with shop.http("carol") as carol:
        assert carol.get("/acme/-/dashboard").status_code == 200
        assert carol.post("/api/models/alice/paid/ask-access", json={}).json()["status"] == "pending"
    with shop.http("alice", "read") as reader:
        page = reader.get("/alice/-/dashboard")
        assert page.status_code == 200 and 'data-user="carol"' in page.text and "Approve" not in page.text
        refused = reader.post("/alice/-/dashboard/access", data={"model": "paid", "user": "carol",
                                                                  "decision": "approve"})
    assert refused.status_code == 403  # no CSRF token from this store's page
