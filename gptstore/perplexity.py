"""Language-model perplexity: exp(mean token cross-entropy), and a model's context length.

The maths every caller shares: the transformers engine (``Model.perplexity``), ``finetune`` (the
claim it writes into the manifest) and ``gptstore eval`` (:mod:`gptstore.evaluation`, which
re-measures that claim). One implementation, so a claim measured while training is exactly what
``gptstore eval --check`` measures later. It sits below the engines and imports nothing of gptstore
but its errors; torch is imported only inside :func:`evaluate`.

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import UsageError

#: keys of a Hugging Face model config that hold the context length, in the order they are read
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length")
#: a loss above this is reported as the perplexity of this loss (exp overflows a float past ~709)
_MAX_LOSS = 700.0


def context_length(config: Mapping[str, Any] | Any) -> int | None:
    """The context length a model config declares, or None when it declares none.

    ``config`` is a ``config.json`` read as a dict (the adapter and the training data read it
    without transformers) or a loaded ``PretrainedConfig``; both are read by :data:`CONTEXT_KEYS`,
    so a package's manifest, a fine-tune's block size and an evaluation agree on the number.
    """
    for key in CONTEXT_KEYS:
        value = config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def perplexity_of(loss: float | None) -> float | None:
    """exp(loss) for a mean token cross-entropy in nats (None stays None; huge losses saturate)."""
    return None if loss is None else math.exp(min(loss, _MAX_LOSS))


@dataclass(frozen=True)
class LMEvaluation:
    """The result of :func:`evaluate`."""

    loss: float  #: mean token cross-entropy, in nats
    tokens: int  #: tokens predicted (the loss is averaged over these)
    blocks: int  #: blocks of context run through the model

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, _MAX_LOSS))


def model_context(model: Any, tokenizer: Any = None) -> int:
    """A loaded model's context: its config's (:func:`context_length`), else the tokenizer's limit."""
    found = context_length(getattr(model, "config", None))
    if found is not None:
        return found
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
        UsageError: when there are no texts, or they hold fewer than two tokens in all.
    """
    import torch
    import torch.nn.functional as F

    if isinstance(texts, str):
        texts = [texts]
    if not texts:  # a tokenizer given no texts fails deep inside (IndexError)
        raise UsageError("perplexity needs at least one text (got an empty list)",
                         hint="pass a string or a non-empty list of strings")
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1 (got {batch_size})")
    ids = token_stream(tokenizer, texts)
    if len(ids) < 2:
        raise UsageError("perplexity needs at least one token to predict", hint="give non-empty texts")
    blocks = blocks_of(ids, block_size or model_context(model, tokenizer))
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


def score_tokens(model: Any, sequences: Sequence[tuple[list[int], int]], *,
                 batch_size: int = 8) -> list[tuple[float, bool]]:
    """For each ``(ids, first)``: the summed log-probability (nats) of ``ids[first:]`` given the
    tokens before each, and whether every one of them is the model's greedy choice.

    The scoring behind the harness's ``loglikelihood`` and ``loglikelihood_rolling`` requests
    (:mod:`gptstore.harness`); ``first`` is at least 1 and each sequence fits the model's context.
    Sequences run right-padded and masked, ``batch_size`` per forward pass, logits in float32.
    """
    import torch

    if any(not 1 <= first < len(ids) for ids, first in sequences):
        raise UsageError("each scored sequence needs a context token and at least one token to score")
    device = next(model.parameters()).device
    results: list[tuple[float, bool]] = []
    with torch.inference_mode():
        for start in range(0, len(sequences), batch_size):
            chunk = sequences[start:start + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (ids, _) in enumerate(chunk):
                input_ids[row, :len(ids)] = torch.tensor(ids)
                mask[row, :len(ids)] = 1
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
            logprobs = torch.log_softmax(logits, dim=-1).cpu()
            for row, (ids, first) in enumerate(chunk):
                targets = torch.tensor(ids[first:])
                scores = logprobs[row, first - 1:len(ids) - 1]
                picked = scores.gather(1, targets.unsqueeze(1)).squeeze(1)
                results.append((float(picked.sum().item()), bool((scores.argmax(-1) == targets).all().item())))
    return results
