"""The usage log: recording, summing per model, pricing, and `gptstore usage`."""

from __future__ import annotations

import json

import pytest

from gptstore import usage

DIGEST_A = "a" * 64
DIGEST_B = "b" * 64
DIGEST_C = "c" * 64


def entry(digest: str, model: str, tokens_in: int, tokens_out: int, **kwargs) -> usage.UsageRecord:
    return usage.UsageRecord(reference=f"{model.split(':')[0]}:latest", model=model, digest=digest,
                             engine="transformers", device="cpu", prompt_tokens=tokens_in,
                             completion_tokens=tokens_out, duration_s=0.1, **kwargs)


@pytest.fixture
def log():
    usage.record(entry(DIGEST_A, "acme/poet:1.0.0", 100, 400, pricing="per_1k_tokens", amount=0.02))
    usage.record(entry(DIGEST_A, "acme/poet:1.0.0", 300, 200, pricing="per_1k_tokens", amount=0.02, prompts=2))
    usage.record(entry(DIGEST_B, "acme/flat:2.0.0", 10, 10, pricing="flat", amount=5, currency="EUR"))
    usage.record(entry(DIGEST_B, "acme/flat:2.0.0", 10, 10, pricing="flat", amount=5, currency="EUR"))
    usage.record(entry(DIGEST_C, "acme/free:0.1.0", 1, 2, allow_unsafe=True))


def test_records_round_trip(gptstore_home, log):
    rows = usage.records()
    assert len(rows) == 5 and usage.path() == gptstore_home / "usage.db"
    assert rows[1].prompts == 2 and rows[4].allow_unsafe is True and rows[0].at.endswith("+00:00")


def test_summary_sums_and_prices_per_model(log):
    by_model = {row.model: row for row in usage.summary()}
    poet, flat, free = by_model["acme/poet:1.0.0"], by_model["acme/flat:2.0.0"], by_model["acme/free:0.1.0"]
    assert (poet.calls, poet.prompt_tokens, poet.completion_tokens) == (2, 400, 600)
    assert poet.cost == pytest.approx(0.02 * 1000 / 1000)
    assert (flat.calls, flat.cost, flat.currency) == (2, 5, "EUR")  # flat: charged once
    assert free.cost == 0
    assert [row.model for row in usage.summary()][0] == "acme/poet:1.0.0"  # most used first
    assert usage.totals(usage.summary()) == {"USD": pytest.approx(0.02), "EUR": 5}


def test_turned_off_by_environment(monkeypatch):
    monkeypatch.setenv("GPTSTORE_NO_USAGE_LOG", "1")
    assert usage.record(entry(DIGEST_A, "acme/poet:1.0.0", 1, 1)) is False
    assert usage.records() == [] and not usage.path().exists()


def test_price():
    assert usage.price("per_1k_tokens", 0.5, 3000) == 1.5
    assert usage.price("flat", 9, 123456) == 9
    assert usage.price("free", 0, 10) == 0


def test_cli_usage_table(log, run_cli):
    result = run_cli("usage")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["MODEL", "DIGEST", "CALLS", "TOKENS", "IN", "TOKENS", "OUT", "PRICING", "COST"]
    assert "acme/poet:1.0.0" in lines[1] and "0.02 USD/1k tokens" in lines[1] and lines[1].endswith("0.02 USD")
    assert "5 EUR flat" in result.output
    assert lines[-1] == "Total: 5 EUR, 0.02 USD"


def test_cli_usage_json(log, run_cli):
    data = json.loads(run_cli("usage", "--json").output)
    assert data["enabled"] is True and len(data["models"]) == 3
    poet = next(m for m in data["models"] if m["model"] == "acme/poet:1.0.0")
    assert (poet["calls"], poet["total_tokens"], poet["cost"]) == (2, 1000, pytest.approx(0.02))
    assert data["totals"] == {"EUR": 5, "USD": pytest.approx(0.02)}


def test_cli_usage_empty(run_cli, monkeypatch):
    assert run_cli("usage").output == "No usage recorded yet.\n"
    monkeypatch.setenv("GPTSTORE_NO_USAGE_LOG", "1")
    assert "recording is off" in run_cli("usage").output
