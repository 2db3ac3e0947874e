"""Built-in ``transformers`` engine: Hugging Face causal LMs, on cuda, mps or cpu.

Loading is offline (``local_files_only``), from safetensors (``use_safetensors``; pickle
``pytorch_model*.bin`` only with ``allow_unsafe``, and then through torch's ``weights_only``
unpickler), never with remote code. Generation goes through ``model.generate`` itself, so greedy and beam search give
exactly what plain transformers gives for the same settings; a batch is left-padded and runs one
forward pass per step for all prompts. Stop strings are checked by a stopping criterion on the
decoded tail of each sequence, so a sequence ends on the step its stop string appears; the text
is then cut before it. Streaming runs ``generate`` in a worker thread that hands each new token
to the caller through a queue.

Importing this module is cheap: torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import copy
import importlib.util
import queue
import threading
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple

from ..errors import PackageError, UsageError
from ..hookspecs import hookimpl
from ..perplexity import perplexity as measure_perplexity
from ..perplexity import score_tokens
from .base import PieceEmitter, check_device, check_dtype, cut_at_stop

if TYPE_CHECKING:
    from ..library import LocalModel
    from ..manifest import Manifest
    from .completion import Completion, TextStream, Usage
    from .params import GenerationParams

_DONE = object()


class _Batch(NamedTuple):
    """Prompts ready for ``generate``: left-padded ids and mask on the device, each prompt's
    length, and how many new tokens fit in the context."""

    input_ids: Any
    mask: Any
    lengths: list[int]
    budget: int


class TransformersEngine:
    name = "transformers"
    formats = frozenset({"transformers"})
    install_hint = "pip install 'gptstore[runtime]'"

    def available(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "safetensors"))

    def placement(self, device: str, dtype: str) -> tuple[str, str]:
        """``auto`` device = cuda > mps > cpu; ``auto`` dtype = bfloat16 on GPUs that support it,
        float16 on other GPUs and on mps, float32 on cpu."""
        import torch

        device, dtype = check_device(device), check_dtype(dtype)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise UsageError(f"device {device} was asked for but CUDA is not available",
                                 hint="use --device cpu (or auto)")
            index = int(device.partition(":")[2] or torch.cuda.current_device())
            count = torch.cuda.device_count()
            if index >= count:
                raise UsageError(f"device cuda:{index} does not exist ({count} CUDA device(s): "
                                 f"cuda:0..cuda:{count - 1})", hint="pick another --device")
            device = f"cuda:{index}"
            if dtype == "auto":
                dtype = "bfloat16" if torch.cuda.get_device_capability(index)[0] >= 8 else "float16"
        elif device == "mps":
            if not _mps_available():
                raise UsageError("device mps was asked for but it is not available", hint="use --device cpu")
            dtype = "float16" if dtype == "auto" else dtype
        elif dtype == "auto":
            dtype = "float32"
        return device, dtype

    def load(self, path: Path, manifest: Manifest, *, device: str, dtype: str,
             allow_unsafe: bool = False, base: LocalModel | None = None) -> TransformersRunner:
        """``base`` is never given for this engine's format (a full model has none)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        options: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False,
                                   "use_safetensors": None if allow_unsafe else True,
                                   "weights_only": True,  # pickle (--allow-unsafe): torch's restricted unpickler
                                   "dtype": getattr(torch, dtype)}
        if device != "cpu":
            options["device_map"] = device
        from ..transformers_logging import quiet_transformers

        try:  # transformers' own warnings and "Loading weights" bars only with --verbose
            with quiet_transformers():
                model = AutoModelForCausalLM.from_pretrained(path, **options)
                tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, KeyError) as exc:
            raise PackageError(f"transformers could not load {manifest.repo_id}:{manifest.version}: {exc}",
                               path=path, hint="check the package with `gptstore verify`") from exc
        model.eval()
        return TransformersRunner(model, tokenizer, device=device, dtype=dtype,
                                  context_length=manifest.format.context_length)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


