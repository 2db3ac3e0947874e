"""Loaded models, each with its own worker thread and job queue.

:class:`ModelPool` keeps at most ``max_models`` models loaded; loading one more first evicts the
least recently used (its worker finishes what is queued, then closes the model with
:meth:`gptstore.Model.close`). A request may say how long its model stays loaded afterwards
(``keep_alive`` as ollama has it: ``0`` unloads it after the answer, a negative value keeps it until
evicted, a number of seconds or a duration such as ``"5m"`` unloads it once idle that long).

All model work runs in a model's :class:`ModelWorker` thread, never on the event loop, from that
model's own queue. Batching is dynamic: the worker takes a job, then collects the compatible jobs
queued already or arriving within ``--batch-window-ms`` (restarted by each job that joins, at most
four windows in all), up to ``--max-batch`` rows, and runs them
as one batch (:mod:`.batching`); jobs it cannot add wait, in order, for the next turn.
Memory stays bounded by ``--max-models`` and, optionally, ``--max-memory`` (the loaded models'
weights: parameters × their dtype's size as the engine reports it, else the weight files' size).
Loading goes through :func:`gptstore.load`, so a model is verified before its first load exactly
as in-process; a model missing from the library is pulled first (verified) only with ``--pull``.
"""

from __future__ import annotations

import queue
import re
import threading
from collections import OrderedDict, deque
from pathlib import Path
from concurrent.futures import Future
from dataclasses import dataclass, field
from time import monotonic
from typing import TYPE_CHECKING, Any, Callable

from .. import usage
from ..errors import ModelNotFound, UsageError
from ..library import Library
from .batching import run_batch, run_solo
from .failures import APIError, overloaded

if TYPE_CHECKING:
    from ..model import Model
    from .settings import ServeSettings

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}


