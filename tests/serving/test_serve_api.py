"""``gptstore serve`` driven by the official ``openai`` client, against a real server process.

One server (``--max-models 2``, no keys, no plugins) serves most tests; a second one with API keys
and the guard plugin serves the key, usage and guard tests.
"""

from __future__ import annotations

import time

import pytest

from .conftest import start_serve

openai = pytest.importorskip("openai")

PROMPT = "def parse(text):"


@pytest.fixture(scope="module")
def server(served_home):
    running = start_serve(served_home, "--max-models", "2", "--max-queue", "2")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def loaded(server) -> set[str]:
    with server.http() as http:
        return {m["id"] for m in http.get("/v1/models").json()["data"] if m["loaded"]}


def test_lists_every_library_model_with_its_provider(client):
    models = {m.id: m for m in client.models.list()}
    assert {"acme/one:1.0.0", "acme/one:latest", "acme/two:1.0.0", "acme/three:latest"} <= set(models)
    assert models["acme/one:1.0.0"].owned_by == "acme" and models["acme/one:1.0.0"].object == "model"


def test_greedy_completion_is_token_identical_to_model_generate(client, in_served_home):
    import gptstore

    answer = client.completions.create(model="acme/one:1.0.0", prompt=PROMPT, max_tokens=12, temperature=0)
    with gptstore.load("acme/one:1.0.0", device="cpu") as model:
        expected = model.generate(PROMPT, max_new_tokens=12, strategy="greedy", raw=True)
    assert answer.choices[0].text == expected.text
    assert answer.usage.prompt_tokens == expected.usage.prompt_tokens
    assert answer.usage.completion_tokens == expected.usage.completion_tokens
    assert answer.usage.total_tokens == expected.usage.total_tokens
    assert answer.choices[0].finish_reason == {"eos": "stop"}.get(expected.finish_reason, expected.finish_reason)


