"""The storefront's catalogue through a real ``gptstore server``: categories and use cases from the
manifest, ratings and reviews, the listing's filters and sorts, privacy — driven by the stock
``huggingface_hub`` client, plain HTTP and gptstore's own SDK and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError

from gptstore.testing import SMALL, publish_package, register_key, signing_key, start_store

pytest.importorskip("cryptography")


@pytest.fixture(scope="module")
def shop(every_backend, tmp_path_factory):
    server = start_store(tmp_path_factory.mktemp("shop"), [*SMALL[:-2], "--page-size", "100"])
    yield server
    server.stop()


# the package helpers live in gptstore.testing (the storefront's page tests use them too)
_key, _register, publish = signing_key, register_key, publish_package


@pytest.fixture(scope="module")
def catalogue(shop, tmp_path_factory):
    """Five models: three public gptstore packages of different kinds, a private one, a plain repo."""
    from huggingface_hub import constants

    tmp = tmp_path_factory.mktemp("packages")
    alice_key, stranger_key = _key(), _key()
    _register(shop, "alice", alice_key, tmp)
    with pytest.MonkeyPatch.context() as patch:  # LFS, not Xet (module fixtures run before xet_off)
        patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        _publish_all(shop, tmp, alice_key, stranger_key)
    return {"tmp": tmp, "alice_key": alice_key, "stranger_key": stranger_key}


def _publish_all(shop, tmp, alice_key, stranger_key):
    publish(shop, tmp, "alice/helpdesk", user="alice", key=alice_key, category="chat", license="mit",
            use_cases=["customer-support replies", "FAQ answers"], languages=["en"], parameters=1000,
            description="Answers customers", pricing={"model": "per_1k_tokens", "amount": 0.02})
    publish(shop, tmp, "alice/coder", user="alice", category="code", license="apache-2.0", adapter=True,
            use_cases=["SQL from questions"], languages=["en", "DE"], parameters=5000)
    publish(shop, tmp, "acme/lawyer", user="carol", key=stranger_key, category="legal", license="mit",
            parameters=100_000, pricing={"model": "flat", "amount": 10, "currency": "EUR"})
    publish(shop, tmp, "bob/secret", user="bob", private=True, category="chat", use_cases=["customer-support"])
    shop.api("bob").create_repo("bob/plain")
    # priced models are gated "manual" from their first commit (test_gating.py); these tests download
    # them as consumers, so their providers open them
    shop.api("alice").update_repo_settings("alice/helpdesk", gated=False)
    shop.api("carol").update_repo_settings("acme/lawyer", gated=False)


def listing(shop, user: str | None = None, **params) -> list[dict]:
    """Every entry of ``GET /api/models`` with these parameters, following the ``Link`` pages."""
    client = shop.http(user)
    entries, url, query = [], "/api/models", list(_params(params))
    while url:
        answer = client.get(url, params=query)
        assert answer.status_code == 200, answer.text
        entries += answer.json()
        url, query = answer.links.get("next", {}).get("url"), None
    return entries


def _params(params):
    for name, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            yield name, str(item)


def ids(entries) -> list[str]:
    return [entry["id"] for entry in entries]


# -- catalogue fields -------------------------------------------------------------------------
def test_model_info_carries_the_catalogue_and_the_stock_client_parses_it(shop, catalogue):
    info = shop.api(None).model_info("alice/helpdesk")
    assert info.id == "alice/helpdesk" and info.downloads == 0
    raw = shop.http().get("/api/models/alice/helpdesk").json()["gptstore"]
    assert raw["category"] == "chat" and raw["use_cases"] == ["customer-support replies", "FAQ answers"]
    assert raw["format"] == "full" and raw["languages"] == ["en"] and raw["verified"] is True
    assert raw["signer"] and raw["rating"] == {"average": None, "count": 0} and raw["downloads_7d"] == 0
    assert raw["version"] == "1.0.0" and raw["pricing"]["amount"] == 0.02  # the summary is still there
    coder = shop.http().get("/api/models/alice/coder").json()["gptstore"]
    assert coder["format"] == "adapter" and coder["verified"] is False and coder["signer"] is None
    lawyer = shop.http().get("/api/models/acme/lawyer").json()["gptstore"]
    assert lawyer["verified"] is False  # signed, but by a key nobody registered for acme
    assert "gptstore" not in shop.http().get("/api/models/bob/plain").json()
    listed = {m.id: m for m in shop.api(None).list_models(search="alice")}  # stock client, its own params
    assert set(listed) == {"alice/helpdesk", "alice/coder"}


def test_use_cases_and_category_are_searchable(shop, catalogue):
    assert ids(listing(shop, search="support")) == ["alice/helpdesk"]
    assert ids(listing(shop, search="sql questions")) == ["alice/coder"]
    assert ids(listing(shop, search="legal")) == ["acme/lawyer"]
    assert [m.id for m in shop.api(None).list_models(search="customer support")] == ["alice/helpdesk"]
    assert set(ids(listing(shop, "bob", search="support"))) == {"alice/helpdesk", "bob/secret"}


@pytest.mark.parametrize("params, expected", [
    ({"category": "chat"}, {"alice/helpdesk"}),
    ({"category": ["chat", "legal"]}, {"alice/helpdesk", "acme/lawyer"}),
    ({"license": "MIT"}, {"alice/helpdesk", "acme/lawyer"}),
    ({"max_price": 0}, {"alice/coder"}),
    ({"min_price": 0.01, "max_price": 1}, {"alice/helpdesk"}),
    ({"min_parameters": 2000}, {"alice/coder", "acme/lawyer"}),
    ({"max_parameters": 5000, "min_parameters": 1000}, {"alice/helpdesk", "alice/coder"}),
    ({"format": "adapter"}, {"alice/coder"}),
    ({"format": "full"}, {"alice/helpdesk", "acme/lawyer"}),
    ({"verified": "true"}, {"alice/helpdesk"}),
    ({"language": "de"}, {"alice/coder"}),
    ({"category": "chat", "filter": "gptstore", "author": "alice"}, {"alice/helpdesk"}),
])
def test_filters(shop, catalogue, params, expected):
    assert set(ids(listing(shop, **params))) == expected


def test_private_models_are_filtered_for_their_owner_only(shop, catalogue):
    assert set(ids(listing(shop, "bob", category="chat"))) == {"alice/helpdesk", "bob/secret"}
    assert set(ids(listing(shop, "carol", category="chat"))) == {"alice/helpdesk"}


@pytest.mark.parametrize("params, words", [
    ({"category": "poetry"}, "category"),
    ({"min_price": "-1"}, "min_price"),
    ({"max_price": "nan"}, "max_price"),
    ({"format": "lora"}, "format"),
    ({"min_parameters": "1e3"}, "min_parameters"),
    ({"verified": "maybe"}, "verified"),
    ({"sort": "stars"}, "unknown sort"),
    ({"category": ["chat"] * 13}, "category"),
])
def test_bad_filters_are_400_naming_the_parameter(shop, catalogue, params, words):
    answer = shop.http().get("/api/models", params=list(_params(params)))
    assert answer.status_code == 400 and words in answer.json()["error"]


# -- sorts and downloads ----------------------------------------------------------------------
def _download(shop, repo_id: str, user: str | None, cache: Path) -> None:
    token = shop.tokens[f"{user}:write"] if user else False
    hf_hub_download(repo_id, "gptstore.json", endpoint=shop.url, token=token, cache_dir=cache, force_download=True)


def test_sorts(shop, catalogue, tmp_path):
    for _ in range(2):
        _download(shop, "acme/lawyer", None, tmp_path)
    _download(shop, "alice/coder", "bob", tmp_path)
    assert ids(listing(shop, sort="price"))[:3] == ["alice/coder", "alice/helpdesk", "acme/lawyer"]
    assert ids(listing(shop, sort="trending"))[:2] == ["acme/lawyer", "alice/coder"]
    assert ids(listing(shop, sort="downloads"))[:2] == ["acme/lawyer", "alice/coder"]
    assert ids(listing(shop, sort="newest"))[0] == "bob/plain"
    lawyer = shop.http().get("/api/models/acme/lawyer").json()
    assert lawyer["gptstore"]["downloads_7d"] == lawyer["downloads"] == 2
    # the stock client's own sort names keep working
    assert [m.id for m in shop.api(None).list_models(sort="trending_score", limit=2)] == ["acme/lawyer", "alice/coder"]


# -- reviews ------------------------------------------------------------------------------------
def reviews_url(repo_id: str) -> str:
    return f"/api/gptstore/models/{repo_id}/reviews"


def test_reviews_are_written_edited_and_deleted_by_their_author(shop, catalogue, tmp_path):
    url = reviews_url("alice/helpdesk")
    _download(shop, "alice/helpdesk", "bob", tmp_path)  # bob pulled it; carol did not
    created = shop.http("bob").put(url, json={"stars": 5, "text": "Great support bot"})
    assert created.status_code == 201 and created.json()["downloaded"] is True
    assert shop.http("carol").put(url, json={"stars": 2}).json()["downloaded"] is False
    listed = shop.http().get(url).json()
    assert listed["rating"] == {"average": 3.5, "count": 2}
    assert {r["user"]: (r["stars"], r["text"]) for r in listed["reviews"]} == {
        "bob": (5, "Great support bot"), "carol": (2, "")}
    edited = shop.http("carol").put(url, json={"stars": 4, "text": "Better after 1.0.1"})
    assert edited.status_code == 200 and edited.json()["created_at"] <= edited.json()["updated_at"]
    assert shop.http().get(url).json()["rating"] == {"average": 4.5, "count": 2}
    info = shop.http().get("/api/models/alice/helpdesk").json()
    assert info["gptstore"]["rating"] == {"average": 4.5, "count": 2}
    assert shop.http("bob").delete(url).status_code == 200
    assert shop.http("bob").delete(url).status_code == 404
    assert shop.http().get(url).json()["rating"] == {"average": 4.0, "count": 1}
    assert shop.http("bob").put(reviews_url("acme/lawyer"), json={"stars": 3}).status_code == 201
    assert ids(listing(shop, sort="rating"))[:2] == ["alice/helpdesk", "acme/lawyer"]
    hits = [e for e in listing(shop, search="helpdesk") if e["id"] == "alice/helpdesk"]
    assert hits[0]["gptstore"]["rating"]["count"] == 1  # ratings are in search results too


@pytest.mark.parametrize("user, scope, body, status", [
    (None, "write", {"stars": 4}, 401),
    ("alice", "read", {"stars": 4}, 403),  # a read-only token
    ("alice", "write", {"stars": 5}, 403),  # the publisher
    ("bob", "write", {"stars": 6}, 400),
    ("bob", "write", {"stars": 0}, 400),
    ("bob", "write", {"stars": "5"}, 400),
    ("bob", "write", {"stars": 4.5}, 400),
    ("bob", "write", {"stars": 4, "text": "x" * 2001}, 400),
    ("bob", "write", {"stars": 4, "text": "bell\x07"}, 400),
    ("bob", "write", {"text": "no stars"}, 400),
])
def test_review_writes_are_refused_when_they_should_be(shop, catalogue, user, scope, body, status):
    client = shop.http(user, scope) if user else shop.http()
    answer = client.put(reviews_url("alice/coder"), json=body)
    assert answer.status_code == status, answer.text
    assert shop.http().get(reviews_url("alice/coder")).json()["reviews"] == []


def test_private_models_reviews_are_invisible_to_others(shop, catalogue, tmp_path):
    publish(shop, tmp_path, "acme/internal", user="alice", category="other")
    url = reviews_url("acme/internal")
    assert shop.http("bob").put(url, json={"stars": 1, "text": "meh"}).status_code == 201
    shop.api("alice").update_repo_settings("acme/internal", private=True)
    for user in (None, "bob"):  # bob wrote a review, but may no longer see the model
        client = shop.http(user)
        assert client.get(url).status_code == 404
        assert client.put(url, json={"stars": 5}).status_code == 404
        assert client.delete(url).status_code == 404
        assert client.get("/api/models/acme/internal").status_code == 404
        assert "acme/internal" not in ids(listing(shop, user, sort="rating"))
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=shop.url, token=False).model_info("acme/internal")
    member = shop.http("carol").get(url).json()  # acme's members see it
    assert member["rating"]["count"] == 1
    assert "acme/internal" in ids(listing(shop, "carol", category="other"))


# -- verified publisher follows the registered keys ----------------------------------------------
def test_verified_follows_key_registration_and_removal(shop, catalogue):
    assert "acme/lawyer" not in ids(listing(shop, verified="true"))
    keyid = _register(shop, "acme", catalogue["stranger_key"], catalogue["tmp"])
    assert "acme/lawyer" in ids(listing(shop, verified="true"))
    assert shop.http().get("/api/models/acme/lawyer").json()["gptstore"]["signer"] == keyid
    shop.admin("key", "rm", "acme", keyid)
    assert "acme/lawyer" not in ids(listing(shop, verified="true"))


# -- SDK and CLI ------------------------------------------------------------------------------
def test_sdk_and_cli_search_with_category_and_sort(shop, catalogue, run_cli):
    import gptstore

    hits = gptstore.search(store=shop.url, category="chat", sort="rating")
    assert [h.reference for h in hits] == ["alice/helpdesk:1.0.0"]
    assert hits[0].category == "chat" and hits[0].verified and hits[0].rating is not None
    cheap = gptstore.search(store=shop.url, max_price=1, format="full", sort="price")
    assert [h.reference for h in cheap] == ["alice/helpdesk:1.0.0"]
    result = run_cli("search", "--store", shop.url, "--category", "legal", "--category", "code", "--sort", "price",
                     "--json")
    assert result.exit_code == 0, result.output
    assert [h["reference"] for h in json.loads(result.output)] == ["alice/coder:1.0.0", "acme/lawyer:1.0.0"]
    table = run_cli("search", "support", "--store", shop.url, "--verified")
    assert table.exit_code == 0 and "alice/helpdesk" in table.output and "chat" in table.output
    bad = run_cli("search", "--store", shop.url, "--category", "poetry")
    assert bad.exit_code == 2 and "summarization" in bad.output


def test_library_search_filters_by_category_and_refuses_server_sorts(run_cli, tiny_gpt):
    from gptstore.library import Library
    from gptstore.packaging import package

    package(tiny_gpt, name="me/bot", version="1.0.0", category="chat", use_cases=["small talk"])
    Library().publish(tiny_gpt)
    import gptstore

    assert [h.reference for h in gptstore.search(category="chat", store=str(Library().root))] == ["me/bot:1.0.0"]
    assert gptstore.search(category="code", store=str(Library().root)) == []
    result = run_cli("search", "--store", str(Library().root), "--sort", "rating")
    assert result.exit_code != 0 and "store server" in result.output


# -- a catalog from before schema 5 fills in by itself ----------------------------------------------
def test_a_catalog_upgraded_from_schema_4_gets_its_catalogue(shop, catalogue):
    import sqlite3

    shop.require_sqlite()
    before = shop.http().get("/api/models/alice/helpdesk").json()["gptstore"]
    shop.stop()
    conn = sqlite3.connect(shop.data / "catalog.sqlite3")
    conn.executescript("DROP TABLE catalogue; DROP TABLE catalogue_fts; DROP TABLE reviews; "
                       "DROP TABLE user_downloads; DROP TABLE daily_downloads; PRAGMA user_version = 4;")
    conn.close()
    shop.start()
    after = shop.http().get("/api/models/alice/helpdesk").json()["gptstore"]
    assert after["category"] == before["category"] == "chat" and after["verified"] is True
    assert after["rating"] == {"average": None, "count": 0}  # the reviews went with the dropped table
    assert ids(listing(shop, search="support", category="chat")) == ["alice/helpdesk"]


# -- an OpenSSF model.sig alone earns the mark, as it passes the commit check --------------------------
def test_a_model_signed_only_with_model_sig_is_verified(shop, catalogue, tmp_path):
    import hashlib

    from gptstore.manifest import OMS_SIGNATURE_FILE, SIGNATURE_FILE, dumps, validate
    from gptstore.oms import sign_package
    from gptstore.signing import export_public_key, generate_key
    from gptstore.testing import PACKAGE_FORMAT

    keyid = generate_key("alice-oms", type="ec-p256").keyid
    pub = tmp_path / "alice-oms.pub"
    pub.write_text(export_public_key("alice-oms"))
    shop.admin("key", "add", "alice", str(pub))
    folder = tmp_path / "oms-poet"
    folder.mkdir()
    data = b"weights of alice/oms-poet"
    (folder / "weights.bin").write_bytes(data)
    entry = {"path": "weights.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = validate({"namespace": "alice", "name": "oms-poet", "version": "1.0.0", "category": "chat",
                         "format": {**PACKAGE_FORMAT, "parameters": 1000}, "files": [entry]})
    (folder / "gptstore.json").write_bytes(dumps(manifest))
    sign_package(folder, key="alice-oms", format="oms")
    assert (folder / OMS_SIGNATURE_FILE).exists() and not (folder / SIGNATURE_FILE).exists()
    api, registered = shop.api("alice"), True
    api.create_repo("alice/oms-poet")
    try:
        api.upload_folder(folder_path=folder, repo_id="alice/oms-poet")
        assert "alice/oms-poet" in ids(listing(shop, verified="true"))
        raw = shop.http().get("/api/models/alice/oms-poet").json()["gptstore"]
        assert raw["verified"] is True and raw["signer"] == keyid
        page = shop.http().get("/alice/oms-poet")
        assert page.status_code == 200 and f'Signed by <code class="signer">{keyid}</code>' in page.text
        shop.admin("key", "rm", "alice", keyid)  # still signed, by a key no longer registered
        registered = False
        assert "alice/oms-poet" not in ids(listing(shop, verified="true"))
        page = shop.http().get("/alice/oms-poet")
        assert "but not by a key registered for alice" in page.text and "Not signed." not in page.text
    finally:
        api.delete_repo("alice/oms-poet")
        if registered:
            shop.admin("key", "rm", "alice", keyid)
