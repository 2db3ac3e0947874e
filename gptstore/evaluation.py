"""``gptstore eval``: measure a model's perplexity on data files and check the claim its manifest makes.

A fine-tune's manifest claims a perplexity (``metrics``) on data it names by sha256.
:func:`evaluate_model` measures a library model (loaded verified through :func:`gptstore.load`) or
a directory (a package draft: verified first, but for its signature; or a plain model directory:
safety) with :func:`gptstore.perplexity.evaluate`, the same maths ``finetune`` used to write the
claim, on files read as ``finetune`` reads them (:mod:`gptstore.training.data`: blank-line separated
documents, or JSONL ``{"text"}`` / ``{"prompt", "completion"}`` with the prompt rendered by the
model's template). With ``check=True`` the result is compared with the claim, and only on the very
same data: the refusal comes before any model is loaded.

This module sits above the SDK's front door (:mod:`gptstore.model`) and the engines; nothing below
imports it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .engines import pick_engine
from .engines.base import check_device, placement
from .errors import ClaimMismatch, InvalidReference, PackageError, UsageError
from .fsutil import package_files
from .transformers_logging import quiet_transformers
from .library import Library
from .manifest import MANIFEST_FILE, METADATA_FILES, load_manifest
from .model import load
from .perplexity import evaluate, perplexity_of
from .refs import parse_reference
from .safety import check_safety, read_model_config
from .training.data import dataset_identity, read_data
from .verification import verify

if TYPE_CHECKING:
    from .manifest import Manifest, Metric

__all__ = ["DEFAULT_TOLERANCE", "ClaimCheck", "ClaimMismatch", "EvalReport", "claim_status", "evaluate_model",
           "perplexity_claim"]

#: ``gptstore eval --check`` accepts a measured perplexity within this relative distance of the claim
DEFAULT_TOLERANCE = 0.02


@dataclass(frozen=True)
class ClaimCheck:
    """A manifest's perplexity claim next to what was measured on the same data."""

    claimed: float
    measured: float
    tolerance: float  # relative
    dataset: str | None

    @property
    def deviation(self) -> float:
        """(measured - claimed) / claimed (infinite for a claim that is not a perplexity, <= 0)."""
        return (self.measured - self.claimed) / self.claimed if self.claimed > 0 else math.inf

    @property
    def ok(self) -> bool:
        return abs(self.deviation) <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"deviation": self.deviation, "ok": self.ok}


@dataclass
class EvalReport:
    """What :func:`evaluate_model` measured."""

    target: str  # reference (namespace/name:tag) or directory
    digest: str | None  # manifest digest, when there is a manifest
    dataset: str  # data file name(s); several are joined with "+"
    dataset_sha256: str  # the file's sha256 (several: of their sha256sum listing)
    files: list[dict[str, Any]]  # {path, sha256, size, documents} per data file
    loss: float
    perplexity: float
    tokens: int | None
    blocks: int | None
    device: str
    seconds: float
    claim: ClaimCheck | None = None
    manifest: Manifest | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in ("manifest", "claim")}
        data["digest"] = f"sha256:{self.digest}" if self.digest else None
        data["claim"] = self.claim.to_dict() if self.claim else None
        return data

    def raise_for_claim(self) -> None:
        """Raise :class:`ClaimMismatch` (one line) when a checked claim is off by more than the tolerance."""
        claim = self.claim
        if claim is not None and not claim.ok:
            raise ClaimMismatch(
                f"{self.target} claims perplexity {claim.claimed:.4g} on {claim.dataset or self.dataset} but "
                f"measures {claim.measured:.4g} ({claim.deviation:+.1%}, tolerance ±{claim.tolerance:.0%})",
                hint="the manifest's metric does not hold for these weights; do not trust it")


def perplexity_claim(manifest: Manifest, sha256: str | None = None) -> Metric | None:
    """The manifest's ``perplexity`` metric on the data with this sha256 (any data when None; the
    last one when several match)."""
    claims = [m for m in manifest.metrics if m.name == "perplexity"
              and (sha256 is None or m.dataset_sha256 == sha256)]
    return claims[-1] if claims else None


