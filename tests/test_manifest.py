import json

import pytest
from pydantic import ValidationError

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
    reloaded = m.load_manifest(tmp_path)
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
        m.load_manifest(tmp_path)
    (tmp_path / "gptstore.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not JSON"):
        m.load_manifest(tmp_path)


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


# -- issue 11 item 7: validation is total; every malformed manifest is a one-line ManifestError ---

def refused(data, match: str | None = None) -> ManifestError:
    """``data`` (bytes for parse_bytes, a dict for validate) must give a one-line ManifestError."""
    with pytest.raises(ManifestError) as info:
        m.parse_bytes(data) if isinstance(data, bytes) else m.validate(data)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message and "\x1b" not in message
    message.encode("utf-8")  # printable: no lone surrogates reach the terminal
    assert len(message) < 600
    if match:
        assert match in message, message
    return info.value


def round_trips(man: m.Manifest) -> None:
    assert m.parse_bytes(man.canonical_json()).digest == man.digest


def as_bytes(data: dict) -> bytes:
    return json.dumps(data).encode()


def fmt(**over):
    return {"adapter": "transformers", "architecture": "GPT2LMHeadModel", "parameters": 10,
            "context_length": 128, "dtype": "float32", **over}


@pytest.mark.parametrize("over,field", [
    ({"files": [{"path": "w", "size": 2**64, "sha256": "a" * 64}]}, "files.0.size"),
    ({"format": fmt(parameters=10**30)}, "format.parameters"),
    ({"format": fmt(context_length=2**31)}, "format.context_length"),
    ({"generation": {"max_new_tokens": 2**63}}, "generation.max_new_tokens"),
    ({"generation": {"top_k": 2**40}}, "generation.top_k"),
    ({"generation": {"num_beams": 10**9}}, "generation.num_beams"),
    ({"provenance": {"hyperparameters": {"steps": 2**70}}}, "provenance.hyperparameters.steps"),
    ({"provenance": {"datasets": [{"name": "d", "sha256": "a" * 64, "size": -(2**80)}]}}, "provenance.datasets.0.size"),
])
def test_huge_integers_refused(over, field):
    assert refused(as_bytes(minimal(**over))).field == field
    assert refused(minimal(**over)).field == field


def test_integer_literals_beyond_64_bits_and_python_bigints_refused():
    literal = b'{"namespace": "acme", "files": [], "x": 1' + b"0" * 5000 + b"}"  # int() would raise ValueError
    refused(literal, "too large")
    error = refused(minimal(files=[{"path": "w", "size": 10**5000, "sha256": "a" * 64}]))
    assert "integer of" in str(error) or "out of range" in str(error)  # repr() of it would raise
    largest = m.validate(minimal(files=[{"path": "w", "size": m.MAX_SIZE, "sha256": "a" * 64}]))
    round_trips(largest)


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"])
@pytest.mark.parametrize("where", ["metrics", "temperature", "hyperparameters", "amount"])
def test_nan_and_infinity_refused(token, where):
    template = {
        "metrics": minimal(metrics=[{"name": "loss", "value": 0.5}]),
        "temperature": minimal(generation={"temperature": 0.5}),
        "hyperparameters": minimal(provenance={"hyperparameters": {"lr": 0.5}}),
        "amount": minimal(pricing={"model": "flat", "amount": 0.5}),
    }[where]
    data = as_bytes(template).replace(b"0.5", token)
    assert token in data
    refused(data)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_from_python_refused_before_canonical_json(value):
    refused(minimal(metrics=[{"name": "loss", "value": value}]))
    refused(minimal(provenance={"hyperparameters": {"lr": [1, value]}}), "finite")
    refused(minimal(generation={"temperature": value}))


@pytest.mark.parametrize("data", [
    b'{"namespace": "acme", "description": "\\ud800"}',
    b'{"description": "ok \\udc00 tail"}',
    b'{"provenance": {"hyperparameters": {"\\ud83d": 1}}}',
    b'{"tags": ["\\udfff"]}',
])
def test_lone_surrogates_refused(data):
    refused(data, "surrogate")


def test_lone_surrogates_from_python_and_raw_bytes_refused():
    refused(minimal(description="\ud800"), "surrogate")
    refused(minimal(provenance={"frameworks": {"torch\udc80": "2"}}), "surrogate")
    refused(as_bytes(minimal()).replace(b'"poet"', b'"po\xed\xa0\x80et"'), "not UTF-8")
    ok = m.validate(minimal(description="real pairs are fine: \U0001F600"))  # an astral character
    round_trips(ok)


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                                   "9999-12-31T23:59:59.999999-00:01"])
def test_datetimes_that_overflow_in_utc_refused(stamp):
    assert refused(as_bytes(minimal(created_at=stamp)), "out of range").field == "created_at"


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00Z", "0001-01-01T00:59:00-00:59",
                                   "9999-12-31T23:59:59.999999Z", "9999-12-31T23:00:00+01:00"])
