"""Fixtures: a LoRA adapter made with peft directly over the tiny model, and the base published."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from gptstore.library import Library, LocalModel
from gptstore.packaging import package

from peft_refs import ADAPTER, BASE, BASE_VERSION


@pytest.fixture(autouse=True)
def _load_installed_plugins(entry_point_plugins):
    """gptstore's test kit keeps entry-point plugins out of a test unless it asks: these tests
    need the peft formats, engines and method as installed, so every one of them asks."""
    if "peft" not in entry_point_plugins:
        pytest.fail("the peft plugin is not loaded: pip install -e plugins/gptstore-peft")
    return entry_point_plugins


@pytest.fixture(scope="session")
def adapter_source(tiny_gpt_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter (r=4 on c_attn and c_proj) with random, non-zero weights, so that its
    generations differ from the base's. Saved with ``PeftModel.save_pretrained``. Read-only."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj"], init_lora_weights=False,
                        fan_in_fan_out=True, task_type="CAUSAL_LM")
    out = tmp_path_factory.mktemp("lora") / "adapter"
    with warnings.catch_warnings():  # peft asks transformers 5 for a deprecated attribute
        warnings.simplefilter("ignore", FutureWarning)
        get_peft_model(model, config).save_pretrained(out)
    (out / "README.md").unlink(missing_ok=True)
    return out


@pytest.fixture
def adapter_dir(adapter_source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "adapter"
    shutil.copytree(adapter_source, target)
    return target


@pytest.fixture
def base_model(tiny_gpt: Path) -> LocalModel:
    """The tiny model published in this test's library as acme/tiny:1.0.0."""
    package(tiny_gpt, name=BASE, version=BASE_VERSION, description="tiny base")
    return Library().publish(tiny_gpt)


@pytest.fixture
def published_adapter(adapter_dir: Path, base_model: LocalModel) -> LocalModel:
    package(adapter_dir, name=ADAPTER, version="0.1.0", base=f"{BASE}:{BASE_VERSION}")
    return Library().publish(adapter_dir)
