"""gptstore.perplexity: the context length read in one place, and the perplexity maths."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import pytest

from gptstore.errors import UsageError
from gptstore.perplexity import blocks_of, context_length, model_context, perplexity_of, token_stream


def test_context_length_reads_a_config_dict_or_a_config_object():
    assert context_length({"n_positions": 128}) == 128
    assert context_length({"max_position_embeddings": 4096, "n_positions": 128}) == 4096  # first key wins
    assert context_length({"max_seq_len": 64}) == 64 and context_length({"seq_length": 32}) == 32
    assert context_length(SimpleNamespace(n_ctx=256)) == 256
    assert context_length({"n_positions": 0, "seq_length": 16}) == 16  # not a length: the next key is read
    for nothing in ({}, {"n_positions": True}, {"n_positions": "128"}, {"n_positions": -1}, None):
        assert context_length(nothing) is None


def test_the_adapter_finetune_and_eval_read_the_same_context(tiny_gpt, tmp_path):
    """One helper behind the manifest's context_length, finetune's block size and eval's blocks."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gptstore.adapters.transformers import TransformersAdapter
    from gptstore.training.data import resolve_block_size

    declared = json.loads((tiny_gpt / "config.json").read_text())["n_positions"]
    assert TransformersAdapter().inspect(tiny_gpt)["context_length"] == declared
    assert resolve_block_size(tiny_gpt, None) == min(declared, 1024)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt)
    assert model_context(model, AutoTokenizer.from_pretrained(tiny_gpt)) == declared
    # a model whose config declares nothing falls back to the tokenizer's limit, else refuses
    bare = SimpleNamespace(config=SimpleNamespace())
    assert model_context(bare, SimpleNamespace(model_max_length=512)) == 512
    with pytest.raises(UsageError, match="cannot tell the model's context length"):
        model_context(bare, SimpleNamespace(model_max_length=10**30))  # transformers' "no limit"


def test_blocks_overlap_by_one_so_each_token_is_predicted_once():
    for n in (2, 10, 11, 12):
        ids = list(range(n))
        blocks = blocks_of(ids, 4)
        assert all(2 <= len(b) <= 4 for b in blocks)
        assert [t for b in blocks for t in b[1:]] == ids[1:]  # every token but the first, exactly once
    assert blocks_of(list(range(10)), 4) == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    with pytest.raises(UsageError, match="block_size must be at least 2"):
        blocks_of([1, 2, 3], 1)


def test_token_stream_layout():
    class Words:
        eos_token_id, bos_token_id = 0, 9

        def __call__(self, texts, add_special_tokens=False, verbose=False):
            assert add_special_tokens is False
            return {"input_ids": [[len(w) for w in t.split()] for t in texts]}

    assert token_stream(Words(), ["ab c", "def"]) == [9, 2, 1, 0, 3, 0]
    Words.bos_token_id = None
    assert token_stream(Words(), ["ab"]) == [2, 0]


def test_perplexity_of_a_loss():
    assert perplexity_of(None) is None
    assert perplexity_of(math.log(7.0)) == pytest.approx(7.0)
    assert math.isfinite(perplexity_of(10_000.0))  # saturates instead of overflowing


def test_importing_it_is_light():
    script = "import sys, gptstore.perplexity; print([m for m in ('torch', 'transformers', 'pydantic') if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
