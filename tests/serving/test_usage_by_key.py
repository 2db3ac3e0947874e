"""The usage log's API key column: old logs still open (the column is added), rows recorded
inside ``attributed_to`` carry the key name, ``gptstore usage --by key`` groups by it."""

from __future__ import annotations

import json
import sqlite3

from gptstore import usage

OLD_SCHEMA = """CREATE TABLE generations (id INTEGER PRIMARY KEY, at TEXT NOT NULL, reference TEXT NOT NULL,
    model TEXT NOT NULL, digest TEXT NOT NULL, engine TEXT NOT NULL, device TEXT NOT NULL, prompts INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, duration_s REAL NOT NULL,
    allow_unsafe INTEGER NOT NULL, pricing TEXT NOT NULL, amount REAL NOT NULL, currency TEXT NOT NULL)"""


def entry(tokens: int) -> usage.UsageRecord:
    return usage.UsageRecord(reference="acme/poet:latest", model="acme/poet:1.0.0", digest="a" * 64,
                             engine="transformers", device="cpu", prompt_tokens=tokens, completion_tokens=tokens,
                             duration_s=0.1, pricing="per_1k_tokens", amount=1.0)


def test_an_old_log_opens_and_new_rows_carry_the_key(gptstore_home, run_cli):
    gptstore_home.mkdir(parents=True)
    with sqlite3.connect(gptstore_home / usage.FILENAME) as old:
        old.execute(OLD_SCHEMA)
        old.execute("INSERT INTO generations (at, reference, model, digest, engine, device, prompts, prompt_tokens, "
                    "completion_tokens, duration_s, allow_unsafe, pricing, amount, currency) VALUES "
                    "('2026-01-01T00:00:00+00:00', 'acme/poet:latest', 'acme/poet:1.0.0', ?, 'transformers', "
                    "'cpu', 1, 100, 100, 0.1, 0, 'per_1k_tokens', 1.0, 'USD')", ["a" * 64])
    usage._open.update(path=None, conn=None)  # as a new process would
    assert [r.key for r in usage.records()] == [""]
    with usage.attributed_to("alice"):
        usage.record(entry(500))
    usage.record(entry(50))
    assert [r.key for r in usage.records()] == ["", "alice", ""]
    by_key = {row.key: row for row in usage.summary("key")}
    assert by_key["alice"].total_tokens == 1000 and by_key["alice"].cost == 1.0
    assert by_key[""].calls == 2 and by_key[""].total_tokens == 300
    assert [row.model for row in usage.summary()] == ["acme/poet:1.0.0"]  # by model: one row, as before
    assert "key" not in json.loads(run_cli("usage", "--json").output)["models"][0]
    table = run_cli("usage", "--by", "key").output.splitlines()
    assert table[0].split()[0] == "KEY" and table[1].split()[0] == "alice" and table[2].split()[0] == "-"
