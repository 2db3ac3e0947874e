"""The usage log's hash chain: `gptstore usage verify` names the first row that was edited,
deleted or inserted behind gptstore's back; an old log is chained as found; appenders in several
processes at once still make one chain."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3

import pytest

from gptstore import usage

OLD_SCHEMA = """CREATE TABLE generations (id INTEGER PRIMARY KEY, at TEXT NOT NULL, reference TEXT NOT NULL,
    model TEXT NOT NULL, digest TEXT NOT NULL, engine TEXT NOT NULL, device TEXT NOT NULL, prompts INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, duration_s REAL NOT NULL,
    allow_unsafe INTEGER NOT NULL, pricing TEXT NOT NULL, amount REAL NOT NULL, currency TEXT NOT NULL)"""


def entry(tokens: int, **kwargs) -> usage.UsageRecord:
    return usage.UsageRecord(reference="acme/poet:latest", model="acme/poet:1.0.0", digest="a" * 64,
                             engine="transformers", device="cpu", prompt_tokens=tokens, completion_tokens=tokens,
                             duration_s=0.25, pricing="per_1k_tokens", amount=2, **kwargs)


@pytest.fixture
def five_rows(gptstore_home):
    for tokens in (10, 20, 30, 40, 50):
        usage.record(entry(tokens))
    return gptstore_home / usage.FILENAME


def tamper(db, sql: str, *params) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(sql, params)
    conn.close()


def verify(run_cli):
    result = run_cli("usage", "verify")
    return result.exit_code, result.output.strip()


def test_an_intact_log_verifies(five_rows, run_cli):
    code, output = verify(run_cli)
    assert code == 0 and output == "OK: 5 rows, chain intact."
    data = json.loads(run_cli("usage", "verify", "--json").output)
    assert data["ok"] is True and data["rows"] == 5 and data["bad_row"] is None


def test_an_edited_row_is_named(five_rows, run_cli):
    tamper(five_rows, "UPDATE generations SET completion_tokens = 1 WHERE id = 3")
    code, output = verify(run_cli)
    assert code == 1 and len(output.splitlines()) == 1
    assert "row 3 (" in output and "edited" in output
    result = run_cli("usage", "verify", "--json")
    assert result.exit_code == 1 and json.loads(result.output)["bad_row"] == 3


def test_an_edited_row_with_its_hash_recomputed_breaks_the_next_row(five_rows, run_cli):
    """Rewriting a row's hash to match its new content still breaks the link to the next row."""
    tamper(five_rows, "UPDATE generations SET prompt_tokens = 0 WHERE id = 2")
    with sqlite3.connect(five_rows) as conn:
        values = conn.execute("SELECT id, " + ", ".join(usage._COLUMNS) + " FROM generations WHERE id = 2").fetchone()
        previous = conn.execute("SELECT hash FROM generations WHERE id = 1").fetchone()[0]
        row = dict(zip(("id", *usage._COLUMNS), values))
        conn.execute("UPDATE generations SET hash = ? WHERE id = 2", (usage.chain_hash(previous, row),))
    conn.close()
    code, output = verify(run_cli)
    assert code == 1 and "row 3 (" in output


def test_a_deleted_row_is_named(five_rows, run_cli):
    tamper(five_rows, "DELETE FROM generations WHERE id = 2")
    code, output = verify(run_cli)
    assert code == 1 and output.startswith("Error:") and "row 2 deleted" in output and "row 3 (" in output


def test_a_deleted_last_row_is_named(five_rows, run_cli):
    tamper(five_rows, "DELETE FROM generations WHERE id = 5")
    code, output = verify(run_cli)
    assert code == 1 and "row 5 deleted" in output


def test_a_deleted_first_row_is_named(five_rows, run_cli):
    tamper(five_rows, "DELETE FROM generations WHERE id = 1")
    code, output = verify(run_cli)
    assert code == 1 and "row 2 (" in output