def claim_status(metric: Metric) -> tuple[bool, str]:
    """Whether a manifest metric can be re-checked by ``gptstore eval --check``, and how (or why not).

    Pure (reads the metric only), for ``gptstore show`` and the storefront's model page:
    ``(True, "harness task tiny_mc v1.0 (lm-eval 0.4.13), 0-shot, limit 4, seed 1234, data sha256 ab12…")``
    or ``(False, "the claim records no sha256 of its data")``.
    """
    if metric.task is not None:
        missing = [what for what, value in (("task version", metric.task_version), ("task hash", metric.task_hash),
                                            ("data sha256", metric.dataset_sha256)) if value is None]
        if missing:
            return False, f"the harness claim records no {' or '.join(missing)}"
        parts = [f"harness task {metric.task} v{metric.task_version}"
                 + (f" ({metric.harness})" if metric.harness else ""), f"{metric.num_fewshot or 0}-shot"]
        if metric.limit is not None:
            parts.append(f"limit {metric.limit}")
        if metric.seed is not None:
            parts.append(f"seed {metric.seed}")
        return True, ", ".join(parts) + f", data sha256 {metric.dataset_sha256[:12]}…"
    if metric.name not in ("perplexity", "loss"):
        return False, f"gptstore does not measure {metric.name!r} and it names no harness task"
    if metric.dataset_sha256 is None:
        return False, "the claim records no sha256 of its data"
    return True, (f"gptstore eval --data {metric.dataset or 'its data'}, "
                  f"data sha256 {metric.dataset_sha256[:12]}…")


def _claim_for(manifest: Manifest | None, target: str, dataset: str, sha256: str) -> Metric:
    """The claim to check, refusing (before any model is loaded) when it cannot be compared."""
    if manifest is None:
        raise UsageError(f"{target} has no gptstore.json, so it claims nothing to check",
                         hint="leave out --check, or package it first")
    claim = perplexity_claim(manifest, sha256)
    if claim is not None:
        return claim
    other = perplexity_claim(manifest)
    if other is None:
        raise UsageError(f"{target} claims no perplexity (its manifest has no 'perplexity' metric)",
                         hint="leave out --check to measure it")
    if other.dataset_sha256 is None:
        raise UsageError(f"{target}'s perplexity claim does not record the sha256 of its data, so it cannot be "
                         "checked", hint="leave out --check to measure it")
    raise UsageError(
        f"{target} claims perplexity on {other.dataset or 'other data'} (sha256:{other.dataset_sha256[:12]}…), "
        f"not on {dataset} (sha256:{sha256[:12]}…); a claim is only comparable on the same data",
        hint="pass the claim's data with --data, or leave out --check")


def _resolve(target: str | Path) -> tuple[str, Any, Manifest | None, Path | None]:
    """(name, library model or None, manifest or None, directory or None) — nothing loaded yet."""
    path = Path(target).expanduser()
    if path.is_dir():
        manifest = load_manifest(path) if (path / MANIFEST_FILE).is_file() else None
        if manifest is None and not (path / "config.json").is_file():
            raise UsageError(f"{path} holds neither a gptstore.json nor a config.json",
                             hint="give a package or model directory, or a library reference")
        return str(path), None, manifest, path
    try:
        ref = parse_reference(str(target))
    except InvalidReference:
        raise UsageError(f"{target!r} is neither a model directory nor a reference",
                         hint="give a directory, or namespace/name[:tag] from `gptstore list`") from None
    local = Library().get(ref)
    return local.name, local, local.manifest, None


def _measure(runner: Any, documents: list[str], batch_size: int) -> tuple[float, int | None, int | None]:
    """(loss, tokens, blocks) through a runner's model and tokenizer, else its ``perplexity``."""
    model, tokenizer = getattr(runner, "model", None), getattr(runner, "tokenizer", None)
    if model is not None and tokenizer is not None:
        result = evaluate(model, tokenizer, documents, block_size=getattr(runner, "context_length", None),
                          batch_size=batch_size)
        return result.loss, result.tokens, result.blocks
    return math.log(runner.perplexity(documents, batch_size=batch_size)), None, None


