"""Fine-tuning end to end on a tiny GPT-2 (CPU, a few seconds per run)."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from gptstore.errors import ConflictError, DigestMismatch, PackageError, UsageError
from gptstore.library import Library
from gptstore.manifest import load_manifest
from gptstore.packaging import package
from gptstore.training.config import FinetuneConfig, make_config
from gptstore.training.finetune import FinetuneInterrupted, finetune
from gptstore.training.tiny import stdlib_docstrings
from gptstore.integrity import check_integrity

FAST = dict(learning_rate=3e-3, batch_size=8, eval_split=0.1, seed=0)


def heldout_perplexity(model_dir: Path, texts: list[str]) -> float:
    """Perplexity of texts the model never trained on, with gptstore.perplexity."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gptstore.perplexity import perplexity

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return perplexity(model, AutoTokenizer.from_pretrained(model_dir), texts)


@pytest.fixture(scope="module")
def topic_run(tiny_gpt_dir, topic_corpus, tmp_path_factory):
    """The tiny model published as acme/tiny:1.0.0, then fine-tuned on the topic from the library."""
    import shutil

    root = tmp_path_factory.mktemp("topic-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPTSTORE_HOME", str(root / "home"))
        base_dir = root / "base"
        shutil.copytree(tiny_gpt_dir, base_dir)
        package(base_dir, name="acme/tiny", version="1.0.0", license="mit", tags=["tiny"],
                prompt_template="Q: {prompt}\nA:")
        base = Library().publish(base_dir)
        result = finetune("acme/tiny:1.0.0", [topic_corpus.train], root / "out",
                          config=FinetuneConfig(max_steps=40, **FAST), name="acme/tiny-cli", version="1.0.0")
    return SimpleNamespace(base=base, result=result, base_dir=base_dir, out=root / "out")


def test_finetune_lowers_heldout_topic_perplexity(topic_run, topic_corpus):
    before = heldout_perplexity(topic_run.base_dir, topic_corpus.heldout)
    after = heldout_perplexity(topic_run.out, topic_corpus.heldout)
    print(f"held-out topic perplexity: base {before:.1f}, fine-tuned {after:.1f}")
    assert after < 0.7 * before, (before, after)
    # it learned the topic, not only the language: off-topic text gains less
    off_topic = stdlib_docstrings(modules=("json", "csv", "shutil", "datetime"))[:20]
    off_before = heldout_perplexity(topic_run.base_dir, off_topic)
    off_after = heldout_perplexity(topic_run.out, off_topic)
    assert after / before < off_after / off_before, (before, after, off_before, off_after)
    result = topic_run.result
    assert result.perplexity < 0.7 * result.base_perplexity  # the trainer's own held-out blocks agree
    assert result.global_step == result.steps_run == 40 and result.resumed_from_step is None
    assert result.train_loss is not None and result.eval_loss < result.base_eval_loss


def test_manifest_records_provenance_and_metrics(topic_run, topic_corpus):
    import torch
    import transformers

    import gptstore

    manifest = load_manifest(topic_run.out)
    assert manifest.digest == topic_run.result.manifest.digest
    assert (manifest.namespace, manifest.name, manifest.version) == ("acme", "tiny-cli", "1.0.0")
    prov = manifest.provenance
    assert prov.base_digest == topic_run.base.digest and prov.base_reference == "acme/tiny:1.0.0"
    data = topic_corpus.train.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert [(d.name, d.sha256, d.size) for d in prov.datasets] == [("topic.txt", sha, len(data))]
    hyper = prov.hyperparameters
    assert hyper["method"] == "full" and hyper["learning_rate"] == 3e-3 and hyper["max_steps"] == 40
    assert hyper["global_step"] == 40 and hyper["block_size"] == 128 and hyper["batch_size"] == 8
    assert prov.frameworks["torch"] == torch.__version__
    assert prov.frameworks["transformers"] == transformers.__version__
    assert prov.frameworks["gptstore"] == gptstore.__version__
    metrics = {m.name: m for m in manifest.metrics}
    assert metrics["loss"].value == pytest.approx(topic_run.result.eval_loss)
    assert metrics["perplexity"].value == pytest.approx(math.exp(metrics["loss"].value))
    # the claim names the held-out documents, written beside the checkpoints, by file sha256
    heldout = topic_run.result.heldout_file
    assert heldout.name == "topic.txt.held-out.jsonl" and heldout.parent == topic_run.result.checkpoint_dir
    heldout_sha = hashlib.sha256(heldout.read_bytes()).hexdigest()
    assert {(m.dataset, m.dataset_sha256, m.split) for m in manifest.metrics} == {
        (heldout.name, heldout_sha, "held-out")}
    held_docs = [json.loads(line)["text"] for line in heldout.read_text().splitlines()]
    paragraphs = [d.strip() for d in topic_corpus.train.read_text().split("\n\n") if d.strip()]
    assert set(held_docs) <= set(paragraphs) and len(held_docs) == round(0.1 * len(paragraphs))
    # behaviour and licence are inherited from the base
    assert manifest.license == "mit" and manifest.prompt_template == "Q: {prompt}\nA:"


