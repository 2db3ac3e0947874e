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


def _one_example_per_line(path, count=60):
    """A text file of short examples, one per line, no blank lines (the newcomer's first dataset)."""
    from gptstore.training.tiny import stdlib_docstrings

    lines = [line.strip() for doc in stdlib_docstrings(modules=("argparse",)) for line in doc.splitlines()]
    path.write_text("\n".join([line for line in lines if len(line) > 20][:count]) + "\n", encoding="utf-8")
    return path


def test_finetune_lines_file_with_no_options_then_rerun_is_a_no_op(run_cli, tiny_gpt, tmp_path):
    data = _one_example_per_line(tmp_path / "examples.txt")
    out = tmp_path / "out"
    command = ["finetune", "--base", str(tiny_gpt), "--data", str(data), "--out", str(out)]
    first = run_cli(*command, "--json")
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout)
    assert result["steps_run"] > 0 and result["eval_loss"] > 0 and not result["unchanged"]
    held = [json.loads(line)["text"] for line in open(result["heldout_file"], encoding="utf-8")]
    lines = data.read_text().splitlines()
    assert len(held) == round(len(lines) * 0.1) and set(held) < set(lines)  # whole lines held out
    files = {p.name: p.read_bytes() for p in out.iterdir()}

    again = run_cli(*command, "--json")  # the same command again: nothing trained, nothing written
    assert again.exit_code == 0, again.output
    rerun = json.loads(again.stdout)
    assert rerun["unchanged"] and rerun["steps_run"] == 0
    assert (rerun["global_step"], rerun["manifest_digest"]) == (result["global_step"], result["manifest_digest"])
    assert (rerun["eval_loss"], rerun["perplexity"]) == (result["eval_loss"], result["perplexity"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    said = run_cli(*command)
    assert said.exit_code == 0 and "is already fine-tuned" in said.output and "nothing to do" in said.output
    more = run_cli(*command, "--max-steps", str(result["global_step"] + 1), "--json")  # a change continues
    assert json.loads(more.stdout)["steps_run"] == 1


def test_finetune_csv_prompt_completion(run_cli, tiny_gpt, tmp_path):
    rows = [f'"What is {a} plus {b}?",{a + b}' for a in range(12) for b in range(6)]
    data = tmp_path / "sums.csv"
    data.write_text("prompt,completion\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    done = run_cli("finetune", "--base", str(tiny_gpt), "--data", str(data), "--out", str(out), "--max-steps", "2",
                   "--block-size", "32", "--json")
    assert done.exit_code == 0, done.output
    held = [json.loads(line)["text"] for line in open(json.loads(done.stdout)["heldout_file"], encoding="utf-8")]
    assert held and all(text.startswith("What is ") and "?" in text for text in held)
    assert load_manifest(out).provenance.datasets[0].name == "sums.csv"
    data.write_text("question,answer\nWhat?,42\n")
    bad = run_cli("finetune", "--base", str(tiny_gpt), "--data", str(data), "--out", str(tmp_path / "bad"))
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        f"Error: data file {data}: has no 'prompt' and 'completion' columns, nor a 'text' column "
        "(header: 'question', 'answer'); make the first row a header naming them, e.g. prompt,completion"]


def test_ctrl_c_saves_a_checkpoint_exits_130_and_resumes(run_cli, tiny_gpt, tmp_path, gptstore_home):
    """A real `gptstore finetune` process sent SIGINT mid-training: it finishes the step, saves a
    checkpoint, says to re-run, exits 130; the same command then resumes from that step."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    data = _one_example_per_line(tmp_path / "examples.txt")
    out, checkpoints = tmp_path / "out", tmp_path / "ckpt"
    command = ["finetune", "--base", str(tiny_gpt), "--data", str(data), "--out", str(out),
               "--checkpoints", str(checkpoints), "--block-size", "32", "--batch-size", "2", "--save-steps", "100000"]
    process = subprocess.Popen([sys.executable, "-c", "from gptstore.cli.main import main; main()", *command,
                                "--max-steps", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while not (checkpoints / "run.json").exists():  # written just before the first step
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        time.sleep(0.3)  # some steps in
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    error = stderr.strip().splitlines()[-1]
    found = re.fullmatch(rf"Error: finetune of {re.escape(str(out))} interrupted at step (\d+) of 100000, "
                         r"checkpoint saved; re-run the same command to resume", error)
    assert found, stderr
    step = int(found.group(1))
    assert (checkpoints / f"checkpoint-{step}").is_dir() and not out.exists()
    resumed = run_cli(*command, "--max-steps", str(step + 1), "--json", "-q")
    assert resumed.exit_code == 0, resumed.output
    assert (json.loads(resumed.stdout)["resumed_from_step"], json.loads(resumed.stdout)["steps_run"]) == (step, 1)
