"""Dynamic batching in ``gptstore serve``: concurrent requests to one model run as one batch.

A real server with a wide batch window (so concurrent test requests surely land in one batch),
driven by the official ``openai`` client from threads; what a batch produced is compared with
``Model.generate`` on one prompt at a time, and the batch itself is observed on ``/metrics``
(``gptstore_serve_batch_size``). The engine's batched stream is also checked in-process.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import start_serve

openai = pytest.importorskip("openai")

PROMPTS = ["def parse(text):", "import os", "class Reader:\n    ", "The value of x"]


@pytest.fixture(scope="module")
def server(served_home):
    running = start_serve(served_home, "--max-models", "1", "--batch-window-ms", "400", "--max-batch", "8",
                          "acme/one:1.0.0")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


@pytest.fixture(scope="module")
def expected(served_home):
    """Greedy completions of each prompt, one call per prompt, in-process."""
    import gptstore

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GPTSTORE_HOME", str(served_home))
        with gptstore.load("acme/one:1.0.0", device="cpu") as model:
            return {p: model.generate(p, max_new_tokens=16, strategy="greedy", raw=True) for p in PROMPTS}


def batch_sizes(server) -> list[float]:
    """(count, sum) of the batch-size histogram: how many batches ran and how many requests in all."""
    from prometheus_client.parser import text_string_to_metric_families

    with server.http() as http:
        families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}
    samples = {s.name: s.value for s in families["gptstore_serve_batch_size"].samples}
    return [samples["gptstore_serve_batch_size_count"], samples["gptstore_serve_batch_size_sum"]]


def together(calls: list) -> list:
    """Run the calls at the same moment from threads; their results in order."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as threads:
        return list(threads.map(run, calls))


def test_concurrent_greedy_requests_are_one_batch_identical_to_one_by_one(client, server, expected):
    count, total = batch_sizes(server)
    answers = together([lambda p=p: client.completions.create(model="acme/one:1.0.0", prompt=p, max_tokens=16,
                                                              temperature=0) for p in PROMPTS])
    for prompt, answer in zip(PROMPTS, answers):
        assert answer.choices[0].text == expected[prompt].text
        assert answer.usage.prompt_tokens == expected[prompt].usage.prompt_tokens
        assert answer.usage.completion_tokens == expected[prompt].usage.completion_tokens
    new_count, new_total = batch_sizes(server)
    assert new_total - total == len(PROMPTS)
    assert new_count - count < len(PROMPTS)  # fewer runs than requests: some shared a batch


def test_concurrent_streams_are_batched_and_each_gets_its_own_text(client, server, expected):
    count, total = batch_sizes(server)

    def stream(prompt):
        chunks = list(client.completions.create(model="acme/one:1.0.0", prompt=prompt, max_tokens=16,
                                                temperature=0, stream=True,
                                                stream_options={"include_usage": True}))
        return "".join(c.choices[0].text for c in chunks if c.choices), chunks[-1].usage

    answers = together([lambda p=p: stream(p) for p in PROMPTS])
    for prompt, (text, usage) in zip(PROMPTS, answers):
        assert text == expected[prompt].text
        assert usage.completion_tokens == expected[prompt].usage.completion_tokens
    new_count, new_total = batch_sizes(server)
    assert new_total - total == len(PROMPTS) and new_count - count < len(PROMPTS)


def test_a_cancelled_stream_leaves_the_other_rows_of_its_batch_intact(client, server, expected, served_home):
    import gptstore

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GPTSTORE_HOME", str(served_home))
        with gptstore.load("acme/one:1.0.0", device="cpu") as model:
            long = {p: model.generate(p, max_new_tokens=60, strategy="greedy", raw=True).text for p in PROMPTS[:3]}
    count, total = batch_sizes(server)

    def quitter():
        with server.http() as http:
            with http.stream("POST", "/v1/completions", json={"model": "acme/one:1.0.0", "prompt": PROMPTS[0],
                                                              "max_tokens": 60, "temperature": 0,
                                                              "stream": True}) as answer:
                return next(line for line in answer.iter_lines() if line.startswith("data: "))

    def stayer(prompt):
        chunks = client.completions.create(model="acme/one:1.0.0", prompt=prompt, max_tokens=60, temperature=0,
                                           stream=True)
        return "".join(c.choices[0].text for c in chunks if c.choices)

    first, *texts = together([quitter] + [lambda p=p: stayer(p) for p in PROMPTS[1:3]])
    assert first.startswith("data: ")
    assert texts == [long[PROMPTS[1]], long[PROMPTS[2]]]
    new_count, new_total = batch_sizes(server)
    assert new_total - total == 3 and new_count - count < 3


