"""Fuzzing the manifest reader: whatever bytes a store sends, the answer is a manifest or a ManifestError.

Seeded, so every run tries the same 3,000 mutations of a valid manifest: 1,800 of the dict (each
given to ``validate`` as Python objects and to ``parse_bytes`` as JSON) and 1,200 of its JSON bytes.
Each must either validate into a manifest whose canonical JSON parses back to the same
digest, or raise :class:`ManifestError` with one printable line; any other exception, or an error
message that spans lines or cannot be printed, fails the test with the seed and mutation named.
"""

from __future__ import annotations

import json
import random
import time

import pytest

from gptstore import manifest as m
from gptstore.errors import ManifestError

SEED = 20261111
DICT_MUTATIONS = 1800
BYTE_MUTATIONS = 1200


def valid_manifest() -> dict:
    return {
        "schema_version": 1, "namespace": "acme", "name": "poet", "version": "1.2.0-rc.1+build.5",
        "description": "A tiny poet.\nTwo lines.", "license": "apache-2.0",
        "provider": {"name": "Acme", "url": "https://acme.example", "contact": "ml@acme.example"},
        "tags": ["poetry", "tiny"], "languages": ["en"], "task": "text-generation",
        "created_at": "2026-01-02T03:04:05Z",
        "format": {"adapter": "peft", "architecture": "GPT2LMHeadModel", "parameters": 124_000_000,
                   "context_length": 1024, "dtype": "float32",
                   "base": {"reference": "acme/base:1.0.0", "digest": "b" * 64}},
        "generation": {"strategy": "sample", "max_new_tokens": 64, "temperature": 0.7, "top_k": 50,
                       "top_p": 0.9, "num_beams": 1, "repetition_penalty": 1.1, "stop": ["\n\n"]},
        "prompt_template": "Q: {prompt}\nA:",
        "metrics": [{"name": "perplexity", "value": 12.5, "dataset": "held.txt", "dataset_sha256": "c" * 64,
                     "split": "held-out"}],
        "provenance": {"base_digest": "b" * 64, "base_reference": "acme/base",
                       "datasets": [{"name": "train.txt", "sha256": "d" * 64, "size": 1234}],
                       "hyperparameters": {"lr": 0.0003, "epochs": 2, "lora": {"r": 8, "alpha": 16}},
                       "frameworks": {"torch": "2.13.0"}},
        "pricing": {"model": "per_1k_tokens", "amount": 0.02, "currency": "EUR"},
        "terms": "Be kind.",
        "files": [{"path": "adapter_config.json", "size": 300, "sha256": "e" * 64},
                  {"path": "weights/adapter_model.safetensors", "size": 40_000, "sha256": "f" * 64}],
    }


def check_total(data: bytes | dict, what: str) -> str:
    """The property under test (bytes through parse_bytes, a dict through validate);
    returns 'ok' or 'refused' for the tally."""
    try:
        manifest = m.parse_bytes(data) if isinstance(data, bytes) else m.validate(data)
    except ManifestError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, f"{what}: multi-line error {message!r}"
        message.encode("utf-8")  # printable: no lone surrogates
        assert len(message) < 1000, f"{what}: error of {len(message)} characters"
        return "refused"
    except Exception as exc:  # noqa: BLE001 - exactly what this test exists to catch
        pytest.fail(f"{what}: {type(exc).__name__} escaped the manifest reader: {str(exc)[:200]}")
    canonical = manifest.canonical_json()
    again = m.parse_bytes(canonical)
    assert again.digest == manifest.digest, f"{what}: canonical JSON does not round-trip"
    return "ok"


# -- mutations of the dict ---------------------------------------------------------------------
HUGE_INTS = [2**53, 2**53 - 1, 2**63 - 1, 2**63, -(2**63), 2**64, 10**19, 10**20, 10**400, -10**5000]
ODD_FLOATS = [float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 5e-324]
ODD_TEXT = ["\ud800", "\udfff", "\x00", "\x1b[2J", "\r", "\n", "\t", "\x7f", "\x85", "\u2028", "\u202e",
            " ", "\ufeff", "é", "😀"]
ODD_DATES = ["0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
             "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59+23:59", "2026-13-01T00:00:00Z",
             "2026-01-01", 0, -62135596800, 253402300800, 10**18, 1e20, "2026-01-02T03:04:05"]
ODD_VALUES = [None, True, False, 0, -1, 1.5, "", "x", [], {}, [1], {"a": 1}, "1.0.0", "a" * 64]


