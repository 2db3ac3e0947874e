"""``gptstore serve --pull``: a model the library lacks is pulled from the store (a real
``gptstore server``), verified, then served; without --pull it is a 404."""

from __future__ import annotations

import pytest

import gptstore
from gptstore.testing import publish_copy

from .conftest import start_serve

openai = pytest.importorskip("openai")


def test_pull_on_request(store_server, tiny_gpt_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTSTORE_HOME", str(tmp_path / "provider"))
    publish_copy(tiny_gpt_dir, tmp_path / "pkg", "alice/served")
    gptstore.push("alice/served", store=store_server.url, token=store_server.tokens["alice:write"])
    consumer = tmp_path / "consumer"
    env = {"HF_HUB_OFFLINE": ""}
    plain = start_serve(consumer, env=env)
    try:
        with pytest.raises(openai.NotFoundError, match="--pull"):
            plain.client().completions.create(model="alice/served:1.0.0", prompt="x", max_tokens=2)
    finally:
        plain.stop()
    pulling = start_serve(consumer, "--pull", "--store", store_server.url,
                          "--token", store_server.tokens["alice:read"], env=env)
    try:
        answer = pulling.client().completions.create(model="alice/served:1.0.0", prompt="x", max_tokens=3)
        assert answer.usage.completion_tokens >= 1
        monkeypatch.setenv("GPTSTORE_HOME", str(consumer))
        assert gptstore.Library().get("alice/served:1.0.0").manifest.version == "1.0.0"  # in the library now
        assert "alice/served:1.0.0" in {m.id for m in pulling.client().models.list()}
    finally:
        pulling.stop()
