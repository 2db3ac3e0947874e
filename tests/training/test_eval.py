"""`gptstore eval` and gptstore.evaluation.evaluate_model: measuring, and checking a claim.

A fine-tune's manifest claims a perplexity; `eval --check` re-measures it on the claim's own data
(found by sha256) and fails, in one line, when a claim was inflated.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from gptstore.library import Library
from gptstore.manifest import load_manifest
from gptstore.packaging import package

FAST = dict(learning_rate=3e-3, batch_size=8, seed=0, save_steps=1000)


@pytest.fixture(scope="module")
def claims(tiny_gpt_dir, topic_corpus, tmp_path_factory):
    """Two fine-tunes of acme/tiny that claim a perplexity: on a given held-out file (acme/poet) and
    on the held-out documents finetune split off itself (acme/split)."""
    from gptstore.training.config import FinetuneConfig
    from gptstore.training.finetune import finetune

    root = tmp_path_factory.mktemp("claims")
    heldout = root / "heldout.txt"
    heldout.write_text("\n\n".join(topic_corpus.heldout), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPTSTORE_HOME", str(root / "home"))
        base_dir = root / "base"
        shutil.copytree(tiny_gpt_dir, base_dir)
        package(base_dir, name="acme/tiny", version="1.0.0")
        Library().publish(base_dir)
        given = finetune("acme/tiny", topic_corpus.train, root / "poet", name="acme/poet", version="1.0.0",
                         config=FinetuneConfig(max_steps=3, **FAST), eval_data=heldout,
                         checkpoint_dir=root / "ckpt-poet")
        split = finetune("acme/tiny", topic_corpus.train, root / "split", name="acme/split", version="1.0.0",
                         config=FinetuneConfig(max_steps=2, eval_split=0.1, **FAST),
                         checkpoint_dir=root / "ckpt-split")
    return SimpleNamespace(base=base_dir, poet=root / "poet", split=root / "split", heldout=heldout,
                           given=given, split_result=split)


@pytest.fixture
def library(claims, gptstore_home):
    """This test's library holds acme/tiny, acme/poet and acme/split; signatures are not asked for."""
    from gptstore.trust import TrustStore

    with TrustStore.edit() as trust:
        trust.set_policy("off", None)
    library = Library()
    for directory in (claims.base, claims.poet, claims.split):
        library.publish(directory)
    return library


def lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def test_finetune_records_a_claim_eval_reproduces(claims):
    from gptstore.evaluation import evaluate_model

    manifest = load_manifest(claims.poet)
    claim = {m.name: m for m in manifest.metrics}["perplexity"]
    assert (claim.dataset, claim.split) == ("heldout.txt", "held-out")
    assert claim.dataset_sha256 == hashlib.sha256(claims.heldout.read_bytes()).hexdigest()
    assert claim.value == pytest.approx(claims.given.perplexity)
    assert claims.given.heldout_file is None and claims.given.eval_dataset == "heldout.txt"
    assert manifest.provenance.hyperparameters["eval_split"] == 0  # nothing held out of the training data
    report = evaluate_model(claims.poet, claims.heldout, check=True)
    assert report.claim.ok and abs(report.claim.deviation) < 1e-4
    assert report.perplexity < claims.given.base_perplexity  # it learned something in 3 steps
    # without eval data, finetune holds documents out and the claim names the file it wrote
    split = claims.split_result
    assert split.heldout_file.is_file() and split.eval_dataset == split.heldout_file.name
    report = evaluate_model(claims.split, split.heldout_file, check=True)
    assert report.claim.ok and abs(report.claim.deviation) < 1e-4


def test_check_passes_on_an_honest_claim(run_cli, library, claims):
    result = run_cli("eval", "acme/poet", "--data", str(claims.heldout), "--check")
    assert result.exit_code == 0, result.output
    first, measured, claim = lines(result)
    assert first.startswith("acme/poet:latest sha256:") and "on heldout.txt (" in first and " tokens)" in first
    assert measured.strip().startswith("perplexity ") and "cpu" in measured
    assert claim.strip().startswith("claim ") and "holds" in claim
    split = run_cli("eval", "acme/split:1.0.0", "--data", str(claims.split_result.heldout_file), "--check")
    assert split.exit_code == 0, split.output
    directory = run_cli("eval", str(claims.poet), "--data", str(claims.heldout), "--check")
    assert directory.exit_code == 0, directory.output
    assert lines(directory)[0].startswith(f"{claims.poet} sha256:")


