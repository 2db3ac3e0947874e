"""Usage reports through a real ``gptstore server``: a consumer's usage log sent with
``gptstore usage report`` (once, even when re-sent or interrupted), the provider's usage and
revenue at ``GET /api/gptstore/usage/{ns}`` (members only), hostile reports refused."""

from __future__ import annotations

import json
import math

import pytest

from gptstore import config, usage, usage_report
from gptstore.origins import record_origin
from gptstore.server.api_metering import MAX_ROWS
from gptstore.testing import SMALL, publish_package, start_store

TODAY = usage.UsageRecord("x", "x", "x", "x", "x", 0, 0, 0.0).at


@pytest.fixture(scope="module")
def shop(every_backend, tmp_path_factory):
    server = start_store(tmp_path_factory.mktemp("shop"), SMALL)
    tmp = tmp_path_factory.mktemp("packages")
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as patch:  # LFS, not Xet (module fixtures run before xet_off)
        patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        publish_package(server, tmp, "alice/helpdesk", user="alice",
                        pricing={"model": "per_1k_tokens", "amount": 0.02})
        publish_package(server, tmp, "acme/lawyer", user="carol",
                        pricing={"model": "flat", "amount": 10, "currency": "EUR"})
        server.api("alice").create_repo("alice/hidden", private=True)
        for name in ("poet", "flat", "other", "mixed"):
            server.api("alice").create_repo(f"alice/{name}")
    yield server
    server.stop()


def login(shop, run_cli, user: str = "bob") -> None:
    result = run_cli("login", "--store", shop.url, "--token", shop.tokens[f"{user}:write"])
    assert result.exit_code == 0, result.output


def use(repo: str, tokens: int, *, origin: str | None, digest: str | None = None, pricing: str = "per_1k_tokens",
        amount: float = 1.0, currency: str = "USD") -> str:
    """One generation of ``repo`` in the usage log, as Model.generate records it, of a model
    pulled from ``origin`` (recorded as the pull records it)."""
    digest = digest or __import__("hashlib").sha256(f"{repo}:{origin}".encode()).hexdigest()
    if origin:
        record_origin(config.home(), digest, origin)
    usage.record(usage.UsageRecord(reference=f"{repo}:latest", model=f"{repo}:1.0.0", digest=digest,
                                   engine="transformers", device="cpu", prompt_tokens=tokens,
                                   completion_tokens=tokens, duration_s=0.1, pricing=pricing, amount=amount,
                                   currency=currency))
    return digest