def test_stream_batch_drops_a_cancelled_row_matches_generate_and_meters_every_row(served_home, monkeypatch,
                                                                                   register_plugin):
    """``Model.stream_batch`` (what a batched stream runs on): the engine's rows are token-identical
    to one-by-one generation, ``before_generate`` applies, and the tokens of a row whose client
    left mid-batch are in the usage log with the others'."""
    import gptstore
    from gptstore import usage
    from gptstore.hookspecs import hookimpl

    class Shout:
        @hookimpl
        def before_generate(self, prompts):
            return [p.upper() for p in prompts]

    monkeypatch.setenv("GPTSTORE_HOME", str(served_home))
    with gptstore.load("acme/one:1.0.0", device="cpu") as model:
        params = model.params(max_new_tokens=40, strategy="greedy")
        runner = model.runner
        assert runner.batched_streams
        alone = [runner.generate([p.upper()], params)[0] for p in PROMPTS]
        register_plugin(Shout(), name="shout")
        logged = len(usage.records())
        cancelled = [threading.Event() for _ in PROMPTS]
        texts = {i: "" for i in range(len(PROMPTS))}
        ends, dropped = {}, {}
        for what, row, value in model.stream_batch(PROMPTS, params, cancelled=cancelled, raw=True):
            if what == "piece":
                texts[row] += value
                if row == 1:
                    cancelled[1].set()  # row 1's client goes away after its first piece
            elif what == "end":
                ends[row] = value
            else:
                dropped[row] = value
        assert set(ends) == {0, 2, 3} and set(dropped) == {1}
        for row in (0, 2, 3):
            assert texts[row] == ends[row].text == alone[row].text
            assert ends[row].token_ids == alone[row].token_ids
            assert ends[row].finish_reason == alone[row].finish_reason
        assert len(texts[1]) < len(alone[1].text)
        assert 0 < dropped[1].completion_tokens < alone[1].usage.completion_tokens
        (entry,) = usage.records()[logged:]  # one row for the batch, the dropped row's tokens in it
        rows = [ends[0].usage, dropped[1], ends[2].usage, ends[3].usage]
        assert entry.prompts == 4
        assert entry.completion_tokens == sum(u.completion_tokens for u in rows)
        assert entry.prompt_tokens == sum(u.prompt_tokens for u in rows)


def test_requests_of_different_params_are_not_mixed(client, server, expected):
    answers = together([
        lambda: client.completions.create(model="acme/one:1.0.0", prompt=PROMPTS[0], max_tokens=16, temperature=0),
        lambda: client.completions.create(model="acme/one:1.0.0", prompt=PROMPTS[1], max_tokens=5, temperature=0),
    ])
    assert answers[0].choices[0].text == expected[PROMPTS[0]].text
    assert answers[1].usage.completion_tokens <= 5


def test_memory_budget_unloads_the_least_recently_used(served_home):
    from gptstore.serving.pool import weights_bytes
    from gptstore.library import Library

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GPTSTORE_HOME", str(served_home))
        size = weights_bytes(Library().get("acme/one:1.0.0").path)
    running = start_serve(served_home, "--max-models", "3", "--max-memory", str(int(size * 1.5)))
    try:
        client = running.client()
        for name in ("acme/one:1.0.0", "acme/two:1.0.0"):
            client.completions.create(model=name, prompt="x", max_tokens=2, temperature=0)
        with running.http() as http:
            deadline = time.time() + 10
            while time.time() < deadline:
                now = {m["id"] for m in http.get("/v1/models").json()["data"] if m["loaded"]}
                if "acme/one:1.0.0" not in now:
                    break
                time.sleep(0.1)
        assert "acme/two:1.0.0" in now and "acme/one:1.0.0" not in now
        with pytest.raises(openai.InternalServerError) as refused:
            small = start_serve(served_home, "--max-memory", str(size // 2))
            try:
                small.client().completions.create(model="acme/one", prompt="x", max_tokens=2)
            finally:
                small.stop()
        assert "--max-memory" in refused.value.body["message"]
    finally:
        running.stop()


def test_a_row_that_would_reach_the_context_end_runs_alone_and_stays_identical(client, served_home):
    """In one batch the long prompt would cut the short one's budget (context 128): they run apart."""
    import gptstore

    prompts = ["x = 1\n" * 30, PROMPTS[0]]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GPTSTORE_HOME", str(served_home))
        with gptstore.load("acme/one:1.0.0", device="cpu") as model:
            assert model.generate(prompts[0], max_new_tokens=1, raw=True).usage.prompt_tokens + 40 > 128
            alone = [model.generate(p, max_new_tokens=40, strategy="greedy", raw=True) for p in prompts]
    assert alone[1].usage.completion_tokens == 40  # so a batch-cut budget would show
    answers = together([lambda p=p: client.completions.create(model="acme/one:1.0.0", prompt=p, max_tokens=40,
                                                              temperature=0) for p in prompts])
    assert [a.choices[0].text for a in answers] == [c.text for c in alone]
    assert answers[1].usage.completion_tokens == alone[1].usage.completion_tokens