class _Monitor:
    """A stopping criterion that times the first token, stops sequences whose decoded tail holds
    a stop string, and stops everything once ``cancel`` is set."""

    def __init__(self, runner: TransformersRunner, start: float, prompt_width: int, stop: list[str],
                 cancel: threading.Event | None = None, rows: list[threading.Event] | None = None) -> None:
        self.runner = runner
        self.start = start
        self.prompt_width = prompt_width
        self.stop = stop
        self.cancel = cancel
        self.rows = rows  #: per-row cancel events (a batched stream): a set one ends that row only
        self.first_token_s: float | None = None
        # a token holds at least one byte, a character at most four
        self.window = 4 * max((len(s) for s in stop), default=0) + 4

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if self.first_token_s is None:
            self.first_token_s = perf_counter() - self.start
        rows = input_ids.shape[0]
        if self.cancel is not None and self.cancel.is_set():
            return torch.ones(rows, dtype=torch.bool, device=input_ids.device)
        dropped = [event.is_set() for event in self.rows] if self.rows is not None else [False] * rows
        if not self.stop:
            return torch.tensor(dropped, dtype=torch.bool, device=input_ids.device)
        begin = max(self.prompt_width, input_ids.shape[1] - self.window)
        tails = input_ids[:, begin:].tolist()
        hits = [gone or cut_at_stop(self.runner.decode(tail), self.stop)[1] for gone, tail in zip(dropped, tails)]
        return torch.tensor(hits, dtype=torch.bool, device=input_ids.device)


class _QueueStreamer:
    """What ``generate(streamer=…)`` feeds: the prompt first, then each step's new tokens."""

    def __init__(self, sink: queue.SimpleQueue) -> None:
        self.sink = sink
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.sink.put(value.reshape(-1).tolist())

    def end(self) -> None:
        pass


