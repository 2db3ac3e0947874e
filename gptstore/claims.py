"""``gptstore eval --tasks`` and ``--check``: measure harness tasks into a manifest, re-check every claim.

:func:`evaluate_tasks` runs local lm-evaluation-harness tasks (:mod:`gptstore.harness`) on a model
and, for a package directory, records each score in its ``gptstore.json`` as a metric that pins
the measurement: task name and version, the harness's task hash, few-shot count, data sha256,
limit and seed (a library model is immutable: its scores are reported, not recorded).

:func:`check_claims` re-runs every claim a manifest makes. Each comes back as one
:class:`ClaimResult`: ``holds``, ``fails`` (off by more than the tolerance), or ``cannot be
re-checked`` — the task or data it names is not at hand, its version or data sha256 differs, or
the re-run evaluated other documents or prompts (the task hash differs, e.g. an edited few-shot
count). Only ``holds`` passes; the other two make ``--check`` fail, naming the metric.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .errors import ClaimMismatch, UsageError
from .evaluation import DEFAULT_TOLERANCE, _load_directory, _measure, _resolve, claim_status
from .harness import DEFAULT_SEED, LocalTask, TaskResult, load_tasks, run_tasks
from .model import load
from .perplexity import perplexity_of
from .transformers_logging import quiet_transformers

if TYPE_CHECKING:
    from .manifest import Manifest, Metric

__all__ = ["ClaimResult", "ClaimsReport", "TasksReport", "check_claims", "evaluate_tasks"]

HOLDS, FAILS, UNCHECKABLE = "holds", "fails", "cannot be re-checked"
#: metrics gptstore measures itself on --data (finetune's claims)
MEASURED = ("perplexity", "loss")


@dataclass
class TasksReport:
    """What :func:`evaluate_tasks` measured, and where it was recorded."""

    target: str
    digest: str | None
    results: list[TaskResult]
    recorded: str | None  # the gptstore.json written, or None (a library model, or no manifest)
    device: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["digest"] = f"sha256:{self.digest}" if self.digest else None
        return data


@dataclass
class ClaimResult:
    """One claim of a manifest, re-checked."""

    metric: str  # e.g. "acc on tiny_mc" or "perplexity on heldout.txt"
    status: str  # holds | fails | cannot be re-checked
    claimed: float
    measured: float | None = None
    deviation: float | None = None  # (measured - claimed) / max(|claimed|, 1)
    detail: str = ""  # how it was re-checked, or why it could not be


@dataclass
class ClaimsReport:
    target: str
    digest: str | None
    tolerance: float
    claims: list[ClaimResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status == HOLDS for c in self.claims)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self) | {"ok": self.ok}
        data["digest"] = f"sha256:{self.digest}" if self.digest else None
        return data

    def raise_for_claims(self) -> None:
        """:class:`ClaimMismatch` naming the first claim that fails, else the first that cannot be re-checked."""
        bad = [c for c in self.claims if c.status == FAILS] or [c for c in self.claims if c.status != HOLDS]
        if not bad:
            return
        first, more = bad[0], f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        if first.status == FAILS:
            raise ClaimMismatch(
                f"{self.target}: {first.metric} claims {first.claimed:.4g} but measures {first.measured:.4g} "
                f"({first.deviation:+.1%}, tolerance ±{self.tolerance:.0%}){more}",
                hint="the manifest's metric does not hold for these weights; do not trust it")
        raise ClaimMismatch(f"{self.target}: {first.metric} cannot be re-checked: {first.detail}{more}",
                            hint="a claim that cannot be re-checked is not a passed check")


def _label(metric: Metric) -> str:
    where = metric.task or metric.dataset
    return f"{metric.name} on {where}" if where else metric.name


def _deviation(claimed: float, measured: float) -> float:
    return (measured - claimed) / max(abs(claimed), 1.0)


def _compare(metric: Metric, measured: float, tolerance: float, how: str) -> ClaimResult:
    deviation = _deviation(metric.value, measured) if math.isfinite(measured) else math.inf
    status = HOLDS if abs(deviation) <= tolerance else FAILS
    return ClaimResult(_label(metric), status, metric.value, measured, deviation, how)


class _Session:
    """The model, loaded once, on the first claim that needs it."""

    def __init__(self, local: Any, directory: Path | None, manifest: Manifest | None, device: str) -> None:
        self.local, self.directory, self.manifest, self.device = local, directory, manifest, device
        self.model: Any = None
        self.runner: Any = None
        self.digest = manifest.digest if manifest else None

    def get(self) -> Any:
        if self.runner is None:
            if self.local is not None:  # verified in full, as `gptstore run`
                self.model = load(self.local.reference, device=self.device)
                self.runner, self.digest = self.model.runner, self.model.digest
            else:
                self.runner = _load_directory(self.directory, self.manifest, self.device)
        return self.runner

    def close(self) -> None:
        if self.model is not None:
            self.model.close()
        elif self.runner is not None:
            self.runner.close()


def evaluate_tasks(target: str | Path, tasks: Iterable[str], include_path: Path | str, *,
                   num_fewshot: int | None = None, limit: int | None = None, seed: int = DEFAULT_SEED,
                   device: str = "auto", batch_size: int = 8, record: bool = True) -> TasksReport:
    """Run local harness tasks on a model; for a package directory, record the scores in its manifest.

    Args:
        target: a library reference (loaded verified) or a package or plain model directory.
        tasks: task names, defined by YAML files under ``include_path`` over local data files.
        num_fewshot: few-shot examples per prompt (default: each task's own, else 0).
        limit: documents per task (default: all).
        seed: seeds python, numpy, torch and the few-shot sampler.
        record: write the metrics into ``target/gptstore.json`` (package directories only; scores
            of the same tasks recorded before are replaced, and a stale signature is removed).
    """
    from .engines.base import check_device

    names = [t.strip() for t in tasks if t.strip()]
    if not names:
        raise UsageError("no task given", hint="pass --tasks NAME[,NAME…]")
    device = check_device(device)
    name, local, manifest, directory = _resolve(target)
    found = load_tasks(names, include_path)
    session = _Session(local, directory, manifest, device)
    start = time.perf_counter()
    try:
        with quiet_transformers():
            results = run_tasks(session.get(), found, num_fewshot=num_fewshot, limit=limit, seed=seed,
                                batch_size=batch_size, generation=manifest.generation if manifest else None)
        used_device = session.runner.device
    finally:
        session.close()
    recorded = None
    if record and directory is not None and manifest is not None:
        recorded = str(_record(directory, manifest, results))
    return TasksReport(target=name, digest=session.digest, results=results, recorded=recorded,
                       device=used_device, seconds=round(time.perf_counter() - start, 3))


def _record(directory: Path, manifest: Manifest, results: list[TaskResult]) -> Path:
    from .manifest import SCHEMA_VERSION, save, validate
    from .packaging import drop_stale_signature

    tasks = {r.task for r in results}
    metrics = [m.model_dump(exclude_none=True) for m in manifest.metrics if m.task not in tasks]
    for r in results:
        metrics.extend({"name": key, "value": value, "dataset": r.dataset, "dataset_sha256": r.dataset_sha256,
                        "task": r.task, "task_version": r.version, "task_hash": r.task_hash,
                        "num_fewshot": r.num_fewshot, "limit": r.limit, "seed": r.seed, "harness": r.harness}
                       for key, value in r.metrics.items() if math.isfinite(value))
    data = manifest.model_dump(exclude_none=True) | {"metrics": metrics, "schema_version": SCHEMA_VERSION}
    updated = validate(data, source=f"manifest for {directory}")
    path = save(updated, directory)
    drop_stale_signature(directory, updated)
    return path


def check_claims(target: str | Path, data: Iterable[Path | str] = (), include_path: Path | str | None = None, *,
                 tolerance: float = DEFAULT_TOLERANCE, device: str = "auto", batch_size: int = 8) -> ClaimsReport:
    """Re-run every claim of a model's manifest (see the module docstring).

    ``data``: the files the ``perplexity`` / ``loss`` claims were measured on (found by sha256);
    ``include_path``: the directory with the YAML of the harness tasks the claims name.
    """
    from .engines.base import check_device
    from .training.data import dataset_identity, read_data

    if not (tolerance >= 0):
        raise UsageError(f"tolerance must be 0 or more (got {tolerance})", hint="e.g. 0.02 for 2%")
    device = check_device(device)
    name, local, manifest, directory = _resolve(target)
    if manifest is None:
        raise UsageError(f"{name} has no gptstore.json, so it claims nothing to check",
                         hint="leave out --check, or package it first")
    if not manifest.metrics:
        raise UsageError(f"{name} claims nothing (its manifest has no metrics)", hint="leave out --check")
    paths = list(data)
    files = read_data(paths, render=manifest.render) if paths else []
    dataset, sha256 = dataset_identity(files) if files else (None, None)
    report = ClaimsReport(target=name, digest=manifest.digest, tolerance=tolerance)
    session = _Session(local, directory, manifest, device)
    results: dict[int, ClaimResult] = {}
    try:
        with quiet_transformers():
            measured: tuple[float, ...] | None = None
            for i, metric in enumerate(manifest.metrics):
                if metric.task is not None:
                    continue
                checkable, how = claim_status(metric)
                if not checkable or metric.name not in MEASURED:
                    results[i] = ClaimResult(_label(metric), UNCHECKABLE, metric.value, detail=how)
                elif metric.dataset_sha256 != sha256:
                    results[i] = ClaimResult(_label(metric), UNCHECKABLE, metric.value, detail=(
                        f"its data (sha256:{metric.dataset_sha256[:12]}…) was not given: pass it with --data"
                        if sha256 is None else f"--data {dataset} (sha256:{sha256[:12]}…) is not its data "
                        f"(sha256:{metric.dataset_sha256[:12]}…)"))
                else:
                    if measured is None:
                        measured = _measure(session.get(), [d for f in files for d in f.documents], batch_size)
                    value = measured[0] if metric.name == "loss" else perplexity_of(measured[0])
                    results[i] = _compare(metric, value, tolerance, f"gptstore eval --data {dataset}")
            results.update(_check_tasks(manifest, include_path, session, tolerance, batch_size))
    finally:
        session.close()
    report.digest = session.digest
    report.claims = [results[i] for i in sorted(results)]
    return report


def _check_tasks(manifest: Manifest, include_path: Path | str | None, session: _Session, tolerance: float,
                 batch_size: int) -> dict[int, ClaimResult]:
    """The harness claims, each re-run with the few-shot count, limit and seed it records."""
    claims = {i: m for i, m in enumerate(manifest.metrics) if m.task is not None}
    out: dict[int, ClaimResult] = {}
    runs: dict[tuple, list[int]] = {}
    tasks: dict[str, LocalTask | str] = {}
    for i, metric in claims.items():
        checkable, how = claim_status(metric)
        if not checkable:
            out[i] = ClaimResult(_label(metric), UNCHECKABLE, metric.value, detail=how)
            continue
        if include_path is None:
            out[i] = ClaimResult(_label(metric), UNCHECKABLE, metric.value,
                                 detail=f"task {metric.task!r} was not given: pass --include-path DIR with its YAML")
            continue
        if metric.task not in tasks:
            try:
                tasks[metric.task] = load_tasks([metric.task], include_path)[metric.task]
            except UsageError as exc:
                tasks[metric.task] = exc.message
        local = tasks[metric.task]
        if isinstance(local, str):
            why = local
        elif local.version != metric.task_version:
            why = f"task {metric.task} is version {local.version} here, the claim names version {metric.task_version}"
        elif local.dataset_sha256 != metric.dataset_sha256:
            why = (f"task {metric.task}'s data {local.dataset} is sha256:{local.dataset_sha256[:12]}…, the claim "
                   f"names sha256:{metric.dataset_sha256[:12]}…")
        else:
            runs.setdefault((metric.task, metric.num_fewshot, metric.limit, metric.seed), []).append(i)
            continue
        out[i] = ClaimResult(_label(metric), UNCHECKABLE, metric.value, detail=why)
    for (task, num_fewshot, limit, seed), indices in runs.items():
        fresh = load_tasks([task], include_path)  # a task object runs once: the harness edits its config
        result = run_tasks(session.get(), fresh, num_fewshot=num_fewshot or 0, limit=limit,
                           seed=seed if seed is not None else DEFAULT_SEED, batch_size=batch_size,
                           generation=manifest.generation)[0]
        for i in indices:
            metric = claims[i]
            if result.task_hash != metric.task_hash:
                out[i] = ClaimResult(_label(metric), UNCHECKABLE, metric.value, detail=(
                    f"the re-run evaluated other documents or prompts (task hash {result.task_hash[:12]}…, the claim "
                    f"names {metric.task_hash[:12]}…; e.g. another few-shot count or limit)"))
            elif metric.name not in result.metrics:
                out[i] = ClaimResult(_label(metric), UNCHECKABLE, metric.value,
                                     detail=f"task {task} no longer reports {metric.name!r}")
            else:
                out[i] = _compare(metric, result.metrics[metric.name], tolerance,
                                  f"lm-eval task {task} v{result.version}, {result.num_fewshot}-shot, "
                                  f"task hash {result.task_hash[:12]}…")
    return out
