"""The engine contract, and text helpers every engine can share.

An **engine** turns a verified snapshot into a :class:`Runner` on a device. It is any object with:

- ``name`` — what ``gptstore.load(..., engine=NAME)`` and ``--engine`` call it;
- ``formats`` — the package formats (adapter names, ``manifest.format.adapter``) it can load;
- ``available() -> bool`` — whether its dependencies are installed; must be cheap (use
  ``importlib.util.find_spec``, never import torch here);
- ``load(path, manifest, *, device, dtype, allow_unsafe=False, base=None) -> Runner`` — load the
  snapshot directory ``path`` offline, on the given device and dtype. For a package over a base
  model (``manifest.format.base``, e.g. a peft adapter) gptstore resolves the base the manifest
  pins, verifies it like any model and passes it as ``base`` (a
  :class:`~gptstore.library.LocalModel`: its ``path`` and ``manifest``); ``base`` is passed only
  then, so an engine for full models may leave the parameter out;
- optionally ``placement(device, dtype) -> (device, dtype)`` — resolve ``"auto"`` to concrete
  names (e.g. ``("cuda:0", "bfloat16")``), raising :class:`~gptstore.errors.UsageError` for a
  device that is not there. Its result is what ``load`` receives and what keys the keep-warm
  cache; without it, ``load`` gets the names as the caller gave them.

Engines are registered with the ``register_engines`` hook. gptstore verifies the snapshot (and
its base) with :func:`gptstore.verify` *before* it calls ``load``, applies the prompt
template, validates and resolves :class:`~gptstore.engines.params.GenerationParams`, calls the
generation hooks and records usage: an engine only generates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from ..errors import UsageError

if TYPE_CHECKING:
    from ..library import LocalModel
    from ..manifest import Manifest
    from .completion import Completion, TextStream
    from .params import GenerationParams

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
          "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


class Runner(Protocol):
    """A model loaded by an engine, ready to generate."""

    engine: str
    device: str
    dtype: str
    context_length: int

    def generate(self, prompts: list[str], params: GenerationParams) -> list[Completion]:
        """One completion per prompt, the whole batch in one pass per step. ``params`` are resolved."""

    def stream(self, prompt: str, params: GenerationParams) -> TextStream:
        """Text pieces as they are produced; joined they equal ``generate``'s text."""

    def perplexity(self, texts: list[str], *, batch_size: int = 8) -> float:
        """exp(mean token cross-entropy) of the texts, in blocks of the model's context."""

    def close(self) -> None:
        """Free the weights (and accelerator memory)."""

    # Optional, for ``gptstore eval --tasks`` (lm-evaluation-harness, :mod:`gptstore.harness`); a
    # runner without them can still generate, and the harness says which method it lacks:
    #   loglikelihood(pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]
    #       log P(continuation | context) in nats, and whether greedy decoding gives it;
    #   loglikelihood_rolling(texts: list[str]) -> list[float]
    #       log P(text) in nats, every token scored once (texts longer than the context in windows).

    # Optional capabilities (looked up with getattr; an engine may leave them out):
    #
    # - ``batched_streams = True`` with ``stream_batch(prompts, params, cancelled) -> Iterator`` of
    #   ``("piece", row, text)`` / ``("end", row, Completion)`` / ``("dropped", row, Usage)``:
    #   several prompts streamed as one batch, a row whose ``cancelled[row]`` event is set dropped
    #   with the tokens it took so far (see the transformers engine). ``Model.stream_batch`` wraps
    #   it; ``gptstore serve`` batches concurrent streams with it; without it, streams run one by one.
    # - ``memory_bytes() -> int``: what the loaded weights take, for ``gptstore serve --max-memory``;
    #   without it the size of the package's weight files is used.


class Engine(Protocol):
    name: str
    formats: frozenset[str]

    def available(self) -> bool: ...

    def load(self, path: Path, manifest: Manifest, *, device: str, dtype: str,
             allow_unsafe: bool = False, base: LocalModel | None = None) -> Runner: ...


def placement(engine: Engine, device: str, dtype: str) -> tuple[str, str]:
    """The concrete (device, dtype) an engine will load on; see the module docstring."""
    device, dtype = check_device(device), check_dtype(dtype)
    resolve = getattr(engine, "placement", None)
    return resolve(device, dtype) if resolve is not None else (device, dtype)


def check_device(device: str) -> str:
    """Validate the *form* of a device name (``auto``, ``cpu``, ``mps``, ``cuda``, ``cuda:N``)."""
    value = (device or "auto").strip().lower()
    if not _DEVICE.fullmatch(value):
        raise UsageError(f"unknown device {device!r}", hint="use auto, cpu, mps, cuda or cuda:N")
    return value


def check_dtype(dtype: str) -> str:
    """Canonical dtype name (``auto``, ``float32``, ``float16``, ``bfloat16``; fp32/fp16/bf16 accepted)."""
    value = DTYPES.get((dtype or "auto").strip().lower())
    if value is None:
        raise UsageError(f"unknown dtype {dtype!r}", hint="use auto, float32, float16 or bfloat16")
    return value


# -- text helpers --------------------------------------------------------------------------------

def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop string, and whether one was found."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    if not hits:
        return text, False
    return text[:min(hits)], True


def showable(text: str, stop: list[str]) -> str:
    """The part of a growing ``text`` (no stop string in it) that is safe to show already.

    Held back: a trailing replacement character (a multi-byte character still being decoded) and
    the longest suffix that could still grow into a stop string.
    """
    text = text.rstrip("\ufffd")
    longest = max((len(s) for s in stop), default=0)
    for k in range(min(len(text), longest - 1), 0, -1):
        tail = text[-k:]
        if any(s.startswith(tail) for s in stop):
            return text[:-k]
    return text


class PieceEmitter:
    """Turns a growing list of token ids into the text pieces a stream yields.

    ``decode(ids)`` decodes completion tokens to text; every piece is a continuation of the text
    emitted before, and :meth:`rest` gives what is left of the final text.
    """

    def __init__(self, decode: Callable[[list[int]], str], stop: list[str]) -> None:
        self.decode = decode
        self.stop = stop
        self.ids: list[int] = []
        self.sent = ""

    def add(self, ids: list[int]) -> str:
        self.ids.extend(ids)
        text, stopped = cut_at_stop(self.decode(self.ids), self.stop)
        show = text if stopped else showable(text, self.stop)
        if len(show) <= len(self.sent) or not show.startswith(self.sent):
            return ""
        piece, self.sent = show[len(self.sent):], show
        return piece

    def rest(self, final_text: str) -> str:
        piece = final_text[len(self.sent):] if final_text.startswith(self.sent) else ""
        self.sent = final_text
        return piece
