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

Evaluation data files are read as ``finetune`` reads training data (:mod:`gptstore.training.data`):
UTF-8 text is cut into documents at blank lines, JSONL holds ``{"text"}`` or ``{"prompt",
"completion"}`` records (a prompt rendered with the model's template). :func:`evaluate_model` (what
``gptstore eval`` runs) measures a library model or a directory on such files and, with
``check=True``, compares the result with the perplexity its manifest claims (``metrics``): a claim
names its data by sha256, so it is only compared on the very same data.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..errors import GPTStoreError, InvalidReference, UsageError
from ..hfutil import quiet_transformers

if TYPE_CHECKING:
    from ..manifest import Manifest, Metric
    from .data import DataFile

#: ``gptstore eval --check`` accepts a measured perplexity within this relative distance of the claim
DEFAULT_TOLERANCE = 0.02
#: the held-out documents of a finetune are written to ``<checkpoint dir>/<dataset name><HELDOUT_SUFFIX>``
HELDOUT_SUFFIX = ".held-out.jsonl"


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


# -- held-out documents (finetune) -----------------------------------------------------------------

def split_documents(files: list[DataFile], eval_split: float, seed: int) -> tuple[list[DataFile], list[str]]:
    """(training files, held-out documents): a seeded ``eval_split`` of all documents, held out whole,
    so that they are real text the model never trains on."""
    pool = [(i, j) for i, f in enumerate(files) for j in range(len(f.documents))]
    if eval_split <= 0:
        return files, []
    n_eval = max(1, round(len(pool) * eval_split))
    if len(pool) - n_eval < 1:
        raise UsageError(f"the data hold {len(pool)} document(s), too few to hold {eval_split:g} of them out "
                         "for evaluation", hint="give more documents (or --text-mode paragraphs), evaluation "
                                                "data of your own, or --eval-split 0")
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    held = {pool[k] for k in order[:n_eval]}
    train = [replace(f, documents=tuple(d for j, d in enumerate(f.documents) if (i, j) not in held))
             for i, f in enumerate(files)]
    return train, [files[i].documents[j] for i, j in pool if (i, j) in held]


def write_heldout(folder: Path, dataset: str, documents: list[str]) -> Path:
    """Write documents as JSONL (one ``{"text": ...}`` per line, which reads back exactly)."""
    name = dataset if len(dataset) <= 100 and "/" not in dataset else "data"
    path = Path(folder) / f"{name}{HELDOUT_SUFFIX}"
    from ..fsutil import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in documents).encode())
    return path


# -- evaluating a model and checking its claim ----------------------------------------------------

class ClaimMismatch(GPTStoreError):
    """A model's measured perplexity differs from its manifest's claim by more than the tolerance."""


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
    from ..manifest import MANIFEST_FILE, load as load_manifest

    path = Path(target).expanduser()
    if path.is_dir():
        manifest = load_manifest(path) if (path / MANIFEST_FILE).is_file() else None
        if manifest is None and not (path / "config.json").is_file():
            raise UsageError(f"{path} holds neither a gptstore.json nor a config.json",
                             hint="give a package or model directory, or a library reference")
        return str(path), None, manifest, path
    from ..library import Library
    from ..refs import parse

    try:
        ref = parse(str(target))
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

        from ..engines import pick_engine
        from ..errors import PackageError

        self.device, dtype = pick_engine("transformers").placement(device, "auto")
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
    from ..engines.base import check_device
    from .data import dataset_identity, read_data

    if not (tolerance >= 0):
        raise UsageError(f"tolerance must be 0 or more (got {tolerance})", hint="e.g. 0.02 for 2%")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1 (got {batch_size})")
    device = check_device(device)
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    if not paths:
        raise UsageError("no evaluation data given", hint="pass --data FILE")
    name, local, manifest, directory = _resolve(target)
    files = read_data(paths, template=manifest.prompt_template if manifest else None)
    dataset, sha256 = dataset_identity(files)
    claim = _claim_for(manifest, name, dataset, sha256) if check else None
    documents = [d for f in files for d in f.documents]
    start = time.perf_counter()
    with quiet_transformers():
        if local is not None:
            from ..model import load

            with load(local.reference, device=device) as model:
                loss, tokens, blocks = _measure(model._live(), documents, batch_size)
                used_device = model.device
        else:
            runner = _load_directory(directory, manifest, device)
            try:
                loss, tokens, blocks = _measure(runner, documents, batch_size)
                used_device = runner.device
            finally:
                runner.close()
    report = EvalReport(
        target=name, digest=local.digest if local is not None else (manifest.digest if manifest else None),
        dataset=dataset, dataset_sha256=sha256,
        files=[{"path": str(f.path), "sha256": f.sha256, "size": f.size, "documents": len(f.documents)}
               for f in files],
        loss=loss, perplexity=math.exp(min(loss, 700.0)), tokens=tokens, blocks=blocks, device=used_device,
        seconds=round(time.perf_counter() - start, 3), manifest=manifest)
    if claim is not None:
        report.claim = ClaimCheck(claimed=claim.value, measured=report.perplexity, tolerance=tolerance,
                                  dataset=claim.dataset)
    return report


def _load_directory(path: Path, manifest: Manifest | None, device: str) -> Any:
    """A runner for a directory. A package is checked for integrity (every file re-hashed) and
    safety, then loaded by its engine; its signature is not required, since a directory is
    typically your own draft before `gptstore sign` (library models are verified in full)."""
    from ..engines import pick_engine
    from ..engines.base import placement
    from ..fsutil import package_files
    from ..manifest import METADATA_FILES
    from ..verify import read_model_config, check_integrity, check_safety

    if manifest is None:
        check_safety(package_files(path, skip=METADATA_FILES), config=read_model_config(path), where=str(path))
        return _PlainRunner(path, device)
    check_integrity(path, manifest, full=True, reference=str(path)).raise_first()
    check_safety([f.path for f in manifest.files], config=read_model_config(path), where=str(path))
    engine = pick_engine(manifest.format.adapter)
    device, dtype = placement(engine, device, "auto")
    return engine.load(path, manifest, device=device, dtype=dtype)