def paths(tree):
    """Every (path, value) in a JSON tree, the root included (without recursion: trees get deep)."""
    stack = [((), tree)]
    while stack:
        prefix, node = stack.pop()
        yield prefix, node
        if isinstance(node, dict):
            stack.extend((prefix + (key,), value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((prefix + (index,), value) for index, value in enumerate(node))


def put(tree, path, value):
    if not path:
        return value
    node = tree
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return tree


def nested(value, depth: int, as_list: bool):
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    return value


def mutate_value(rng: random.Random, value):
    kind = rng.choice(["swap", "huge", "float", "text", "nest", "long", "space", "date", "files"])
    if kind == "swap":
        return kind, rng.choice(ODD_VALUES)
    if kind == "huge":
        return kind, rng.choice(HUGE_INTS)
    if kind == "float":
        return kind, rng.choice(ODD_FLOATS)
    if kind == "nest":
        return kind, nested(value, rng.choice([3, 29, 30, 31, 32, 33, 200]), rng.random() < 0.5)
    if kind == "long":
        return kind, rng.choice(["a", "é", "/", "a/"]) * rng.choice([96, 97, 128, 129, 256, 1025, 5000, 70_000])
    if kind == "date":
        return kind, rng.choice(ODD_DATES)
    if kind == "files":
        entry = {"path": "weights", "size": 1, "sha256": "a" * 64}
        return kind, rng.choice([[entry, {**entry, "path": "weights/x"}], [entry] * 2,
                                 [{**entry, "path": p} for p in ("gptstore.json", "gptstore.json/x", ".git/config",
                                                                 "a//b", "/abs", "a\\b", "x" * 256, "a\nb", "a ")]])
    text = value if isinstance(value, str) else "acme"
    odd = rng.choice(ODD_TEXT)
    where = rng.randrange(len(text) + 1)
    if kind == "space":
        return kind, rng.choice([odd + text, text + odd, text + "\n", " " + text])
    return kind, text[:where] + odd + text[where:]


def mutate_dict(rng: random.Random) -> tuple[str, dict, bytes]:
    tree = valid_manifest()
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        every = list(paths(tree))
        path, value = rng.choice(every)
        action = rng.random()
        if action < 0.08 and path:
            node = tree
            for part in path[:-1]:
                node = node[part]
            del node[path[-1]]
            what = f"delete {path}"
        elif action < 0.16 and isinstance(value, dict):
            key = rng.choice(["extra", "", "\ud800", "a\nb", "x" * 300, "name"])
            value[key] = rng.choice(ODD_VALUES)
            what = f"add key {key[:20]!r} at {path}"
        else:
            kind, new = mutate_value(rng, value)
            tree = put(tree, path, new)
            what = f"{kind} at {path}"
    ascii_ = rng.random() < 0.5
    try:
        text = json.dumps(tree, ensure_ascii=ascii_)
    except (ValueError, RecursionError):  # a huge int json.dumps itself cannot write
        text = json.dumps(valid_manifest())
    return what, tree, text.encode("utf-8", "surrogatepass")


# -- mutations of the bytes ------------------------------------------------------------------
TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" + b"0" * 5000, b"1" * 30, b"-0",
          b"1e-999", b'"\\ud800"', b'"\\udc00x"', b'"a\\u0000b"', b'"\xed\xa0\x80"', b'"\xff"', b"true",
          b"null", b'"' + b"\\n" * 3 + b'"', b"[" * 100_000, b"{" * 2000, b'"' + b"\\\\" * 1000 + b'"']


def mutate_bytes(rng: random.Random) -> tuple[str, bytes]:
    data = json.dumps(valid_manifest(), indent=rng.choice([None, 2])).encode()
    kind = rng.choice(["flip", "truncate", "token", "duplicate", "wrap", "encoding", "insert"])
    if kind == "flip":
        data = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return kind, bytes(data)
    if kind == "truncate":
        return kind, data[:rng.randrange(len(data))]
    if kind == "token":  # replace one value (after a colon) by a hostile token
        colons = [i for i, b in enumerate(data) if b == ord(":")]
        at = rng.choice(colons) + 1
        end = at
        while end < len(data) and data[end] not in b",}]":
            end += 1
        token = rng.choice(TOKENS)
        return f"token {token[:12]!r}", data[:at] + token + data[end:]
    if kind == "duplicate":
        key = rng.choice([b'"namespace":"evil",', b'"files":[],', b'"version":"9.9.9",'])
        return kind, data.replace(b"{", b"{" + key, 1)
    if kind == "wrap":
        depth = rng.choice([1, 32, 40, 10_000])
        return f"wrap {depth}", b"[" * depth + data + b"]" * depth
    if kind == "encoding":
        codec = rng.choice(["utf-16", "utf-32", "utf-8-sig", "latin-1"])
        return f"encoding {codec}", json.dumps(valid_manifest(), ensure_ascii=False).encode(codec)
    at = rng.randrange(len(data))
    return "insert", data[:at] + rng.choice([b"\x00", b"\n", b"\xc3", b"\\", b'"', b",", b"}"]) + data[at:]


def test_valid_manifest_round_trips():
    assert check_total(json.dumps(valid_manifest()).encode(), "the unmutated manifest") == "ok"


def test_fuzzed_manifests_validate_or_raise_manifest_error():
    rng = random.Random(SEED)
    tally = {"ok": 0, "refused": 0}
    start = time.monotonic()
    for i in range(DICT_MUTATIONS):
        what, tree, data = mutate_dict(rng)
        tally[check_total(tree, f"dict mutation {i} (seed {SEED}), validated: {what}")] += 1
        tally[check_total(data, f"dict mutation {i} (seed {SEED}), as JSON: {what}")] += 1
    for i in range(BYTE_MUTATIONS):
        what, data = mutate_bytes(rng)
        tally[check_total(data, f"byte mutation {i} (seed {SEED}): {what}")] += 1
    assert tally["ok"] > 300 and tally["refused"] > 3000, tally  # the mutations exercise both sides
    assert time.monotonic() - start < 30, "the reader got slow"