def test_output_is_a_clean_publishable_package(topic_run, gptstore_home):
    out = topic_run.out
    manifest = load_manifest(out)
    names = {f.path for f in manifest.files}
    assert "model.safetensors" in names and "config.json" in names and "tokenizer.json" in names
    assert "generation_config.json" in names and not any(n.startswith(".") for n in names)
    assert check_integrity(out, manifest, mode="full").ok
    assert not list(out.parent.glob(".out.*"))  # no temp dirs left beside it
    assert topic_run.result.checkpoint_dir.is_dir() and not topic_run.result.checkpoint_dir.is_relative_to(out)
    model = Library().publish(out)
    assert model.name == "acme/tiny-cli:1.0.0"


def test_resume_continues_from_the_last_checkpoint(tiny_gpt, topic_corpus, tmp_path):
    out = tmp_path / "out"
    fast = FAST | {"lr_scheduler": "constant", "eval_base": False}
    first = finetune(tiny_gpt, topic_corpus.train, out, config=FinetuneConfig(max_steps=4, **fast))
    assert (first.global_step, first.resumed_from_step) == (4, None)
    assert first.manifest.name == "tiny-gpt-finetuned" and first.manifest.namespace == "local"
    weights = (out / "model.safetensors").read_bytes()
    second = finetune(tiny_gpt, topic_corpus.train, out, config=FinetuneConfig(max_steps=7, **fast))
    assert (second.resumed_from_step, second.steps_run, second.global_step) == (4, 3, 7)
    assert load_manifest(out).provenance.hyperparameters["global_step"] == 7
    assert (out / "model.safetensors").read_bytes() != weights
    assert [p.name for p in second.checkpoint_dir.glob("checkpoint-*")] == ["checkpoint-7"]
    # other data: the checkpoints do not fit, so it refuses instead of mixing runs
    other = tmp_path / "other.txt"
    other.write_text(topic_corpus.train.read_text() + "\n\nmore")
    with pytest.raises(ConflictError, match="another data"):
        finetune(tiny_gpt, other, out, config=FinetuneConfig(max_steps=8, **fast))
    # 4 steps + 3 resumed steps are the same training as 7 steps in one go
    straight = finetune(tiny_gpt, topic_corpus.train, out, config=FinetuneConfig(max_steps=7, **fast),
                        resume=False)
    assert (straight.resumed_from_step, straight.global_step) == (None, 7)
    assert straight.eval_loss == pytest.approx(second.eval_loss, rel=1e-5)


