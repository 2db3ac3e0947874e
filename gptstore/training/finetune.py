"""Fine-tune a causal LM on text with transformers' ``Trainer`` and write a package draft.

    >>> from gptstore.training.finetune import FinetuneConfig, finetune       # doctest: +SKIP
    >>> result = finetune("acme/tiny", ["notes.txt"], "out/poet",             # doctest: +SKIP
    ...                   config=FinetuneConfig(max_steps=200, learning_rate=1e-3))
    >>> result.perplexity, result.manifest.provenance.base_digest            # doctest: +SKIP

Everything cheap is checked before torch is imported and before anything is written: the config,
the data files, the base (verified against its manifest) and the output directory. Then the data
are cut into token blocks (a file shorter than one block is refused) and the base is trained.

**The perplexity claim.** The manifest records a perplexity that anyone holding the evaluation data
can re-measure with ``gptstore eval --check``: it is measured with
:func:`gptstore.training.evaluate.evaluate` (what ``gptstore eval`` runs) on the weights as they are
saved, and its ``dataset_sha256`` is the sha256 of the evaluation data *file*:

- with ``eval_data`` (files of text the model never trains on) the claim is measured on them, read
  the way ``gptstore eval`` reads them, and nothing is held out of the training data;
- otherwise ``eval_split`` of the training *documents* (whole documents, seeded) are held out,
  never trained on, and written to ``<checkpoint dir>/<dataset>.held-out.jsonl`` (one
  ``{"text": ...}`` per line, see :attr:`FinetuneResult.heldout_file`); that file is the claim's
  dataset, so ``gptstore eval PKG --data THAT_FILE --check`` reproduces the number.

Checkpoints live outside the package, in ``GPTSTORE_HOME/finetune/<key of --out>/`` (or
``checkpoint_dir``): the last one is kept, so re-running with the same ``out`` resumes an
interrupted run or continues a finished one (e.g. with a larger ``max_steps``), while ``out``
only ever holds the package (``gptstore package`` lists every file in it).

Methods: ``METHODS`` maps a built-in name to a function ``prepare(model, options) -> model`` that
makes the loaded base trainable; ``full`` trains every weight. Plugins add methods through the
``register_finetune_methods`` hook (e.g. ``lora`` from gptstore-peft), which may also save and
package the result their own way (an adapter-only package over its base); :func:`methods` lists
them all.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import config as gconfig, plugins
from ..errors import ConflictError, GPTStoreError, InvalidReference, PackageError, UsageError
from ..fsutil import atomic_write, package_files
from ..manifest import MANIFEST_FILE, METADATA_FILES, Manifest, load as load_manifest
from ..refs import SEMVER, parse as parse_ref, parse_repo_id
from ..hfutil import quiet_transformers
from . import trainer as hf_trainer
from .data import Blocks, DataFile, dataset_identity, read_data, resolve_block_size, tokenize
from .evaluate import split_documents, write_heldout


def _no_options(options: dict[str, Any]) -> dict[str, Any]:
    if options:
        raise UsageError(f"method 'full' takes no options (got {', '.join(sorted(options))})")
    return options


def _full(model: Any, options: dict[str, Any]) -> Any:
    """Train every weight of the base model."""
    _no_options(options)
    return model


#: built-in training method -> ``prepare(model, options)`` returning the model to train; plugins
#: add methods through the ``register_finetune_methods`` hook instead
METHODS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {"full": _full}
_CHECKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"full": _no_options}


@dataclass(frozen=True)
class Method:
    """A training method, as ``register_finetune_methods`` registers it (see the hook's docs)."""

    name: str
    prepare: Callable[[Any, dict[str, Any]], Any]
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    save: Callable[..., None] | None = None  # save(model=, tokenizer=, out_dir=, base=)
    adapter: str | None = None  # package format of the result (default: detected)
    over_base: bool = False  # the package references its base by digest (format.base)
    plugin: str = "gptstore"


def methods() -> dict[str, Method]:
    """Every training method by name: the built-in ``METHODS`` first, then plugins' (first wins)."""
    found = {name: Method(name, prepare, check=_CHECKS.get(name)) for name, prepare in METHODS.items()}
    hook = "register_finetune_methods"
    collected = plugins.collect(hook, "finetune method", key=lambda name, *args, **kw: name)
    for name, (plugin, args, kw) in collected.items():
        problem = None
        if name in found:
            problem = f"finetune method {name!r} is built in; the built-in one stays"
        else:
            try:
                found[name] = Method(*args, **kw, plugin=plugin)
            except TypeError as exc:
                problem = f"bad registration of finetune method {name!r}: {exc}"
        if problem and not any(p.plugin == plugin and p.error == problem for p in plugins.problems()):
            plugins.report(plugin, hook, problem)
    return found

#: config fields that steer the run but are not hyper-parameters of the result
_NOT_HYPER = frozenset({"eval_base", "save_steps", "logging_steps"})
#: what a checkpoint must share with a new run to be resumed from
_IDENTITY = ("base", "data", "method", "method_options", "block_size", "eval_split", "seed", "text_mode",
             "eval_data")


class FinetuneConfig(BaseModel):
    """How to fine-tune. Validated before torch is imported; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field("full", description="Training method; 'full' trains every weight.")
    method_options: dict[str, Any] = Field(default_factory=dict, description="Options of the method (none for full).")
    epochs: float = Field(3.0, gt=0, description="Passes over the training blocks (unless max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (wins over epochs).")
    learning_rate: float = Field(5e-5, gt=0, le=1, description="Peak learning rate of AdamW.")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="Learning-rate schedule after warm-up.")
    warmup: float = Field(0.0, ge=0, description="Warm-up: a fraction of the steps if < 1, else a number of steps.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(8, ge=1, description="Blocks per device per step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Batches accumulated into one optimizer step.")
    block_size: int | None = Field(None, ge=2, description="Tokens per block (default: the context, at most 1024).")
    eval_split: float = Field(0.1, ge=0, le=0.5, description=(
        "Fraction of the documents held out for loss and perplexity (ignored with eval data)."))
    eval_base: bool = Field(True, description="Also measure the base model on the evaluation data.")
    seed: int = Field(42, ge=0, description="Seed for the held-out split, initialisation and data order.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Where to train: cuda > mps > cpu.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Mixed precision; auto = bf16 on a CUDA device that supports it, else fp32.")
    text_mode: Literal["paragraphs", "file"] = Field(
        "paragraphs", description="Plain-text files: documents separated by blank lines, or one per file.")
    save_steps: int = Field(200, ge=1, description="Write a checkpoint every this many steps (and at the end).")
    logging_steps: int = Field(10, ge=1, description="Report the training loss every this many steps.")

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        known = methods()
        if value not in known:
            raise ValueError(f"unknown method {value!r} (known: {', '.join(sorted(known))})")
        return value


def make_config(**values: Any) -> FinetuneConfig:
    """Build a :class:`FinetuneConfig`, raising :class:`UsageError` naming the first bad field."""
    try:
        return FinetuneConfig(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "config"
        message = first["msg"].removeprefix("Value error, ")
        raise UsageError(f"invalid fine-tuning option {field}: {message}",
                         hint="see `gptstore finetune --help`") from None


@dataclass(frozen=True)
class BaseSource:
    """The model a run starts from."""

    path: Path  # a directory from_pretrained can load
    reference: str  # namespace/name:tag, or the path as given
    digest: str | None  # manifest digest, when the base has a manifest
    manifest: Manifest | None
    library_model: Any = None  # the LocalModel, when the base came from the library


@dataclass
class FinetuneResult:
    out: Path
    manifest: Manifest
    method: str
    device: str
    global_step: int  # optimizer steps of the whole run, across resumes
    steps_run: int  # steps taken by this call
    resumed_from_step: int | None
    train_loss: float | None  # mean over this call's steps
    eval_loss: float | None
    perplexity: float | None
    base_eval_loss: float | None
    base_perplexity: float | None
    train_tokens: int
    eval_tokens: int
    seconds: float
    checkpoint_dir: Path
    eval_dataset: str | None = None  # name of the data the perplexity claim was measured on
    heldout_file: Path | None = None  # the held-out documents, when they came from the training data

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(out=str(self.out), checkpoint_dir=str(self.checkpoint_dir),
                    heldout_file=str(self.heldout_file) if self.heldout_file else None,
                    manifest_digest=f"sha256:{self.manifest.digest}",
                    name=f"{self.manifest.repo_id}:{self.manifest.version}")
        del data["manifest"]
        return data


# -- the cheap checks ------------------------------------------------------------------------

def resolve_base(base: str | Path) -> BaseSource:
    """A library reference or a model directory; :func:`verify_base` checks its files."""
    text = str(base)
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / MANIFEST_FILE).is_file():
            manifest = load_manifest(path)
            return BaseSource(path, f"{manifest.repo_id}:{manifest.version}", manifest.digest, manifest)
        if not (path / "config.json").is_file():
            raise UsageError(f"base {text} has no config.json",
                             hint="give a directory saved with save_pretrained(), or a library reference")
        return BaseSource(path, text, None, None)
    try:
        ref = parse_ref(text)
    except InvalidReference:
        raise UsageError(f"base {text!r} is neither a model directory nor a reference",
                         hint="give a directory, or namespace/name[:tag] from `gptstore list`") from None
    from ..library import Library

    model = Library().get(ref)
    return BaseSource(model.path, f"{model.manifest.repo_id}:{model.manifest.version}", model.digest,
                      model.manifest, library_model=model)


def verify_base(source: BaseSource) -> None:
    """Check the base's files against its manifest (a library model through its stamp cache)."""
    from ..adapters.transformers import weight_files
    from ..library import Library
    from ..verify import check_integrity

    if not weight_files(source.path):
        raise PackageError(f"base {source.reference} has no safetensors weights", path=source.path,
                           hint="fine-tuning never loads pickle weights; convert them to safetensors")
    if source.library_model is not None:
        Library().check(source.library_model).raise_first()
    elif source.manifest is not None:
        check_integrity(source.path, source.manifest, full=True, reference=str(source.path)).raise_first()


def default_name(source: BaseSource) -> str:
    """``namespace/<base name>-finetuned`` (``local/…`` for a bare directory)."""
    if source.manifest is not None:
        namespace, name = source.manifest.namespace, source.manifest.name
    else:
        namespace = "local"
        cleaned = "".join(c if c.isalnum() or c in "_." else "-" for c in source.path.resolve().name)
        name = "-".join(filter(None, cleaned.split("-")))
    candidate = f"{namespace}/{name[:86].strip('.-')}-finetuned"
    try:
        parse_repo_id(candidate)
    except InvalidReference:
        return f"{namespace}/finetuned"
    return candidate


def default_checkpoint_dir(out: Path) -> Path:
    key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return gconfig.home() / "finetune" / key


def is_finetune_output(out: Path) -> bool:
    """Whether ``out`` holds exactly the package an earlier ``finetune`` wrote (safe to replace)."""
    try:
        manifest = load_manifest(out)
    except GPTStoreError:
        return False
    if manifest.provenance is None or manifest.provenance.hyperparameters.get("method") is None:
        return False
    return set(package_files(out, skip=METADATA_FILES)) == {f.path for f in manifest.files}


def check_out(out: Path) -> None:
    """Refuse an output path that holds something other than an earlier finetune's package."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConflictError(f"output {out} is a file", hint="give a new or empty directory as --out")
    if any(out.iterdir()) and not is_finetune_output(out):
        raise ConflictError(f"output directory {out} is not empty and holds no earlier finetune output",
                            hint="choose a new --out, or empty the directory")


def last_checkpoint(workdir: Path, identity: dict[str, Any], *, resume: bool) -> Path | None:
    """The checkpoint to resume from; refuses checkpoints of a run with other base or data."""
    if not resume or not workdir.is_dir():
        return None
    checkpoints = [p for p in workdir.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()]
    if not checkpoints:
        return None
    recorded = read_run_record(workdir).get("identity") or {}
    changed = [k for k in _IDENTITY if recorded.get(k) != identity.get(k)]
    if changed:
        raise ConflictError(
            f"the checkpoints for {identity['out']} come from a run with another {', '.join(changed)}",
            hint="pass --no-resume to start over, or choose another --out")
    return max(checkpoints, key=lambda p: int(p.name[11:]))


# -- the run ---------------------------------------------------------------------------------

def finetune(base: str | Path, data: Path | str | Iterable[Path | str], out: Path | str, *,
             config: FinetuneConfig | None = None, name: str | None = None, version: str = "0.1.0",
             resume: bool = True, checkpoint_dir: Path | str | None = None,
             eval_data: Path | str | Iterable[Path | str] | None = None,
             progress: bool = False) -> FinetuneResult:
    """Fine-tune ``base`` on ``data`` and write a package (with a ``gptstore.json``) to ``out``.

    Args:
        base: a library reference (``namespace/name[:tag]``) or a model directory.
        data: text or JSONL file(s); see :mod:`gptstore.training.data`.
        out: the package directory to write; new, empty, or an earlier finetune's output.
        config: hyper-parameters and device (:class:`FinetuneConfig`).
        name: ``namespace/name`` of the result (default: the base's name + ``-finetuned``).
        version: semantic version of the result.
        resume: continue from the last checkpoint of an earlier run with the same ``out``.
        checkpoint_dir: where checkpoints go (default: under ``GPTSTORE_HOME/finetune``).
        eval_data: text or JSONL file(s) to measure the perplexity claim on, read as
            ``gptstore eval --data`` reads them; then no documents are held out of ``data``.
        progress: show a progress bar on stderr.

    Raises:
        UsageError: bad options or data (file and line named); ConflictError: ``out`` holds
        something else, or checkpoints of another run; IntegrityError: the base fails verification.
        Nothing is written before these checks pass.
    """
    started = time.monotonic()
    config = config if config is not None else FinetuneConfig()
    method = methods()[config.method]
    if method.check is not None:  # options normalised (defaults filled in) before anything heavy
        config = config.model_copy(update={"method_options": method.check(dict(config.method_options))})
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    if not SEMVER.match(version):
        raise UsageError(f"version {version!r} is not a semantic version", hint="e.g. 0.1.0")
    if name is not None:
        parse_repo_id(name)
    out = Path(out).expanduser().absolute()
    source = resolve_base(base)
    base_ref = library_base(source, method) if method.over_base else None
    template = source.manifest.prompt_template if source.manifest else None
    files = read_data(paths, text_mode=config.text_mode, template=template)
    eval_files = None
    if eval_data is not None:
        eval_paths = [eval_data] if isinstance(eval_data, (str, Path)) else list(eval_data)
        eval_files = read_data(eval_paths, template=template)  # as `gptstore eval --data` reads them
        config = config.model_copy(update={"eval_split": 0.0})
    check_out(out)
    verify_base(source)
    workdir = Path(checkpoint_dir).expanduser().absolute() if checkpoint_dir else default_checkpoint_dir(out)
    identity = {"out": str(out), "base": source.digest or str(source.path.resolve()),
                "data": [f.sha256 for f in files], "method": config.method,
                "method_options": config.method_options, "block_size": config.block_size,
                "eval_split": config.eval_split, "seed": config.seed, "text_mode": config.text_mode,
                "eval_data": [f.sha256 for f in eval_files] if eval_files else None}
    checkpoint = last_checkpoint(workdir, identity, resume=resume)
    block_size = resolve_block_size(source.path, config.block_size)
    with quiet_transformers():
        return _train(source=source, files=files, eval_files=eval_files, out=out, config=config,
                      name=name or default_name(source), version=version, block_size=block_size,
                      workdir=workdir, identity=identity, checkpoint=checkpoint, progress=progress,
                      started=started, method=method, base_ref=base_ref)


def library_base(source: BaseSource, method: Method) -> str:
    """``namespace/name@sha256:<digest>`` of a base in the local library, for a method whose
    package references its base by digest; refused before anything heavy for any other base."""
    from ..library import Library

    if source.digest is None or source.manifest is None or not Library().has_manifest(source.digest):
        raise UsageError(f"method {method.name!r} packages only what it trains and references its base by "
                         f"digest, so the base must be a model in the local library (got {source.reference})",
                         hint="publish the base first (`gptstore package DIR ...`, `gptstore publish DIR`) "
                              "and pass its reference as --base")
    return f"{source.manifest.repo_id}@sha256:{source.digest}"


def perplexity_of(loss: float | None) -> float | None:
    return None if loss is None else math.exp(min(loss, 700.0))  # exp(mean token cross-entropy)


def draft_fields(source: BaseSource, files: list[DataFile], config: FinetuneConfig, *,
                 extra_hyper: dict[str, Any], frameworks: dict[str, str],
                 eval_loss: float | None, eval_files: list[DataFile] | None = None) -> dict[str, Any]:
    """Manifest fields of a fine-tuned package: inherited behaviour, metrics and provenance.

    The metrics name the evaluation data (``eval_files``: the given eval data, or the written
    held-out file) by name and sha256, so ``gptstore eval --check`` can re-measure them.
    """
    dataset, _ = dataset_identity(files)
    eval_name, eval_sha = dataset_identity(eval_files) if eval_files else (dataset, None)
    fields: dict[str, Any] = {
        "description": f"{source.reference} fine-tuned ({config.method}) on {dataset}."[:2000],
        "provenance": {
            "base_digest": source.digest, "base_reference": source.reference,
            "datasets": [f.record() for f in files],
            "hyperparameters": config.model_dump(exclude=set(_NOT_HYPER)) | extra_hyper,
            "frameworks": frameworks,
        },
    }
    if eval_loss is not None:
        fields["metrics"] = [
            {"name": metric, "value": value, "dataset": eval_name, "dataset_sha256": eval_sha,
             "split": "held-out"}
            for metric, value in (("loss", eval_loss), ("perplexity", perplexity_of(eval_loss)))]
    if source.manifest is not None:
        base = source.manifest
        fields.update(license=base.license, tags=list(base.tags), languages=list(base.languages),
                      prompt_template=base.prompt_template,
                      generation=base.generation.model_dump(exclude_none=True))
    return fields


# -- the held-out documents and the perplexity claim --------------------------------------------

def pack_training(files: list[DataFile], tokenizer: Any, *, block_size: int, held_out: int = 0) -> Blocks:
    """The training documents, each followed by EOS, cut into blocks of ``block_size`` tokens."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for data in files:
        if not data.documents:
            continue
        for ids in tokenizer(list(data.documents), add_special_tokens=False, verbose=False)["input_ids"]:
            stream.extend(ids)
            if eos is not None:
                stream.append(eos)
    blocks = [stream[i:i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]
    if not blocks:
        raise UsageError(f"after holding out {held_out} document(s) the training data have {len(stream)} tokens, "
                         f"fewer than one block ({block_size})",
                         hint="give more text, a smaller --block-size, or a smaller --eval-split")
    return Blocks(train=blocks, eval=[], block_size=block_size)


def _measure(model: Any, tokenizer: Any, documents: list[str]) -> Any:
    """Loss and perplexity as ``gptstore eval`` measures them (the model's whole context)."""
    from .evaluate import evaluate

    return evaluate(model, tokenizer, documents)


def install(tmp: Path, out: Path) -> None:
    """Put the finished package at ``out``, replacing an earlier finetune output there."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def read_run_record(workdir: Path) -> dict[str, Any]:
    """``run.json`` beside the checkpoints: the run's identity and the base's held-out loss."""
    try:
        return json.loads((workdir / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def _train(*, source: BaseSource, files: list[DataFile], eval_files: list[DataFile] | None, out: Path,
           config: FinetuneConfig, name: str,
           version: str, block_size: int, workdir: Path, identity: dict[str, Any],
           checkpoint: Path | None, progress: bool, started: float, method: Method | None = None,
           base_ref: str | None = None) -> FinetuneResult:
    import torch
    from filelock import FileLock, Timeout
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..adapters.transformers import count_parameters, weight_files
    from ..packaging import package

    device = hf_trainer.device_for(config.device, torch)
    precision = hf_trainer.precision_for(config.precision, device, torch)
    tokenizer = AutoTokenizer.from_pretrained(source.path)
    tokenize(files, tokenizer, block_size=block_size)  # every file fills a block, or the error names it
    train_files, heldout = split_documents(files, config.eval_split, config.seed)
    blocks = pack_training(train_files, tokenizer, block_size=block_size, held_out=len(heldout))
    stored_dtype = getattr(torch, count_parameters(weight_files(source.path))[1], None)
    model = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.float32, use_safetensors=True)
    method = method or methods()[config.method]
    model = method.prepare(model, dict(config.method_options))

    workdir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(workdir.with_name(workdir.name + ".lock")), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConflictError(f"another finetune is writing {out}", hint="wait, or choose another --out") from None
    try:
        base_loss = read_run_record(workdir).get("base_eval_loss") if checkpoint else None
        if checkpoint is None:
            shutil.rmtree(workdir, ignore_errors=True)
        heldout_file = None
        if heldout:  # written before training, so an interrupted run leaves it for the resume
            heldout_file = write_heldout(workdir, dataset_identity(files)[0], heldout)
            eval_files = read_data([heldout_file])
        trainer = hf_trainer.make_trainer(model, blocks, workdir, config, device, precision, progress)
        eval_docs = [d for f in eval_files or [] for d in f.documents]
        if eval_docs and config.eval_base and base_loss is None:
            base_loss = _measure(trainer.model, tokenizer, eval_docs).loss
        atomic_write(workdir / "run.json", json.dumps({"identity": identity, "base_eval_loss": base_loss}).encode())
        start_step = int(checkpoint.name.split("-")[1]) if checkpoint else 0
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        global_step = trainer.state.global_step
        trained = trainer.model
        if stored_dtype in (torch.bfloat16, torch.float16):  # keep the base's storage dtype
            trained = trained.to(stored_dtype)
        evaluation = _measure(trained, tokenizer, eval_docs) if eval_docs else None  # the weights we save
        eval_loss = evaluation.loss if evaluation else None
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            if method.save is not None:
                method.save(model=trained, tokenizer=tokenizer, out_dir=tmp,
                            base=source.reference if source.manifest is not None else None)
            else:
                trained.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
            extra = {"block_size": block_size, "precision": precision, "device": device,
                     "global_step": global_step, "train_tokens": blocks.train_tokens,
                     "eval_tokens": evaluation.tokens if evaluation else 0}
            fields = draft_fields(source, files, config, extra_hyper=extra, frameworks=hf_trainer.frameworks(),
                                  eval_loss=eval_loss, eval_files=eval_files)
            manifest = package(tmp, name=name, version=version, adapter=method.adapter, base=base_ref, **fields)
            install(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        lock.release()
    steps_run = global_step - start_step
    return FinetuneResult(
        out=out, manifest=manifest, method=config.method, device=device, global_step=global_step,
        steps_run=steps_run, resumed_from_step=start_step if checkpoint else None,
        train_loss=output.training_loss if steps_run else None, eval_loss=eval_loss,
        perplexity=perplexity_of(eval_loss), base_eval_loss=base_loss, base_perplexity=perplexity_of(base_loss),
        train_tokens=blocks.train_tokens, eval_tokens=evaluation.tokens if evaluation else 0,
        seconds=round(time.monotonic() - started, 2), checkpoint_dir=workdir,
        eval_dataset=dataset_identity(eval_files)[0] if eval_files else None, heldout_file=heldout_file)
