"""`gptstore run`: argument, stdin, --json, options, errors; and `gptstore usage` after it."""

from __future__ import annotations

import json
import shutil

import pytest

import gptstore


@pytest.fixture
def published(tiny_gpt_dir, tmp_path, run_cli):
    path = tmp_path / "tiny"
    shutil.copytree(tiny_gpt_dir, path)
    assert run_cli("package", str(path), "--name", "acme/tiny", "--version", "1.0.0",
                   "--price-model", "per_1k_tokens", "--price", "2").exit_code == 0
    assert run_cli("publish", str(path)).exit_code == 0


def sdk_text(prompt: str, **params) -> str:
    with gptstore.load("acme/tiny", device="cpu") as model:
        return model.generate(prompt, **params).text


def test_run_with_a_prompt_argument(published, run_cli):
    result = run_cli("run", "acme/tiny", "Return the", "--max-new-tokens", "12")
    assert result.exit_code == 0
    assert result.stdout == sdk_text("Return the", max_new_tokens=12) + "\n"


def test_run_reads_the_prompt_from_stdin(published, run_cli):
    result = run_cli("run", "acme/tiny", "--max-new-tokens", "8", input="Return the\n")
    assert result.exit_code == 0 and result.stdout == sdk_text("Return the", max_new_tokens=8) + "\n"


def test_run_json_prints_the_completion(published, run_cli):
    result = run_cli("run", "acme/tiny", "Return the", "--max-new-tokens", "6", "--json")
    data = json.loads(result.stdout)
    assert data["text"] == sdk_text("Return the", max_new_tokens=6)
    assert data["finish_reason"] == "length"
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 6, "total_tokens": 8}
    assert set(data["timings"]) == {"load_s", "first_token_s", "total_s", "tokens_per_s"}


def test_run_passes_every_option(published, run_cli):
    expected = sdk_text("If the file", strategy="beam", num_beams=3, max_new_tokens=10, stop=["an", "The"],
                        repetition_penalty=1.2)
    result = run_cli("run", "acme/tiny", "If the file", "--strategy", "beam", "--num-beams", "3",
                     "--max-new-tokens", "10", "--stop", "an", "--stop", "The", "--repetition-penalty", "1.2",
                     "--device", "cpu", "--dtype", "float32", "--engine", "transformers", "--raw")
    assert result.exit_code == 0 and result.stdout == expected + "\n"
    sampled = ["run", "acme/tiny", "x", "--temperature", "0.8", "--top-k", "20", "--top-p", "0.9", "--seed", "3",
               "--max-new-tokens", "8", "--json"]
    first, second = (json.loads(run_cli(*sampled).stdout)["text"] for _ in range(2))
    assert first == second == sdk_text("x", temperature=0.8, top_k=20, top_p=0.9, seed=3, max_new_tokens=8)


@pytest.mark.parametrize("args, message", [
    (["--strategy", "beam", "--num-beams", "1"], "beam search needs num_beams >= 2"),
    (["--temperature", "hot"], "temperature: Input should be a valid number"),
    (["--strategy", "fast"], "strategy: Input should be 'greedy', 'beam' or 'sample'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
])
def test_bad_option_is_one_line_and_exit_2(published, run_cli, args, message):
    result = run_cli("run", "acme/tiny", "hi", *args)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and message in result.output
    assert result.output.startswith("Error: ")


def test_unknown_model(run_cli):
    result = run_cli("run", "acme/nothing", "hi")
    assert result.exit_code == 1 and "acme/nothing:latest not found" in result.output


def test_usage_after_runs_is_priced(published, run_cli):
    for _ in range(2):
        run_cli("run", "acme/tiny", "Return the", "--max-new-tokens", "10")
    data = json.loads(run_cli("usage", "--json").stdout)
    (model,) = data["models"]
    assert (model["model"], model["calls"], model["completion_tokens"]) == ("acme/tiny:1.0.0", 2, 20)
    assert model["cost"] == pytest.approx(2 * model["total_tokens"] / 1000)
    table = run_cli("usage").stdout
    assert "acme/tiny:1.0.0" in table and "2 USD/1k tokens" in table


@pytest.mark.parametrize("load_plugins", ["", None])
def test_run_streams_without_output_filters_and_prints_final_text_with_them(published, load_plugins):
    """With no after_generate plugin the text streams; with one (e.g. an installed guard) the
    final, filtered text is printed once. Either way stdout is the completion's text."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    if load_plugins is None:
        env.pop("GPTSTORE_LOAD_PLUGINS", None)
    else:
        env["GPTSTORE_LOAD_PLUGINS"] = load_plugins
    gptstore_bin = os.path.join(os.path.dirname(sys.executable), "gptstore")
    args = [gptstore_bin, "run", "acme/tiny", "Return the", "--max-new-tokens", "7"]
    streamed = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    as_json = subprocess.run(args + ["--json"], capture_output=True, text=True, env=env, timeout=120)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == json.loads(as_json.stdout)["text"] + "\n"


def test_run_prints_only_the_final_text_when_a_plugin_rewrites_output(published, run_cli, register_plugin,
                                                                       monkeypatch):
    """Streamed pieces are the engine's raw text; with an after_generate plugin, `run` must print
    the rewritten text only, so it asks the model (Model.output_filtered) and generates instead."""
    from gptstore import hookimpl

    monkeypatch.setenv("GPTSTORE_LOAD_PLUGINS", "")  # no installed plugin (e.g. a guard) filters output
    raw = sdk_text("Return the", max_new_tokens=9)
    with gptstore.load("acme/tiny", device="cpu") as model:
        assert model.output_filtered is False
        assert run_cli("run", "acme/tiny", "Return the", "--max-new-tokens", "9").stdout == raw + "\n"

        class Shout:
            @hookimpl
            def after_generate(self, completions):
                for completion in completions:
                    completion.text = completion.text.upper()

        register_plugin(Shout(), name="shout")
        assert model.output_filtered is True
    result = run_cli("run", "acme/tiny", "Return the", "--max-new-tokens", "9")
    assert result.exit_code == 0 and result.stdout == raw.upper() + "\n" != raw + "\n"