def metered(shop, namespace: str = "alice", user: str = "alice") -> dict:
    answer = shop.http(user).get(f"/api/gptstore/usage/{namespace}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def model_usage(shop, repo: str) -> dict:
    namespace = repo.split("/")[0]
    member = "alice" if namespace in ("alice", "acme") else namespace
    found = [m for m in metered(shop, namespace, member)["models"] if m["model"] == repo]
    return found[0] if found else {"calls": 0, "total_tokens": 0, "revenue": {}, "consumers": 0}


def test_a_pulled_model_is_reported_once_and_a_rerun_sends_nothing(shop, run_cli):
    login(shop, run_cli)
    shop.api("alice").grant_access("alice/helpdesk", "bob")  # a priced model is gated: the provider lets bob in
    pulled = run_cli("pull", "alice/helpdesk", "--store", shop.url, "--allow-unsafe", "--json")
    assert pulled.exit_code == 0, pulled.output
    digest = json.loads(pulled.output)[0]["digest"].removeprefix("sha256:")
    use("alice/helpdesk", 500, origin=None, digest=digest, pricing="per_1k_tokens", amount=0.02)
    use("alice/helpdesk", 250, origin=None, digest=digest, pricing="per_1k_tokens", amount=0.02)

    result = run_cli("usage", "report", "--store", shop.url)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{shop.url}: reported 2 calls, 1500 tokens (0.03 USD) in 1 report(s)."
    helpdesk = model_usage(shop, "alice/helpdesk")
    assert (helpdesk["calls"], helpdesk["prompt_tokens"], helpdesk["completion_tokens"]) == (2, 750, 750)
    assert helpdesk["revenue"] == {"USD": pytest.approx(0.03)} and helpdesk["consumers"] == 1
    bob = [c for c in metered(shop)["consumers"] if c["user"] == "bob"][0]
    assert bob["calls"] >= 2 and bob["models"] >= 1

    again = run_cli("usage", "report", "--store", shop.url)
    assert again.exit_code == 0 and again.output.strip() == f"{shop.url}: nothing new to report."
    assert model_usage(shop, "alice/helpdesk")["calls"] == 2

    use("alice/helpdesk", 50, origin=None, digest=digest, pricing="per_1k_tokens", amount=0.02)
    data = json.loads(run_cli("usage", "report", "--store", shop.url, "--json").output)
    assert data["reports"][0]["calls"] == 1 and data["reports"][0]["tokens"] == 100
    assert model_usage(shop, "alice/helpdesk")["calls"] == 3
    assert usage.verify().ok  # reporting does not touch the chain


def test_an_interrupted_report_is_counted_once(shop, run_cli):
    """The client dies after the store took the report, before recording it: the next run sends
    the same report again (it is pending), and the store does not count it twice."""
    login(shop, run_cli)
    use("alice/poet", 100, origin=shop.url)
    use("alice/poet", 100, origin=shop.url)
    before = model_usage(shop, "alice/poet")["calls"]
    body = usage_report.prepare(shop.url)
    assert body is not None and [p["id"] for p in usage_report.pending(shop.url)] == [body["id"]]
    answer = usage_report.send(shop.url, usage_report.pending(shop.url)[0]["body"], shop.tokens["bob:write"])
    assert answer == {"id": body["id"], "duplicate": False, "rows": 1}  # taken ... and the client "dies" here
    assert model_usage(shop, "alice/poet")["calls"] == before + 2

    result = run_cli("usage", "report", "--store", shop.url)
    assert result.exit_code == 0, result.output
    assert "1 already taken (not counted again)" in result.output
    assert model_usage(shop, "alice/poet")["calls"] == before + 2
    assert usage_report.pending(shop.url) == []
    assert run_cli("usage", "report", "--store", shop.url).output.strip().endswith("nothing new to report.")


def test_only_models_from_that_store_are_reported_to_it(shop, run_cli, tmp_path):
    login(shop, run_cli, "carol")
    use("alice/other", 10, origin="http://127.0.0.1:9")  # another store (nothing listens there)
    use("alice/other", 10, origin=None)  # published locally, never pulled
    use("alice/mixed", 10, origin=shop.url)
    before_other, before_mixed = model_usage(shop, "alice/other")["calls"], model_usage(shop, "alice/mixed")["calls"]
    result = run_cli("usage", "report", "--store", shop.url, "--json")
    assert result.exit_code == 0, result.output
    assert model_usage(shop, "alice/other")["calls"] == before_other
    assert model_usage(shop, "alice/mixed")["calls"] == before_mixed + 1

    # without --store: every origin store; the unreachable one fails in one line, ours had its report
    use("alice/mixed", 10, origin=shop.url)
    default = run_cli("usage", "report")
    assert default.exit_code == 1
    error = default.output.strip().splitlines()[-1]
    assert "http://127.0.0.1:9" in error and "no token for http://127.0.0.1:9" in error
    assert model_usage(shop, "alice/mixed")["calls"] == before_mixed + 2


def test_a_report_needs_a_token_the_store_accepts(shop, run_cli):
    use("alice/poet", 10, origin=shop.url)
    missing = run_cli("usage", "report", "--store", shop.url)
    assert missing.exit_code == 1
    assert f"no token for {shop.url}" in missing.output and f"gptstore login --store {shop.url}" in missing.output
    wrong = run_cli("usage", "report", "--store", shop.url, "--token", "gst_not_a_token")
    assert wrong.exit_code == 1 and "did not accept the token" in wrong.output
    assert len(wrong.output.strip().splitlines()) == 1
    # the report stays pending and goes with the next run that has a token
    assert len(usage_report.pending(shop.url)) == 1
    ok = run_cli("usage", "report", "--store", shop.url, "--token", shop.tokens["bob:write"])
    assert ok.exit_code == 0 and "reported 1 calls" in ok.output


def test_wrong_store_urls_are_refused(run_cli, tmp_path):
    use("alice/poet", 10, origin="hf://")
    for store in ("hf://", str(tmp_path)):
        result = run_cli("usage", "report", "--store", store)
        assert result.exit_code == 2 and "takes no usage reports" in result.output
    assert run_cli("usage", "report", "--token", "x").exit_code == 2  # a token needs its --store
    assert run_cli("usage", "report").output.strip().startswith("Nothing to report")  # hf:// takes none


def test_flat_pricing_is_charged_once_per_version(shop, run_cli):
    login(shop, run_cli)
    for _ in range(2):
        use("acme/lawyer", 10, origin=shop.url, pricing="flat", amount=10, currency="EUR")
        assert run_cli("usage", "report", "--store", shop.url).exit_code == 0
    lawyer = model_usage(shop, "acme/lawyer")
    assert lawyer["calls"] == 2 and lawyer["revenue"] == {"EUR": 10}
    assert metered(shop, "acme", "carol")["totals"]["revenue"]["EUR"] == 10


def test_usage_is_shown_to_members_of_the_namespace_only(shop):
    assert shop.http("alice").get("/api/gptstore/usage/alice").status_code == 200
    assert shop.http("carol").get("/api/gptstore/usage/acme").status_code == 200
    assert shop.http("bob").get("/api/gptstore/usage/alice").status_code == 403
    assert shop.http("bob").get("/api/gptstore/usage/acme").status_code == 403
    assert shop.http(None).get("/api/gptstore/usage/alice").status_code == 401
    assert shop.http("alice").get("/api/gptstore/usage/nobody").status_code == 404
    assert shop.http("alice").get("/api/gptstore/usage/alice?since=yesterday").status_code == 400
    assert shop.http("alice").get("/api/gptstore/usage/alice?since=2000-01-01").status_code == 200
    assert shop.http("alice").get("/api/gptstore/usage/alice?since=2999-01-01").json()["models"] == []
    data = metered(shop)
    assert set(data) == {"namespace", "since", "models", "consumers", "totals"}


def report_body(rows: list[dict], report_id: str = "e" * 64) -> dict:
    return {"id": report_id, "range": {"after": 0, "last": 1, "hash": "f" * 64}, "rows": rows}


def row(**changes) -> dict:
    return {"repo": "alice/poet", "day": TODAY[:10], "currency": "USD", "calls": 1, "prompt_tokens": 1,
            "completion_tokens": 1, "cost": 0.001, **changes}


@pytest.mark.parametrize("rows, status", [
    ([row(prompt_tokens=-5)], 400),
    ([row(calls=-1)], 400),
    ([row(cost=-1.0)], 400),
    ([row(cost=1e300)], 400),
    ([row(prompt_tokens=10**20)], 400),
    ([row(prompt_tokens=1.5)], 400),
    ([row(prompt_tokens="12")], 400),
    ([row(day="2026-02-30")], 400),
    ([row(day="2999-01-01")], 400),
    ([row(currency="usd")], 400),
    ([row(repo="../../etc/passwd")], 400),
    ([row(repo="nobody/nothing")], 404),
    ([row(repo="alice/hidden")], 404),  # private: bob may not read it
    ([row(), row()], 400),  # the same model and day twice
    ([row(day=f"2026-01-{1 + n % 28:02d}", repo=f"alice/m{n}") for n in range(MAX_ROWS + 1)], 400),
    ([], 400),
])
def test_hostile_reports_are_refused(shop, rows, status):
    before = metered(shop)["totals"]
    answer = shop.http("bob").post("/api/gptstore/usage", json=report_body(rows))
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]
    assert metered(shop)["totals"] == before


