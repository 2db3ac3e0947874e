"""Loaded models, each with its own worker thread and job queue.

:class:`ModelPool` keeps at most ``max_models`` models loaded; loading one more first evicts the
least recently used (its worker finishes what is queued, then closes the model with
:meth:`gptstore.Model.close`). A request may say how long its model stays loaded afterwards
(``keep_alive`` as ollama has it: ``0`` unloads it after the answer, a negative value keeps it until
evicted, a number of seconds or a duration such as ``"5m"`` unloads it once idle that long).

All model work runs in a model's :class:`ModelWorker` thread, never on the event loop, one job at a
time from that model's own queue: the place where a dynamic batching queue (collect the jobs that
arrive within a few milliseconds, run them as one batch) can slot in without touching the app.
Loading goes through :func:`gptstore.load`, so a model is verified before its first load exactly
as in-process; a model missing from the library is pulled first (verified) only with ``--pull``.
"""

from __future__ import annotations

import queue
import re
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from time import monotonic
from typing import TYPE_CHECKING, Any, Callable

from .. import usage
from ..errors import ModelNotFound, UsageError
from ..library import Library
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


class _Retired(Exception):
    """The worker was retired between lookup and submit; look it up again."""


class ModelWorker:
    """One loaded model, its job queue and the thread that runs the jobs in order."""

    def __init__(self, model: Model, *, max_queue: int, after_job: Callable[[], None]) -> None:
        self.model = model
        self.max_queue = max_queue
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

    def submit(self, work: Callable[[Model, Job], Any], key: str, *, idle_ttl: Any = ...) -> Job:
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
        job = Job(work, key)
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
        while (job := self._jobs.get()) is not None:
            if job.future.set_running_or_notify_cancel():
                try:
                    with usage.attributed_to(job.key):
                        job.future.set_result(job.work(self.model, job))
                except BaseException as exc:  # handed to the request
                    job.future.set_exception(exc)
            with self._lock:
                self.pending -= 1
                self.last_used = monotonic()
            self._after_job()
        self.model.close()
        self.closed.set()


class ModelPool:
    """At most ``settings.max_models`` loaded models by manifest digest, least recently used first."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.workers: OrderedDict[str, ModelWorker] = OrderedDict()
        self._lock = threading.RLock()  # the dict; held only briefly
        self._loading = threading.Lock()  # one load at a time
        self.library = Library()

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

    def queue_depth(self) -> int:
        return sum(worker.pending for worker in self.loaded().values())

    # -- work ------------------------------------------------------------------------------------
    def submit(self, reference: str, work: Callable[[Model, Job], Any], *, key: str,
               keep_alive: float | None = None, keep_alive_given: bool = False) -> Job:
        """Queue ``work`` on the model ``reference`` names, loading it first when needed. Blocking
        (resolving, pulling, loading): call it from a thread, not the event loop."""
        pinned, digest = self.resolve(reference)
        for _ in range(3):
            worker = self._worker(pinned, digest)
            try:
                return worker.submit(work, key, **({"idle_ttl": keep_alive} if keep_alive_given else {}))
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
                while len(self.workers) >= self.settings.max_models:  # make room first: memory stays bounded
                    _, old = self.workers.popitem(last=False)
                    old.retire()
            from ..model import load

            model = load(pinned, device=self.settings.device)
            worker = ModelWorker(model, max_queue=self.settings.max_queue, after_job=self.reap)
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
