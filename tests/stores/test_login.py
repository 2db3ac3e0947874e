"""stores.login.login: a token is checked against the store that will receive it, then kept for
exactly that URL (mode 0600); what `gptstore login` calls."""

from __future__ import annotations

import json

import pytest

from gptstore.errors import AuthError, StoreError, UsageError
from gptstore.stores.auth import credentials_file, token_for
from gptstore.stores.login import login


def test_login_checks_the_token_and_saves_it_for_that_url(store_server):
    token = store_server.tokens["alice:read"]
    done = login(store_server.url + "/", token)
    assert (done.url, done.user, done.path) == (store_server.url, "alice", credentials_file())
    assert oct(done.path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(done.path.read_text()) == {store_server.url: token}
    assert token_for(store_server.url) == token
    assert token_for(store_server.url.replace("127.0.0.1", "localhost")) is None  # another URL: not sent


def test_a_refused_token_is_not_saved(store_server):
    with pytest.raises(AuthError, match=r"did not accept the token \(HTTP 401\)"):
        login(store_server.url, "gst_not_a_token")
    assert not credentials_file().exists()


def test_an_unreachable_store_is_not_a_bad_token():
    with pytest.raises(StoreError, match="cannot reach http://127.0.0.1:9 to check the token"):
        login("http://127.0.0.1:9", "gst_anything")
    assert not credentials_file().exists()


@pytest.mark.parametrize("url, token, error, message", [
    ("http://127.0.0.1:9", "", UsageError, "no token given"),
    ("http://127.0.0.1:9", "   ", UsageError, "no token given"),
    ("/some/library", "gst_x", UsageError, "not a hub URL"),
])
def test_login_refuses_what_cannot_be_a_login(url, token, error, message):
    with pytest.raises(error, match=message):
        login(url, token)
    assert not credentials_file().exists()


def test_login_offline_sends_nothing(monkeypatch):
    monkeypatch.setenv("GPTSTORE_OFFLINE", "1")
    with pytest.raises(StoreError, match="offline"):
        login("http://127.0.0.1:9", "gst_anything")


def test_login_cli_prints_who_and_where(store_server, run_cli):
    done = run_cli("login", "--store", store_server.url, input=store_server.tokens["alice:write"] + "\n")
    assert done.exit_code == 0, done.output
    assert f"Logged in to {store_server.url} as alice; token saved in {credentials_file()}" in done.output
    assert store_server.tokens["alice:write"] not in done.output  # prompted with hidden input