def test_an_inserted_row_is_named(five_rows, run_cli):
    with sqlite3.connect(five_rows) as conn:
        conn.execute("UPDATE generations SET id = -id WHERE id >= 3")  # make room for a row 3
        conn.execute("UPDATE generations SET id = 1 - id WHERE id < 0")
        conn.execute("INSERT INTO generations (id, at, reference, model, digest, engine, device, prompts, "
                     "prompt_tokens, completion_tokens, duration_s, allow_unsafe, pricing, amount, currency, hash) "
                     "SELECT 3, at, reference, model, digest, engine, device, prompts, 1, 1, duration_s, "
                     "allow_unsafe, pricing, amount, currency, hash FROM generations WHERE id = 2")
    conn.close()
    code, output = verify(run_cli)
    assert code == 1 and "row 3 (" in output


def test_a_row_appended_behind_gptstores_back_is_named(five_rows, run_cli):
    with sqlite3.connect(five_rows) as conn:
        conn.execute("INSERT INTO generations (at, reference, model, digest, engine, device, prompts, "
                     "prompt_tokens, completion_tokens, duration_s, allow_unsafe, pricing, amount, currency) "
                     "SELECT at, reference, model, digest, engine, device, prompts, 99, 99, duration_s, "
                     "allow_unsafe, pricing, amount, currency FROM generations WHERE id = 5")
    conn.close()
    code, output = verify(run_cli)
    assert code == 1 and "row 6 (" in output


def test_an_old_log_is_chained_as_found_and_keeps_growing(gptstore_home, run_cli):
    gptstore_home.mkdir(parents=True)
    with sqlite3.connect(gptstore_home / usage.FILENAME) as old:
        old.execute(OLD_SCHEMA)
        for tokens in (1, 2):
            old.execute("INSERT INTO generations (at, reference, model, digest, engine, device, prompts, "
                        "prompt_tokens, completion_tokens, duration_s, allow_unsafe, pricing, amount, currency) "
                        "VALUES ('2026-01-01T00:00:00+00:00', 'acme/poet:latest', 'acme/poet:1.0.0', ?, "
                        "'transformers', 'cpu', 1, ?, ?, 0.1, 0, 'per_1k_tokens', 1.0, 'USD')",
                        ["a" * 64, tokens, tokens])
    old.close()
    usage.record(entry(3))
    code, output = verify(run_cli)
    assert code == 0 and "3 rows, chain intact" in output and "rows 1-2 chained as found" in output
    assert [row.prompt_tokens for row in usage.records()] == [1, 2, 3]
    tamper(gptstore_home / usage.FILENAME, "UPDATE generations SET prompt_tokens = 7 WHERE id = 1")
    code, output = verify(run_cli)
    assert code == 1 and "row 1 (" in output


def test_gaps_of_an_old_log_are_chained_as_found(gptstore_home, run_cli):
    """Rows deleted before the chain existed are not reported as deleted: the upgrade chained the
    log as it found it."""
    gptstore_home.mkdir(parents=True)
    with sqlite3.connect(gptstore_home / usage.FILENAME) as old:
        old.execute(OLD_SCHEMA)
        for row_id in (1, 3):
            old.execute("INSERT INTO generations VALUES (?, '2026-01-01T00:00:00+00:00', 'acme/poet:latest', "
                        "'acme/poet:1.0.0', ?, 'transformers', 'cpu', 1, 5, 5, 0.1, 0, 'free', 0.0, 'USD')",
                        [row_id, "a" * 64])
    old.close()
    usage.record(entry(3))
    code, output = verify(run_cli)
    assert code == 0 and "3 rows, chain intact" in output and "rows 1-3 chained as found" in output
    tamper(gptstore_home / usage.FILENAME, "DELETE FROM generations WHERE id = 3")
    code, output = verify(run_cli)
    assert code == 1 and "deleted: row 4 (" in output


def test_an_empty_log_verifies(run_cli):
    code, output = verify(run_cli)
    assert code == 0 and "no usage recorded yet" in output


def _append(home: str, start: int) -> None:
    import os

    os.environ["GPTSTORE_HOME"] = home
    for tokens in range(start, start + 25):
        usage.record(entry(tokens))


def test_appenders_in_several_processes_make_one_chain(gptstore_home, run_cli):
    usage.record(entry(0))  # the log exists before the writers start
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_append, args=(str(gptstore_home), 100 * n)) for n in range(1, 4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    usage.record(entry(1))
    code, output = verify(run_cli)
    assert code == 0 and "77 rows, chain intact" in output
