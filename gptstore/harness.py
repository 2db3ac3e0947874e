"""EleutherAI's lm-evaluation-harness over any gptstore engine (``gptstore eval --tasks``).

The harness asks a model three kinds of question: ``loglikelihood`` (how likely is this
continuation after this context, and is it the greedy one: multiple-choice tasks),
``loglikelihood_rolling`` (how likely is this whole text: perplexity tasks) and
``generate_until`` (continue until a stop string). :func:`harness_model` answers them through a
gptstore :class:`~gptstore.engines.base.Runner` — ``runner.loglikelihood``,
``runner.loglikelihood_rolling`` and ``runner.generate`` — so every engine plugin is evaluated
the same way, and a runner that lacks one is named in a one-line error.

Tasks are local only: YAML task files under ``include_path`` whose data is local files
(``dataset_path: json|csv|text|parquet`` with ``dataset_kwargs.data_files``). Nothing reaches a
hub: ``HF_DATASETS_OFFLINE`` / ``HF_HUB_OFFLINE`` are set for the run, and a task over any other
dataset is refused. What each task measured comes back as a :class:`TaskResult` that pins it: the
task's version, the harness's task hash (sha256 over every evaluated document, prompt and target,
computed as lm-eval's ``EvaluationTracker`` computes ``task_hashes``), the few-shot count, the
sha256 of the data files, the limit and the seed. lm_eval is imported only inside the functions.

This module sits beside :mod:`gptstore.model` (it is handed a runner) and below
:mod:`gptstore.evaluation`, which records and checks what it measures.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .blobs import hash_file
from .engines.params import GenerationParams
from .errors import MissingDependency, UsageError

#: datasets builders that read local files; any other ``dataset_path`` would ask a hub
LOCAL_BUILDERS = frozenset({"json", "csv", "text", "parquet"})
#: the few-shot sampling seed the harness uses by default (lm_eval's DEFAULT_OTHER_SEED)
DEFAULT_SEED = 1234
#: the largest data file a task may name (its sha256 is read in full)
MAX_DATA_BYTES = 1 << 30


@dataclass
class TaskResult:
    """What one harness task measured, with everything that pins the measurement."""

    task: str
    version: str
    task_hash: str
    num_fewshot: int
    limit: int | None
    seed: int
    dataset: str  # the data files' names, joined with "+"
    dataset_sha256: str
    documents: int
    metrics: dict[str, float] = field(default_factory=dict)
    harness: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LocalTask:
    """A loaded harness task and the identity of its data, known before anything is evaluated."""

    name: str
    version: str
    dataset: str
    dataset_sha256: str
    task: Any  # lm_eval.api.task.Task


def harness_version() -> str:
    from importlib.metadata import version

    return f"lm-eval {version('lm_eval')}"


@contextmanager
def offline() -> Iterator[None]:
    """HF_DATASETS_OFFLINE=1 and HF_HUB_OFFLINE=1 for the run (also in already imported modules);
    lm_eval's logger at ERROR."""
    names = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: "1" for name in names})
    patched: list[tuple[Any, str, Any]] = []
    for module, attribute in (("datasets.config", "HF_DATASETS_OFFLINE"), ("datasets.config", "HF_HUB_OFFLINE"),
                              ("huggingface_hub.constants", "HF_HUB_OFFLINE")):
        import sys

        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, attribute):
            patched.append((loaded, attribute, getattr(loaded, attribute)))
            setattr(loaded, attribute, True)
    import logging

    logger = logging.getLogger("lm_eval")  # its per-metric notices are noise to gptstore's user
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
        for loaded, attribute, value in patched:
            setattr(loaded, attribute, value)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError:
        raise MissingDependency("lm-evaluation-harness (lm_eval, for gptstore eval --tasks)", "eval") from None
    return lm_eval


def _data_identity(name: str, config: Any) -> tuple[str, str]:
    """(names, sha256) of a task's local data files; refuses anything that is not local files."""
    builder = getattr(config, "dataset_path", None)
    files = (getattr(config, "dataset_kwargs", None) or {}).get("data_files")
    if builder not in LOCAL_BUILDERS or not files:
        raise UsageError(f"task {name!r} reads dataset {builder!r}, not local data files, so its data cannot be "
                         "pinned (and there is no hub access)",
                         hint="use dataset_path: json (or csv, text, parquet) with dataset_kwargs.data_files")
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = sorted({str(p) for group in (files.values() if isinstance(files, dict) else [files])
                    for p in ([group] if isinstance(group, (str, os.PathLike)) else group)})
    digests = []
    for text in paths:
        path = Path(text).expanduser()
        if "://" in text or not path.is_file():
            raise UsageError(f"task {name!r} names data file {text!r}, which is not a local file",
                             hint="give data_files as paths to local files (absolute, or relative to the "
                                  "current directory)")
        if path.stat().st_size > MAX_DATA_BYTES:
            raise UsageError(f"task {name!r}'s data file {path} is over {MAX_DATA_BYTES >> 20} MiB")
        digests.append((path.name, hash_file(path)[0]))
    if len(digests) == 1:
        return digests[0]
    listing = "".join(f"{sha}  {file}\n" for file, sha in digests)  # as training.data.dataset_identity
    return "+".join(file for file, _ in digests), hashlib.sha256(listing.encode()).hexdigest()


