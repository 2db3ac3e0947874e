"""`gptstore eval --tasks` / `--check` with EleutherAI's lm-evaluation-harness on the tiny model.

Three local tasks (YAML + JSONL written here: multiple choice, rolling perplexity, generation)
run through gptstore's own engine; the scores land in the package's manifest pinned by task
version, task hash, few-shot count, data sha256, limit and seed; `--check` holds on the untouched
claims and fails on an edited value (a mismatch), an edited task version, an edited few-shot count
and edited data (each "cannot be re-checked").
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from gptstore.library import Library  # noqa: E402
from gptstore.manifest import load_manifest, save, validate  # noqa: E402
from gptstore.packaging import package  # noqa: E402

MC = [{"question": f"What follows {word}?", "choices": [" one", " two", " three"], "answer": i % 3}
      for i, word in enumerate(["the", "a", "def", "class", "return", "import"])]
TEXTS = ["Return the value of the attribute.", "Open a file and read it.", "The list is sorted in place.",
         "Raise an error when the key is missing."]
TASKS = "tiny_mc,tiny_ppl,tiny_gen"


def write_tasks(root: Path) -> Path:
    """Local YAML tasks over local JSONL (absolute data_files paths), as a provider would write them."""
    tasks = root / "tasks"
    tasks.mkdir(parents=True)
    (root / "mc.jsonl").write_text("".join(json.dumps(d) + "\n" for d in MC), encoding="utf-8")
    (root / "ppl.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    common = "dataset_path: json\ntest_split: test\nmetadata:\n  version: 1.0\n"
    (tasks / "mc.yaml").write_text(
        f"task: tiny_mc\n{common}dataset_kwargs:\n  data_files:\n    test: {root / 'mc.jsonl'}\n"
        "output_type: multiple_choice\ndoc_to_text: '{{question}}'\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: answer\nmetric_list:\n  - metric: acc\n  - metric: acc_norm\n", encoding="utf-8")
    (tasks / "ppl.yaml").write_text(
        f"task: tiny_ppl\n{common}dataset_kwargs:\n  data_files:\n    test: {root / 'ppl.jsonl'}\n"
        "output_type: loglikelihood_rolling\ndoc_to_text: ''\ndoc_to_target: '{{text}}'\n"
        "metric_list:\n  - metric: word_perplexity\n  - metric: byte_perplexity\n  - metric: bits_per_byte\n",
        encoding="utf-8")
    (tasks / "gen.yaml").write_text(
        f"task: tiny_gen\n{common}dataset_kwargs:\n  data_files:\n    test: {root / 'mc.jsonl'}\n"
        "output_type: generate_until\ndoc_to_text: '{{question}}'\ndoc_to_target: ' one'\n"
        "generation_kwargs:\n  until: ['\\n']\n  max_gen_toks: 4\n  do_sample: false\n"
        "metric_list:\n  - metric: exact_match\n", encoding="utf-8")
    return tasks


@pytest.fixture
def setup(tiny_gpt, tmp_path, hf_home):
    from gptstore.trust import TrustStore

    with TrustStore.edit() as trust:  # the library copy is unsigned
        trust.set_policy("off", None)
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    return tiny_gpt, write_tasks(tmp_path / "data")


def edit_claim(directory: Path, task: str, name: str, **changes) -> None:
    data = load_manifest(directory).model_dump(exclude_none=True)
    for metric in data["metrics"]:
        if metric.get("task") == task and metric["name"] == name:
            metric.update(changes)
    save(validate(data), directory)


def test_tasks_recorded_deterministic_and_checked(run_cli, setup, tmp_path):
    model, tasks = setup
    run = ["eval", str(model), "--tasks", TASKS, "--include-path", str(tasks), "--limit", "4", "--device", "cpu"]
    first = run_cli(*run)
    assert first.exit_code == 0, first.output
    assert f"recorded in {model / 'gptstore.json'}" in first.output
    claims = load_manifest(model).metrics
    by = {(m.task, m.name): m for m in claims}
    assert set(by) == {("tiny_mc", "acc"), ("tiny_mc", "acc_norm"), ("tiny_ppl", "word_perplexity"),
                       ("tiny_ppl", "byte_perplexity"), ("tiny_ppl", "bits_per_byte"), ("tiny_gen", "exact_match")}
    mc_sha = hashlib.sha256((tmp_path / "data" / "mc.jsonl").read_bytes()).hexdigest()
    for metric in claims:
        assert (metric.task_version, metric.num_fewshot, metric.limit, metric.seed) == ("1.0", 0, 4, 1234)
        assert len(metric.task_hash) == 64 and metric.harness.startswith("lm-eval 0.4.")
    assert by["tiny_mc", "acc"].dataset_sha256 == mc_sha and by["tiny_mc", "acc"].dataset == "mc.jsonl"
    assert 0 <= by["tiny_mc", "acc"].value <= 1 and by["tiny_ppl", "byte_perplexity"].value > 1
    assert math.isclose(by["tiny_ppl", "bits_per_byte"].value, math.log2(by["tiny_ppl", "byte_perplexity"].value))
    # deterministic: a second run gives the same scores and hashes (and replaces, not appends)
    second = run_cli(*run, "--json")
    assert second.exit_code == 0, second.output
    assert [m.model_dump() for m in load_manifest(model).metrics] == [m.model_dump() for m in claims]
    results = {r["task"]: r for r in json.loads(second.stdout)["results"]}
    assert results["tiny_mc"]["task_hash"] == by["tiny_mc", "acc"].task_hash
    assert results["tiny_mc"]["documents"] == 4

    # published: `show` says how each claim is re-checked; --check re-runs all of them
    Library().publish(model)
    shown = run_cli("show", "acme/tiny").output
    assert "re-checkable: harness task tiny_mc v1.0 (lm-eval 0.4." in shown and f"data sha256 {mc_sha[:12]}" in shown
    shown_json = json.loads(run_cli("show", "acme/tiny", "--json").output)
    assert all(m["recheck"]["checkable"] for m in shown_json["metrics"])
    held = run_cli("eval", "acme/tiny", "--check", "--include-path", str(tasks), "--device", "cpu", "--json")
    assert held.exit_code == 0, held.output
    report = json.loads(held.stdout)
    assert report["ok"] and [c["status"] for c in report["claims"]] == ["holds"] * 6
    assert all(c["deviation"] == 0 for c in report["claims"])
    without = run_cli("eval", "acme/tiny", "--check")  # the tasks' YAML not given: nothing is passed
    assert without.exit_code == 1 and "cannot be re-checked: task 'tiny_mc' was not given" in without.output

    # an edited value fails, naming the metric
    original = (model / "gptstore.json").read_bytes()
    edit_claim(model, "tiny_mc", "acc", value=by["tiny_mc", "acc"].value + 0.25)
    check = ["eval", str(model), "--check", "--include-path", str(tasks), "--device", "cpu"]
    failed = run_cli(*check)
    assert failed.exit_code == 1 and "acc on tiny_mc claims" in failed.output and "but measures" in failed.output
    # an edited task version, an edited few-shot count, edited data: cannot be re-checked, never passed
    (model / "gptstore.json").write_bytes(original)
    edit_claim(model, "tiny_mc", "acc_norm", task_version="2.0")
    edit_claim(model, "tiny_mc", "acc", num_fewshot=2)
    with (tmp_path / "data" / "ppl.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": "One more line."}) + "\n")
    edited = run_cli(*check, "--json")
    assert edited.exit_code == 1
    assert "cannot be re-checked" in edited.output and "a claim that cannot be re-checked is not a passed check" \
        in edited.output
    status = {c["metric"]: c for c in json.loads(edited.stdout)["claims"]}
    assert {name: c["status"] for name, c in status.items()} == {
        "acc on tiny_mc": "cannot be re-checked", "acc_norm on tiny_mc": "cannot be re-checked",
        "word_perplexity on tiny_ppl": "cannot be re-checked", "byte_perplexity on tiny_ppl": "cannot be re-checked",
        "bits_per_byte on tiny_ppl": "cannot be re-checked", "exact_match on tiny_gen": "holds"}
    assert "the re-run evaluated other documents or prompts (task hash" in status["acc on tiny_mc"]["detail"]
    assert status["acc_norm on tiny_mc"]["detail"] == \
        "task tiny_mc is version 1.0 here, the claim names version 2.0"
    assert status["bits_per_byte on tiny_ppl"]["detail"].startswith("task tiny_ppl's data ppl.jsonl is sha256:")


def test_the_sdk_runs_tasks_and_checks_claims(setup):
    """``gptstore.evaluate_tasks`` / ``gptstore.check_claims``: the front door `gptstore eval` uses."""
    import gptstore
    from gptstore.errors import ClaimMismatch

    model, tasks = setup
    report = gptstore.evaluate_tasks(model, "tiny_mc", tasks, limit=2, device="cpu")
    assert [r.task for r in report.results] == ["tiny_mc"] and report.recorded == str(model / "gptstore.json")
    assert {(m.task, m.limit) for m in load_manifest(model).metrics} == {("tiny_mc", 2)}
    checked = gptstore.check_claims(model, include_path=tasks, device="cpu")
    assert checked.ok and [c.status for c in checked.claims] == ["holds", "holds"]
    edit_claim(model, "tiny_mc", "acc", value=2.0)
    failed = gptstore.check_claims(model, include_path=tasks, device="cpu")
    assert not failed.ok
    with pytest.raises(ClaimMismatch, match="acc on tiny_mc"):
        failed.raise_for_claims()


def test_runner_log_likelihoods_agree_and_missing_ones_are_named(tiny_gpt, tmp_path, hf_home):
    from gptstore.engines import pick_engine
    from gptstore.errors import UsageError
    from gptstore.harness import load_tasks, run_tasks

    from gptstore.evaluation import claim_status
    from gptstore.manifest import Metric

    assert claim_status(Metric(name="bleu", value=31.2)) == (
        False, "gptstore does not measure 'bleu' and it names no harness task")
    assert claim_status(Metric(name="perplexity", value=3.0, dataset="h.txt")) == (
        False, "the claim records no sha256 of its data")
    assert claim_status(Metric(name="acc", value=0.5, task="t", task_version="1", dataset_sha256="a" * 64)) == (
        False, "the harness claim records no task hash")
    assert claim_status(Metric(name="perplexity", value=3.0, dataset="h.txt", dataset_sha256="b" * 64)) == (
        True, "gptstore eval --data h.txt, data sha256 bbbbbbbbbbbb…")

    manifest = package(tiny_gpt, name="acme/tiny", version="1.0.0")
    runner = pick_engine("transformers").load(tiny_gpt, manifest, device="cpu", dtype="float32")
    try:
        rolling = runner.loglikelihood_rolling(TEXTS[:2])
        pairs = runner.loglikelihood([("", TEXTS[0]), ("", TEXTS[1]), ("Open a", " file")])
        assert [p[0] for p in pairs[:2]] == pytest.approx(rolling, rel=1e-5) and all(r < 0 for r in rolling)
        long_text = " ".join(TEXTS * 40)  # longer than the context: scored in windows, every token once
        assert runner.loglikelihood_rolling([long_text])[0] < 40 * rolling[0]
    finally:
        runner.close()

    class GenerateOnly:  # a plugin engine's runner that cannot score tokens
        engine = "generate-only"

        def generate(self, prompts, params):
            raise AssertionError("not reached")

    tasks = load_tasks(["tiny_mc"], write_tasks(tmp_path / "data"))
    with pytest.raises(UsageError, match="engine 'generate-only' cannot answer the harness's loglikelihood"):
        run_tasks(GenerateOnly(), tasks, limit=1)
