"""`gptstore lock` without --store pins the store a model was pulled from (recorded at pull)."""

from __future__ import annotations

import json
import shutil

from gptstore.library import Library
from gptstore.packaging import package


def test_lock_pins_the_store_the_model_was_pulled_from(store_server, tiny_gpt_dir, tmp_path, monkeypatch, run_cli):
    monkeypatch.delenv("GPTSTORE_STORE", raising=False)
    monkeypatch.setenv("GPTSTORE_TOKEN", store_server.tokens["alice:write"])
    source = tmp_path / "poet"
    shutil.copytree(tiny_gpt_dir, source)
    package(source, name="alice/locked", version="1.0.0")
    model = Library().publish(source)

    local_only = run_cli("lock", "alice/locked")
    assert local_only.exit_code == 2
    assert "alice/locked was published to the local library only" in local_only.output
    assert "pass --store URL" in local_only.output and "gptstore push alice/locked --store URL" in local_only.output
    assert len(local_only.output.strip().splitlines()) == 1
    assert run_cli("push", "alice/locked", "--store", store_server.url).exit_code == 0

    monkeypatch.setenv("GPTSTORE_HOME", str(tmp_path / "consumer"))  # a consumer pulls it, then locks
    assert run_cli("pull", "alice/locked", "--store", store_server.url).exit_code == 0
    locked = run_cli("lock", "alice/locked")
    assert locked.exit_code == 0, locked.output
    [entry] = json.loads(locked.stdout)["models"]
    assert entry["store"] == store_server.url and entry["digest"] == f"sha256:{model.digest}"
    assert len(entry["revision"]) == 40  # the hub's commit, not a library digest

    lock_file = tmp_path / "gptstore.lock"
    lock_file.write_text(locked.stdout)
    monkeypatch.setenv("GPTSTORE_HOME", str(tmp_path / "elsewhere"))  # the lock file reproduces it elsewhere
    assert run_cli("pull", "--lock", str(lock_file)).exit_code == 0
    assert Library().resolve("alice/locked")[1] == model.digest
