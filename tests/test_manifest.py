import json

import pytest

from gptstore import manifest as m
from gptstore.errors import ManifestError


def minimal(**over):
    data = {
        "namespace": "acme", "name": "poet", "version": "1.0.0",
        "format": {"adapter": "transformers", "architecture": "GPT2LMHeadModel", "parameters": 10,
                   "context_length": 128, "dtype": "float32"},
        "files": [{"path": "model.safetensors", "size": 3, "sha256": "a" * 64}],
        "created_at": "2026-01-02T03:04:05Z",
    }
    data.update(over)
    return data


def test_digest_is_sha256_of_canonical_json():
    import hashlib

    man = m.validate(minimal())
    canonical = man.canonical_json()
    assert canonical == m.canonical_json(json.loads(canonical))
    assert b" " not in canonical.replace(b'"text-generation"', b"")
    assert man.digest == hashlib.sha256(canonical).hexdigest()


def test_digest_ignores_formatting_and_key_order(tmp_path):
    man = m.validate(minimal())
    m.save(man, tmp_path)
    reloaded = m.load(tmp_path)
    assert reloaded.digest == man.digest
    reordered = dict(reversed(list(json.loads((tmp_path / "gptstore.json").read_text()).items())))
    assert m.validate(reordered).digest == man.digest


def test_any_change_changes_the_digest():
    base = m.validate(minimal())
    assert m.validate(minimal(description="x")).digest != base.digest
    priced = minimal(pricing={"model": "per_1k_tokens", "amount": 0.5, "currency": "EUR"})
    assert m.validate(priced).digest != base.digest


@pytest.mark.parametrize("over,field,bad", [
    ({"version": "1.0"}, "version", "'1.0'"),
    ({"name": "bad name"}, "name", "'bad name'"),
    ({"files": [{"path": "../x", "size": 1, "sha256": "a" * 64}]}, "files.0.path", "'../x'"),
    ({"files": [{"path": "x", "size": 1, "sha256": "zz"}]}, "files.0.sha256", "'zz'"),
    ({"pricing": {"model": "free", "amount": 3}}, "pricing", "3"),
    ({"unknown": 1}, "unknown", "1"),
    ({"prompt_template": "no placeholder"}, "prompt_template", "'no placeholder'"),
    ({"generation": {"temperature": 0}}, "generation.temperature", "0"),
])
def test_validation_errors_name_field_and_value(over, field, bad):
    with pytest.raises(ManifestError) as info:
        m.validate(minimal(**over))
    assert info.value.field == field
    assert field in str(info.value) and bad in str(info.value)


def test_duplicate_files_refused():
    entry = {"path": "a", "size": 1, "sha256": "a" * 64}
    with pytest.raises(ManifestError, match="listed twice"):
        m.validate(minimal(files=[entry, entry]))


def test_load_errors(tmp_path):
    with pytest.raises(ManifestError, match="no manifest"):
        m.load(tmp_path)
    (tmp_path / "gptstore.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not JSON"):
        m.load(tmp_path)


def test_render_template():
    man = m.validate(minimal(prompt_template="Q: {prompt}\nA:"))
    assert man.render("hi") == "Q: hi\nA:"
    assert m.validate(minimal()).render("hi") == "hi"


def test_schema_command(run_cli):
    result = run_cli("manifest", "schema")
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["additionalProperties"] is False
    assert "files" in schema["required"]
    assert schema["properties"]["version"]["description"]
