"""Fine-tune a causal LM on text with transformers' ``Trainer`` and write a package draft.

    >>> from gptstore.training.finetune import FinetuneConfig, finetune       # doctest: +SKIP
    >>> result = finetune("acme/tiny", ["notes.txt"], "out/poet",             # doctest: +SKIP
    ...                   config=FinetuneConfig(max_steps=200, learning_rate=1e-3))
    >>> result.perplexity, result.manifest.provenance.base_digest            # doctest: +SKIP

Everything cheap is checked before torch is imported and before anything is written: the config,
the data files, the base (verified against its manifest) and the output directory. Then the data
are cut into token blocks (a file shorter than one block is refused) and the base is trained.

**The perplexity claim.** The manifest records a perplexity that anyone holding the evaluation data
can re-measure with ``gptstore eval --check``: it is measured with :func:`gptstore.perplexity.evaluate`
(what ``gptstore eval`` runs) on the weights as they are saved, and its ``dataset_sha256`` is the
sha256 of the evaluation data *file*:

- with ``eval_data`` (files of text the model never trains on) the claim is measured on them, read
  the way ``gptstore eval`` reads them, and nothing is held out of the training data;
- otherwise ``eval_split`` of the training *documents* (whole documents, seeded) are held out,
  never trained on, and written to ``<checkpoint dir>/<dataset>.held-out.jsonl`` (one
  ``{"text": ...}`` per line, see :attr:`FinetuneResult.heldout_file`); that file is the claim's
  dataset, so ``gptstore eval PKG --data THAT_FILE --check`` reproduces the number.

Checkpoints live outside the package, in ``GPTSTORE_HOME/finetune/<key of --out>/`` (or
``checkpoint_dir``): the last one is kept, so re-running with the same ``out`` resumes an
interrupted run or continues a finished one (e.g. with a larger ``max_steps``), while ``out``
only ever holds the package (``gptstore package`` lists every file in it). Re-running a finished
run unchanged (same data, options, name and version, its package untouched) is a no-op: the same
package and digest come back (:attr:`FinetuneResult.unchanged`), no further step is taken.

Ctrl-C while training finishes the current step, saves a checkpoint and raises
:class:`FinetuneInterrupted` (exit code 130, "re-run to resume"); a second Ctrl-C aborts at once.

The config, the training methods and their options live in :mod:`gptstore.training.config`
(``full`` built in, ``lora`` from gptstore-peft, both through the ``register_finetune_methods``
hook); a method may also save and package the result its own way (an adapter-only package over
its base). The data, the held-out split and the token blocks are :mod:`gptstore.training.data`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConflictError, FinetuneInterrupted, InvalidReference, PackageError, UsageError
from ..fsutil import atomic_write
from ..transformers_logging import quiet_transformers
from ..manifest import MANIFEST_FILE, Manifest, load_manifest
from ..perplexity import perplexity_of
from ..refs import SEMVER, parse_reference, parse_repo_id
from . import trainer as hf_trainer
from .checkpoints import (check_out, default_checkpoint_dir, finished_run, install, last_checkpoint,
                          read_run_record)
from .config import NOT_HYPER, FinetuneConfig, Method, get_method, make_config, methods
from .data import (DataFile, dataset_identity, read_data, resolve_block_size, split_documents, tokenize,
                   training_blocks, write_heldout)

__all__ = ["FinetuneConfig", "FinetuneInterrupted", "FinetuneResult", "Method", "finetune", "make_config",
           "methods"]


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
    unchanged: bool = False  # the run had finished already: nothing was trained or written

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
        ref = parse_reference(text)
    except InvalidReference:
        raise UsageError(f"base {text!r} is neither a model directory nor a reference",
                         hint="give a directory, or namespace/name[:tag] from `gptstore list`") from None
    from ..library import Library

    model = Library().get(ref)
    return BaseSource(model.path, f"{model.manifest.repo_id}:{model.manifest.version}", model.digest,
                      model.manifest, library_model=model)


def verify_base(source: BaseSource) -> None:
    """Verify a base that has a manifest (a library model in full: integrity through its stamp
    cache, every registered verifier, safety; a package directory, your own draft, without the
    signature). A bare model directory has nothing to verify against, but must hold safetensors."""
    from ..adapters.transformers import weight_files
    from ..verification import show_warnings, verify

    if not weight_files(source.path):
        raise PackageError(f"base {source.reference} has no safetensors weights", path=source.path,
                           hint="fine-tuning never loads pickle weights; convert them to safetensors")
    if source.library_model is not None:
        report = verify(source.library_model, context=f"base {source.reference}")
    elif source.manifest is not None:
        report = verify(source.path, skip={"authenticity"}, context=f"base {source.reference}")
    else:
        return
    show_warnings(report.warnings)


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
    config = (config if config is not None else FinetuneConfig()).checked()  # options: defaults filled in
    method = get_method(config.method)
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    if not SEMVER.match(version):
        raise UsageError(f"version {version!r} is not a semantic version", hint="e.g. 0.1.0")
    if name is not None:
        parse_repo_id(name)
    out = Path(out).expanduser().absolute()
    source = resolve_base(base)
    base_ref = library_base(source, method) if method.over_base else None
    render = source.manifest.render if source.manifest else None  # the base's prompt template
    files = read_data(paths, text_mode=config.text_mode, render=render)
    eval_files = None
    if eval_data is not None:
        eval_paths = [eval_data] if isinstance(eval_data, (str, Path)) else list(eval_data)
        eval_files = read_data(eval_paths, render=render)  # as `gptstore eval --data` reads them
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
    name = name or default_name(source)
    fingerprint = json.loads(json.dumps({"identity": identity, "name": name, "version": version,
                                         "config": config.model_dump(mode="json", exclude=set(NOT_HYPER))}))
    finished = finished_run(workdir, out, fingerprint) if checkpoint else None
    if finished is not None:
        return _unchanged(finished["result"], out, workdir, started)
    block_size = resolve_block_size(source.path, config.block_size)
    try:
        with quiet_transformers():
            return _train(source=source, files=files, eval_files=eval_files, out=out, config=config,
                          name=name, version=version, block_size=block_size,
                          workdir=workdir, identity=identity, checkpoint=checkpoint, progress=progress,
                          started=started, method=method, base_ref=base_ref, fingerprint=fingerprint)
    except KeyboardInterrupt:  # before training started, or a second Ctrl-C
        kept = last_checkpoint(workdir, identity, resume=True)
        where = f"from step {kept.name[11:]}" if kept else "(no checkpoint yet: it starts over)"
        raise FinetuneInterrupted(f"finetune of {out} interrupted", hint=f"re-run to resume {where}") from None


def _unchanged(record: dict[str, Any], out: Path, workdir: Path, started: float) -> FinetuneResult:
    """The result of a finished run that a re-run left as it was."""
    fields = {k: v for k, v in record.items() if k in FinetuneResult.__dataclass_fields__}
    heldout = fields.get("heldout_file")
    fields.update(out=out, manifest=load_manifest(out), checkpoint_dir=workdir, steps_run=0,
                  resumed_from_step=fields.get("global_step"), train_loss=None, unchanged=True,
                  heldout_file=Path(heldout) if heldout else None, seconds=round(time.monotonic() - started, 2))
    return FinetuneResult(**fields)


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
            "hyperparameters": config.model_dump(exclude=set(NOT_HYPER)) | extra_hyper,
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


def _train(*, source: BaseSource, files: list[DataFile], eval_files: list[DataFile] | None, out: Path,
           config: FinetuneConfig, name: str,
           version: str, block_size: int, workdir: Path, identity: dict[str, Any],
           checkpoint: Path | None, progress: bool, started: float, method: Method,
           base_ref: str | None = None, fingerprint: dict[str, Any] | None = None) -> FinetuneResult:
    import torch
    from filelock import FileLock, Timeout
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..adapters.transformers import count_parameters, weight_files
    from ..packaging import package
    from ..perplexity import evaluate

    device = hf_trainer.device_for(config.device, torch)
    precision = hf_trainer.precision_for(config.precision, device, torch)
    tokenizer = AutoTokenizer.from_pretrained(source.path)
    tokenize(files, tokenizer, block_size=block_size)  # every file fills a block, or the error names it
    train_files, heldout = split_documents(files, config.eval_split, config.seed)
    blocks = training_blocks(train_files, tokenizer, block_size=block_size, held_out=len(heldout))
    stored_dtype = getattr(torch, count_parameters(weight_files(source.path))[1], None)
    model = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.float32, use_safetensors=True)
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
            base_loss = evaluate(trainer.model, tokenizer, eval_docs).loss  # as `gptstore eval` measures
        atomic_write(workdir / "run.json", json.dumps({"identity": identity, "base_eval_loss": base_loss}).encode())
        start_step = int(checkpoint.name.split("-")[1]) if checkpoint else 0
        with hf_trainer.GracefulStop() as stop:
            trainer.add_callback(stop.callback())
            output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        global_step = trainer.state.global_step
        if stop.requested and global_step < trainer.state.max_steps:
            raise FinetuneInterrupted(f"finetune of {out} interrupted at step {global_step} of "
                                      f"{trainer.state.max_steps}, checkpoint saved",
                                      hint="re-run the same command to resume")
        trained = trainer.model
        if stored_dtype in (torch.bfloat16, torch.float16):  # keep the base's storage dtype
            trained = trained.to(stored_dtype)
        evaluation = evaluate(trained, tokenizer, eval_docs) if eval_docs else None  # the weights we save
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
    result = FinetuneResult(
        out=out, manifest=manifest, method=config.method, device=device, global_step=global_step,
        steps_run=steps_run, resumed_from_step=start_step if checkpoint else None,
        train_loss=output.training_loss if steps_run else None, eval_loss=eval_loss,
        perplexity=perplexity_of(eval_loss), base_eval_loss=base_loss, base_perplexity=perplexity_of(base_loss),
        train_tokens=blocks.train_tokens, eval_tokens=evaluation.tokens if evaluation else 0,
        seconds=round(time.monotonic() - started, 2), checkpoint_dir=workdir,
        eval_dataset=dataset_identity(eval_files)[0] if eval_files else None, heldout_file=heldout_file)
    record = {"identity": identity, "base_eval_loss": base_loss,
              "finished": {"fingerprint": fingerprint, "digest": manifest.digest, "result": result.to_dict()}}
    atomic_write(workdir / "run.json", json.dumps(record).encode())  # a re-run as it is is a no-op
    return result