def keep_alive_seconds(value: Any) -> float | None:
    """Seconds a model stays loaded once idle: ``None`` = until evicted (a negative value)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise APIError(400, "keep_alive must be a number of seconds or a duration such as '5m'", param="keep_alive")
    if isinstance(value, (int, float)):
        return None if value < 0 else float(value)
    text = str(value).strip()
    if text.startswith("-") and _DURATION.fullmatch(text[1:]):
        return None
    found = _DURATION.fullmatch(text)
    if not found:
        raise APIError(400, f"keep_alive {value!r} is not a number of seconds or a duration such as '5m'",
                       param="keep_alive")
    return float(found.group(1)) * _UNIT[found.group(2)]


@dataclass
class Job:
    """One request's work on a model: ``work(model, job)`` runs in the model's worker thread."""

    work: Callable[[Model, Job], Any]
    key: str  #: the API key name the usage log records
    future: Future = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)  #: the client went away
    batch: Any = None  #: a :class:`~.batching.Batchable` when the job may share a batch

    @property
    def rows(self) -> int:
        return self.batch.rows if self.batch is not None else 1


class _Retired(Exception):
    """The worker was retired between lookup and submit; look it up again."""


class ModelWorker:
    """One loaded model, its job queue and the thread that runs the jobs in order."""

    def __init__(self, model: Model, *, max_queue: int, after_job: Callable[[], None], max_batch: int = 1,
                 batch_window: float = 0.0, on_batch: Callable[[int], None] | None = None,
                 memory: int = 0) -> None:
        self.model = model
        self.max_queue = max_queue
        self.max_batch = max_batch  #: rows one batch may hold
        self.batch_window = batch_window  #: seconds to wait for more jobs to batch
        self.on_batch = on_batch  #: told how many requests ran together
        self.memory = memory  #: bytes its weights take
        self.pending = 0  #: jobs queued or running
        self.last_used = monotonic()
        self.idle_ttl: float | None = None  #: keep_alive of the latest request
        self.closed = threading.Event()
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._retired = False
        self._after_job = after_job
        self._thread = threading.Thread(target=self._loop, name=f"gptstore-serve {model.name}", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[Model, Job], Any], key: str, *, idle_ttl: Any = ..., batch: Any = None) -> Job:
        """Queue ``work``; ``idle_ttl`` (when given) becomes the model's keep_alive."""
        with self._lock:
            if self._retired:
                raise _Retired
            if self.pending >= self.max_queue:
                raise overloaded(f"{self.pending} requests are queued for {self.model.name}")
            self.pending += 1
            self.last_used = monotonic()
            if idle_ttl is not ...:
                self.idle_ttl = idle_ttl
        job = Job(work, key, batch=batch)
        self._jobs.put(job)
        return job

    @property
    def idle(self) -> bool:
        return self.pending == 0

    def expired(self, now: float) -> bool:
        return self.idle and self.idle_ttl is not None and now - self.last_used >= self.idle_ttl

    def retire(self) -> None:
        """Take no more jobs; close the model once the queued ones are done."""
        with self._lock:
            if self._retired:
                return
            self._retired = True
        self._jobs.put(None)

    def _loop(self) -> None:
        held: deque[Job | None] = deque()  # taken off the queue but not batchable with the last batch
        while (job := held.popleft() if held else self._jobs.get()) is not None:
            jobs = self._collect(job, held)
            running = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            if running:
                if self.on_batch is not None:
                    self.on_batch(len(running))
                with usage.attributed_to(job.key):
                    if len(running) == 1 and running[0].batch is None:
                        run_solo(self.model, running[0])
                    else:
                        try:
                            run_batch(self.model, running)
                        except BaseException as exc:  # pragma: no cover - run_batch sets every future
                            for j in running:
                                if not j.future.done():
                                    j.future.set_exception(exc)
            with self._lock:
                self.pending -= len(jobs)
                self.last_used = monotonic()
            self._after_job()
        self.model.close()
        self.closed.set()

    def _collect(self, first: Job, held: deque[Job | None]) -> list[Job]:
        """``first`` and the jobs that may join its batch: held ones first, then what is queued or
        arrives within the batch window, up to ``max_batch`` rows. Others are held, in order."""
        if first.batch is None or self.max_batch <= 1 or first.rows >= self.max_batch:
            return [first]
        jobs, rows = [first], first.rows

        def fits(job: Job | None) -> bool:
            return (job is not None and job.batch is not None and job.key == first.key
                    and job.batch.group == first.batch.group and rows + job.rows <= self.max_batch)

        for job in list(held):
            if job is None:
                break
            if fits(job):
                held.remove(job)
                jobs.append(job)
                rows += job.rows
        # the window restarts with each request that joins (clients of one burst rarely arrive
        # within a few ms of each other on a busy machine), up to 4 windows in all
        start = monotonic()
        deadline = start + self.batch_window
        while rows < self.max_batch and (not held or held[-1] is not None):
            try:
                job = self._jobs.get(timeout=max(0.0, deadline - monotonic()))
            except queue.Empty:
                break
            if fits(job):
                jobs.append(job)
                rows += job.rows
                deadline = min(monotonic() + self.batch_window, start + 4 * self.batch_window)
            else:
                held.append(job)
        return jobs


