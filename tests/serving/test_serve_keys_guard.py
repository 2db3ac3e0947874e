"""``gptstore serve --api-keys`` with the guard plugin loaded: 401s, usage rows per key, filtered
text (streamed too), metrics, and a refused non-loopback host."""

from __future__ import annotations

import json
import re
import time

import pytest

from gptstore.serving.settings import hash_key

from .conftest import start_serve

openai = pytest.importorskip("openai")

PROMPT = "def parse(text):"
SUFFIX = " Write to bob@example.com about hunter2."
MASKED = " Write to [email] about [blocked]."
#: an entry-point plugin (a real distribution on the server's path) that leaks personal data into
#: every completion before the guard (trylast) sees it (the tiny model's own text is unpredictable),
#: and makes a generation slow when its prompt says so (the tiny model is too fast to queue behind)
LEAKY = f"""
import time

import gptstore

@gptstore.hookimpl
def before_generate(prompts):
    if any("take-your-time" in prompt for prompt in prompts):
        time.sleep(1.5)

@gptstore.hookimpl
def after_generate(completions):
    for completion in completions:
        completion.text += {SUFFIX!r}
"""
KEYS = {"alice": "sk-alice-123", "bob": "sk-bob-456"}


@pytest.fixture(scope="module")
def guarded(served_home, tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    keys = folder / "keys.txt"
    keys.write_text("# name: sha256 of the key\n" + "".join(f"{n}: {hash_key(k)}\n" for n, k in KEYS.items()))
    policy = folder / "guard.json"
    policy.write_text(json.dumps({"block": ["forbidden", "hunter2"]}))
    site = folder / "site"
    (site / "leaky_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "leaky_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: leaky-plugin\nVersion: 0.1\n")
    (site / "leaky_plugin-0.1.dist-info" / "entry_points.txt").write_text("[gptstore]\nleaky = leaky_plugin\n")
    (site / "leaky_plugin.py").write_text(LEAKY)
    env = {"GPTSTORE_GUARD_CONFIG": str(policy), "PYTHONPATH": str(site)}
    env_plugins = {"GPTSTORE_LOAD_PLUGINS": "gptstore-guard,leaky-plugin"}
    running = start_serve(served_home, "--api-keys", str(keys), "--max-models", "1", env=env | env_plugins)
    running.policy = policy
    yield running
    running.stop()


def test_missing_or_wrong_key_is_401(guarded):
    with pytest.raises(openai.AuthenticationError):
        guarded.client("sk-wrong").models.list()
    with guarded.http() as http:
        answer = http.post("/v1/completions", json={"model": "acme/one", "prompt": "x"})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"
    assert [m.id for m in guarded.client(KEYS["bob"]).models.list()]


def test_guard_refuses_blocked_prompts_and_filters_served_text(guarded, served_home):
    client = guarded.client(KEYS["alice"])
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model="acme/one", prompt="say forbidden things", max_tokens=3)
    assert "gptstore-guard" in refused.value.body["message"]
    whole = client.completions.create(model="acme/one", prompt=PROMPT, max_tokens=6, temperature=0)
    assert whole.choices[0].text.endswith(MASKED)
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="acme/one", prompt=PROMPT, max_tokens=6, temperature=0, stream=True) if c.choices)
    assert streamed == whole.choices[0].text  # streamed text is filtered too
    chat = client.chat.completions.create(model="acme/one", messages=[{"role": "user", "content": PROMPT}],
                                          max_tokens=6, temperature=0, stream=True)
    chat_text = "".join(c.choices[0].delta.content or "" for c in chat if c.choices)
    assert chat_text.endswith(MASKED) and "bob@example.com" not in chat_text


def test_usage_rows_carry_the_key_name(guarded, in_served_home, run_cli):
    from gptstore import usage

    before = len([r for r in usage.records() if r.key == "bob"])
    guarded.client(KEYS["bob"]).completions.create(model="acme/two", prompt=PROMPT, max_tokens=3)
    rows = [r for r in usage.records() if r.key == "bob"]
    assert len(rows) == before + 1 and rows[-1].model == "acme/two:1.0.0"
    assert rows[-1].completion_tokens >= 1
    by_key = json.loads(run_cli("usage", "--by", "key", "--json").output)["models"]
    assert {"bob", "alice"} <= {row["key"] for row in by_key}
    table = run_cli("usage", "--by", "key").output
    assert table.splitlines()[0].split()[:2] == ["KEY", "MODEL"] and "bob" in table


def test_metrics_parse_with_prometheus_client(guarded):
    from prometheus_client.parser import text_string_to_metric_families

    guarded.client(KEYS["alice"]).completions.create(model="acme/one", prompt=PROMPT, max_tokens=3, stream=True)
    with guarded.http(KEYS["alice"]) as http:
        assert http.get("/metrics").status_code == 200
        assert guarded.http().__enter__().get("/metrics").status_code == 401
        families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}
    requests = {tuple(sorted(s.labels.items())): s.value for s in families["gptstore_serve_requests"].samples
                if s.name.endswith("_total")}
    assert requests[(("endpoint", "completions"), ("model", "acme/one"), ("status", "200"))] >= 1
    assert requests[(("endpoint", "completions"), ("model", "acme/one"), ("status", "400"))] >= 1
    tokens = {s.labels["kind"]: s.value for s in families["gptstore_serve_tokens"].samples
              if s.name.endswith("_total") and s.labels["model"] == "acme/one"}
    assert tokens["prompt"] > 0 and tokens["completion"] > 0
    assert any(s.value >= 1 for s in families["gptstore_serve_time_to_first_token_seconds"].samples
               if s.name.endswith("_count"))
    assert families["gptstore_serve_loaded_models"].samples[0].value == 1  # --max-models 1
    assert "gptstore_serve_queue_depth" in families


def test_a_public_host_needs_keys_or_insecure(run_cli):
    from click.testing import CliRunner

    from gptstore.cli.main import cli

    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_hash_key_prints_the_file_entry(run_cli):
    assert run_cli("serve", "--hash-key", input="sk-alice-123\n").output.strip() == hash_key("sk-alice-123")


def test_a_queued_request_whose_client_left_never_runs(guarded, in_served_home):
    import threading

    import httpx

    from gptstore import usage

    client = guarded.client(KEYS["alice"])
    client.completions.create(model="acme/one", prompt="warm", max_tokens=1)
    before = len(usage.records())
    busy = threading.Thread(target=lambda: client.completions.create(
        model="acme/one", prompt="take-your-time", max_tokens=2))
    busy.start()
    time.sleep(0.3)
    with pytest.raises(httpx.ReadTimeout):  # gives up while queued behind the busy one
        guarded.http(KEYS["alice"]).post("/v1/completions", timeout=0.3,
                                         json={"model": "acme/one", "prompt": "left", "max_tokens": 2})
    busy.join()
    time.sleep(0.5)
    assert [r.key for r in usage.records()[before:]] == ["alice"]  # only the busy one ran