def test_streamed_completion_joins_to_the_whole_one(client):
    whole = client.completions.create(model="acme/one", prompt=PROMPT, max_tokens=12, temperature=0)
    chunks = list(client.completions.create(model="acme/one", prompt=PROMPT, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text and len(chunks) > 2
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason


def test_chat_whole_and_streamed(client):
    messages = [{"role": "system", "content": "You write Python."}, {"role": "user", "content": "Parse a file."}]
    whole = client.chat.completions.create(model="acme/one", messages=messages, max_tokens=10, temperature=0)
    assert whole.choices[0].message.role == "assistant" and whole.usage.total_tokens > 0
    assert whole.object == "chat.completion"
    chunks = list(client.chat.completions.create(model="acme/one", messages=messages, max_tokens=10,
                                                 temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_n_choices_and_prompt_lists(client):
    answer = client.completions.create(model="acme/one", prompt=["a = ", "b = "], n=2, max_tokens=5,
                                       temperature=1.0, seed=3)
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    single = [client.completions.create(model="acme/one", prompt=p, max_tokens=1).usage.prompt_tokens
              for p in ("a = ", "b = ")]
    assert answer.usage.prompt_tokens == sum(single)  # once per prompt, not per choice
    chat = client.chat.completions.create(model="acme/one", messages=[{"role": "user", "content": "hi"}], n=2,
                                          max_tokens=5, temperature=1.0, seed=1)
    assert len(chat.choices) == 2


def test_stop_strings_cut_the_text(client):
    free = client.completions.create(model="acme/one", prompt=PROMPT, max_tokens=20, temperature=0).choices[0].text
    stop = free.strip()[2:5]
    assert stop and stop in free
    cut = client.completions.create(model="acme/one", prompt=PROMPT, max_tokens=20, temperature=0, stop=[stop])
    assert cut.choices[0].text == free[:free.index(stop)] and cut.choices[0].finish_reason == "stop"


def test_same_seed_same_text(client):
    def sample(seed):
        return client.completions.create(model="acme/one", prompt=PROMPT, max_tokens=15, temperature=1.0,
                                         seed=seed).choices[0].text

    assert sample(11) == sample(11)
    assert len({sample(s) for s in (1, 2, 3, 4)}) > 1


def test_beam_search_through_extra_body(client, in_served_home):
    import gptstore

    answer = client.completions.create(model="acme/one:1.0.0", prompt=PROMPT, max_tokens=8,
                                       extra_body={"strategy": "beam", "num_beams": 4})
    with gptstore.load("acme/one:1.0.0", device="cpu") as model:
        expected = model.generate(PROMPT, max_new_tokens=8, strategy="beam", num_beams=4, raw=True)
    assert answer.choices[0].text == expected.text


def test_echo_and_logprobs(client):
    answer = client.completions.create(model="acme/one", prompt=PROMPT, max_tokens=4, temperature=0, echo=True,
                                       logprobs=2)
    choice = answer.choices[0]
    assert choice.text.startswith(PROMPT)
    assert len(choice.logprobs.tokens) == answer.usage.completion_tokens
    assert all(lp <= 0 for lp in choice.logprobs.token_logprobs)
    # greedy: the chosen token is the most likely one
    assert all(max(top.values()) == pytest.approx(lp, abs=1e-4)
               for top, lp in zip(choice.logprobs.top_logprobs, choice.logprobs.token_logprobs))


def test_chat_logprobs(client):
    answer = client.chat.completions.create(model="acme/one", messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=3, temperature=0, logprobs=True, top_logprobs=2)
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens
    assert all(len(item.top_logprobs) in (1, 2) and item.logprob <= 0 for item in content)
    with pytest.raises(openai.BadRequestError):  # not when streaming
        client.completions.create(model="acme/one", prompt="x", max_tokens=2, logprobs=1, stream=True)


def test_errors_are_openai_shaped(client, server):
    with pytest.raises(openai.NotFoundError) as missing:
        client.completions.create(model="acme/nope:1.0.0", prompt="x", max_tokens=2)
    assert missing.value.body["code"] == "model_not_found" and missing.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model="acme/one", prompt="x", max_tokens=2, temperature=-1)
    assert bad.value.body["param"] == "temperature" and "temperature" in bad.value.body["message"]
    with pytest.raises(openai.BadRequestError) as unknown:
        client.completions.create(model="acme/one", prompt="x", extra_body={"beams": 4})
    assert unknown.value.body["param"] == "beams"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="acme/one", messages=[{"role": "user", "content": "x"}],
                                       extra_body={"strategy": "beam", "num_beams": 1})
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="not a reference!", messages=[{"role": "user", "content": "x"}])
    with server.http() as http:
        too_big = http.post("/v1/completions", content=b"x" * (5 * 1024 * 1024))
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "body_too_large"
        broken = http.post("/v1/completions", content=b"{not json")
        assert broken.status_code == 400 and set(broken.json()["error"]) == {"message", "type", "param", "code"}


def test_least_recently_used_model_is_evicted_and_keep_alive_zero_unloads(client, server):
    for name in ("acme/one:1.0.0", "acme/two:1.0.0", "acme/three:1.0.0"):
        client.completions.create(model=name, prompt="x", max_tokens=2)
    assert loaded(server) == {"acme/two:1.0.0", "acme/three:1.0.0",
                              "acme/two:latest", "acme/three:latest"}
    client.completions.create(model="acme/one:1.0.0", prompt="x", max_tokens=2, extra_body={"keep_alive": 0})
    deadline = time.time() + 10
    while "acme/one:1.0.0" in loaded(server) and time.time() < deadline:
        time.sleep(0.1)
    assert "acme/one:1.0.0" not in loaded(server)


def test_a_client_that_goes_away_stops_its_generation(client, server, in_served_home):
    from gptstore import usage

    full = client.completions.create(model="acme/two:1.0.0", prompt=PROMPT, max_tokens=200, temperature=0)
    assert full.choices[0].finish_reason == "length"
    before = len(usage.records())
    with server.http() as http:
        with http.stream("POST", "/v1/completions", json={"model": "acme/two:1.0.0", "prompt": PROMPT,
                                                          "max_tokens": 200, "temperature": 0,
                                                          "stream": True}) as answer:
            lines = answer.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))
    deadline = time.time() + 20
    while len(usage.records()) == before and time.time() < deadline:
        time.sleep(0.05)
    cancelled = usage.records()[-1]
    assert cancelled.model == "acme/two:1.0.0"
    assert cancelled.completion_tokens < full.usage.completion_tokens


def test_more_requests_than_the_queue_holds_get_503(client):
    from concurrent.futures import ThreadPoolExecutor

    def ask(_):
        try:
            client.completions.create(model="acme/one", prompt=PROMPT, max_tokens=150, temperature=0)
            return 200
        except openai.InternalServerError as exc:
            assert exc.status_code == 503 and exc.body["code"] == "overloaded"
            return 503

    with ThreadPoolExecutor(8) as threads:
        statuses = list(threads.map(ask, range(8)))
    assert statuses.count(200) >= 2 and 503 in statuses  # --max-queue 2: two at a time

