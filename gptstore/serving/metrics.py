"""Prometheus metrics for ``GET /metrics`` (the ``prometheus-client`` library, ``gptstore[serve]``).

One registry per app (not the library's global one), so that two apps in one process, as in
tests, do not share counts. Queue depth and loaded models are read from the pool when scraped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import MissingDependency

if TYPE_CHECKING:
    from .pool import ModelPool

#: distinct model labels kept; later ones are counted as "other" (a client naming a new model in
#: every request must not grow the metrics without bound)
MAX_MODEL_LABELS = 100
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self, pool: ModelPool) -> None:
        try:
            import prometheus_client as prom
        except ImportError:  # pragma: no cover - the extra is installed in development
            raise MissingDependency("prometheus-client (for gptstore serve's /metrics)", "serve") from None
        self._prom = prom
        self._models: set[str] = set()
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter("gptstore_serve_requests", "Requests answered, by model, endpoint and status.",
                                     ["model", "endpoint", "status"], registry=self.registry)
        self.tokens = prom.Counter("gptstore_serve_tokens", "Tokens processed, by model and kind (prompt, completion).",
                                   ["model", "kind"], registry=self.registry)
        self.ttft = prom.Histogram("gptstore_serve_time_to_first_token_seconds",
                                   "Seconds from a streamed request's arrival to its first piece of text.",
                                   ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.latency = prom.Histogram("gptstore_serve_request_duration_seconds",
                                      "Seconds from a generation request's arrival to its last byte.",
                                      ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = prom.Histogram("gptstore_serve_batch_size",
                                         "Requests a model's worker ran together (1: alone).",
                                         buckets=BATCH_BUCKETS, registry=self.registry)
        pool.on_batch = self.batch_size.observe
        queue = prom.Gauge("gptstore_serve_queue_depth", "Requests queued or running on loaded models.",
                           registry=self.registry)
        queue.set_function(pool.queue_depth)
        loaded = prom.Gauge("gptstore_serve_loaded_models", "Models loaded now.", registry=self.registry)
        loaded.set_function(lambda: len(pool.loaded()))

    def label(self, model: str) -> str:
        if model not in self._models and len(self._models) < MAX_MODEL_LABELS:
            self._models.add(model)
        return model if model in self._models else "other"

    def answered(self, model: str, endpoint: str, status: int, duration: float | None = None,
                 usage: dict[str, int] | None = None) -> None:
        model = self.label(model)
        self.requests.labels(model, endpoint, str(status)).inc()
        if duration is not None:
            self.latency.labels(model).observe(duration)
        if usage:
            self.tokens.labels(model, "prompt").inc(usage["prompt_tokens"])
            self.tokens.labels(model, "completion").inc(usage["completion_tokens"])

    def render(self) -> tuple[bytes, str]:
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
