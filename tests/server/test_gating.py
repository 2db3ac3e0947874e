"""Gated and paid access through a real ``gptstore server``, driven by the stock huggingface_hub
client (update_repo_settings, access requests, GatedRepoError), gptstore's CLI and a real plugin
that decides requests (the ``decide_access`` hook)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

from gptstore.testing import publish_package as publish, start_store

PAID = {"model": "per_1k_tokens", "amount": 0.5, "currency": "USD"}


@pytest.fixture(scope="module")
def shop(store_server, tmp_path_factory):
    """alice/paid (priced: gated manual by default), alice/free (not gated), alice/open (auto)."""
    from huggingface_hub import constants

    tmp = tmp_path_factory.mktemp("gated")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        publish(store_server, tmp, "alice/paid", user="alice", pricing=PAID, description="A paid poet")
        publish(store_server, tmp, "alice/free", user="alice")
        publish(store_server, tmp, "alice/open", user="alice", pricing=PAID)
    store_server.api("alice").update_repo_settings("alice/open", gated="auto")
    return store_server


def download(store, user, repo_id, cache: Path, filename="weights.bin"):
    token = store.tokens[f"{user}:write"] if user else False
    return hf_hub_download(repo_id, filename, endpoint=store.url, token=token, cache_dir=cache)


def test_paid_model_is_gated_manual_by_default_and_settings_change_it(shop, hf_cache):
    alice = shop.api("alice")
    assert alice.model_info("alice/paid").gated == "manual"
    assert alice.model_info("alice/free").gated is False
    assert shop.api("bob").model_info("alice/open").gated == "auto"
    listed = {m.id: m.gated for m in shop.api(None).list_models(author="alice")}
    assert listed["alice/paid"] == "manual" and listed["alice/free"] is False
    alice.update_repo_settings("alice/free", gated="manual")
    assert alice.model_info("alice/free").gated == "manual"
    alice.update_repo_settings("alice/free", gated=False)
    assert alice.model_info("alice/free").gated is False
    with pytest.raises(HfHubHTTPError) as err:  # only the namespace's writers change settings
        shop.api("bob").update_repo_settings("alice/paid", gated=False)
    assert err.value.response.status_code == 403


def test_gated_files_answer_gated_repo_to_others_and_are_open_to_members(shop, hf_cache, tmp_path):
    with pytest.raises(GatedRepoError) as err:
        download(shop, "bob", "alice/paid", hf_cache)
    response = err.value.response
    assert response.status_code == 403 and response.headers["X-Error-Code"] == "GatedRepo"
    assert f"Visit {shop.url}/alice/paid to ask for access" in response.headers["X-Error-Message"]
    with pytest.raises(GatedRepoError) as anonymous:
        snapshot_download("alice/paid", endpoint=shop.url, token=False, cache_dir=hf_cache)
    assert anonymous.value.response.status_code == 401
    with shop.http("bob") as bob:  # HEAD too; metadata stays visible, as on the Hub
        assert bob.head("/alice/paid/resolve/main/gptstore.json").status_code == 403
        assert bob.get("/api/models/alice/paid/tree/main").status_code == 200
    mine = Path(download(shop, "alice", "alice/paid", hf_cache))
    assert mine.read_bytes().startswith(b"weights of alice/paid")
    assert Path(download(shop, "carol", "alice/free", tmp_path / "c")).exists()


def test_request_pending_accept_download_then_cancel_and_reject(shop, tmp_path):
    with shop.http("bob") as bob:
        asked = bob.post("/api/models/alice/paid/ask-access", json={"reason": "poems for my shop"})
    assert asked.status_code == 200 and asked.json()["status"] == "pending"
    alice = shop.api("alice")
    [pending] = alice.list_pending_access_requests("alice/paid")
    assert pending.username == "bob" and pending.status == "pending"
    assert pending.fields == {"reason": "poems for my shop"}
    with pytest.raises(GatedRepoError):
        download(shop, "bob", "alice/paid", tmp_path / "before")
    with pytest.raises(HfHubHTTPError) as err:  # not an owner: may not list
        list(shop.api("bob").list_pending_access_requests("alice/paid"))
    assert err.value.response.status_code == 403

    alice.accept_access_request("alice/paid", "bob")
    assert [r.username for r in alice.list_accepted_access_requests("alice/paid")] == ["bob"]
    assert list(alice.list_pending_access_requests("alice/paid")) == []
    after = Path(download(shop, "bob", "alice/paid", tmp_path / "after"))
    assert after.read_bytes().startswith(b"weights of alice/paid")

    alice.cancel_access_request("alice/paid", "bob")  # back to pending: no access
    with pytest.raises(GatedRepoError):
        download(shop, "bob", "alice/paid", tmp_path / "cancelled")
    alice.reject_access_request("alice/paid", "bob", rejection_reason="no licence")
    assert [r.username for r in alice.list_rejected_access_requests("alice/paid")] == ["bob"]
    with pytest.raises(GatedRepoError):
        download(shop, "bob", "alice/paid", tmp_path / "rejected")
    with pytest.raises(HfHubHTTPError) as missing:
        alice.accept_access_request("alice/paid", "carol")
    assert missing.value.response.status_code == 404


def test_grant_gives_access_without_a_request(shop, tmp_path):
    alice = shop.api("alice")
    alice.grant_access("alice/paid", "carol")
    assert "carol" in [r.username for r in alice.list_accepted_access_requests("alice/paid")]
    assert Path(download(shop, "carol", "alice/paid", tmp_path)).exists()
    with pytest.raises(HfHubHTTPError) as again:
        alice.grant_access("alice/paid", "carol")
    assert again.value.response.status_code == 400


def test_auto_gating_accepts_a_request_at_once(shop, tmp_path):
    with pytest.raises(GatedRepoError):
        download(shop, "bob", "alice/open", tmp_path / "before")
    with shop.http("bob") as bob:
        assert bob.post("/api/models/alice/open/ask-access").json()["status"] == "accepted"
    assert Path(download(shop, "bob", "alice/open", tmp_path / "after")).exists()
    with shop.http() as anonymous:
        assert anonymous.post("/api/models/alice/open/ask-access").status_code == 401


def test_pull_of_a_gated_model_says_where_to_request_access(shop, run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTSTORE_HOME", str(tmp_path / "consumer"))
    monkeypatch.setenv("GPTSTORE_TOKEN", shop.tokens["bob:write"])
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    result = run_cli("pull", "alice/paid", "--store", shop.url)
    assert result.exit_code != 0
    assert f"request access at {shop.url}/alice/paid" in result.output
    assert len(result.output.strip().splitlines()) <= 2, result.output  # the error line and its hint


# -- the decide_access hook, with a real entry-point plugin in the server process -----------------
PLUGIN = '''
import gptstore

@gptstore.hookimpl
def decide_access(repo_id, user, fields, gated, pricing):
    if pricing is None or pricing["model"] == "free":
        return None
    if fields.get("payment") == "paid-42":
        return "accepted"
    if fields.get("payment"):
        return "rejected"
    return None
'''


def test_hook_decide_access(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "pay_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "pay_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (site / "pay_plugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: pay-plugin\n"
                                                                 "Version: 1.0\n")
    (site / "pay_plugin-1.0.dist-info" / "entry_points.txt").write_text("[gptstore]\npay = pay_plugin\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("GPTSTORE_LOAD_PLUGINS", "pay")
    server = start_store(tmp_path / "store")
    try:
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        publish(server, tmp_path / "pkg", "alice/paid", user="alice", pricing=PAID)
        with server.http("bob") as bob, server.http("carol") as carol:
            paid = bob.post("/api/models/alice/paid/ask-access", json={"payment": "paid-42"})
            forged = carol.post("/api/models/alice/paid/ask-access", json={"payment": "forged"})
        assert paid.json()["status"] == "accepted" and forged.json()["status"] == "rejected"
        alice = server.api("alice")
        assert [r.username for r in alice.list_accepted_access_requests("alice/paid")] == ["bob"]
        assert [r.username for r in alice.list_rejected_access_requests("alice/paid")] == ["carol"]
        assert Path(download(server, "bob", "alice/paid", tmp_path / "bob")).exists()
        with server.http("carol") as carol:  # undecided by the plugin: waits for alice (manual)
            assert carol.post("/api/models/alice/paid/ask-access", json={}).json()["status"] == "pending"
    finally:
        server.stop()


def test_a_schema_5_catalog_gains_the_gating_tables(tmp_path):
    from gptstore.server.db import SCHEMA_VERSION, connect

    path = tmp_path / "catalog.sqlite"
    connect(path).close()
    import sqlite3

    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE access_requests; DROP TABLE repo_gating; PRAGMA user_version = 5;")
    conn.close()
    db = connect(path)
    try:
        assert db.one("PRAGMA user_version")[0] == SCHEMA_VERSION >= 6
        assert db.all("SELECT * FROM repo_gating") == [] and db.all("SELECT * FROM access_requests") == []
    finally:
        db.close()
