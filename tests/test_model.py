"""The SDK: gptstore.load, Model.generate / stream / perplexity, hooks, verification, keep-warm."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import gptstore
from gptstore import usage
from gptstore.engines.completion import Completion
from gptstore.engines.transformers import TransformersEngine
from gptstore.errors import (DigestMismatch, FileMissing, InvalidParams, MissingDependency, ModelNotFound,
                             PluginError, UnknownComponent, UsageError)
from gptstore.hookspecs import hookimpl
from gptstore.library import Library
from gptstore.model import _WARM
from gptstore.packaging import package


@pytest.fixture(scope="module")
def package_dir(tiny_gpt_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model packaged once, so every test publishes the same digest (and finds it warm)."""
    path = tmp_path_factory.mktemp("package") / "tiny"
    shutil.copytree(tiny_gpt_dir, path)
    package(path, name="acme/tiny", version="1.0.0", prompt_template="Q: {prompt}\nA:",
            pricing={"model": "per_1k_tokens", "amount": 0.5})
    return path


@pytest.fixture
def published(package_dir: Path):
    return Library().publish(package_dir)


@pytest.fixture
def model(published):
    return gptstore.load("acme/tiny", device="cpu")


@pytest.fixture
def no_loading(monkeypatch):
    """Make any engine load fail the test."""
    loads = []

    def refuse(*args, **kwargs):
        loads.append(args)
        raise AssertionError("an engine load happened")

    monkeypatch.setattr(TransformersEngine, "load", refuse)
    return loads


