"""Fixtures for the engine tests: the tiny model loaded by the transformers engine and, beside it,
by plain transformers from the same files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_runner(tiny_gpt_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny model as the transformers engine loads it (cpu, float32)."""
    from gptstore.engines.transformers import TransformersEngine
    from gptstore.packaging import package

    path = tmp_path_factory.mktemp("engine") / "tiny"
    shutil.copytree(tiny_gpt_dir, path)
    manifest = package(path, name="acme/tiny", version="1.0.0")
    return TransformersEngine().load(path, manifest, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def plain(tiny_gpt_dir: Path):
    """(model, tokenizer) loaded with plain transformers from the same weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_dir)
    tokenizer.padding_side = "left"
    return model, tokenizer


@pytest.fixture(scope="session")
def ending_runner(tmp_path_factory: pytest.TempPathFactory):
    """A tiny model trained for a few seconds on three short sentences, each followed by the
    end-of-sequence token: it learns to finish a sentence and then emit eos."""
    from gptstore.engines.transformers import TransformersEngine
    from gptstore.packaging import package
    from gptstore.training.tiny import build_tiny_gpt

    texts = ["the cat sat on the mat.", "a dog ran in the park.", "birds sing at dawn."] * 40
    path = build_tiny_gpt(tmp_path_factory.mktemp("ending") / "model", texts=texts, vocab_size=300,
                          context_length=64, train_steps=40, seed=0)
    manifest = package(path, name="acme/ending", version="1.0.0")
    return TransformersEngine().load(path, manifest, device="cpu", dtype="float32")
