"""The app on Starlette's rails: raw-path routes, the error class → status table, the lifespan,
threadpooled handlers, one request-body base, and the request guard (clean headers, closing a
connection whose body was not read, the head limit).

In process (Starlette's TestClient) where a test must patch the code a request runs; the
behaviour through a real server is covered by the other modules here.
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import Match
from starlette.testclient import TestClient

from gptstore.errors import (AuthError, ConflictError, DigestMismatch, GPTStoreError, ManifestError, ModelNotFound,
                             NotFoundError, TrustError, UnknownComponent, UsageError)
from gptstore.server import api_repos, api_revisions, api_uploads, app as app_module, commits
from gptstore.server.accounts import Accounts
from gptstore.server.http import Body, error_status
from gptstore.server.limits import RequestGuard
from gptstore.server.routing import RawPathRoute
from gptstore.server.settings import ServerSettings


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    return ServerSettings(data=tmp_path / "data")


@pytest.fixture
def client(settings: ServerSettings):
    with TestClient(app_module.create_app(settings), raise_server_exceptions=False) as client:
        yield client


def matched(method: str, raw_path: bytes, prefix: str = "") -> tuple[str, dict[str, str]]:
    """(handler name, params) of the first route that takes the request."""
    scope = {"type": "http", "method": method, "raw_path": raw_path, "path": "/ignored"}
    for route in app_module.routes(prefix):
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route.name, child["path_params"]
    raise AssertionError("the catch-all route must take every request")


# -- routing ------------------------------------------------------------------------------
def test_the_app_is_starlette_with_raw_path_routes_and_a_catch_all(settings):
    app = app_module.create_app(settings)
    assert isinstance(app, Starlette)
    assert all(isinstance(route, RawPathRoute) for route in app.routes)
    assert app.routes[-1].name == "not_found" and app.routes[-1].methods is None
    assert len(app.routes) == len(app_module.ROUTES) + len(app_module.web.ROUTES) + 1


def test_an_encoded_slash_stays_inside_one_revision_and_one_path():
    name, params = matched("GET", b"/api/models/alice/poet/tree/dev%2Fx/a%2Fb/c.txt")
    assert name == "tree"
    assert params == {"namespace": "alice", "name": "poet", "revision": "dev/x", "path": "a/b/c.txt"}
    name, params = matched("GET", b"/alice/poet/resolve/release%2F1.0/weights%20v2.bin")
    assert (name, params["revision"], params["path"]) == ("resolve", "release/1.0", "weights v2.bin")


def test_routes_match_the_whole_path_method_and_an_optional_trailing_slash():
    assert matched("GET", b"/api/models/alice/poet/refs/")[0] == "refs"
    assert matched("GET", b"/api/models/alice/poet/refs/extra")[0] == "not_found"
    assert matched("POST", b"/api/models/alice/poet/refs")[0] == "not_found"
    assert matched("HEAD", b"/alice/poet/resolve/main/config.json")[0] == "resolve"
    assert matched("HEAD", b"/api/models")[0] == "not_found"
    assert matched("GET", b"/api/models/alice/poet/revision/main")[1]["revision"] == "main"


def test_a_public_url_prefix_is_stripped_only_as_a_whole_segment():
    assert matched("GET", b"/hf/api/models", prefix="/hf")[0] == "list_models"
    assert matched("GET", b"/api/models", prefix="/hf")[0] == "list_models"  # direct access still works
    assert matched("GET", b"/hfx/api/models", prefix="/hf")[0] == "not_found"


def test_unknown_endpoints_are_404_with_an_error_code(client):
    response = client.delete("/api/whoami-v2")
    assert response.status_code == 404 and response.headers["x-error-code"] == "EntryNotFound"
    assert response.json() == {"error": "no such endpoint: DELETE /api/whoami-v2"}
    assert client.get("/api/datasets/a/b").headers["x-error-code"] == "RepoNotFound"


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("error, status, code", [
    (ModelNotFound("alice/poet", where="this store"), 404, "RepoNotFound"),
    (NotFoundError("no organisation 'acme'"), 404, "EntryNotFound"),
    (UnknownComponent("store", "ftp", ["hub"]), 404, "EntryNotFound"),
    (ConflictError("the name 'acme' is already taken"), 409, None),
    (UsageError("unknown scope 'admin'"), 400, None),
    (ManifestError("invalid gptstore.json: version: not semver"), 400, None),
    (TrustError("alice/poet:1.0.0 is not signed"), 400, None),
    (DigestMismatch("size differs"), 400, None),
])
def test_gptstore_errors_answer_with_the_status_of_their_class(client, monkeypatch, error, status, code):
    def fail(self, namespace):
        raise error

    monkeypatch.setattr(Accounts, "kind", fail)  # GET /api/gptstore/keys/{namespace} asks it first
    response = client.get("/api/gptstore/keys/acme")
    assert response.status_code == status, response.text
    assert response.json() == {"error": str(error)}
    assert response.headers["x-error-message"] == str(error)
    assert response.headers.get("x-error-code") == code


def test_an_auth_error_is_401_without_credentials_and_403_with_them(client, monkeypatch):
    def fail(self, namespace):
        raise AuthError("the token may not read keys")

    monkeypatch.setattr(Accounts, "kind", fail)
    assert client.get("/api/gptstore/keys/acme").status_code == 401
    assert client.get("/api/gptstore/keys/acme", headers={"Authorization": "Bearer gst_x"}).status_code == 403


def test_the_status_table_covers_every_branch_of_the_error_tree():
    assert error_status(ModelNotFound("a/b"), authenticated=True) == (404, "RepoNotFound")
    assert error_status(AuthError("no"), authenticated=False) == (401, None)
    assert error_status(AuthError("no"), authenticated=True) == (403, None)
    assert error_status(GPTStoreError("anything else"), authenticated=True) == (400, None)


def test_a_validation_error_escaping_a_handler_is_a_400_naming_the_field(client, monkeypatch):
    class Needs(BaseModel):
        size: int

    def fail(self, namespace):
        Needs.model_validate({"size": "many"})

    monkeypatch.setattr(Accounts, "kind", fail)
    response = client.get("/api/gptstore/keys/acme")
    assert response.status_code == 400
    assert response.json()["error"].startswith("invalid request: size: ")


def test_an_unexpected_error_is_a_500_that_names_no_internals(client, monkeypatch):
    def fail(self, namespace):
        raise RuntimeError("secret path /srv/data/catalog.sqlite3")

    monkeypatch.setattr(Accounts, "kind", fail)
    response = client.get("/api/gptstore/keys/acme")
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error; see the server log"}
    assert "secret" not in response.text and "secret" not in str(response.headers)


# -- handlers: threads and bodies ----------------------------------------------------------
def test_plain_handlers_run_off_the_event_loop_with_their_body_read(client, monkeypatch):
    seen: dict[str, Any] = {}

    def kind(self, namespace):
        try:
            asyncio.get_running_loop()
            seen["loop"] = True
        except RuntimeError:
            seen["loop"] = False
        seen["thread"] = threading.current_thread().name
        return None

    monkeypatch.setattr(Accounts, "kind", kind)
    assert client.get("/api/gptstore/keys/acme").status_code == 404
    assert seen["loop"] is False and seen["thread"] != threading.main_thread().name
    # validate-yaml is a plain handler too: it gets the body the route read for it
    assert client.post("/api/validate-yaml", json={"content": "---\nlicense: mit\n---\n"}).json()["errors"] == []


def test_only_streaming_or_non_blocking_handlers_are_async():
    asynchronous = {handler.__name__ for _, _, handler in app_module.ROUTES if inspect.iscoroutinefunction(handler)}
    # healthz answers without blocking; readyz runs its blocking checks on a thread of its own
    assert asynchronous == {"agent_harnesses", "commit", "lfs_upload", "lfs_upload_part", "xet_token",
                            "healthz", "readyz"}


def test_every_request_model_shares_one_body_base_that_ignores_unknown_fields():
    models = [obj for module in (api_repos, api_revisions, api_uploads, commits) for obj in vars(module).values()
              if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__]
    assert len(models) >= 15
    assert all(issubclass(model, Body) and model.__bases__ != (BaseModel,) for model in models)
    assert not any(name == "_Body" for module in (api_repos, api_revisions, api_uploads, commits)
                   for name in vars(module))
    assert api_revisions.NewTag.model_validate({"tag": "v1", "sent_by_a_newer_client": 1}).tag == "v1"


# -- lifespan -----------------------------------------------------------------------------
def test_the_lifespan_opens_the_store_and_closes_the_catalog(settings, monkeypatch):
    opened = []

    def open_state(settings):
        opened.append(real(settings))
        return opened[-1]

    real = app_module.open_state
    monkeypatch.setattr(app_module, "open_state", open_state)
    app = app_module.create_app(settings)
    with TestClient(app) as client:
        assert client.get("/api/models").json() == []
        assert len(opened) == 1 and opened[0].db.one("SELECT 1") is not None
    with pytest.raises((RuntimeError, sqlite3.ProgrammingError), match="closed"):
        opened[0].db.one("SELECT 1")


def test_without_its_lifespan_the_app_says_how_to_run_it(settings):
    client = TestClient(app_module.create_app(settings), raise_server_exceptions=True)
    with pytest.raises(RuntimeError, match="lifespan"):
        client.get("/api/models")


# -- the request guard --------------------------------------------------------------------
def run_guarded(app, *, headers: list[tuple[bytes, bytes]], body: bytes = b"", max_header_size: int = 65536,
                tmp: Path) -> list[dict[str, Any]]:
    """Messages a RequestGuard around ``app`` sends for one request."""
    settings = ServerSettings(data=tmp, max_header_size=max_header_size, request_timeout=5)
    scope = {"type": "http", "method": "POST", "raw_path": b"/x", "path": "/x", "query_string": b"",
             "headers": headers}
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    anyio.run(RequestGuard(app, settings=settings), scope, receive, send)
    return sent


def answer(headers: list[tuple[bytes, bytes]], *, read_body: bool):
    async def app(scope, receive, send):
        if read_body:
            while (await receive()).get("more_body"):
                pass
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
    return app


def test_the_guard_replaces_control_characters_in_every_header_value(tmp_path):
    app = answer([(b"x-a", b"one\r\nSet-Cookie: two"), (b"x-b", b"nul\x00esc\x1bdel\x7f"),
                  (b"x-utf8", "…".encode())], read_body=True)
    start = run_guarded(app, headers=[], tmp=tmp_path)[0]
    headers = dict(start["headers"])
    assert len(headers.pop(b"x-request-id")) == 32  # the guard's own, see test_hub_headers.py
    assert headers == {b"x-a": b"one??Set-Cookie: two", b"x-b": b"nul?esc?del?", b"x-utf8": "…".encode()}


def test_the_guard_closes_a_connection_whose_body_was_not_read(tmp_path):
    body_headers = [(b"content-length", b"5")]
    unread = run_guarded(answer([(b"connection", b"keep-alive")], read_body=False), headers=body_headers,
                         body=b"hello", tmp=tmp_path)[0]
    assert [v for k, v in unread["headers"] if k == b"connection"] == [b"close"]
    read = run_guarded(answer([], read_body=True), headers=body_headers, body=b"hello", tmp=tmp_path)[0]
    assert b"connection" not in dict(read["headers"])


def test_the_guard_refuses_a_head_over_the_limit_with_431(tmp_path):
    called = []

    async def app(scope, receive, send):
        called.append(scope)

    sent = run_guarded(app, headers=[(b"x-big", b"v" * 2000)], max_header_size=1024, tmp=tmp_path)
    assert sent[0]["status"] == 431 and (b"connection", b"close") in sent[0]["headers"]
    assert not called
