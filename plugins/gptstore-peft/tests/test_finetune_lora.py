"""`gptstore finetune --method lora`: an adapter-only package over a library base, end to end."""

from __future__ import annotations

import json

import pytest

import gptstore
from gptstore.manifest import load as load_manifest

from peft_refs import BASE, BASE_VERSION


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    from gptstore.training.tiny import stdlib_docstrings

    path = tmp_path_factory.mktemp("corpus") / "argparse.txt"
    path.write_text("\n\n".join(stdlib_docstrings(modules=("argparse",))), encoding="utf-8")
    return path


def test_finetune_lora_cli_packages_publishes_and_loads(base_model, corpus, run_cli, tmp_path):
    out = tmp_path / "poet-lora"
    result = run_cli("finetune", "--base", f"{BASE}:{BASE_VERSION}", "--data", str(corpus), "--out", str(out),
                     "--method", "lora", "--lora-r", "4", "--lora-alpha", "8", "--target-modules", "c_attn,c_proj",
                     "--max-steps", "3", "--lr", "3e-3", "--name", "acme/poet-lora", "--version", "0.1.0", "-q")
    assert result.exit_code == 0, result.output
    assert "Fine-tuned acme/poet-lora:0.1.0" in result.output
    manifest = load_manifest(out)
    assert manifest.format.adapter == "peft"
    assert (manifest.format.base.reference, manifest.format.base.digest) == (f"{BASE}:{BASE_VERSION}",
                                                                             base_model.digest)
    assert {f.path for f in manifest.files} == {"adapter_config.json", "adapter_model.safetensors"}
    assert manifest.total_size < 0.2 * base_model.manifest.total_size
    hyper = manifest.provenance.hyperparameters
    assert hyper["method"] == "lora"
    assert hyper["method_options"] == {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["c_attn", "c_proj"]}
    assert manifest.provenance.base_digest == base_model.digest
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["base_model_name_or_path"]) == (4, 8, f"{BASE}:{BASE_VERSION}")
    assert sorted(config["target_modules"]) == ["c_attn", "c_proj"]

    published = run_cli("publish", str(out))
    assert published.exit_code == 0, published.output
    with gptstore.load("acme/poet-lora") as model:
        unmerged = model.generate("The parser", max_new_tokens=12).token_ids
        assert model.engine == "peft" and unmerged
    with gptstore.load("acme/poet-lora", engine="peft-merged") as model:
        assert model.generate("The parser", max_new_tokens=12).token_ids == unmerged
    ran = run_cli("run", "acme/poet-lora", "The parser", "--max-new-tokens", "4")
    assert ran.exit_code == 0, ran.output


def test_lora_options_are_checked_before_training(base_model, corpus, run_cli, tiny_gpt_dir, tmp_path):
    out = tmp_path / "out"
    common = ["finetune", "--data", str(corpus), "--out", str(out)]
    wrong = run_cli(*common, "--base", BASE, "--lora-r", "4", "--target-modules", "c_attn")
    assert wrong.exit_code == 2
    assert "--lora-r, --target-modules are only meaningful with --method lora (the method is full)" in wrong.output
    bad_rank = run_cli(*common, "--base", BASE, "--method", "lora", "--lora-r", "0")
    assert bad_rank.exit_code == 2 and "LoRA rank r must be a whole number >= 1 (got 0)" in bad_rank.output
    bare = run_cli(*common, "--base", str(tiny_gpt_dir), "--method", "lora")  # a directory, no manifest
    assert bare.exit_code == 2 and "the base must be a model in the local library" in bare.output
    missing = run_cli(*common, "--base", BASE, "--method", "lora", "--target-modules", "q_proj", "--max-steps", "1")
    assert missing.exit_code == 2 and "LoRA cannot adapt this model" in missing.output
    assert "c_attn" in missing.output  # the hint lists the layers it could adapt
    assert not out.exists()
