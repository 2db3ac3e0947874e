"""Pricing lives on the manifest's Pricing model: its defaults, its label and what a use costs;
search hits, `gptstore show`, model cards and `gptstore usage` all print and price through it."""

from __future__ import annotations

import json

import pytest

from gptstore.errors import ManifestError
from gptstore.manifest import Pricing


@pytest.mark.parametrize("pricing, label", [
    (Pricing(), "free"),
    (Pricing(model="per_1k_tokens", amount=0.5, currency="EUR"), "0.5 EUR/1k tokens"),
    (Pricing(model="flat", amount=10), "10 USD flat"),
    (Pricing.unchecked("per_1k_tokens", 0.02), "0.02 USD/1k tokens"),
    (Pricing.unchecked("by-the-hour", 3, "usd"), "free"),  # an unknown stored model prints as free
])
def test_label(pricing, label):
    assert pricing.label() == label


@pytest.mark.parametrize("model, amount, tokens, cost", [
    ("per_1k_tokens", 0.5, 3000, 1.5),
    ("flat", 9, 123456, 9),  # charged once, whatever the tokens
    ("free", 0, 10, 0),
    ("by-the-hour", 3, 10, 0),
])
def test_cost(model, amount, tokens, cost):
    assert Pricing.unchecked(model, amount).cost(tokens) == pytest.approx(cost)


def test_unchecked_does_not_validate_but_the_model_does():
    assert Pricing.unchecked("free", 5).amount == 5
    with pytest.raises(ValueError, match="a free model cannot have a non-zero amount"):
        Pricing(model="free", amount=5)


@pytest.mark.parametrize("given, fields", [
    ((None, None, None), None),
    ((None, 0.02, None), {"model": "per_1k_tokens", "amount": 0.02}),  # a price alone is per 1k tokens
    ((None, 0.02, "EUR"), {"model": "per_1k_tokens", "amount": 0.02, "currency": "EUR"}),
    (("flat", 10.0, None), {"model": "flat", "amount": 10.0}),
    (("free", None, None), {"model": "free"}),
])
def test_fields_from_fills_the_default_model(given, fields):
    assert Pricing.fields_from(*given) == fields
    assert Pricing.DEFAULT_PAID_MODEL == "per_1k_tokens"


@pytest.mark.parametrize("given, message", [
    (("per_1k_tokens", None, None), "--price-model per_1k_tokens needs --price"),
    (("flat", None, "EUR"), "--price-model flat needs --price"),
    ((None, None, "EUR"), "--currency EUR needs --price"),
])
def test_fields_from_refuses_a_paid_model_without_a_price(given, message):
    from gptstore.errors import UsageError

    with pytest.raises(UsageError, match=message):
        Pricing.fields_from(*given)


def test_search_hits_price_through_pricing(tiny_gpt):
    from gptstore.packaging import package
    from gptstore.stores.base import SearchHit
    from gptstore.stores.hub import _hit

    def price(pricing):  # as a hub's search JSON carries it
        return _hit({"id": "acme/tiny", "gptstore": {"version": "1.0.0", "pricing": pricing}}).price

    assert price({"model": "per_1k_tokens", "amount": 0.5, "currency": "EUR"}) == "0.5 EUR/1k tokens"
    assert price({"model": "flat", "amount": 10}) == "10 USD flat"
    assert price({"model": "nonsense", "amount": 3}) == "free"
    assert price({"model": "flat", "amount": float("nan")}) == "0 USD flat"
    manifest = package(tiny_gpt, name="acme/tiny", version="1.0.0",
                       pricing={"model": "per_1k_tokens", "amount": 0.02, "currency": "USD"})
    assert SearchHit.of(manifest).price == "0.02 USD/1k tokens"


def test_package_cli_fills_the_pricing_default(run_cli, tiny_gpt):
    def packaged(*args):
        result = run_cli("package", str(tiny_gpt), "--name", "acme/tiny", "--version", "1.0.0", *args)
        assert result.exit_code == 0, result.output
        return json.loads((tiny_gpt / "gptstore.json").read_text())["pricing"]

    assert packaged("--price", "0.5") == {"model": "per_1k_tokens", "amount": 0.5, "currency": "USD"}
    assert packaged("--price", "0.5", "--currency", "EUR")["currency"] == "EUR"
    assert packaged("--price-model", "flat", "--price", "3") == {"model": "flat", "amount": 3.0, "currency": "USD"}
    assert packaged() == {"model": "flat", "amount": 3.0, "currency": "USD"}  # kept when not given again


@pytest.mark.parametrize("args, message", [
    (["--price-model", "per_1k_tokens"], "--price-model per_1k_tokens needs --price (the amount per 1k tokens)"),
    (["--currency", "EUR"], "--currency EUR needs --price"),
])
def test_package_cli_refuses_a_paid_model_without_a_price(run_cli, tiny_gpt, args, message):
    result = run_cli("package", str(tiny_gpt), "--name", "acme/tiny", "--version", "1.0.0", *args)
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1
    assert not (tiny_gpt / "gptstore.json").exists()


def test_package_cli_reports_inconsistent_pricing_as_the_manifests(run_cli, tiny_gpt):
    result = run_cli("package", str(tiny_gpt), "--name", "acme/tiny", "--version", "1.0.0",
                     "--price-model", "free", "--price", "1")
    assert result.exit_code == ManifestError.exit_code
    assert "a free model cannot have a non-zero amount" in result.output and result.output.count("\n") == 1
    assert not (tiny_gpt / "gptstore.json").exists()
