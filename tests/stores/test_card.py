"""The model card pushed with every model: huggingface_hub's ModelCardData, read back by the Hub
client and by `gptstore server`'s card parser alike."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from gptstore.manifest import validate
from gptstore.server.metadata import parse_card
from gptstore.stores.card import CARD_FILE, model_card

DIGEST = "ab" * 32


def manifest(**fields):
    data = {"namespace": "acme", "name": "poet", "version": "1.2.0", "license": "apache-2.0",
            "format": {"adapter": "transformers", "architecture": "GPT2LMHeadModel", "parameters": 1234,
                       "context_length": 64, "dtype": "float32"},
            "files": [{"path": "model.safetensors", "size": 1, "sha256": "0" * 64}]}
    return validate(data | fields, source="test")


def test_the_card_metadata_is_what_the_hub_and_the_server_read():
    text = model_card(manifest(tags=["haiku", "gptstore", "poetry"], languages=["en", "fr"]), DIGEST)
    expected = {"language": ["en", "fr"], "library_name": "gptstore", "license": "apache-2.0",
                "pipeline_tag": "text-generation", "tags": ["gptstore", "haiku", "poetry"]}
    assert ModelCard(text).data.to_dict() == expected  # gptstore first, once
    assert parse_card(text) == expected
    assert CARD_FILE == "README.md"


@pytest.mark.parametrize("base", ["acme/base:1.0.0", "acme/base", f"acme/base@sha256:{'cd' * 32}"])
def test_an_adapter_card_names_its_base_model_without_tag_or_digest(base):
    adapter = manifest(format={"adapter": "peft", "architecture": "GPT2LMHeadModel", "parameters": 10,
                               "context_length": 64, "dtype": "float32",
                               "base": {"reference": base, "digest": "cd" * 32}})
    assert parse_card(model_card(adapter, DIGEST))["base_model"] == "acme/base"
    assert "base_model" not in parse_card(model_card(manifest(), DIGEST))  # a full model has none
    assert "language" not in parse_card(model_card(manifest(), DIGEST))


@pytest.mark.parametrize("tag", ["yes", "a: b", "#x", "- item", "'quoted'", "null", "1.0", "ünï €"])
def test_tags_that_mean_something_else_in_yaml_stay_strings(tag):
    """huggingface_hub's YAML quotes what needs quoting: a tag like ``yes`` (a YAML boolean) or
    ``a: b`` (a mapping) comes back as the same string."""
    assert parse_card(model_card(manifest(tags=[tag]), DIGEST))["tags"] == ["gptstore", tag]


def test_the_body_summarises_the_package():
    text = model_card(manifest(description="Writes haiku.", provider={"name": "Acme"},
                               pricing={"model": "per_1k_tokens", "amount": 0.5, "currency": "EUR"},
                               metrics=[{"name": "perplexity", "value": 12.3456, "dataset": "poems"}]), DIGEST)
    body = ModelCard(text).text
    assert body.startswith("\n# acme/poet 1.2.0\n\nWrites haiku.\n")
    for line in ["- Format: transformers (GPT2LMHeadModel, 1,234 parameters, context 64, float32)",
                 "- Provider: Acme", "- License: apache-2.0", "- Price: 0.5 EUR/1k tokens",
                 f"- Manifest digest: `sha256:{DIGEST}`", "- perplexity: 12.35 on poems",
                 "gptstore pull acme/poet:1.2.0 --store URL"]:
        assert line in body.splitlines()