class ModelPool:
    """At most ``settings.max_models`` loaded models by manifest digest, least recently used first."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.workers: OrderedDict[str, ModelWorker] = OrderedDict()
        self._lock = threading.RLock()  # the dict; held only briefly
        self._loading = threading.Lock()  # one load at a time
        self.library = Library()
        self.on_batch: Callable[[int], None] | None = None  #: set by the metrics: requests per batch run

    # -- lookups ---------------------------------------------------------------------------------
    def resolve(self, reference: str) -> tuple[str, str]:
        """(reference pinned to its digest, digest) of a library model; pulled first with --pull."""
        try:
            local = self.library.get(reference)
        except ModelNotFound:
            if not self.settings.pull:
                raise ModelNotFound(reference, hint="pull it with `gptstore pull`, or start the server with --pull")
            from ..sdk import pull

            local = pull(reference, store=self.settings.store, token=self.settings.token, library=self.library).model
        return f"{local.reference.repo_id}:{local.reference.tag}@sha256:{local.digest}", local.digest

    def loaded(self) -> dict[str, ModelWorker]:
        with self._lock:
            return dict(self.workers)

    def memory_used(self) -> int:
        return sum(worker.memory for worker in self.loaded().values())

    def queue_depth(self) -> int:
        return sum(worker.pending for worker in self.loaded().values())

    # -- work ------------------------------------------------------------------------------------
    def submit(self, reference: str, work: Callable[[Model, Job], Any], *, key: str,
               keep_alive: float | None = None, keep_alive_given: bool = False, batch: Any = None) -> Job:
        """Queue ``work`` on the model ``reference`` names, loading it first when needed. Blocking
        (resolving, pulling, loading): call it from a thread, not the event loop."""
        pinned, digest = self.resolve(reference)
        for _ in range(3):
            worker = self._worker(pinned, digest)
            try:
                return worker.submit(work, key, batch=batch,
                                     **({"idle_ttl": keep_alive} if keep_alive_given else {}))
            except _Retired:
                continue
        raise overloaded(f"{reference} is being unloaded and loaded again")

    def _worker(self, pinned: str, digest: str) -> ModelWorker:
        with self._lock:
            worker = self.workers.get(digest)
            if worker is not None:
                self.workers.move_to_end(digest)
                return worker
        with self._loading:
            with self._lock:
                worker = self.workers.get(digest)
                if worker is not None:
                    return worker
            budget = self.settings.max_memory
            estimate = weights_bytes(self.library.get(pinned).path) if budget else 0
            if budget and estimate > budget:
                raise overloaded(f"{pinned.split('@')[0]} needs about {estimate} bytes but --max-memory is {budget}")
            evicted = []
            with self._lock:
                while self.workers and (len(self.workers) >= self.settings.max_models  # make room first:
                                        or (budget and self.memory_used() + estimate > budget)):  # memory stays bounded
                    _, old = self.workers.popitem(last=False)
                    old.retire()
                    evicted.append(old)
            if budget:
                for old in evicted:  # their weights are freed (queued work done) before the next load
                    old.closed.wait(timeout=60)
            from ..model import load

            model = load(pinned, device=self.settings.device)
            measure = getattr(model.runner, "memory_bytes", None)
            worker = ModelWorker(model, max_queue=self.settings.max_queue, after_job=self.reap,
                                 max_batch=self.settings.max_batch, batch_window=self.settings.batch_window_ms / 1000,
                                 on_batch=lambda n: self.on_batch(n) if self.on_batch else None,
                                 memory=measure() if measure is not None else estimate)
            worker.idle_ttl = self.settings.keep_alive
            with self._lock:
                self.workers[digest] = worker
            return worker

    def preload(self, references: list[str]) -> None:
        """Load the models ``gptstore serve REF…`` names, before the server listens."""
        if len(references) > self.settings.max_models:
            raise UsageError(f"{len(references)} models named but --max-models is {self.settings.max_models}",
                             hint="name fewer models or raise --max-models")
        for reference in references:
            self._worker(*self.resolve(reference))

    def reap(self) -> None:
        """Unload the idle models whose keep_alive has run out."""
        now = monotonic()
        with self._lock:
            for digest, worker in list(self.workers.items()):
                if worker.expired(now):
                    del self.workers[digest]
                    worker.retire()

    def close(self) -> None:
        with self._lock:
            workers = list(self.workers.values())
            self.workers.clear()
        for worker in workers:
            worker.retire()
        for worker in workers:
            worker.closed.wait(timeout=30)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".onnx")


def weights_bytes(path: Path) -> int:
    """Bytes of a package's weight files (top level and one folder down): what its weights take
    once loaded, give or take a dtype conversion; the engine's own figure replaces it after load."""
    total = 0
    for item in list(path.glob("*")) + list(path.glob("*/*")):
        if item.suffix in WEIGHT_SUFFIXES and item.is_file():
            total += item.stat().st_size
    return total