def test_malformed_and_oversized_bodies_are_refused(shop):
    client = shop.http("bob")
    nan = json.dumps(report_body([row()])).replace("0.001", "NaN")
    assert math.isnan(json.loads(nan)["rows"][0]["cost"])
    assert client.post("/api/gptstore/usage", content=nan).status_code == 400
    assert client.post("/api/gptstore/usage", content=b"[1, 2").status_code == 400
    assert client.post("/api/gptstore/usage", json={**report_body([row()]), "id": "../x"}).status_code == 400
    big = report_body([row()])
    big["padding"] = "x" * 600_000
    assert client.post("/api/gptstore/usage", json=big).status_code == 413
    assert shop.http(None).post("/api/gptstore/usage", json=report_body([row()])).status_code == 401


def test_a_report_id_is_taken_once_and_never_with_other_rows(shop):
    client = shop.http("carol")
    body = report_body([row(repo="alice/other", calls=3)], report_id="d" * 64)
    before = model_usage(shop, "alice/other")["calls"]
    first, second = client.post("/api/gptstore/usage", json=body), client.post("/api/gptstore/usage", json=body)
    assert (first.status_code, first.json()["duplicate"]) == (201, False)
    assert (second.status_code, second.json()) == (200, {"id": "d" * 64, "duplicate": True})
    changed = report_body([row(repo="alice/other", calls=4)], report_id="d" * 64)
    assert client.post("/api/gptstore/usage", json=changed).status_code == 409
    assert model_usage(shop, "alice/other")["calls"] == before + 3
    # ids are per reporter: another user's report with the same id is their own
    assert shop.http("bob").post("/api/gptstore/usage", json=body).status_code == 201