def test_datetimes_at_the_limits_that_fit_round_trip(stamp):
    round_trips(m.parse_bytes(as_bytes(minimal(created_at=stamp))))


def test_deep_nesting_refused_without_recursion_error():
    refused(b"[" * 100_000 + b"]" * 100_000, "deeper")
    refused(b'{"provenance": {"hyperparameters": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}}", "deeper")
    deep: object = 1
    for _ in range(5000):  # pydantic and json.dumps would both hit the recursion limit
        deep = {"k": deep}
    refused(minimal(provenance={"hyperparameters": {"x": deep}}), "deeper")
    cyclic: dict = {}
    cyclic["self"] = cyclic
    refused(minimal(provenance={"hyperparameters": cyclic}), "deeper")
    shared: list = [1]
    for _ in range(40):  # a DAG of 2**40 paths: refused quickly, not walked
        shared = [shared, shared]
    refused(minimal(provenance={"hyperparameters": {"x": shared}}))
    nested_ok: object = 1
    for _ in range(m.MAX_DEPTH - 4):
        nested_ok = [nested_ok]
    round_trips(m.validate(minimal(provenance={"hyperparameters": {"x": nested_ok}})))


@pytest.mark.parametrize("paths", [["a", "a/b"], ["a/b/c", "a/b"], ["x", "w/v", "w"]])
def test_file_and_folder_of_the_same_name_refused(paths):
    files = [{"path": p, "size": 1, "sha256": "a" * 64} for p in paths]
    refused(minimal(files=files), "also a folder")
    refused(as_bytes(minimal(files=files)), "also a folder")


@pytest.mark.parametrize("path,why", [
    ("x/" * 600 + "y", "1024"), ("a/" + "b" * 256, "255"), ("é" * 128, "255"),
    ("gptstore.json/x", "metadata"), ("w/.git/config", ".git"), ("a\nb", "one line"),
    ("a\x00b", "control"), (" a", "whitespace"),
])
def test_bad_paths_refused(path, why):
    refused(minimal(files=[{"path": path, "size": 1, "sha256": "a" * 64}]), why)


@pytest.mark.parametrize("over", [
    {"description": "x" * 2001}, {"terms": "x" * 20_001}, {"tags": ["t"] * 65}, {"tags": ["t" * 129]},
    {"name": "p" * 97}, {"version": "1.0.0-" + "a" * 200}, {"provider": {"name": "n" * 257}},
    {"files": [{"path": f"f{i}", "size": 1, "sha256": "a" * 64} for i in range(m.MAX_FILES + 1)]},
    {"languages": ["x" * 36]}, {"generation": {"stop": ["s"] * 65}},
])
def test_over_long_values_refused(over):
    refused(minimal(**over))


def test_manifest_whose_canonical_json_is_too_big_refused():
    files = [{"path": f"{i:04d}/" + "p" * 240 + "/" + "q" * 240, "size": 1, "sha256": "a" * 64}
             for i in range(9000)]
    refused(minimal(files=files), "bytes")


@pytest.mark.parametrize("path_length,accepted", [(250, True), (300, False)])
def test_what_validate_accepts_can_be_saved_and_loaded_again(tmp_path, path_length, accepted):
    """At 300, the canonical JSON (3.96 MB) fits in 4 MiB but the indented file `save` and a push
    write (4.3 MB) would not: validate refuses it rather than let it be written unreadable."""
    half = (path_length - 7) // 2
    files = [{"path": f"{i:05d}/" + "p" * half + "/" + "q" * half, "size": 1, "sha256": "a" * 64}
             for i in range(m.MAX_FILES)]
    if not accepted:
        refused(minimal(files=files), "bytes, more than the")
        return
    man = m.validate(minimal(files=files))
    assert m.load_manifest(m.save(man, tmp_path)).digest == man.digest


@pytest.mark.parametrize("over", [
    {"namespace": "acme\n"}, {"namespace": " acme"}, {"name": "poet\n"}, {"name": "poet "},
    {"version": "1.0.0\n"}, {"version": " 1.0.0"}, {"tags": ["poetry\n"]}, {"tags": [" poetry"]},
    {"tags": ["a\u202eb"]}, {"license": "mit\n"},
    {"format": fmt(base={"reference": "acme/base\n", "digest": "b" * 64})},
    {"format": fmt(base={"reference": " acme/base", "digest": "b" * 64})},
    {"format": fmt(base={"reference": "acme/base", "digest": "b" * 64 + "\n"})},
    {"files": [{"path": "w", "size": 1, "sha256": "a" * 64 + "\n"}]},
    {"metrics": [{"name": "loss", "value": 1.0, "dataset_sha256": "c" * 64 + "\n"}]},
    {"provider": {"name": "Acme\n"}}, {"format": fmt(dtype="float32\n")},
])
def test_surrounding_whitespace_and_newlines_refused(over):
    refused(minimal(**over))
    refused(as_bytes(minimal(**over)))


def test_control_characters_refused_in_text_newlines_allowed_in_free_text():
    refused(minimal(description="look \x1b[2J cleared"), "control")
    refused(minimal(terms="a\rb"), "control")
    round_trips(m.validate(minimal(description="two\nlines\twith a tab", terms="ok")))


def test_duplicate_keys_refused():
    data = as_bytes(minimal()).replace(b"{", b'{"namespace": "evil", ', 1)
    refused(data, "appears twice")


def test_parse_bytes_caps_size_and_wants_utf8():
    big = b'{"description": "' + b"x" * m.MAX_MANIFEST_BYTES + b'"}'
    refused(big, "more than the")
    refused(b"\xff\xfe{}", "not UTF-8")
    refused(json.dumps(minimal()).encode("utf-16"), "not UTF-8")
    round_trips(m.parse_bytes(b"\xef\xbb\xbf" + as_bytes(minimal())))  # a UTF-8 BOM is forgiven
    refused(b"[1, 2]", "JSON object")
    refused(b"", "not JSON")
    refused(None)  # type: ignore[arg-type]


def test_validate_is_total_on_python_objects():
    class Hostile:
        def __repr__(self):
            raise RuntimeError("no repr")

    refused(["not", "a", "dict"], "expected a JSON object")  # type: ignore[arg-type]
    refused(minimal(description=Hostile()))
    refused(minimal(provenance={"hyperparameters": {"x": Hostile()}}), "JSON value")
    refused(minimal(provenance={"hyperparameters": {"x": {1, 2}}}), "JSON value")
    refused(minimal(provenance={"hyperparameters": {1: "int key"}}))
    refused(minimal(created_at=10**30))


def test_error_shows_hostile_keys_and_values_on_one_line():
    error = refused(minimal(**{"\x1b[31mred\nline": 1}))
    assert "red" in str(error) and "\\x1b" in str(error)
    error = refused(minimal(description="x" * 5000))
    assert "..." in str(error)
    refused(minimal(name="a\u2028b"))


def test_validated_manifest_always_serialises():
    man = m.validate(minimal(description="é\u2028 — ok", provenance={"hyperparameters": {"t": (1, 2.5)}}))
    round_trips(man)
    with pytest.raises(ValidationError):  # assignment is validated too: a bad value never gets in
        man.generation.temperature = float("nan")
    with pytest.raises(ValidationError):
        man.provenance.hyperparameters = {"lr": float("inf")}
    with pytest.raises(ValidationError):
        man.description = "\x1b[2J"
    round_trips(man)


def test_load_caps_reading(tmp_path):
    (tmp_path / "gptstore.json").write_bytes(b" " * (m.MAX_MANIFEST_BYTES + 10))
    with pytest.raises(ManifestError, match="more than the"):
        m.load_manifest(tmp_path)


CRAFTED = {  # kind: (where the placeholder goes, what replaces it in the JSON text)
    "nan": ({"metrics": [{"name": "loss", "value": "@@"}]}, b"NaN"),
    "surrogate": ({"provenance": {"hyperparameters": {"x": "@@"}}}, b'"\\ud800"'),
    "overflow-date": ({"created_at": "@@"}, b'"0001-01-01T00:00:00+01:00"'),
    "deep": ({"provenance": {"hyperparameters": {"x": "@@"}}}, b"[" * 50_000 + b"]" * 50_000),
    "huge-int": ({"files": [{"path": "model.safetensors", "size": "@@", "sha256": "a" * 64}]},
                 b"1" + b"0" * 5000),
    "newline-name": ({"name": "@@"}, b'"poet\\n"'),
}


@pytest.mark.parametrize("command", ["verify", "publish"])
@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_cli_refuses_crafted_manifest_with_exit_1_and_one_line(run_cli, tmp_path, command, kind):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "model.safetensors").write_bytes(b"abc")
    over, token = CRAFTED[kind]
    (package / "gptstore.json").write_bytes(as_bytes(minimal(**over)).replace(b'"@@"', token))
    result = run_cli(command, str(package))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: invalid ") and "gptstore.json" in lines[0], lines
    assert "unexpected" not in lines[0]
    assert not list((package.parent / "home").glob("**/refs/**/*")) if (package.parent / "home").exists() else True


def test_cli_process_prints_one_line_for_a_hostile_manifest(tmp_path):
    """The real entry point: exit 1, one line on stderr naming the field, no traceback."""
    import subprocess
    import sys

    package = tmp_path / "pkg"
    package.mkdir()
    hostile = as_bytes(minimal(generation={"stop": "@@"})).replace(b'"@@"', b'["\\u001b[2J\\ud800"]')
    (package / "gptstore.json").write_bytes(hostile)
    done = subprocess.run([sys.executable, "-c", "from gptstore.cli.main import main; main()", "verify",
                           str(package)], capture_output=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: invalid "), lines
    assert "generation.stop.0" in lines[0] and "unexpected" not in lines[0]
    assert "\x1b" not in lines[0] and "Traceback" not in done.stderr.decode()
