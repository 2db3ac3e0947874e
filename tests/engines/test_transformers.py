"""The transformers engine against plain transformers on the same weights."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch

from gptstore.engines.params import GenerationParams
from gptstore.engines.transformers import TransformersEngine
from gptstore.errors import UsageError

PROMPTS = ["Return the", "A long prompt about many things in the", "x", "The value of the object"]


def params(**kwargs) -> GenerationParams:
    return GenerationParams(**kwargs).resolve()


def plain_ids(plain, prompt: str, **settings) -> list[int]:
    model, tokenizer = plain
    encoded = tokenizer([prompt], return_tensors="pt")
    output = model.generate(**encoded, **settings)
    return output[0, encoded["input_ids"].shape[1]:].tolist()


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_is_token_for_token_plain_transformers(tiny_runner, plain, prompt):
    completion = tiny_runner.generate([prompt], params(max_new_tokens=24))[0]
    assert completion.token_ids == plain_ids(plain, prompt, max_new_tokens=24, do_sample=False)
    assert completion.finish_reason == "length" and completion.usage.completion_tokens == 24


@pytest.mark.parametrize("prompt", PROMPTS[:2])
def test_beam_search_is_token_for_token_plain_transformers(tiny_runner, plain, prompt):
    completion = tiny_runner.generate([prompt], params(strategy="beam", num_beams=3, max_new_tokens=16))[0]
    assert completion.token_ids == plain_ids(plain, prompt, max_new_tokens=16, num_beams=3, do_sample=False)


def test_repetition_penalty_matches_plain_transformers(tiny_runner, plain):
    completion = tiny_runner.generate([PROMPTS[0]], params(max_new_tokens=20, repetition_penalty=1.3))[0]
    assert completion.token_ids == plain_ids(plain, PROMPTS[0], max_new_tokens=20, do_sample=False,
                                             repetition_penalty=1.3)


def test_sampling_with_a_seed_is_reproducible_and_matches_plain_transformers(tiny_runner, plain):
    chosen = params(strategy="sample", temperature=0.9, top_k=40, top_p=0.95, seed=1234, max_new_tokens=20)
    first = tiny_runner.generate([PROMPTS[0]], chosen)[0]
    second = tiny_runner.generate([PROMPTS[0]], chosen)[0]
    assert first.token_ids == second.token_ids
    torch.manual_seed(1234)
    assert first.token_ids == plain_ids(plain, PROMPTS[0], max_new_tokens=20, do_sample=True, temperature=0.9,
                                        top_k=40, top_p=0.95)
    other = tiny_runner.generate([PROMPTS[0]], params(strategy="sample", seed=4321, max_new_tokens=20))[0]
    assert other.token_ids != first.token_ids


def test_a_seed_leaves_the_global_random_state_alone(tiny_runner):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    tiny_runner.generate([PROMPTS[0]], params(strategy="sample", seed=99, max_new_tokens=4))
    assert torch.equal(torch.rand(3), expected)


def test_batch_of_different_lengths_equals_one_by_one(tiny_runner):
    chosen = params(max_new_tokens=20)
    batch = tiny_runner.generate(PROMPTS, chosen)
    single = [tiny_runner.generate([p], chosen)[0] for p in PROMPTS]
    assert [c.text for c in batch] == [c.text for c in single]
    assert [c.usage.prompt_tokens for c in batch] == [c.usage.prompt_tokens for c in single]


def test_batch_runs_one_forward_pass_per_step(tiny_runner):
    calls = []
    handle = tiny_runner.model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(1),
                                                         with_kwargs=True)
    try:
        tiny_runner.generate(PROMPTS, params(max_new_tokens=9))
    finally:
        handle.remove()
    assert len(calls) == 9  # the prompt pass makes the first token, then one pass per token


def test_stop_string_cuts_the_text_and_ends_early(tiny_runner):
    free = tiny_runner.generate([PROMPTS[0]], params(max_new_tokens=30))[0]
    word = free.text.split()[-1]  # something the model produces, later on
    stopped = tiny_runner.generate([PROMPTS[0]], params(max_new_tokens=30, stop=[word, "never-there"]))[0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[:free.text.index(word)] and stopped.text
    assert stopped.usage.completion_tokens < 30


def test_stop_string_applies_per_sequence_in_a_batch(tiny_runner):
    free = tiny_runner.generate(PROMPTS[:2], params(max_new_tokens=24))
    word = next(w for w in free[0].text.split() if w not in free[1].text)
    both = tiny_runner.generate(PROMPTS[:2], params(max_new_tokens=24, stop=[word]))
    assert [c.finish_reason for c in both] == ["stop", "length"]
    assert both[0].text == free[0].text[:free[0].text.index(word)] and both[1].text == free[1].text


def test_stop_string_with_beam_search_finishes_hypotheses(tiny_runner):
    """A beam that reaches a stop string is finished, like one that reaches eos, and competes on
    score with the others; no result ever holds a stop string."""
    prompt = "If the file"
    free = tiny_runner.generate([prompt], params(strategy="beam", max_new_tokens=20))[0]
    word = free.text.split()[0]
    stopped = tiny_runner.generate([prompt], params(strategy="beam", max_new_tokens=20, stop=[word]))[0]
    assert word in free.text and word not in stopped.text
    assert stopped.finish_reason in ("stop", "length")


@pytest.mark.parametrize("settings", [
    {"max_new_tokens": 24},
    {"strategy": "sample", "seed": 5, "max_new_tokens": 24},
    {"strategy": "beam", "num_beams": 3, "max_new_tokens": 12},
    {"max_new_tokens": 30, "stop": ["an an"]},
], ids=["greedy", "sample", "beam", "stop"])
def test_stream_joined_equals_generate(tiny_runner, settings):
    chosen = params(**settings)
    expected = tiny_runner.generate([PROMPTS[0]], chosen)[0]
    stream = tiny_runner.stream(PROMPTS[0], chosen)
    pieces = list(stream)
    assert "".join(pieces) == expected.text
    assert stream.completion.text == expected.text
    assert stream.completion.finish_reason == expected.finish_reason
    assert stream.completion.token_ids == expected.token_ids
    if chosen.strategy != "beam":
        assert len(pieces) > 1  # it really streams


def test_stream_holds_back_a_possible_stop_string(tiny_runner):
    free = tiny_runner.generate([PROMPTS[0]], params(max_new_tokens=30))[0]
    stop = free.text.split()[4] + "ZZZ"  # starts like the text but never completes
    pieces = list(tiny_runner.stream(PROMPTS[0], params(max_new_tokens=30, stop=[stop])))
    assert "".join(pieces) == free.text
    assert all("ZZZ" not in p for p in pieces)


def test_closing_a_stream_stops_the_generation(tiny_runner):
    stream = tiny_runner.stream(PROMPTS[0], params(max_new_tokens=120))
    next(stream)
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "gptstore-generate"]
    assert 0 < stream.usage.completion_tokens < 120


def test_eos_ends_the_generation(ending_runner):
    completion = ending_runner.generate(["the cat"], params(max_new_tokens=30))[0]
    assert completion.finish_reason == "eos"
    assert completion.text == " sat on the mat."
    assert completion.token_ids[-1] in ending_runner.eos_ids  # the eos token is counted
    assert completion.usage.completion_tokens == len(completion.token_ids) < 30
    streamed = ending_runner.stream("a dog", params(max_new_tokens=30))
    assert "".join(streamed) == " ran in the park." and streamed.completion.finish_reason == "eos"


def test_batch_with_eos_and_length(ending_runner):
    done, cut = ending_runner.generate(["birds", "the cat"], params(max_new_tokens=5))
    assert (done.finish_reason, done.text) == ("eos", " sing at dawn.")
    assert cut.finish_reason == "length" and cut.usage.completion_tokens == 5


def test_new_tokens_are_limited_by_the_context(tiny_runner):
    long_prompt = "word " * 30
    n = len(tiny_runner.tokenizer(long_prompt)["input_ids"])
    assert 60 < n < 120
    completion = tiny_runner.generate([long_prompt], params(max_new_tokens=500))[0]
    assert completion.finish_reason == "length"
    assert completion.usage.completion_tokens == tiny_runner.context_length - n
    with pytest.raises(UsageError, match="context is 128"):
        tiny_runner.generate(["word " * 100], params())


def test_empty_prompt_starts_from_the_start_token(tiny_runner):
    completion = tiny_runner.generate([""], params(max_new_tokens=5))[0]
    assert completion.usage.prompt_tokens == 1 and completion.usage.completion_tokens >= 1


def test_timings_are_filled(tiny_runner):
    completion = tiny_runner.generate([PROMPTS[0]], params(max_new_tokens=8))[0]
    timings = completion.timings
    assert 0 < timings.first_token_s <= timings.total_s
    assert timings.tokens_per_s == pytest.approx(8 / timings.total_s)


def test_placement_on_cpu():
    engine = TransformersEngine()
    assert engine.available()
    assert engine.placement("cpu", "auto") == ("cpu", "float32")
    assert engine.placement("cpu", "bf16") == ("cpu", "bfloat16")
    if not torch.cuda.is_available():
        assert engine.placement("auto", "auto")[0] in ("cpu", "mps")


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_missing_cuda_device_is_a_clear_error():
    with pytest.raises(UsageError, match="cuda:7"):
        TransformersEngine().placement("cuda:7", "auto")


@pytest.mark.parametrize("device, dtype", [("gpu", "auto"), ("cuda:x", "auto"), ("cpu", "int4")])
def test_bad_device_or_dtype_names(device, dtype):
    with pytest.raises(UsageError):
        TransformersEngine().placement(device, dtype)


def test_perplexity_is_exp_of_the_mean_token_loss(tiny_runner, plain):
    model, tokenizer = plain
    text = "Return the value of the object."
    ids = [tokenizer.bos_token_id] + tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    assert tiny_runner.perplexity([text]) == pytest.approx(torch.exp(torch.tensor(loss)).item(), rel=1e-4)


def test_importing_the_engine_is_light():
    code = ("import sys, gptstore.engines.transformers as t; t.TransformersEngine().available(); "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr


@pytest.mark.gpu
def test_auto_places_on_cuda_in_bfloat16_where_supported():
    device, dtype = TransformersEngine().placement("auto", "auto")
    assert device == f"cuda:{torch.cuda.current_device()}"
    assert dtype == ("bfloat16" if torch.cuda.get_device_capability()[0] >= 8 else "float16")


@pytest.mark.gpu
def test_generates_on_cuda(tiny_runner):
    from pathlib import Path

    from gptstore.manifest import load_manifest

    path = Path(tiny_runner.model.name_or_path)
    runner = TransformersEngine().load(path, load_manifest(path), device="cuda:0", dtype="float32")
    try:
        assert next(runner.model.parameters()).device.type == "cuda"
        batch = runner.generate(PROMPTS, params(max_new_tokens=12))
        single = [runner.generate([p], params(max_new_tokens=12))[0] for p in PROMPTS]
        assert [c.text for c in batch] == [c.text for c in single]
        assert "".join(runner.stream(PROMPTS[0], params(max_new_tokens=12))) == single[0].text
    finally:
        runner.close()