class _PlainRunner:
    """A model directory without a manifest, loaded with transformers (safetensors only, no remote code)."""

    def __init__(self, path: Path, device: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device, dtype = placement(pick_engine("transformers"), device, "auto")
        try:
            self.model = AutoModelForCausalLM.from_pretrained(
                path, local_files_only=True, trust_remote_code=False, use_safetensors=True,
                dtype=getattr(torch, dtype)).to(self.device)
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, KeyError) as exc:
            raise PackageError(f"transformers could not load {path}: {exc}", path=path) from exc
        self.context_length = None

    def close(self) -> None:
        self.model = None


def evaluate_model(target: str | Path, data: Path | str | Iterable[Path | str], *, check: bool = False,
                   tolerance: float = DEFAULT_TOLERANCE, device: str = "auto", batch_size: int = 8) -> EvalReport:
    """Perplexity of a model on data files; with ``check``, compared with its manifest's claim.

    Args:
        target: a library reference (loaded verified, through :func:`gptstore.load`), or a package
            directory (integrity and safety checked first) or a plain model directory (safety).
        data: text or JSONL file(s) (see the module docstring).
        check: compare with the manifest's ``perplexity`` metric; refused (:class:`UsageError`, before
            any model is loaded) when the data's sha256 is not the one the claim records.
        tolerance: relative distance from the claim that still passes (``0.02`` = 2%).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        batch_size: blocks of context per forward pass.

    Returns:
        :class:`EvalReport`; ``report.claim.ok`` says whether a checked claim holds
        (``report.raise_for_claim()`` raises :class:`ClaimMismatch` when not).
    """
    if not (tolerance >= 0):
        raise UsageError(f"tolerance must be 0 or more (got {tolerance})", hint="e.g. 0.02 for 2%")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1 (got {batch_size})")
    device = check_device(device)
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    if not paths:
        raise UsageError("no evaluation data given", hint="pass --data FILE")
    name, local, manifest, directory = _resolve(target)
    files = read_data(paths, render=manifest.render if manifest else None)  # the model's prompt template
    dataset, sha256 = dataset_identity(files)
    claim = _claim_for(manifest, name, dataset, sha256) if check else None
    documents = [d for f in files for d in f.documents]
    start = time.perf_counter()
    digest = manifest.digest if manifest else None
    with quiet_transformers():
        if local is not None:
            with load(local.reference, device=device) as model:  # verified in full, as `gptstore run`
                loss, tokens, blocks = _measure(model.runner, documents, batch_size)
                used_device, digest = model.device, model.digest  # what was measured, if the tag moved
        else:
            runner = _load_directory(directory, manifest, device)
            try:
                loss, tokens, blocks = _measure(runner, documents, batch_size)
                used_device = runner.device
            finally:
                runner.close()
    report = EvalReport(
        target=name, digest=digest, dataset=dataset, dataset_sha256=sha256,
        files=[{"path": str(f.path), "sha256": f.sha256, "size": f.size, "documents": len(f.documents)}
               for f in files],
        loss=loss, perplexity=perplexity_of(loss), tokens=tokens, blocks=blocks, device=used_device,
        seconds=round(time.perf_counter() - start, 3), manifest=manifest)
    if claim is not None:
        report.claim = ClaimCheck(claimed=claim.value, measured=report.perplexity, tolerance=tolerance,
                                  dataset=claim.dataset)
    return report


def _load_directory(path: Path, manifest: Manifest | None, device: str) -> Any:
    """A runner for a directory. A package is verified (every file re-hashed, every registered
    verifier, safety) but for its signature, since a directory is typically your own draft before
    `gptstore sign` (library models are verified in full), then loaded by its engine."""
    if manifest is None:  # nothing to verify against: only what would be loaded is checked
        check_safety(package_files(path, skip=METADATA_FILES), config=read_model_config(path), where=str(path))
        return _PlainRunner(path, device)
    verify(path, skip={"authenticity"})  # raises the first failure; a draft is not signed yet
    engine = pick_engine(manifest.format.adapter)
    device, dtype = placement(engine, device, "auto")
    return engine.load(path, manifest, device=device, dtype=dtype)