def test_an_older_catalog_gets_the_metering_tables(tmp_path):
    from gptstore.server import db

    catalog = db.connect(tmp_path / "catalog.db")
    catalog.execute("DROP TABLE usage_daily")
    catalog.execute("DROP TABLE usage_reports")
    catalog.execute("PRAGMA user_version = 5")
    catalog.close()
    reopened = db.connect(tmp_path / "catalog.db")
    assert reopened.one("PRAGMA user_version")[0] == db.SCHEMA_VERSION
    assert reopened.all("SELECT * FROM usage_daily") == []
    reopened.close()


def test_the_dashboard_shows_usage_and_revenue_per_model_and_consumer(shop, run_cli):
    login(shop, run_cli, "carol")
    use("alice/poet", 1000, origin=shop.url, pricing="per_1k_tokens", amount=0.5)
    assert run_cli("usage", "report", "--store", shop.url).exit_code == 0
    page = shop.http("alice").get("/alice/-/dashboard")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'class="usage-model" data-model="alice/poet"' in html
    assert 'class="usage-consumer" data-user="carol"' in html and "USD" in html
    # an empty namespace says so instead of a table
    empty = shop.http("bob").get("/bob/-/dashboard")
    assert empty.status_code == 200 and "No usage reported yet" in empty.text


def test_an_unreachable_store_fails_in_one_line_and_the_report_waits(run_cli, monkeypatch):
    monkeypatch.setenv("GPTSTORE_HTTP_TIMEOUT", "2")
    down = "http://127.0.0.1:9"
    use("alice/poet", 10, origin=down)
    result = run_cli("usage", "report", "--store", down, "--token", "gst_x")
    assert result.exit_code == 1 and f"cannot reach {down}" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert len(usage_report.pending(down)) == 1


def test_a_report_refused_for_good_blocks_until_dropped_then_later_ones_go(shop, run_cli):
    """The model was deleted on the store: its report is refused (404) on every run and blocks the
    later ones, until the user drops it with --drop-pending (its usage is then never reported)."""
    login(shop, run_cli)
    shop.api("alice").create_repo("alice/deleted")
    use("alice/deleted", 10, origin=shop.url)
    use("alice/poet", 10, origin=shop.url)
    shop.api("alice").delete_repo("alice/deleted")
    before = model_usage(shop, "alice/poet")["calls"]
    first = run_cli("usage", "report", "--store", shop.url)
    assert first.exit_code == 1 and "(HTTP 404)" in first.output
    (refused,) = usage_report.pending(shop.url)
    assert f"gptstore usage report --drop-pending {refused['id']}" in first.output
    assert len(first.output.strip().splitlines()) == 1
    use("alice/poet", 10, origin=shop.url)
    again = run_cli("usage", "report", "--json")  # every origin store: the refusal is named in the JSON
    assert again.exit_code == 1
    (found,) = json.loads(again.stdout)["reports"]
    assert found["refused"] == refused["id"] and found["sent"] == []
    assert model_usage(shop, "alice/poet")["calls"] == before  # blocked behind the refused report

    assert run_cli("usage", "report", "--drop-pending", "0" * 64).exit_code == 2  # no such report
    assert run_cli("usage", "report", "--drop-pending", refused["id"], "--store", "http://127.0.0.1:9").exit_code == 2
    dropped = run_cli("usage", "report", "--drop-pending", refused["id"], "--json")
    assert dropped.exit_code == 0, dropped.output
    assert json.loads(dropped.stdout)["dropped"] == {"id": refused["id"], "store": shop.url, "rows": 2, "calls": 2,
                                                     "tokens": 40, "cost": {"USD": 0.04}}
    assert usage_report.pending(shop.url) == []
    ok = run_cli("usage", "report", "--store", shop.url, "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["reports"][0]["calls"] == 1  # only the call after the dropped report
    assert model_usage(shop, "alice/poet")["calls"] == before + 1
    sent = json.loads(ok.stdout)["reports"][0]["sent"][0]
    taken = run_cli("usage", "report", "--drop-pending", sent)
    assert taken.exit_code == 2 and "nothing to drop" in taken.output