def test_resume_after_an_interrupted_run(tiny_gpt, topic_corpus, tmp_path, monkeypatch):
    from transformers import Trainer

    calls = {"n": 0}
    original = Trainer.training_step

    def crash_at_step_5(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    out = tmp_path / "out"
    config = FinetuneConfig(max_steps=6, save_steps=2, eval_base=False, **FAST)
    monkeypatch.setattr(Trainer, "training_step", crash_at_step_5)
    with pytest.raises(FinetuneInterrupted, match="interrupted; re-run to resume from step 4") as info:
        finetune(tiny_gpt, topic_corpus.train, out, config=config)  # a hard interrupt mid-step
    assert info.value.exit_code == 130 and not out.exists()
    monkeypatch.setattr(Trainer, "training_step", original)
    result = finetune(tiny_gpt, topic_corpus.train, out, config=config)
    assert (result.resumed_from_step, result.steps_run, result.global_step) == (4, 2, 6)


# -- bad input: one clear error, nothing written, nothing trained -------------------------------

@pytest.fixture
def no_training(monkeypatch):
    from transformers import Trainer

    def refuse(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(Trainer, "train", refuse)


def _fails(error, match, base, data, out, **kwargs):
    with pytest.raises(error, match=match) as info:
        finetune(base, data, out, config=kwargs.pop("config", FinetuneConfig(max_steps=2)), **kwargs)
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b'{"text": "fine"}\n{"text": \n', "line 2: invalid JSON"),
    (b'{"text": "fine"}\n{"prompt": "no completion"}\n', "line 2: missing key 'completion'"),
])
def test_bad_data_files(tiny_gpt, tmp_path, gptstore_home, no_training, content, match):
    data = tmp_path / "data.jsonl"
    data.write_bytes(content)
    _fails(UsageError, match, tiny_gpt, [data], tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (gptstore_home / "finetune").exists()


def test_unreadable_data(tiny_gpt, tmp_path, no_training):
    _fails(UsageError, "no such file", tiny_gpt, [tmp_path / "nope.txt"], tmp_path / "out")
    _fails(UsageError, "is a directory", tiny_gpt, [tmp_path], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_data_shorter_than_one_block(tiny_gpt, topic_corpus, tmp_path, gptstore_home, no_training):
    short = tmp_path / "short.txt"
    short.write_text("Parse the command line.")
    _fails(UsageError, r"short.txt: has \d+ tokens, fewer than one block \(128\)", tiny_gpt,
           [topic_corpus.train, short], tmp_path / "out")
    _fails(UsageError, "exceeds the base model's context length", tiny_gpt, [topic_corpus.train],
           tmp_path / "out", config=FinetuneConfig(block_size=512))
    assert not (tmp_path / "out").exists() and not (gptstore_home / "finetune").exists()


def test_tampered_library_base(tiny_gpt, topic_corpus, tmp_path, no_training):
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    model = Library().publish(tiny_gpt)
    with open(model.path / "config.json", "ab") as handle:
        handle.write(b" ")
    error = _fails(DigestMismatch, "config.json", "acme/tiny", [topic_corpus.train], tmp_path / "out")
    assert error.path == "config.json"
    assert not (tmp_path / "out").exists()


def test_output_that_holds_something_else(tiny_gpt, topic_corpus, tmp_path, no_training):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    _fails(ConflictError, "not empty and holds no earlier finetune output", tiny_gpt, [topic_corpus.train], out)
    assert [p.name for p in out.iterdir()] == ["notes.md"]
    # a model directory that finetune did not write is "something else" too
    _fails(ConflictError, "not empty", tiny_gpt, [topic_corpus.train], tiny_gpt)
    (tmp_path / "file").write_text("x")
    _fails(ConflictError, "is a file", tiny_gpt, [topic_corpus.train], tmp_path / "file")


def test_bad_base_and_options(topic_corpus, tmp_path):
    from gptstore.errors import ModelNotFound

    _fails(ModelNotFound, "acme/absent", "acme/absent", [topic_corpus.train], tmp_path / "out")
    _fails(UsageError, "neither a model directory nor a reference", "no such dir", [topic_corpus.train],
           tmp_path / "out")
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "config.json").write_text(json.dumps({"n_positions": 128}))
    (weightless / "pytorch_model.bin").write_bytes(b"pickle")
    _fails(PackageError, "has no safetensors weights", weightless, [topic_corpus.train], tmp_path / "out")
    with pytest.raises(UsageError, match="method: unknown method 'nope' \\(known: full"):  # plugins add more
        make_config(method="nope")
    with pytest.raises(UsageError, match="learning_rate"):
        make_config(learning_rate=-1)
    with pytest.raises(ValueError):
        FinetuneConfig(epochs=1, bogus=True)


def test_config_and_checks_need_no_torch(tmp_path):
    script = f"""
import sys
from gptstore.training.config import FinetuneConfig, make_config
from gptstore.training.finetune import FinetuneInterrupted, finetune
from gptstore.training.tiny import stdlib_docstrings
import gptstore.cli.train
from gptstore.errors import UsageError
FinetuneConfig(max_steps=5, learning_rate=1e-3)
try:
    make_config(method="nope")
except UsageError:
    pass
(open({str(tmp_path / 'bad.jsonl')!r}, 'w')).write('{{"x": 1}}')
try:
    finetune({str(tmp_path)!r}, [{str(tmp_path / 'bad.jsonl')!r}], {str(tmp_path / 'out')!r})
except UsageError as e:
    print("ERR", e)
print("HEAVY", [m for m in ("torch", "transformers") if m in sys.modules])
"""
    (tmp_path / "config.json").write_text(json.dumps({"n_positions": 16}))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "ERR data file" in done.stdout and "line 1: missing key 'text'" in done.stdout
    assert "HEAVY []" in done.stdout
