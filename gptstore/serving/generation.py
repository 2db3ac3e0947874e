"""A request to generation params and prompts, the work a model's worker runs, and the answers.

Params: ``max_tokens`` (chat: also ``max_completion_tokens``) is ``max_new_tokens``; ``temperature``
0 means greedy (OpenAI's "deterministic"), any other value means sampling at that temperature (so
a negative one is refused as :class:`~gptstore.engines.params.GenerationParams` refuses it);
``top_p``, ``seed``, ``stop`` and the ``extra_body`` fields (``strategy``, ``num_beams``, ``top_k``,
``repetition_penalty``) pass through; what a request leaves out comes from the manifest's
generation defaults, then the built-ins (greedy, 256 tokens), exactly as for ``Model.generate``.

``n`` choices of one prompt run as one batch (sampling draws differently per row); streamed,
choices run one after another, choice ``j`` seeded with ``seed + j``. When a plugin filters output
(``Model.output_filtered``, e.g. the guard plugin), streamed choices are generated whole and sent
as one piece, so a client only ever sees filtered text.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Callable

from ..engines.params import GenerationParams
from .chat import render
from .failures import APIError
from .logprobs import completion_logprobs
from .schemas import ChatRequest, CompletionRequest

if TYPE_CHECKING:
    from ..engines.completion import Completion
    from ..model import Model
    from .pool import Job

#: Completion.finish_reason → the API's
FINISH = {"eos": "stop", "stop": "stop", "length": "length"}


def generation_params(request: CompletionRequest | ChatRequest,
                      extra_stop: list[str] | None = None) -> GenerationParams:
    """The call's params (unset fields resolve against the manifest later); InvalidParams → 400."""
    fields: dict[str, Any] = {}
    max_tokens = request.max_tokens or getattr(request, "max_completion_tokens", None)
    if max_tokens is not None:
        fields["max_new_tokens"] = max_tokens
    greedy = request.temperature == 0 and request.strategy in (None, "greedy")
    if greedy:
        fields["strategy"] = "greedy"
    elif request.temperature is not None:
        fields["temperature"] = request.temperature
    if request.top_p is not None and not greedy:
        fields["top_p"] = request.top_p
    for name in ("strategy", "num_beams", "top_k", "repetition_penalty", "seed"):
        value = getattr(request, name)
        if value is not None:
            fields[name] = value
    stop = list(request.stop or []) + list(extra_stop or [])
    if stop:
        fields["stop"] = stop
    return GenerationParams(**fields)


def prompts_of(request: CompletionRequest) -> list[str]:
    return [request.prompt] if isinstance(request.prompt, str) else list(request.prompt)


# -- the work, in a model's worker thread ------------------------------------------------------------

class Plan:
    """What to generate: the prompts (each ``n`` times), the params and whether to apply the
    manifest's template. For chat, made in the worker (rendering needs the tokenizer)."""

    def __init__(self, prompts: list[str], params: GenerationParams, raw: bool, n: int) -> None:
        self.prompts, self.params, self.raw, self.n = prompts, params, raw, n


def chat_plan(model: Model, request: ChatRequest) -> Plan:
    prompt, templated, stop = render(model, request.messages)
    return Plan([prompt], generation_params(request, stop), not templated, request.n)


def completion_plan(request: CompletionRequest) -> Plan:
    return Plan(prompts_of(request), generation_params(request), request.raw, request.n)


def generate(model: Model, plan: Plan, logprobs: int | None = None) -> tuple[list[Completion], list[Any]]:
    """Every choice (prompt-major), and their logprobs when asked for."""
    if logprobs is not None and model.output_filtered:
        raise APIError(400, "logprobs are not available while a plugin filters this server's output",
                       param="logprobs")
    batch = [prompt for prompt in plan.prompts for _ in range(plan.n)]
    completions = model.generate(batch, plan.params, raw=plan.raw)
    return completions, scores_of(model, plan, completions, logprobs)


