"""Dynamic batching: requests to one model that arrive together run as one batched generation.

A model's worker (:mod:`.pool`) takes a job, then collects the compatible jobs that are already
queued or arrive within ``--batch-window-ms``, up to ``--max-batch`` rows, and hands them here.
Jobs are compatible when they come from the same API key (so each key's usage row stays its own)
and their generation params are equal after the request is planned (chat templates add stop
strings); what differs per row is only the prompt. A batch is left-padded with an attention mask,
exactly as ``Model.generate`` on a list does, so greedy rows are token-identical to one-by-one calls.

Not batched (each job runs alone, in arrival order): sampling with a ``seed`` (a row's draws depend
on its batch), beam search, streams of ``n > 1`` or of several prompts, streams while a plugin
filters output (they are generated whole), and streams on an engine without batched streaming
(a runner without ``batched_streams``, see :mod:`gptstore.engines.base`).

A streamed row whose client goes away is dropped from its batch (its ``cancelled`` event is the
row's); the batch stops when every row is finished or dropped, and the tokens a dropped row took
are still metered (:meth:`gptstore.Model.stream_batch`). A non-streamed batch runs to its end.
Only public :class:`~gptstore.Model` API is used here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Hashable

from .failures import APIError
from .generation import Emit, Plan, scores_of

if TYPE_CHECKING:
    from ..engines.params import GenerationParams
    from ..model import Model
    from .pool import Job


@dataclass
class Batchable:
    """What a job brings to a batch: its coarse group (checked when collecting), its row count,
    how to plan it on the model, and (a stream) where its events go."""

    group: Hashable
    rows: int
    plan: Callable[[Model], Plan]
    logprobs: int | None = None
    emit: Emit | None = None  #: set for a streamed job


def batchable_params(params: GenerationParams) -> bool:
    """Whether rows with these (resolved) params may share a batch: greedy, or sampling unseeded."""
    return params.strategy == "greedy" or (params.strategy == "sample" and params.seed is None)


def run_solo(model: Model, job: Job) -> None:
    try:
        job.future.set_result(job.work(model, job))
    except BaseException as exc:  # handed to the request
        job.future.set_exception(exc)


def run_batch(model: Model, jobs: list[Job]) -> None:
    """Run ``jobs`` (futures already running), batching those whose plans match; set every future."""
    groups: dict[tuple, list[tuple[Job, Plan]]] = {}
    for job in jobs:
        try:
            plan = job.batch.plan(model)
        except BaseException as exc:
            job.future.set_exception(exc)
            continue
        key = (job.batch.emit is not None, plan.raw, plan.params.model_dump_json())
        groups.setdefault(key, []).append((job, plan))
    for (streamed, raw, _), members in groups.items():
        params = members[0][1].params
        members = _solo_near_the_context_end(model, members, model.params(params).max_new_tokens)
        if streamed:
            runner = model.runner
            together = (len(members) > 1 and getattr(runner, "batched_streams", False) and not model.output_filtered
                        and batchable_params(model.params(params)))
        else:
            together = len(members) > 1 and batchable_params(model.params(params))
        if not together:
            for job, _ in members:
                run_solo(model, job)
        elif streamed:
            _stream_rows(model, members, params, raw)
        else:
            _generate_rows(model, members, params, raw)


def _solo_near_the_context_end(model: Model, members: list[tuple[Job, Plan]],
                               max_new_tokens: int) -> list[tuple[Job, Plan]]:
    """Run alone (now) the jobs whose prompt + ``max_new_tokens`` would not fit in the context:
    in a left-padded batch the longest prompt bounds every row's budget, so such a row could end
    sooner than alone. The others are returned. (An engine without ``count_tokens`` batches all.)"""
    count = getattr(model.runner, "count_tokens", None)
    if count is None or len(members) < 2:
        return members
    kept = []
    for job, plan in members:
        rendered = [p if plan.raw else model.manifest.render(p) for p in plan.prompts]
        if max(count(rendered)) + max_new_tokens > model.context_length:
            run_solo(model, job)
        else:
            kept.append((job, plan))
    return kept


def _generate_rows(model: Model, members: list[tuple[Job, Plan]], params: GenerationParams, raw: bool) -> None:
    ready = []
    for job, plan in members:
        if job.batch.logprobs is not None and model.output_filtered:
            job.future.set_exception(APIError(400, "logprobs are not available while a plugin filters this "
                                                   "server's output", param="logprobs"))
        else:
            ready.append((job, plan))
    prompts = [prompt for _, plan in ready for prompt in plan.prompts for _ in range(plan.n)]
    if not prompts:
        return
    try:
        completions = model.generate(prompts, params, raw=raw)
    except BaseException as exc:
        for job, _ in ready:
            job.future.set_exception(exc)
        return
    offset = 0
    for job, plan in ready:
        rows = len(plan.prompts) * plan.n
        mine = completions[offset:offset + rows]
        offset += rows
        try:
            job.future.set_result((mine, scores_of(model, plan, mine, job.batch.logprobs)))
        except BaseException as exc:
            job.future.set_exception(exc)


def _stream_rows(model: Model, members: list[tuple[Job, Plan]], params: GenerationParams, raw: bool) -> None:
    """One batched stream (:meth:`gptstore.Model.stream_batch`: template, hooks, one usage row
    with every row's tokens, a dropped row's included); each job gets its row's events as choice 0."""
    jobs = [job for job, _ in members]
    events = None
    try:
        events = model.stream_batch([plan.prompts[0] for _, plan in members], params,
                                    cancelled=[job.cancelled for job in jobs], raw=raw)
        for what, row, value in events:
            job = jobs[row]
            if what == "piece":
                job.batch.emit(("piece", 0, value))
            elif what == "end":
                job.batch.emit(("end", 0, value))
                job.future.set_result(None)
            # "dropped": its client is gone; the row's tokens are in the usage log
    except BaseException as exc:
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(exc)
    finally:
        if events is not None:
            events.close()
        for job in jobs:  # dropped rows
            if not job.future.done():
                job.future.set_result(None)