def test_json_output(run_cli, library, claims):
    import gptstore

    result = run_cli("eval", "acme/poet:1.0.0", "--data", str(claims.heldout), "--check", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    sha = hashlib.sha256(claims.heldout.read_bytes()).hexdigest()
    assert data["target"] == "acme/poet:1.0.0" and data["digest"] == f"sha256:{library.get('acme/poet').digest}"
    assert (data["dataset"], data["dataset_sha256"]) == ("heldout.txt", sha)
    documents = [d.strip() for d in claims.heldout.read_text().split("\n\n") if d.strip()]
    assert data["files"] == [{"path": str(claims.heldout), "sha256": sha, "size": claims.heldout.stat().st_size,
                              "documents": len(documents)}]
    assert data["tokens"] > 100 and data["blocks"] >= 1 and data["device"] == "cpu"
    assert data["perplexity"] == pytest.approx(2.718281828 ** data["loss"])
    assert data["claim"]["ok"] is True and data["claim"]["tolerance"] == 0.02
    assert data["claim"]["claimed"] == pytest.approx(data["perplexity"], rel=1e-4)
    # Model.perplexity (the SDK) measures the same thing
    with gptstore.load("acme/poet") as model:
        assert model.perplexity(documents) == pytest.approx(data["perplexity"], rel=1e-5)
    plain = run_cli("eval", "acme/tiny", "--data", str(claims.heldout), "--json")  # no claim, no --check
    assert plain.exit_code == 0 and json.loads(plain.stdout)["claim"] is None


def _inflate(manifest_dict: dict, factor: float) -> list[dict]:
    metrics = manifest_dict["metrics"]
    for metric in metrics:
        if metric["name"] == "perplexity":
            metric["value"] *= factor
    return metrics


def test_check_fails_on_a_tampered_claim(run_cli, library, claims, tmp_path):
    # the provider improves the number in gptstore.json, packages and publishes it again
    tampered = tmp_path / "poet"
    shutil.copytree(claims.poet, tampered)
    honest = load_manifest(tampered)
    metrics = _inflate(honest.model_dump(mode="json"), 0.8)  # claims a 20% lower (better) perplexity
    package(tampered, name="acme/poet", version="1.0.0", metrics=metrics)
    run = run_cli("publish", str(tampered), "--force")
    assert run.exit_code == 0, run.output
    result = run_cli("eval", "acme/poet:1.0.0", "--data", str(claims.heldout), "--check")
    assert result.exit_code == 1
    [error] = lines(result)
    assert error.startswith("Error: acme/poet:1.0.0 claims perplexity ") and " on heldout.txt but measures " in error
    assert "(+25.0%, tolerance ±2%)" in error, error
    loose = run_cli("eval", "acme/poet:1.0.0", "--data", str(claims.heldout), "--check", "--tolerance", "0.3")
    assert loose.exit_code == 0, loose.output
    # --json still prints the measurement, then fails
    as_json = run_cli("eval", "acme/poet", "--data", str(claims.heldout), "--check", "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["claim"]["ok"] is False
    # a claim edited by hand in a package directory fails the same way (the files are intact)
    edited = tmp_path / "edited"
    shutil.copytree(claims.poet, edited)
    data = json.loads((edited / "gptstore.json").read_text())
    _inflate(data, 1.5)
    (edited / "gptstore.json").write_text(json.dumps(data))
    result = run_cli("eval", str(edited), "--data", str(claims.heldout), "--check")
    assert result.exit_code == 1 and "-33.3%" in lines(result)[0] and len(lines(result)) == 1


def test_check_needs_the_claims_own_data(run_cli, library, claims, tmp_path, monkeypatch):
    from gptstore.engines.transformers import TransformersEngine

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(TransformersEngine, "load", no_loading)
    other = tmp_path / "other.txt"
    other.write_text(claims.heldout.read_text() + "\n\nOne more paragraph.")
    result = run_cli("eval", "acme/poet", "--data", str(other), "--check")
    assert result.exit_code == 2
    [error] = lines(result)
    sha = hashlib.sha256(claims.heldout.read_bytes()).hexdigest()
    assert error.startswith(f"Error: acme/poet:latest claims perplexity on heldout.txt (sha256:{sha[:12]}…), "
                            "not on other.txt") and "only comparable on the same data" in error
    no_claim = run_cli("eval", "acme/tiny", "--data", str(claims.heldout), "--check")
    assert no_claim.exit_code == 2 and "claims no perplexity" in lines(no_claim)[0]
    (tmp_path / "empty-dir").mkdir()
    not_a_model = run_cli("eval", str(tmp_path / "empty-dir"), "--data", str(claims.heldout))
    assert not_a_model.exit_code == 2 and "holds neither a gptstore.json nor a config.json" in lines(not_a_model)[0]


@pytest.mark.parametrize("case, code, message", [
    ("missing", 2, "data file {missing}: no such file"),
    ("empty", 2, "data file {empty}: is empty; give a file with training text"),
    ("none", 2, "no evaluation data given; pass --data FILE"),
    ("unknown", 1, "model acme/absent:latest not found in the local library"),
    ("not-a-ref", 2, "'no such dir' is neither a model directory nor a reference"),
    ("tolerance", 2, "tolerance must be 0 or more (got -1.0)"),
    ("device", 2, "device"),
])
def test_bad_input_is_one_line(run_cli, library, claims, tmp_path, case, code, message):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    paths = {"missing": tmp_path / "nope.txt", "empty": empty}
    data = ["--data", str(paths.get(case, claims.heldout))]
    args = {"none": ["eval", "acme/poet"], "unknown": ["eval", "acme/absent", *data],
            "not-a-ref": ["eval", "no such dir", *data],
            "tolerance": ["eval", "acme/poet", *data, "--check", "--tolerance", "-1"],
            "device": ["eval", "acme/poet", *data, "--device", "tpu"]}.get(case, ["eval", "acme/poet", *data])
    result = run_cli(*args)
    assert result.exit_code == code, result.output
    [error] = lines(result)
    assert error.startswith("Error: ") and message.format(**paths) in error


def test_a_plain_model_directory(run_cli, tiny_gpt, claims):
    result = run_cli("eval", str(tiny_gpt), "--data", str(claims.heldout), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["digest"] is None and data["claim"] is None and data["perplexity"] > 1
    refused = run_cli("eval", str(tiny_gpt), "--data", str(claims.heldout), "--check")
    assert refused.exit_code == 2 and "has no gptstore.json, so it claims nothing to check" in lines(refused)[0]


def test_help_and_light_imports(run_cli):
    result = run_cli("eval", "--help")
    assert "--tolerance" in result.output and "[default: 0.02]" in result.output and "2%" in result.output
    assert "eval" in run_cli("--help").output
    script = ("import sys, gptstore.cli.evaluate, gptstore.evaluation, gptstore.demo, gptstore.cli.demo; "
              "print([m for m in ('torch', 'transformers') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
