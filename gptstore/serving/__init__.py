"""``gptstore serve``: an OpenAI-compatible API over the verified models of the local library.

Not to be confused with :mod:`gptstore.server` (the Hub-compatible *store* server): this package
serves *generations* (``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``), through the
public generate API (``gptstore.load`` → ``Model.generate`` / ``Model.stream``), so a served model is
verified before its first load and the ``before_generate`` / ``after_generate`` hooks apply exactly as
in-process. The modules, bottom up:

- :mod:`.settings` — what ``gptstore serve`` was started with, and the API key file;
- :mod:`.schemas` — the request bodies (pydantic), validated before anything heavy runs;
- :mod:`.failures` — OpenAI-shaped errors (``{"error": {message, type, param, code}}``);
- :mod:`.chat` — messages to one prompt (chat template, manifest template, plain fallback);
- :mod:`.generation` — a request to generate params and prompts, run on a model's worker, and
  the answers (whole or as server-sent events);
- :mod:`.batching` — compatible jobs that arrived together, run as one batched generation or stream;
- :mod:`.pool` — loaded models (at most ``--max-models`` and ``--max-memory``, least recently used
  evicted), each with its own worker thread and job queue that collects batches;
- :mod:`.metrics` — Prometheus metrics (``GET /metrics``);
- :mod:`.app` — the Starlette app and :func:`~.app.serve` (uvicorn).

Importing this package imports nothing heavy; :mod:`.app` imports starlette.
"""
