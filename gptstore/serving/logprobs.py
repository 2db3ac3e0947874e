"""Log-probabilities of generated tokens (``logprobs`` on completions, ``logprobs`` /
``top_logprobs`` on chat), measured after generation with one forward pass over prompt + completion.

Only engines whose runner exposes a torch ``model`` and a ``tokenizer`` (the built-in transformers
engine) can give them; for others the request is a 400. They score the tokens the model generated
(``Completion.token_ids``, an end-of-sequence token included), conditioned on the rendered prompt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .failures import APIError

if TYPE_CHECKING:
    from ..engines.completion import Completion
    from ..model import Model


def completion_logprobs(model: Model, prompt: str, completion: Completion, top: int) -> dict[str, Any]:
    """OpenAI's completions ``logprobs`` object: tokens, token_logprobs, top_logprobs, text_offset."""
    runner = model.runner
    network, tokenizer = getattr(runner, "model", None), getattr(runner, "tokenizer", None)
    if network is None or tokenizer is None:
        raise APIError(400, f"logprobs are not available for models run by the {model.engine} engine",
                       param="logprobs")
    import torch

    ids = list(completion.token_ids)
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"] or [tokenizer.bos_token_id or 0]
    full = (prompt_ids + ids)[-runner.context_length:]
    start = len(full) - len(ids)
    if not ids or start < 1:
        return {"tokens": [], "token_logprobs": [], "top_logprobs": [] if top else None, "text_offset": []}
    with torch.no_grad():
        logits = network(torch.tensor([full], device=network.device)).logits[0].float()
    rows = torch.log_softmax(logits[start - 1:len(full) - 1], dim=-1)
    chosen = rows.gather(1, torch.tensor(ids, device=rows.device)[:, None])[:, 0].tolist()
    tokens = [tokenizer.decode([i]) for i in ids]
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token)
    tops = None
    if top:
        values, indices = rows.topk(top, dim=-1)
        tops = [{tokenizer.decode([i]): v for i, v in zip(row_ids, row_values)}
                for row_ids, row_values in zip(indices.tolist(), values.tolist())]
    return {"tokens": tokens, "token_logprobs": chosen, "top_logprobs": tops, "text_offset": offsets}
