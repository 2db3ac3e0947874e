"""Manifest schema 2: ``category`` and ``use_cases``, with version-1 manifests still read and still
verifying (their digests, and so their signatures, do not change)."""

import json
import typing
from pathlib import Path

import pytest

from gptstore import manifest as m
from gptstore.errors import ManifestError

V1 = {
    "schema_version": 1, "namespace": "acme", "name": "poet", "version": "1.0.0",
    "format": {"adapter": "transformers", "architecture": "GPT2LMHeadModel", "parameters": 10,
               "context_length": 128, "dtype": "float32"},
    "files": [{"path": "model.safetensors", "size": 3, "sha256": "a" * 64}],
    "created_at": "2026-01-02T03:04:05Z", "tags": ["x"], "pricing": {"model": "flat", "amount": 5},
}
#: the digest gptstore 0.x (schema 1 only) computed for V1: signatures made then sign exactly this
V1_DIGEST = "fcb2a57d3acd409aa5e4393baad96693520ff315848b971c1b0d80b54672a5d2"


def v2(**over):
    return {**V1, "schema_version": 2, **over}


def test_version_1_manifest_reads_with_its_old_digest(tmp_path):
    man = m.validate(V1)
    assert man.schema_version == 1 and man.category is None and man.use_cases is None
    assert man.digest == V1_DIGEST
    assert b"use_cases" not in man.canonical_json() and b"category" not in man.canonical_json()
    m.save(man, tmp_path)  # written back and read again: same digest
    assert m.load_manifest(tmp_path).digest == V1_DIGEST


def test_version_1_signature_still_verifies(tmp_path, gptstore_home):
    pytest.importorskip("cryptography")
    from gptstore import signing

    man = m.validate(V1)
    key = signing.generate_key("old")
    private, _ = signing.load_private_key("old")
    envelope = signing.make_envelope(man, private)
    reread = m.parse_bytes(m.dumps(man))  # as a consumer reads it from a store today
    check = signing.check_signature(reread, envelope, {key.keyid: key.public_key})
    assert check.ok and check.keyid == key.keyid


def test_new_manifests_are_version_2():
    data = {k: v for k, v in V1.items() if k != "schema_version"}
    assert m.validate(data).schema_version == m.SCHEMA_VERSION == 2


def test_category_and_use_cases_round_trip_and_are_signed_over(tmp_path):
    man = m.validate(v2(category="chat", use_cases=["customer-support replies", "FAQ answers"]))
    assert man.category == "chat" and man.use_cases == ["customer-support replies", "FAQ answers"]
    canonical = json.loads(man.canonical_json())
    assert canonical["category"] == "chat" and canonical["use_cases"][0] == "customer-support replies"
    assert m.validate(v2(category="code", use_cases=man.use_cases)).digest != man.digest
    assert m.load_manifest(m.save(man, tmp_path)).digest == man.digest


@pytest.mark.parametrize("over, field, words", [
    ({"category": "poetry"}, "category", "'chat'"),
    ({"use_cases": ["x" * 81]}, "use_cases.0", "at most 80"),
    ({"use_cases": [f"case {i}" for i in range(17)]}, "use_cases", "at most 16"),
    ({"use_cases": ["two\nlines"]}, "use_cases.0", "one line"),
    ({"use_cases": [""]}, "use_cases.0", "at least 1"),
    ({"use_cases": ["same", "same"]}, "(root)", "twice"),
    ({"use_cases": "chat"}, "use_cases", "list"),
])
def test_bad_catalogue_fields_name_the_field(over, field, words):
    with pytest.raises(ManifestError) as info:
        m.validate(v2(**over))
    assert info.value.field == field or field == "(root)"
    assert words in info.value.message


@pytest.mark.parametrize("over", [{"category": "chat"}, {"use_cases": ["support"]}])
def test_version_1_cannot_carry_catalogue_fields(over):
    with pytest.raises(ManifestError, match="need schema_version 2"):
        m.validate({**V1, **over})


def test_unknown_schema_version_is_refused():
    with pytest.raises(ManifestError, match="schema_version"):
        m.validate(v2(schema_version=3))


def test_categories_are_listed_once_and_documented():
    assert typing.get_args(m.Category) == m.CATEGORIES
    schema = m.json_schema()
    enum = schema["properties"]["category"]["anyOf"][0]["enum"]
    assert tuple(enum) == m.CATEGORIES
    docs = (Path(__file__).parents[1] / "docs" / "catalogue.md").read_text()
    for category in m.CATEGORIES:
        assert f"`{category}`" in docs, category


def test_package_cli_sets_category_and_use_cases(run_cli, tiny_gpt):
    result = run_cli("package", str(tiny_gpt), "--name", "acme/helpdesk", "--version", "1.0.0",
                     "--category", "chat", "--use-case", "customer-support replies", "--use-case", "FAQ answers")
    assert result.exit_code == 0, result.output
    written = json.loads((tiny_gpt / "gptstore.json").read_text())
    assert written["schema_version"] == 2 and written["category"] == "chat"
    assert written["use_cases"] == ["customer-support replies", "FAQ answers"]
    # packaging again without them keeps them (like every descriptive field)
    assert run_cli("package", str(tiny_gpt), "--name", "acme/helpdesk", "--version", "1.0.1").exit_code == 0
    assert json.loads((tiny_gpt / "gptstore.json").read_text())["category"] == "chat"


def test_package_cli_refuses_an_unknown_category_listing_the_choices(run_cli, tiny_gpt):
    result = run_cli("package", str(tiny_gpt), "--name", "acme/x", "--version", "1.0.0", "--category", "poetry")
    assert result.exit_code == 2
    assert "summarization" in result.output and not (tiny_gpt / "gptstore.json").exists()


def test_package_cli_refuses_a_too_long_use_case(run_cli, tiny_gpt):
    result = run_cli("package", str(tiny_gpt), "--name", "acme/x", "--version", "1.0.0", "--use-case", "y" * 81)
    assert result.exit_code != 0 and "use_cases" in result.output


def test_packaging_upgrades_a_version_1_draft(tiny_gpt):
    from gptstore.packaging import package

    first = package(tiny_gpt, name="acme/poet", version="1.0.0", description="drafted")
    data = first.model_dump(mode="json", exclude_none=True) | {"schema_version": 1}
    (tiny_gpt / "gptstore.json").write_text(json.dumps(data))
    assert m.load_manifest(tiny_gpt).schema_version == 1
    again = package(tiny_gpt, name="acme/poet", version="1.0.0", category="writing", use_cases=["verse"])
    assert again.schema_version == 2 and again.category == "writing" and again.description == "drafted"
