"""Language-model evaluation: perplexity = exp(mean token cross-entropy).

Shared by ``Model.perplexity`` (through the transformers engine), ``gptstore eval`` and
``finetune``. It takes a Hugging Face causal LM and its tokenizer, so it works on a model being
trained as well as on a loaded package.

How the texts are scored: each text is tokenized without special tokens and followed by the
end-of-sequence token (the layout :mod:`gptstore.training.tiny` trains on), the texts are
concatenated and, when the tokenizer has one, a beginning-of-sequence token goes first, so every
token of every text is predicted. The token stream is cut into blocks of ``block_size`` tokens
(the model's context) that overlap by one token, so each token after the first is predicted
exactly once, with as much context as its block gives. Blocks run through the model in batches of
``batch_size`` (the last, shorter block is right-padded and masked). The loss is the mean of the
per-token cross-entropies (natural log) over every predicted token, and the perplexity its exp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import UsageError


@dataclass(frozen=True)
class LMEvaluation:
    """The result of :func:`evaluate`."""

    loss: float  #: mean token cross-entropy, in nats
    tokens: int  #: tokens predicted (the loss is averaged over these)
    blocks: int  #: blocks of context run through the model

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


def context_length(model: Any, tokenizer: Any = None) -> int:
    """The model's context: ``max_position_embeddings`` / ``n_positions``, else the tokenizer's limit."""
    config = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 1:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 1 < limit < 1_000_000:
        return limit
    raise UsageError("cannot tell the model's context length", hint="pass block_size=")


def token_stream(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """``[bos] text₁ eos text₂ eos …`` as token ids (bos only when the tokenizer has one)."""
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    eos = tokenizer.eos_token_id
    bos = tokenizer.bos_token_id
    ids: list[int] = [bos] if bos is not None else []
    for text_ids in encoded:
        ids.extend(text_ids)
        if eos is not None:
            ids.append(eos)
    return ids


def blocks_of(ids: list[int], block_size: int) -> list[list[int]]:
    """Blocks of at most ``block_size`` tokens overlapping by one, so each token but the first
    is predicted exactly once."""
    if block_size < 2:
        raise UsageError(f"block_size must be at least 2 (got {block_size})")
    step = block_size - 1
    return [ids[start:start + block_size] for start in range(0, len(ids) - 1, step)]


def evaluate(model: Any, tokenizer: Any, texts: Sequence[str] | str, *, block_size: int | None = None,
             batch_size: int = 8) -> LMEvaluation:
    """Mean token cross-entropy of ``texts`` under ``model`` (see the module docstring).

    Args:
        model: a Hugging Face causal LM (any device and dtype; logits are scored in float32).
        tokenizer: its tokenizer.
        texts: one text or several.
        block_size: tokens per block; default the model's context length.
        batch_size: blocks per forward pass; lower it if the logits do not fit in memory
            (``batch_size × block_size × vocab`` floats).

    Returns:
        :class:`LMEvaluation` with ``loss``, ``perplexity``, ``tokens`` and ``blocks``.

    Raises:
        UsageError: when the texts hold fewer than two tokens in all.
    """
    import torch
    import torch.nn.functional as F

    if isinstance(texts, str):
        texts = [texts]
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1 (got {batch_size})")
    ids = token_stream(tokenizer, texts)
    if len(ids) < 2:
        raise UsageError("perplexity needs at least one token to predict", hint="give non-empty texts")
    blocks = blocks_of(ids, block_size or context_length(model, tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = 0.0
    count = 0
    try:
        with torch.inference_mode():
            for first in range(0, len(blocks), batch_size):
                chunk = blocks[first:first + batch_size]
                width = max(len(b) for b in chunk)
                input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, block in enumerate(chunk):
                    input_ids[row, :len(block)] = torch.tensor(block)
                    mask[row, :len(block)] = 1
                input_ids, mask = input_ids.to(device), mask.to(device)
                logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
                losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), input_ids[:, 1:].reshape(-1),
                                         reduction="none").view(len(chunk), width - 1)
                valid = mask[:, 1:].bool()
                total += losses[valid].sum().item()
                count += int(valid.sum().item())
    finally:
        model.train(was_training)
    return LMEvaluation(loss=total / count, tokens=count, blocks=len(blocks))


def perplexity(model: Any, tokenizer: Any, texts: Sequence[str] | str, *, block_size: int | None = None,
               batch_size: int = 8) -> float:
    """exp(mean token cross-entropy) of ``texts``; see :func:`evaluate`."""
    return evaluate(model, tokenizer, texts, block_size=block_size, batch_size=batch_size).perplexity