def scores_of(model: Model, plan: Plan, completions: list[Completion], logprobs: int | None) -> list[Any]:
    """The logprobs of a plan's completions (prompt-major), or ``[]`` when not asked for."""
    if logprobs is None:
        return []
    batch = [prompt for prompt in plan.prompts for _ in range(plan.n)]
    rendered = [prompt if plan.raw else model.manifest.render(prompt) for prompt in batch]
    return [completion_logprobs(model, p, c, logprobs) for p, c in zip(rendered, completions)]


Emit = Callable[[tuple[str, int, Any]], None]


def stream(model: Model, job: Job, plan: Plan, emit: Emit) -> None:
    """Emit ``("piece", index, text)`` as text comes and ``("end", index, Completion)`` per choice;
    stop (closing the generation) as soon as the client is gone."""
    for p, prompt in enumerate(plan.prompts):
        for j in range(plan.n):
            index = p * plan.n + j
            params = plan.params
            if j and params.seed is not None:
                params = params.model_copy(update={"seed": params.seed + j})
            if job.cancelled.is_set():
                return
            if model.output_filtered:
                completion = model.generate(prompt, params, raw=plan.raw)
                if completion.text:
                    emit(("piece", index, completion.text))
                emit(("end", index, completion))
                continue
            pieces = model.stream(prompt, params, raw=plan.raw)
            try:
                for piece in pieces:
                    if job.cancelled.is_set():
                        return
                    emit(("piece", index, piece))
            finally:
                pieces.close()
            emit(("end", index, pieces.completion))


# -- answers ---------------------------------------------------------------------------------------

def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage_of(completions: list[Completion], n: int) -> dict[str, int]:
    """Prompt tokens once per prompt (not per choice), completion tokens of every choice."""
    prompt = sum(c.usage.prompt_tokens for c in completions[::n])
    generated = sum(c.usage.completion_tokens for c in completions)
    return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}


def completion_answer(request: CompletionRequest, completions: list[Completion], scores: list[Any]) -> dict[str, Any]:
    prompts = prompts_of(request)
    choices = []
    for index, completion in enumerate(completions):
        text = (prompts[index // request.n] if request.echo else "") + completion.text
        choices.append({"text": text, "index": index, "logprobs": scores[index] if scores else None,
                        "finish_reason": FINISH[completion.finish_reason]})
    return {"id": new_id("cmpl"), "object": "text_completion", "created": int(time.time()), "model": request.model,
            "choices": choices, "usage": usage_of(completions, request.n)}


def chat_answer(request: ChatRequest, completions: list[Completion], scores: list[Any]) -> dict[str, Any]:
    choices = []
    for index, completion in enumerate(completions):
        logprobs = None
        if scores:
            logprobs = {"content": [
                {"token": t, "logprob": lp, "bytes": list(t.encode()),
                 "top_logprobs": [{"token": k, "logprob": v, "bytes": list(k.encode())}
                                  for k, v in (top or {}).items()]}
                for t, lp, top in zip(scores[index]["tokens"], scores[index]["token_logprobs"],
                                      scores[index]["top_logprobs"] or [None] * len(scores[index]["tokens"]))]}
        choices.append({"index": index, "message": {"role": "assistant", "content": completion.text},
                        "logprobs": logprobs, "finish_reason": FINISH[completion.finish_reason]})
    return {"id": new_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
            "model": request.model, "choices": choices, "usage": usage_of(completions, request.n)}


def chunk(kind: str, ident: str, created: int, model: str, index: int, *, text: str | None = None,
          finish: str | None = None, role: bool = False) -> dict[str, Any]:
    """One server-sent event's payload for a completion (``kind="text_completion"``) or a chat."""
    if kind == "text_completion":
        choice: dict[str, Any] = {"text": text or "", "index": index, "logprobs": None, "finish_reason": finish}
    else:
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
            delta["content"] = ""
        if text is not None:
            delta["content"] = text
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {"id": ident, "object": kind, "created": created, "model": model, "choices": [choice]}
