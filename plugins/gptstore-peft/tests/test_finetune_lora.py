"""`gptstore finetune --method lora`: an adapter-only package over a library base, end to end."""

from __future__ import annotations

import json

import pytest

import gptstore
from gptstore.manifest import load_manifest

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
                     "--method", "lora", "--method-option", "r=4", "--method-option", "alpha=8",
                     "--method-option", "target_modules=c_attn,c_proj",
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

    def error(*args: str) -> str:
        result = run_cli(*common, *args)
        assert result.exit_code == 2, result.output
        [line] = result.output.strip().splitlines()  # one line, naming the method and the key/value
        return line

    assert error("--base", BASE, "--method-option", "r=4") == (
        "Error: method 'full' takes no options (got r); leave out --method-option, or choose a method that "
        "takes these options")
    assert error("--base", BASE, "--method", "lora", "--method-option", "rank=4") == (
        "Error: method 'lora' has no option 'rank'; its options: r, alpha, dropout, target_modules")
    assert error("--base", BASE, "--method", "lora", "--method-option", "r=0") == (
        "Error: method 'lora' option r=0 is invalid: Input should be greater than or equal to 1; "
        "r: LoRA rank, a whole number >= 1, e.g. r=8")
    assert error("--base", BASE, "--method", "lora", "--method-option", "alpha=big").startswith(
        "Error: method 'lora' option alpha=big is invalid: Input should be a valid number")
    assert error("--base", BASE, "--method", "lora", "--method-option", "dropout=1").startswith(
        "Error: method 'lora' option dropout=1 is invalid: Input should be less than 1")
    assert error("--base", BASE, "--method", "lora", "--method-option", "target_modules=c_attn,,c_proj").startswith(
        "Error: method 'lora' option target_modules=c_attn,,c_proj is invalid: a module name is empty")
    bare = error("--base", str(tiny_gpt_dir), "--method", "lora")  # a directory, no manifest
    assert "the base must be a model in the local library" in bare
    missing = error("--base", BASE, "--method", "lora", "--method-option", "target_modules=q_proj",
                    "--max-steps", "1")
    assert "LoRA cannot adapt this model" in missing and "--method-option target_modules=" in missing
    assert "c_attn" in missing  # the hint lists the layers it could adapt
    assert not out.exists()


def test_lora_options_model():
    from gptstore_peft.lora import LoraOptions

    assert LoraOptions().model_dump() == {"r": 8, "alpha": 16.0, "dropout": 0.0, "target_modules": None}
    given = LoraOptions.model_validate({"r": "4", "alpha": "8", "dropout": "0.05", "target_modules": " c_attn , c_proj"})
    assert given.model_dump() == {"r": 4, "alpha": 8.0, "dropout": 0.05, "target_modules": ["c_attn", "c_proj"]}
    assert LoraOptions.model_validate({"target_modules": ["c_attn"]}).target_modules == ["c_attn"]
    for bad in ({"r": True}, {"r": "1.5"}, {"alpha": "0"}, {"target_modules": ""}, {"target_modules": []},
                {"rank": 4}):
        with pytest.raises(ValueError):
            LoraOptions.model_validate(bad)


def test_lora_default_learning_rate_lowers_the_loss(base_model, corpus, tmp_path):
    """Without --learning-rate LoRA trains at its own default (2e-4, peft practice), not full
    fine-tuning's 5e-5, at which 40 LoRA steps hardly move the model: the default lowers the
    held-out loss several times more (the tiny model is random-init, so the absolute change is small)."""
    from gptstore.training.config import get_method

    assert get_method("lora").default_learning_rate == 2e-4 and get_method("full").default_learning_rate == 5e-5
    common = dict(method="lora", max_steps=40, batch_size=4, block_size=64, seed=0, eval_split=0.2)
    default = gptstore.finetune(f"{BASE}:{BASE_VERSION}", corpus, tmp_path / "default", **common)
    assert default.manifest.provenance.hyperparameters["learning_rate"] == 2e-4
    slow = gptstore.finetune(f"{BASE}:{BASE_VERSION}", corpus, tmp_path / "slow", learning_rate=5e-5, **common)
    assert slow.manifest.provenance.hyperparameters["learning_rate"] == 5e-5
    drop, slow_drop = default.base_eval_loss - default.eval_loss, slow.base_eval_loss - slow.eval_loss
    assert drop > 0.001 and drop > 4 * slow_drop, (drop, slow_drop)
