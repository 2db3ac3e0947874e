"""Sign-in with a store token into a session cookie; CSRF on every form (a real server process)."""

from __future__ import annotations

import re

import httpx
import pytest

from gptstore.testing import StoreServer


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert found, page.text
    return found.group(1)


def _browser(store: StoreServer) -> httpx.Client:
    return httpx.Client(base_url=store.url, timeout=30, follow_redirects=False)


def _sign_in(store: StoreServer, client: httpx.Client, token: str, next_path: str = "/") -> httpx.Response:
    page = client.get("/login")
    return client.post("/login", data={"csrf": _csrf(page), "token": token, "next": next_path})


def test_login_page_is_inert_html(store_server: StoreServer) -> None:
    page = _browser(store_server).get("/login")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("gptstore_csrf=") and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_sign_in_sets_a_session_cookie_that_names_the_user(store_server: StoreServer) -> None:
    with _browser(store_server) as client:
        answer = _sign_in(store_server, client, store_server.tokens["alice:write"], next_path="/login")
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("gptstore_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        assert store_server.tokens["alice:write"] not in cookie  # the cookie never holds the token
        assert 'class="whoami">alice<' in client.get("/login").text


def test_sign_in_refuses_an_unknown_token(store_server: StoreServer) -> None:
    with _browser(store_server) as client:
        answer = _sign_in(store_server, client, "gst_not-a-token")
        assert answer.status_code == 401 and "unknown or revoked" in answer.text
        assert "gptstore_session" not in answer.headers.get("set-cookie", "")


def test_sign_in_goes_only_to_paths_of_this_store(store_server: StoreServer) -> None:
    with _browser(store_server) as client:
        for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
            answer = _sign_in(store_server, client, store_server.tokens["bob:write"], next_path=target)
            assert answer.headers["location"] == "/", target


@pytest.mark.parametrize("attack", ["no-token", "wrong-token", "other-cookie", "foreign-origin"])
def test_forms_refuse_cross_site_posts(store_server: StoreServer, attack: str) -> None:
    with _browser(store_server) as client:
        token = _csrf(client.get("/login"))
        data = {"token": store_server.tokens["alice:write"], "csrf": token}
        headers = {}
        if attack == "no-token":
            del data["csrf"]
        elif attack == "wrong-token":
            data["csrf"] = "0" * 64
        elif attack == "other-cookie":
            client.cookies.set("gptstore_csrf", "f" * 32)
        else:
            headers["origin"] = "https://evil.example"
        answer = client.post("/login", data=data, headers=headers)
        assert answer.status_code == 403
        assert "gptstore_session" not in answer.headers.get("set-cookie", "")


def test_revoking_the_token_ends_the_session(store_server: StoreServer) -> None:
    token = store_server.admin("token", "create", "carol", "--scope", "read", "--name", "browser")
    with _browser(store_server) as client:
        _sign_in(store_server, client, token)
        assert 'class="whoami">carol<' in client.get("/login").text
        token_id = next(line.split()[0] for line in store_server.admin("token", "list", "carol").splitlines()
                        if "browser" in line)
        store_server.admin("token", "revoke", token_id)
        assert "whoami" not in client.get("/login").text


def test_a_forged_session_cookie_is_ignored(store_server: StoreServer) -> None:
    with _browser(store_server) as client:
        _sign_in(store_server, client, store_server.tokens["alice:write"])
        value = client.cookies["gptstore_session"]
        token_id, expires, mac = value.split(".")
        client.cookies.set("gptstore_session", f"{token_id}.{int(expires) + 10**6}.{mac}")
        assert "whoami" not in client.get("/login").text


def test_sign_out_clears_the_session(store_server: StoreServer) -> None:
    with _browser(store_server) as client:
        _sign_in(store_server, client, store_server.tokens["alice:write"])
        page = client.get("/login")
        answer = client.post("/logout", data={"csrf": _csrf(page)})
        assert answer.status_code == 303
        assert "whoami" not in client.get("/login").text