def test_generate_matches_plain_transformers(model, tiny_gpt_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    plain = AutoModelForCausalLM.from_pretrained(tiny_gpt_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_dir)
    encoded = tokenizer(["Return the"], return_tensors="pt")
    expected = plain.generate(**encoded, max_new_tokens=16, do_sample=False)[0, encoded["input_ids"].shape[1]:]
    completion = model.generate("Return the", raw=True, max_new_tokens=16)
    assert isinstance(completion, Completion)
    assert completion.token_ids == expected.tolist()
    assert completion.text == tokenizer.decode(expected, skip_special_tokens=True)
    assert completion.timings.load_s == model.load_s > 0


def test_generate_a_list_gives_a_list(model):
    completions = model.generate(["Return the", "x"], max_new_tokens=4)
    assert [type(c) for c in completions] == [Completion, Completion]
    assert model.generate([], max_new_tokens=4) == []


def test_params_object_dict_and_keywords(model):
    chosen = gptstore.GenerationParams(max_new_tokens=3)
    assert model.generate("x", chosen).usage.completion_tokens == 3
    assert model.generate("x", {"max_new_tokens": 2}).usage.completion_tokens == 2
    assert model.generate("x", chosen, max_new_tokens=5).usage.completion_tokens == 5


def test_prompt_template_is_applied_unless_raw(model, register_plugin):
    seen = []

    class Spy:
        @hookimpl
        def before_generate(self, prompts):
            seen.append(list(prompts))

    register_plugin(Spy())
    model.generate("hi", max_new_tokens=1)
    model.generate("hi", raw=True, max_new_tokens=1)
    list(model.stream("hi", max_new_tokens=1))
    assert seen == [["Q: hi\nA:"], ["hi"], ["Q: hi\nA:"]]


def test_stream_joined_equals_generate(model):
    stream = model.stream("Return the", max_new_tokens=20, stop=["an an"])
    text = "".join(stream)
    assert text == model.generate("Return the", max_new_tokens=20, stop=["an an"]).text
    assert stream.completion.text == text and stream.completion.timings.load_s == model.load_s


def test_perplexity(model):
    value = model.perplexity(["Return the value.", "Raise an error."])
    assert value == pytest.approx(model.perplexity(["Return the value.", "Raise an error."], batch_size=1))
    assert 1 < value < 2 * 512  # a random model: around the vocabulary size


def test_hook_before_generate(model, register_plugin):
    calls = []

    class Rewrite:
        @hookimpl
        def before_generate(self, model, prompts, params):
            calls.append((model.digest, list(prompts), params.max_new_tokens))
            return [p.upper() for p in prompts]

    register_plugin(Rewrite(), name="rewrite")
    rewritten = model.generate("return the", raw=True, max_new_tokens=6)
    assert calls == [(model.digest, ["return the"], 6)]
    assert rewritten.text == model.generate("RETURN THE", raw=True, max_new_tokens=6).text

    class Refuse:
        @hookimpl
        def before_generate(self, prompts):
            raise RuntimeError("no thanks")

    register_plugin(Refuse(), name="refuser")
    with pytest.raises(PluginError, match="refuser") as caught:
        model.generate("x", max_new_tokens=2)
    assert caught.value.hook == "before_generate"
    with pytest.raises(PluginError, match="refuser"):
        model.stream("x", max_new_tokens=2)


def test_hook_after_generate(model, register_plugin):
    class Redact:
        @hookimpl
        def after_generate(self, model, completions):
            for completion in completions:
                completion.text = "[redacted]"

    register_plugin(Redact(), name="redact")
    assert model.generate("x", max_new_tokens=2).text == "[redacted]"
    stream = model.stream("x", max_new_tokens=2)
    list(stream)
    assert stream.completion.text == "[redacted]"

    class Broken:
        @hookimpl
        def after_generate(self, completions):
            return ["not a completion"] * len(completions)

    register_plugin(Broken(), name="broken-after")
    with pytest.raises(PluginError, match="broken-after"):
        model.generate("x", max_new_tokens=2)


def test_hook_register_engines(published, register_plugin):
    class EchoRunner:
        engine, device, dtype, context_length = "echo", "cpu", "float32", 64

        def generate(self, prompts, params):
            return [Completion(text=p[::-1], finish_reason="stop") for p in prompts]

        def close(self):
            pass

    class EchoEngine:
        name = "echo"
        formats = frozenset({"transformers"})
        loads = 0

        def available(self):
            return True

        def load(self, path, manifest, *, device, dtype, allow_unsafe=False):
            EchoEngine.loads += 1
            return EchoRunner()

    class Plugin:
        @hookimpl
        def register_engines(self, register):
            register(EchoEngine())

    register_plugin(Plugin(), name="echo-plugin")
    with gptstore.load("acme/tiny", engine="echo") as echo:  # an engine without placement()
        assert echo.engine == "echo" and echo.generate("abc", raw=True).text == "cba"
    assert EchoEngine.loads == 1
    assert usage.records()[-1].engine == "echo"
    assert gptstore.load("acme/tiny", device="cpu").engine == "transformers"  # the built-in comes first


def test_unknown_engine_and_unavailable_engine(published, monkeypatch):
    with pytest.raises(UnknownComponent, match="unknown engine 'vllm'"):
        gptstore.load("acme/tiny", engine="vllm")
    monkeypatch.setattr(TransformersEngine, "available", lambda self: False)
    with pytest.raises(MissingDependency, match="gptstore\\[runtime\\]"):
        gptstore.load("acme/tiny")


def test_invalid_params_fail_before_any_model_is_loaded(published, no_loading, run_cli):
    with pytest.raises(InvalidParams, match="beam search needs num_beams >= 2"):
        gptstore.GenerationParams(strategy="beam", num_beams=1)
    result = run_cli("run", "acme/tiny", "hi", "--strategy", "greedy", "--temperature", "0.5")
    assert result.exit_code == 2 and "temperature applies to strategy 'sample'" in result.output
    assert no_loading == []


def test_invalid_params_fail_before_generating(model, monkeypatch):
    monkeypatch.setattr(model._runner, "generate", lambda *a: pytest.fail("generated"))
    with pytest.raises(InvalidParams, match="temperature must be > 0"):
        model.generate("x", strategy="sample", temperature=0)
    with pytest.raises(InvalidParams, match="unknown parameter 'max_tokens'"):
        model.stream("x", max_tokens=3)


def test_tampered_snapshot_is_refused_naming_the_file(published, no_loading):
    weights = published.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.chmod(0o644)  # a link to a read-only blob: damaged here on purpose
    weights.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="model.safetensors") as caught:
        gptstore.load("acme/tiny")
    assert caught.value.path == "model.safetensors"


def test_missing_snapshot_file_is_refused_naming_it(published, no_loading):
    (published.path / "tokenizer.json").unlink()
    with pytest.raises(FileMissing, match="tokenizer.json"):
        gptstore.load("acme/tiny")


def test_same_model_twice_reuses_the_weights(published):
    first = gptstore.load("acme/tiny", device="cpu")
    second = gptstore.load("acme/tiny:1.0.0", device="cpu", dtype="float32")
    assert second._runner is first._runner
    first.close()
    assert second.generate("x", max_new_tokens=2).usage.completion_tokens == 2  # still shared
    runner = second._runner
    second.close()
    assert runner.model is None and runner not in _WARM.entries.values()
    with pytest.raises(UsageError, match="closed"):
        second.generate("x")


