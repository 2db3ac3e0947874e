"""The Starlette app of ``gptstore serve`` and :func:`serve` (uvicorn).

Each generation request: authenticate (401) → read the body, capped (413) → validate it with the
pydantic schemas (400) → turn it into :class:`~gptstore.engines.params.GenerationParams` (400) →
look up, pull (``--pull``) or load the model and queue the work on its worker (404, 503), all in a
thread → await the worker's result (or its streamed pieces) without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import datetime
from typing import Any, AsyncIterator, Callable

import anyio
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import GPTStoreError, InvalidReference
from ..netutil import listen_socket
from . import generation
from .batching import Batchable
from .failures import APIError, from_exception, model_not_found
from .metrics import Metrics
from .pool import ModelPool, keep_alive_seconds
from .schemas import ChatRequest, CompletionRequest
from .settings import ServeSettings

_DONE = object()


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


def error_response(error: APIError) -> JSONResponse:
    headers = {"www-authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _planner(body: Any) -> Callable[[Any], generation.Plan]:
    """How a request is planned on its loaded model (a chat's template adds stop strings)."""
    if isinstance(body, ChatRequest):
        return lambda loaded: generation.chat_plan(loaded, body)
    return lambda loaded: generation.completion_plan(body)


class Service:
    """The app's state: settings, the model pool, the metrics."""

    def __init__(self, settings: ServeSettings, pool: ModelPool | None = None) -> None:
        self.settings = settings
        self.pool = pool or ModelPool(settings)
        self.metrics = Metrics(self.pool)

    # -- steps ---------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> str:
        name = self.settings.key_name(request.headers.get("authorization"))
        if name is None:
            raise APIError(401, "missing or unknown API key; send it as `Authorization: Bearer KEY`",
                           code="invalid_api_key")
        return name

    async def body(self, request: Request, schema: type[BaseModel]) -> Any:
        limit = self.settings.max_body
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise APIError(413, f"the request body is larger than {limit} bytes", code="body_too_large")
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > limit:
                raise APIError(413, f"the request body is larger than {limit} bytes", code="body_too_large")
        try:
            return schema.model_validate_json(bytes(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            if first["type"] == "extra_forbidden":
                message = f"unknown parameter {param!r}"
            elif first["type"] == "json_invalid":
                message, param = "the request body is not valid JSON", None
            else:
                message = f"{param}: {first['msg']}" if param else first["msg"]
            raise APIError(400, message, param=param, code="invalid_parameter") from None

    async def submit(self, model: str, work: Callable, key: str, keep_alive: Any, batch: Batchable | None = None):
        given = keep_alive is not None
        seconds = keep_alive_seconds(keep_alive) if given else None
        try:
            return await anyio.to_thread.run_sync(
                lambda: self.pool.submit(model, work, key=key, keep_alive=seconds, keep_alive_given=given,
                                         batch=batch))
        except InvalidReference as exc:
            raise model_not_found(model, exc.hint or str(exc)) from None

    # -- endpoints -----------------------------------------------------------------------------
    async def list_models(self, request: Request) -> Response:
        self.authenticate(request)
        return JSONResponse({"object": "list", "data": await anyio.to_thread.run_sync(self._models)})

    async def get_model(self, request: Request) -> Response:
        self.authenticate(request)
        wanted = request.path_params["model"]
        for entry in await anyio.to_thread.run_sync(self._models):
            if wanted in (entry["id"], entry["id"].removesuffix(":latest")):
                return JSONResponse(entry)
        raise model_not_found(wanted)

    def _models(self) -> list[dict[str, Any]]:
        loaded = self.pool.loaded()
        found = []
        for entry, manifest in self.pool.library.iter_models():
            created = manifest.created_at
            stamp = int(created.timestamp()) if isinstance(created, datetime) else 0
            found.append({"id": f"{entry.repo_id}:{entry.tag}", "object": "model", "created": stamp,
                          "owned_by": entry.repo_id.split("/")[0], "version": manifest.version,
                          "digest": f"sha256:{entry.digest}", "loaded": entry.digest in loaded})
        return sorted(found, key=lambda m: m["id"])

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, CompletionRequest, "completions")

    async def chat(self, request: Request) -> Response:
        return await self._generate(request, ChatRequest, "chat")

    async def _generate(self, request: Request, schema: type[BaseModel], endpoint: str) -> Response:
        start = time.perf_counter()
        model = "-"
        try:
            key = self.authenticate(request)
            body = await self.body(request, schema)
            model = body.model
            params = generation.generation_params(body)  # 400 before anything is looked up or loaded
            chat = isinstance(body, ChatRequest)
            top = (body.top_logprobs or 0) if chat and body.logprobs else (None if chat else body.logprobs)
            if body.stream:
                if top is not None:
                    raise APIError(400, "logprobs are not available when streaming", param="logprobs")
                return await self._stream(body, key, start, endpoint, params)

            plan = _planner(body)

            def work(loaded, job):
                return generation.generate(loaded, plan(loaded), top)

            rows = body.n * (1 if chat else len(generation.prompts_of(body)))
            batch = Batchable(("generate", endpoint, params.model_dump_json()), rows, plan, logprobs=top)
            job = await self.submit(body.model, work, key, body.keep_alive, batch)
            completions, scores = await self._answer_of(request, job)
            answer = (generation.chat_answer if chat else generation.completion_answer)(body, completions, scores)
            self.metrics.answered(model, endpoint, 200, time.perf_counter() - start, answer["usage"])
            return JSONResponse(answer)
        except ClientGone:  # nobody to answer; 499 as nginx logs it
            self.metrics.answered(model, endpoint, 499)
            return Response(status_code=499)
        except Exception as exc:
            error = from_exception(exc, model)
            self.metrics.answered(model if error.status != 404 else "-", endpoint, error.status)
            return error_response(error)

    async def _answer_of(self, request: Request, job: Any) -> Any:
        """The job's result; a client that goes away while its job is still queued takes the job
        off the queue (a generation already running is finished: ``Model.generate`` cannot be
        interrupted, only a stream can)."""
        finished = asyncio.wrap_future(job.future)
        while True:
            done, _ = await asyncio.wait({finished}, timeout=0.25)
            if done:
                return finished.result()
            if await request.is_disconnected():
                job.cancelled.set()
                if job.future.cancel():  # still queued: it never runs
                    raise ClientGone
                return await finished

    async def _stream(self, body: Any, key: str, start: float, endpoint: str, params: Any) -> Response:
        """Server-sent events; the first piece (or the failure) is awaited before the answer
        starts, so that a refused or failing request still gets its status code."""
        chat = isinstance(body, ChatRequest)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def emit(item: tuple) -> None:
            loop.call_soon_threadsafe(events.put_nowait, item)

        plan = _planner(body)

        def work(loaded, job):
            generation.stream(loaded, job, plan(loaded), emit)

        batch = None  # one prompt, one choice: a row of a batched stream
        if body.n == 1 and (chat or len(generation.prompts_of(body)) == 1):
            batch = Batchable(("stream", endpoint, params.model_dump_json()), 1, plan, emit=emit)
        job = await self.submit(body.model, work, key, body.keep_alive, batch)
        finished = asyncio.wrap_future(job.future)
        finished.add_done_callback(lambda _: events.put_nowait((_DONE, 0, None)))
        first = await events.get()
        if first[0] is _DONE and finished.exception() is not None:
            job.cancelled.set()
            raise finished.exception()
        return StreamingResponse(self._events(body, job, finished, first, events, start, endpoint),
                                 media_type="text/event-stream", headers={"cache-control": "no-cache"})

    async def _events(self, body: Any, job: Any, finished: asyncio.Future, first: tuple, events: asyncio.Queue,
                      start: float, endpoint: str) -> AsyncIterator[str]:
        chat = isinstance(body, ChatRequest)
        kind = "chat.completion.chunk" if chat else "text_completion"
        ident, created = generation.new_id("chatcmpl" if chat else "cmpl"), int(time.time())
        prompts = [""] if chat else generation.prompts_of(body)
        ends: dict[int, Any] = {}
        started: set[int] = set()
        timed = False

        def send(payload: dict[str, Any]) -> str:
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        item = first
        try:
            while item[0] is not _DONE:
                what, index, value = item
                if index not in started:
                    started.add(index)
                    if chat:
                        yield send(generation.chunk(kind, ident, created, body.model, index, role=True))
                    elif body.echo:
                        yield send(generation.chunk(kind, ident, created, body.model, index,
                                                    text=prompts[index // body.n]))
                if what == "piece":
                    if not timed:
                        timed = True
                        self.metrics.ttft.labels(self.metrics.label(body.model)).observe(time.perf_counter() - start)
                    yield send(generation.chunk(kind, ident, created, body.model, index, text=value))
                else:
                    ends[index] = value
                    yield send(generation.chunk(kind, ident, created, body.model, index,
                                                finish=generation.FINISH[value.finish_reason]))
                item = await events.get()
            failure = finished.exception()
            if failure is not None:
                error = from_exception(failure, body.model)
                self.metrics.answered(body.model, endpoint, error.status)
                yield send(error.body())
                return
            completions = [ends[i] for i in sorted(ends)]
            usage = generation.usage_of(completions, body.n) if completions else None
            if body.stream_options and body.stream_options.include_usage:
                yield send({"id": ident, "object": kind, "created": created, "model": body.model,
                            "choices": [], "usage": usage})
            yield "data: [DONE]\n\n"
            self.metrics.answered(body.model, endpoint, 200, time.perf_counter() - start, usage)
        finally:
            job.cancelled.set()  # the client went away (or we are done): stop generating

    async def metrics_endpoint(self, request: Request) -> Response:
        self.authenticate(request)
        data, content_type = self.metrics.render()
        return Response(data, media_type=content_type.split(";")[0], headers={"content-type": content_type})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "loaded": len(self.pool.loaded())})


def _guarded(handler: Callable) -> Callable:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except APIError as exc:
            return error_response(exc)
        except GPTStoreError as exc:
            return error_response(from_exception(exc, "-"))
    return endpoint


def create_app(settings: ServeSettings, pool: ModelPool | None = None) -> Starlette:
    service = Service(settings, pool)

    async def reaper() -> None:  # keep_alive that runs out while nothing else happens
        while True:
            await asyncio.sleep(1)
            await anyio.to_thread.run_sync(service.pool.reap)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Starlette):
        task = asyncio.create_task(reaper())
        try:
            yield
        finally:
            task.cancel()
            await anyio.to_thread.run_sync(service.pool.close)

    routes = [
        Route("/v1/models", _guarded(service.list_models), methods=["GET"]),
        Route("/v1/models/{model:path}", _guarded(service.get_model), methods=["GET"]),
        Route("/v1/completions", _guarded(service.completions), methods=["POST"]),
        Route("/v1/chat/completions", _guarded(service.chat), methods=["POST"]),
        Route("/metrics", _guarded(service.metrics_endpoint), methods=["GET"]),
        Route("/health", service.health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    return app


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is announced (a port in use is one line)."""
    return listen_socket(host, port)


def serve(settings: ServeSettings, *, sock: socket.socket, log_level: str = "info",
          pool: ModelPool | None = None) -> None:
    """Run the app under uvicorn on ``sock`` until interrupted."""
    import uvicorn

    config = uvicorn.Config(create_app(settings, pool), log_level=log_level, lifespan="on",
                            timeout_keep_alive=30, limit_concurrency=1024)
    uvicorn.Server(config).run(sockets=[sock])


def leave_a_core() -> None:
    """Give torch's CPU math one thread fewer than the cores this process may use (unless
    ``OMP_NUM_THREADS`` says otherwise): the event loop and the model workers need a core too, and
    torch threads that spin-wait on all cores slowed streamed tokens by up to 10x on 2 cores."""
    import os

    if os.environ.get("OMP_NUM_THREADS"):
        return
    try:
        import torch
    except ImportError:  # an engine without torch
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores - 1))


def run_server(settings: ServeSettings, *, log_level: str = "info", announce: Callable[[str], None] = print) -> None:
    """What ``gptstore serve`` does: bind (a port in use fails first), load the named models
    (verified; a failure is one line), announce, serve until interrupted."""
    sock = bind(settings.host, settings.port)
    try:
        leave_a_core()
        pool = ModelPool(settings)
        pool.preload(settings.refs)
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        loaded = ", ".join(worker.model.name for worker in pool.loaded().values())
        announce(f"gptstore serve: OpenAI-compatible API on http://{host}:{sock.getsockname()[1]}/v1"
                 + (f", loaded {loaded}" if loaded else "")
                 + ("" if settings.keys else ", no API keys (any key is accepted)"))
        serve(settings, sock=sock, log_level=log_level, pool=pool)
    finally:
        sock.close()