class TransformersRunner:
    """A transformers model and tokenizer on one device."""

    engine = "transformers"
    #: this runner has :meth:`stream_batch` (see :class:`~gptstore.engines.base.Runner`)
    batched_streams = True

    def __init__(self, model: Any, tokenizer: Any, *, device: str, dtype: str, context_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.context_length = context_length
        config = model.generation_config
        eos = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        pad = config.pad_token_id if config.pad_token_id is not None else tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos_ids, default=0)
        self.end_ids = self.eos_ids | {self.pad_id}
        self._tokenizer_lock = threading.Lock()  # fast tokenizers are not safe to share across threads

    # -- shared steps ------------------------------------------------------------------------
    def decode(self, ids: list[int]) -> str:
        with self._tokenizer_lock:
            return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _prepare(self, prompts: list[str], params: GenerationParams) -> _Batch:
        import torch

        with self._tokenizer_lock:
            encoded = self.tokenizer(prompts, add_special_tokens=True, verbose=False)["input_ids"]
        bos = self.tokenizer.bos_token_id
        for i, ids in enumerate(encoded):
            if not ids:
                if bos is None:
                    raise UsageError(f"prompt {i + 1} is empty and the tokenizer has no start token",
                                     hint="give a non-empty prompt")
                encoded[i] = [bos]
        lengths = [len(ids) for ids in encoded]
        width = max(lengths)
        if width >= self.context_length:
            raise UsageError(f"the prompt has {width} tokens but the model's context is {self.context_length}",
                             hint="shorten the prompt")
        budget = min(params.max_new_tokens, self.context_length - width)
        input_ids = torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in encoded])
        mask = torch.tensor([[0] * (width - n) + [1] * n for n in lengths])
        return _Batch(input_ids.to(self.model.device), mask.to(self.model.device), lengths, budget)

    def _generation_config(self, params: GenerationParams, budget: int) -> Any:
        config = copy.deepcopy(self.model.generation_config)
        sample = params.strategy == "sample"
        config.update(max_new_tokens=budget, max_length=None, do_sample=sample, num_beams=params.num_beams or 1,
                      temperature=params.temperature if sample else None,
                      top_k=params.top_k if sample else None, top_p=params.top_p if sample else None,
                      repetition_penalty=params.repetition_penalty, stop_strings=None,
                      pad_token_id=self.pad_id, eos_token_id=sorted(self.eos_ids) or None)
        return config

    @contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        """Seed the generators for one call and restore them afterwards."""
        import torch

        if seed is None:
            yield
            return
        devices = [int(self.device.partition(":")[2] or 0)] if self.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def _run(self, batch: _Batch, params: GenerationParams, monitor: _Monitor,
             streamer: _QueueStreamer | None = None) -> Any:
        from transformers import StoppingCriteriaList

        with self._seeded(params.seed):
            return self.model.generate(input_ids=batch.input_ids, attention_mask=batch.mask,
                                       generation_config=self._generation_config(params, batch.budget),
                                       stopping_criteria=StoppingCriteriaList([monitor]), streamer=streamer)

    def _completion(self, ids: list[int], prompt_tokens: int, params: GenerationParams,
                    first_token_s: float | None, total_s: float) -> Completion:
        """Text, finish reason and usage of one sequence of generated ids (padding included)."""
        from .completion import Completion, Timings, Usage

        end = next((i for i, token in enumerate(ids) if token in self.end_ids), None)
        body = ids if end is None else ids[:end]
        text, stopped = cut_at_stop(self.decode(body), params.stop or [])
        if stopped:
            reason = "stop"
        elif end is not None and ids[end] in self.eos_ids:
            reason, body = "eos", body + [ids[end]]
        else:
            reason = "length"
        return Completion(
            text=text, finish_reason=reason, token_ids=body,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(body)),
            timings=Timings(first_token_s=first_token_s, total_s=total_s,
                            tokens_per_s=len(body) / total_s if total_s > 0 else 0.0))

    # -- the Runner interface ----------------------------------------------------------------
    def generate(self, prompts: list[str], params: GenerationParams) -> list[Completion]:
        start = perf_counter()
        return self._generate(self._prepare(prompts, params), params, start)

    def _generate(self, batch: _Batch, params: GenerationParams, start: float) -> list[Completion]:
        width = batch.input_ids.shape[1]
        monitor = _Monitor(self, start, width, params.stop or [])
        output = self._run(batch, params, monitor)
        total = perf_counter() - start
        rows = output[:, width:].tolist()
        return [self._completion(row, n, params, monitor.first_token_s, total)
                for row, n in zip(rows, batch.lengths)]

    def stream(self, prompt: str, params: GenerationParams) -> TextStream:
        from .completion import TextStream, Usage

        start = perf_counter()
        batch = self._prepare([prompt], params)
        usage = Usage(prompt_tokens=batch.lengths[0])
        if params.strategy == "beam":  # beams are only final at the end: one piece
            return TextStream(self._whole(batch, params, start), usage)
        return TextStream(self._pieces(batch, params, usage, start), usage)

    def _whole(self, batch: _Batch, params: GenerationParams, start: float) -> Iterator[str]:
        completion = self._generate(batch, params, start)[0]
        if completion.text:
            yield completion.text
        return completion

    def _in_thread(self, batch: _Batch, params: GenerationParams, monitor: _Monitor,
                   name: str) -> tuple[threading.Thread, queue.SimpleQueue, dict[str, Any]]:
        """Run the generation on a worker thread (started) that puts each step's tokens on the
        returned queue, then ``_DONE``; its ``"output"`` or ``"error"`` lands in the dict."""
        sink: queue.SimpleQueue = queue.SimpleQueue()
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["output"] = self._run(batch, params, monitor, _QueueStreamer(sink))
            except BaseException as exc:  # handed to the caller's thread
                result["error"] = exc
            finally:
                sink.put(_DONE)

        worker = threading.Thread(target=work, name=name, daemon=True)
        worker.start()
        return worker, sink, result

    def _pieces(self, batch: _Batch, params: GenerationParams, usage: Usage, start: float) -> Iterator[str]:
        width = batch.input_ids.shape[1]
        cancel = threading.Event()
        monitor = _Monitor(self, start, width, params.stop or [], cancel)
        worker, sink, result = self._in_thread(batch, params, monitor, "gptstore-generate")
        emitter = PieceEmitter(self.decode, params.stop or [])
        try:
            while (tokens := sink.get()) is not _DONE:
                usage.completion_tokens += len(tokens)
                piece = emitter.add(tokens)
                if piece:
                    yield piece
        finally:
            cancel.set()
            worker.join()
        if "error" in result:
            raise result["error"]
        completion = self._completion(result["output"][0, width:].tolist(), batch.lengths[0], params,
                                      monitor.first_token_s, perf_counter() - start)
        piece = emitter.rest(completion.text)
        if piece:
            yield piece
        return completion

    def stream_batch(self, prompts: list[str], params: GenerationParams,
                     cancelled: list[threading.Event]) -> Iterator[tuple[str, int, Any]]:
        """Stream several prompts as one left-padded batch (one forward pass per step for all).

        Yields ``("piece", row, text)`` as each row's text grows and ``("end", row, Completion)``
        as soon as that row is finished (end token, stop string, length). A row whose event in
        ``cancelled`` is set stops being generated and yields ``("dropped", row, Usage)`` (the
        tokens it took so far, so they can still be metered) and nothing more; the batch stops
        when every row is finished or cancelled, or when the generator is closed. Not for beam
        search (its text is final only at the end: use :meth:`generate`).
        """
        from .completion import Usage

        if params.strategy == "beam":
            raise UsageError("beam search cannot be streamed as a batch", hint="stream beams one by one")
        if len(cancelled) != len(prompts):
            raise UsageError("stream_batch needs one cancel event per prompt")
        start = perf_counter()
        batch = self._prepare(prompts, params)
        width = batch.input_ids.shape[1]
        stop_all = threading.Event()
        monitor = _Monitor(self, start, width, params.stop or [], stop_all, rows=cancelled)
        worker, sink, result = self._in_thread(batch, params, monitor, "gptstore-generate-batch")
        stop = params.stop or []
        emitters = [PieceEmitter(self.decode, stop) for _ in prompts]
        ids: list[list[int]] = [[] for _ in prompts]
        done = [False] * len(prompts)

        def finish(row: int) -> Iterator[tuple[str, int, Any]]:
            done[row] = True
            completion = self._completion(ids[row], batch.lengths[row], params, monitor.first_token_s,
                                          perf_counter() - start)
            piece = emitters[row].rest(completion.text)
            if piece:
                yield "piece", row, piece
            yield "end", row, completion

        def drop(row: int) -> Iterator[tuple[str, int, Any]]:
            done[row] = True
            yield "dropped", row, Usage(prompt_tokens=batch.lengths[row], completion_tokens=len(ids[row]))

        try:
            while (tokens := sink.get()) is not _DONE:
                for row, token in enumerate(tokens):
                    if done[row]:
                        continue
                    if cancelled[row].is_set():
                        yield from drop(row)  # the others go on
                        continue
                    ids[row].append(token)
                    if token in self.end_ids:
                        yield from finish(row)
                        continue
                    piece = emitters[row].add([token])
                    if piece:
                        yield "piece", row, piece
                    if len(ids[row]) >= batch.budget:
                        yield from finish(row)
        finally:
            stop_all.set()
            worker.join()
        if "error" in result:
            raise result["error"]
        for row in range(len(prompts)):  # rows ended by a stop string on the last step, or cancelled then
            if not done[row]:
                yield from (drop(row) if cancelled[row].is_set() else finish(row))

    def count_tokens(self, prompts: list[str]) -> list[int]:
        """Tokens each prompt takes (as ``generate`` encodes it)."""
        with self._tokenizer_lock:
            encoded = self.tokenizer(prompts, add_special_tokens=True, verbose=False)["input_ids"]
        return [max(1, len(ids)) for ids in encoded]

    def memory_bytes(self) -> int:
        """Bytes the weights take on the device (parameters and buffers × their dtype's size)."""
        if self.model is None:
            return 0
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        return sum(t.numel() * t.element_size() for t in tensors)

    def perplexity(self, texts: list[str], *, batch_size: int = 8) -> float:
        refuse_empty(texts, what="text")
        return measure_perplexity(self.model, self.tokenizer, texts, block_size=self.context_length,
                                  batch_size=batch_size)

    # -- token log-likelihoods (lm-evaluation-harness requests, gptstore.harness) --------------
    def _encode(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            return list(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _prefix(self) -> int:
        """The token an empty context stands for: the start token, else the end-of-text token."""
        token = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else min(self.eos_ids)
        return int(token)

    def loglikelihood(self, pairs: list[tuple[str, str]], *, batch_size: int = 8) -> list[tuple[float, bool]]:
        """For each (context, continuation): log P(continuation | context) in nats, and whether
        greedy decoding would produce it. As the harness's own HF model: trailing spaces of the
        context move to the continuation, the pair is tokenized whole and split at the context's
        tokens, an empty context is the start token, and a too-long context loses its left end."""
        sequences = []
        for context, continuation in pairs:
            if context:
                spaces = len(context) - len(context.rstrip())
                if spaces:
                    context, continuation = context[:-spaces], context[-spaces:] + continuation
                whole, head = self._encode(context + continuation), self._encode(context)
                tail = whole[len(head):] if whole[:len(head)] == head else self._encode(continuation)
            else:
                head, tail = [self._prefix()], self._encode(continuation)
            if not tail:
                raise UsageError(f"continuation {continuation!r} has no tokens to score")
            if len(tail) >= self.context_length:
                raise UsageError(f"a continuation of {len(tail)} tokens does not fit the model's context "
                                 f"({self.context_length})", hint="shorten the task's targets")
            ids = (head + tail)[-self.context_length:]
            sequences.append((ids, len(ids) - len(tail)))
        return score_tokens(self.model, sequences, batch_size=batch_size)

    def loglikelihood_rolling(self, texts: list[str], *, batch_size: int = 8) -> list[float]:
        """log P(text) in nats for each text: ``[start] text`` in blocks of the model's context that
        overlap by one token (as :mod:`gptstore.perplexity`), so every token is scored once."""
        from ..perplexity import blocks_of

        spans, sequences = [], []
        for text in texts:
            blocks = blocks_of([self._prefix()] + self._encode(text), self.context_length)
            blocks = [b for b in blocks if len(b) > 1]
            spans.append((len(sequences), len(sequences) + len(blocks)))
            sequences.extend((b, 1) for b in blocks)
        scores = score_tokens(self.model, sequences, batch_size=batch_size) if sequences else []
        return [sum(s for s, _ in scores[a:b]) for a, b in spans]

    def close(self) -> None:
        import gc

        import torch

        self.model = None
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def refuse_empty(texts: list[str], *, what: str) -> None:
    """An empty list, or an empty or blank text, is a caller's mistake: say so, with its number,
    instead of scoring only an end-of-text token. (An empty *prompt* stays valid for ``generate``:
    it starts from the start token.)"""
    if not texts:
        raise UsageError(f"no {what}s given (an empty list)", hint=f"pass a {what} or a non-empty list of {what}s")
    for i, text in enumerate(texts):
        if not text.strip():
            which = f"{what} {i + 1} of {len(texts)}" if len(texts) > 1 else f"the {what}"
            raise UsageError(f"{which} is empty", hint=f"give some text; an empty {what} has nothing to "
                             + ("continue" if what == "prompt" else "score"))


@hookimpl(trylast=True)  # a built-in: plugins registering the same name override it
def register_engines(register):
    register(TransformersEngine())
