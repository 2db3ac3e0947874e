"""The peft engines: generations equal peft's own, merged equals unmerged, the base is pinned."""

from __future__ import annotations

import shutil
import warnings

import pytest

import gptstore
from gptstore.errors import DigestMismatch, IntegrityError, ModelNotFound
from gptstore.library import Library
from gptstore.packaging import package
from gptstore.pulling import pull

from peft_refs import ADAPTER, BASE, BASE_VERSION

PROMPTS = ["The parser", "Return the value of"]
NEW = 20


def peft_greedy(base_dir, adapter_dir, prompt: str) -> list[int]:
    """What peft itself generates (greedy) for the adapter on the base, up to and with the eos."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    with warnings.catch_warnings():  # peft asks transformers 5 for a deprecated attribute
        warnings.simplefilter("ignore", FutureWarning)
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(adapter_dir)).eval()
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=NEW, pad_token_id=tokenizer.eos_token_id)
    new = out[0, ids.shape[1]:].tolist()
    eos = tokenizer.eos_token_id
    return new[:new.index(eos) + 1] if eos in new else new


def test_generations_match_peft_and_differ_from_the_base(published_adapter, base_model, tiny_gpt_dir,
                                                          adapter_source):
    with gptstore.load(ADAPTER) as model:
        assert model.engine == "peft" and model.manifest.format.adapter == "peft"
        ours = [model.generate(p, max_new_tokens=NEW, strategy="greedy").token_ids for p in PROMPTS]
        stream = "".join(model.stream(PROMPTS[0], max_new_tokens=NEW))
        assert stream == model.generate(PROMPTS[0], max_new_tokens=NEW).text
        assert model.perplexity(["The parser returns the value."]) > 1
    assert ours == [peft_greedy(tiny_gpt_dir, adapter_source, p) for p in PROMPTS]
    with gptstore.load(f"{BASE}:{BASE_VERSION}") as base:
        plain = [base.generate(p, max_new_tokens=NEW, strategy="greedy").token_ids for p in PROMPTS]
    assert plain != ours
    with gptstore.load(ADAPTER, engine="peft-merged") as merged:
        assert merged.engine == "peft-merged"
        assert [merged.generate(p, max_new_tokens=NEW).token_ids for p in PROMPTS] == ours


def test_base_with_another_digest_is_refused(published_adapter, base_model, tiny_gpt):
    library = Library()
    library.remove(BASE)
    package(tiny_gpt, name=BASE, version=BASE_VERSION, description="same name, other content")
    other = library.publish(tiny_gpt)
    assert other.digest != base_model.digest
    with pytest.raises(DigestMismatch) as caught:
        gptstore.load(ADAPTER)
    text = str(caught.value)
    assert f"made for base {BASE}:{BASE_VERSION} sha256:{base_model.digest}" in text
    assert f"the local library has {BASE}:{BASE_VERSION} as sha256:{other.digest}" in text
    assert f"gptstore pull {BASE}:{BASE_VERSION}@sha256:{base_model.digest}" in text
    library.remove(BASE)
    with pytest.raises(ModelNotFound, match=rf"model {BASE}:{BASE_VERSION}@sha256:{base_model.digest} not found "
                                            r"in the local library; .* run `gptstore pull"):
        gptstore.load(ADAPTER)


def test_base_snapshot_is_verified(published_adapter, base_model):
    weights = base_model.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.unlink()  # the snapshot file is a link to the blob: replace it, do not write through it
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"^base {BASE}:{BASE_VERSION} of {ADAPTER}:0.1.0: model.safetensors "
                                             "does not match its sha256"):
        gptstore.load(ADAPTER)


def test_pull_brings_the_base(published_adapter, base_model, gptstore_home, tmp_path):
    other = tmp_path / "other-library"
    shutil.move(gptstore_home, other)  # everything now lives in another library, used as a store
    library = Library()
    assert library.refs() == []
    result = pull(f"{ADAPTER}:0.1.0", store=str(other))
    assert result.base is not None and result.base.model.digest == base_model.digest
    assert library.tags(BASE)[BASE_VERSION] == base_model.digest
    assert gptstore.verify(result.base.model, library=library, full=True).ok
    with gptstore.load(ADAPTER) as model:
        assert model.generate(PROMPTS[0], max_new_tokens=5).usage.completion_tokens > 0
    library.remove(ADAPTER)
    again = pull(f"{ADAPTER}:0.1.0", store=f"file://{other}")
    assert again.base is None  # the library already had that base


def test_the_engine_takes_its_base_from_the_host(published_adapter, base_model):
    from gptstore.errors import PackageError, UsageError
    from gptstore_peft.engine import PeftEngine

    adapter = Library().get(ADAPTER)
    with pytest.raises(UsageError, match="the peft engine needs its base model"):
        PeftEngine().load(adapter.path, adapter.manifest, device="cpu", dtype="float32")
    with pytest.raises(PackageError, match="a peft adapter's base must be a full model"):
        PeftEngine().load(adapter.path, adapter.manifest, device="cpu", dtype="float32", base=adapter)
    runner = PeftEngine().load(adapter.path, adapter.manifest, device="cpu", dtype="float32", base=base_model)
    try:
        assert runner.engine == "peft" and runner.generate(["The"], gptstore.GenerationParams(max_new_tokens=2))
    finally:
        runner.close()
