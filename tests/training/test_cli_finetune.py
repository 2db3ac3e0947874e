"""`gptstore finetune`: thin CLI over gptstore.training.finetune."""

from __future__ import annotations

import json

from gptstore.manifest import load_manifest


def test_finetune_command_and_resume(run_cli, tiny_gpt, topic_corpus, tmp_path):
    out = tmp_path / "poet"
    common = ["finetune", "--base", str(tiny_gpt), "--data", str(topic_corpus.train), "--out", str(out),
              "--lr", "3e-3", "--seed", "0", "--name", "acme/poet", "--version", "0.2.0"]
    first = run_cli(*common, "--max-steps", "3", "-q")
    assert first.exit_code == 0, first.output
    assert "Fine-tuned acme/poet:0.2.0 from" in first.output and "3 steps" in first.output
    assert "held-out loss" in first.output and "perplexity" in first.output and "(base " in first.output
    assert f"wrote {out}" in first.output and f"gptstore publish {out}" in first.output
    again = run_cli(*common, "--max-steps", "5", "--json")
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert (data["resumed_from_step"], data["steps_run"], data["global_step"]) == (3, 2, 5)
    assert data["name"] == "acme/poet:0.2.0" and data["out"] == str(out)
    assert data["manifest_digest"] == f"sha256:{load_manifest(out).digest}"
    assert data["perplexity"] > 1 and data["eval_loss"] > 0 and data["device"] == "cpu"


def test_finetune_command_bad_input(run_cli, tiny_gpt, tmp_path):
    data = tmp_path / "chat.jsonl"
    data.write_text('{"prompt": "hi", "completion": "there"}\n{"prompt": "no completion"}\n')
    result = run_cli("finetune", "--base", str(tiny_gpt), "--data", str(data), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: data file {data}: line 2: missing key 'completion'; "
        'give both "prompt" and "completion", or "text"']
    assert not (tmp_path / "out").exists()
    bad = run_cli("finetune", "--base", str(tiny_gpt), "--data", str(data), "--out", str(tmp_path / "out"),
                  "--method", "nope")
    assert bad.exit_code == 2 and "unknown method 'nope' (known: full" in bad.output  # plugins may add more


def test_finetune_in_help(run_cli):
    result = run_cli("--help")
    assert "finetune" in result.output and "Fine-tune a model" in result.output