def load_tasks(names: list[str], include_path: Path | str) -> dict[str, LocalTask]:
    """The named tasks from the YAML files under ``include_path`` (built-in tasks are not
    indexed: they read hub datasets), with their version and data identity."""
    directory = Path(include_path).expanduser()
    if not directory.is_dir():
        raise UsageError(f"task directory {directory} does not exist", hint="pass --include-path DIR with task YAMLs")
    _lm_eval()
    with offline():
        from lm_eval.tasks import TaskManager

        manager = TaskManager(include_path=str(directory), include_defaults=False)
        missing = [n for n in names if n not in manager.all_tasks]
        if missing:
            raise UsageError(f"no task {', '.join(map(repr, missing))} under {directory}",
                             hint=f"tasks there: {', '.join(manager.all_tasks) or 'none'}")
        loaded = manager.load(list(names))["tasks"]
    found = {}
    for name, task in loaded.items():
        config = task.config
        version = (config.metadata or {}).get("version") if isinstance(config.metadata, dict) else None
        dataset, sha256 = _data_identity(name, config)
        found[name] = LocalTask(name=name, version=str(version if version is not None else task.VERSION),
                                dataset=dataset, dataset_sha256=sha256, task=task)
    return found


def task_hash(samples: list[dict[str, Any]]) -> str:
    """lm-eval's task hash (EvaluationTracker.save_results_aggregated): sha256 over the
    concatenated doc, prompt and target hashes of every evaluated sample."""
    joined = "".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def run_tasks(runner: Any, tasks: dict[str, LocalTask], *, num_fewshot: int | None = None,
              limit: int | None = None, seed: int = DEFAULT_SEED, batch_size: int = 8,
              generation: Any = None) -> list[TaskResult]:
    """Evaluate ``tasks`` (from :func:`load_tasks`) on ``runner`` with ``lm_eval.simple_evaluate``.

    ``num_fewshot`` overrides the tasks' own (None: each task's YAML, else 0); ``limit`` caps the
    documents per task; ``seed`` seeds python, numpy, torch and the few-shot sampler.
    ``generation`` is the manifest's generation defaults (for ``generate_until`` tasks, which
    always decode greedily up to the task's stop strings).
    """
    lm_eval = _lm_eval()
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1 (got {limit})")
    if num_fewshot is not None and num_fewshot < 0:
        raise UsageError(f"--num-fewshot must be 0 or more (got {num_fewshot})")
    with offline():
        from lm_eval.tasks import TaskManager

        results = lm_eval.simple_evaluate(
            model=harness_model(runner, batch_size=batch_size, generation=generation),
            tasks=[t.task for t in tasks.values()], task_manager=TaskManager(include_defaults=False),
            num_fewshot=num_fewshot, limit=limit, bootstrap_iters=0, log_samples=True, random_seed=seed,
            numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)
    harness = harness_version()
    found = []
    for name, local in tasks.items():
        samples = results["samples"][name]
        scores = {key.removesuffix(",none"): float(value) for key, value in results["results"][name].items()
                  if key not in ("alias", "sample_len") and "_stderr" not in key and isinstance(value, (int, float))
                  and not isinstance(value, bool)}
        found.append(TaskResult(
            task=name, version=local.version, task_hash=task_hash(samples),
            num_fewshot=int(results["n-shot"][name]), limit=limit, seed=seed, dataset=local.dataset,
            dataset_sha256=local.dataset_sha256, documents=len(samples), metrics=scores, harness=harness))
    return found


def harness_model(runner: Any, *, batch_size: int = 8, generation: Any = None) -> Any:
    """An ``lm_eval.api.model.LM`` that answers the harness's requests with ``runner``."""
    from lm_eval.api.model import LM

    class GptstoreLM(LM):
        """The harness's view of a gptstore runner (one process, rank 0)."""

        def __init__(self) -> None:
            super().__init__()
            self.runner = runner

        def _method(self, name: str) -> Any:
            method = getattr(self.runner, name, None)
            if method is None:
                engine = getattr(self.runner, "engine", type(self.runner).__name__)
                raise UsageError(f"engine {engine!r} cannot answer the harness's {name} requests (its runner "
                                 f"has no {name} method)", hint="use a task of another output_type, or an "
                                 "engine that scores token log-likelihoods (e.g. transformers)")
            return method

        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            pairs = [tuple(r.args[:2]) for r in requests]
            return [(float(s), bool(g)) for s, g in self._method("loglikelihood")(pairs, batch_size=batch_size)]

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
            texts = [r.args[0] for r in requests]
            return [float(s) for s in self._method("loglikelihood_rolling")(texts, batch_size=batch_size)]

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            generate = self._method("generate")
            texts = []
            for request in requests:
                context, options = request.args[0], dict(request.args[1] or {})
                until = options.get("until") or []
                stop = [until] if isinstance(until, str) else [s for s in until if s]
                params = GenerationParams(strategy="greedy", max_new_tokens=int(options.get("max_gen_toks", 256)),
                                          stop=stop or None).resolve(generation)
                texts.append(generate([context], params)[0].text)
            return texts

    return GptstoreLM()