def test_keep_warm_is_bounded(published):
    loaded = [gptstore.load("acme/tiny", device="cpu", dtype=dtype) for dtype in ("float32", "bfloat16", "float16")]
    assert len(_WARM.entries) <= 2
    assert loaded[0]._runner.model is not None  # evicted from the cache but still in use
    for each in loaded:
        each.close()
    assert not _WARM.entries


def test_model_is_a_context_manager(published):
    with gptstore.load("acme/tiny", device="cpu") as model:
        runner = model._runner
        assert "acme/tiny:latest" in repr(model)
    assert runner.model is None and "closed" in repr(model)


def test_runner_is_the_engine_s_loaded_model_while_open(published):
    """The public way to the engine's runner (``gptstore eval`` measures through its model and
    tokenizer); a closed model has none."""
    with gptstore.load("acme/tiny", device="cpu") as model:
        runner = model.runner
        assert runner is model._runner and runner.model is not None and runner.tokenizer is not None
        assert (runner.device, runner.context_length) == (model.device, model.context_length)
    with pytest.raises(UsageError, match=r"model acme/tiny:latest is closed; load it again with gptstore.load\(\)"):
        model.runner


def test_store_pulls_on_demand_from_a_path_or_file_url(package_dir, tmp_path):
    other = Library(tmp_path / "elsewhere")
    other.publish(package_dir)
    with pytest.raises(ModelNotFound):
        gptstore.load("acme/tiny")
    model = gptstore.load("acme/tiny", store=other.root, device="cpu")
    assert model.path.is_relative_to(Library().root)  # pulled into the local library, verified
    assert Library().resolve("acme/tiny")[1] == model.digest
    assert gptstore.load("acme/tiny", store=f"file://{other.root}", device="cpu").digest == model.digest


@pytest.mark.parametrize("store, error, message", [
    ("ftp://acme", UnknownComponent, "unknown store scheme 'ftp'"),
    ("/does/not/exist", UsageError, "not a library directory")])
def test_store_that_cannot_be_loaded_from(store, error, message):
    with pytest.raises(error, match=message):
        gptstore.load("acme/tiny", store=store)


def test_plugin_store_is_pulled_from(register_plugin, package_dir, tmp_path):
    from gptstore.stores.local import LocalStore

    remote = LocalStore(tmp_path / "remote")
    remote.library.publish(package_dir)
    opened = []

    class Remote:
        @hookimpl
        def register_stores(self, register):
            register("remote", lambda url: opened.append(url) or remote)

    register_plugin(Remote())
    model = gptstore.load("acme/tiny", store="remote://host", device="cpu")
    assert opened == ["remote://host"] and model.digest == remote.library.resolve("acme/tiny")[1]


def test_bad_device_fails_before_loading(published, no_loading):
    with pytest.raises(UsageError, match="unknown device"):
        gptstore.load("acme/tiny", device="tpu")


def test_usage_log_records_every_generation(model, monkeypatch):
    model.generate(["a", "b"], max_new_tokens=3)
    list(model.stream("c", max_new_tokens=2))
    first, second = usage.records()
    assert (first.reference, first.model, first.digest) == ("acme/tiny:latest", "acme/tiny:1.0.0", model.digest)
    assert (first.engine, first.device, first.prompts, first.completion_tokens) == ("transformers", "cpu", 2, 6)
    assert first.prompt_tokens > 2 and first.duration_s > 0 and not first.allow_unsafe  # the template counts
    assert (first.pricing, first.amount) == ("per_1k_tokens", 0.5)
    assert second.completion_tokens == 2
    monkeypatch.setenv("GPTSTORE_NO_USAGE_LOG", "1")
    model.generate("d", max_new_tokens=1)
    assert len(usage.records()) == 2


def test_an_abandoned_stream_records_what_was_generated(model):
    stream = model.stream("x", max_new_tokens=60)
    next(stream)
    stream.close()
    (entry,) = usage.records()
    assert 0 < entry.completion_tokens < 60


def test_stream_batch_checks_its_arguments(model):
    import threading

    with pytest.raises(UsageError, match="cancel event"):
        model.stream_batch(["a", "b"], max_new_tokens=2, cancelled=[threading.Event()])


@pytest.mark.gpu
def test_load_on_cuda(published):
    with gptstore.load("acme/tiny", device="cuda:0") as model:
        assert model.device == "cuda:0"
        assert model.generate("x", max_new_tokens=3).usage.completion_tokens == 3
