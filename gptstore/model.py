"""The SDK's front door: :func:`load` a model by reference and :class:`Model` to run it.

    >>> import gptstore
    >>> with gptstore.load("acme/poet") as model:                     # doctest: +SKIP
    ...     print(model.generate("Roses are", max_new_tokens=20).text)
    ...     for piece in model.stream("Violets are", strategy="sample", seed=1):
    ...         print(piece, end="", flush=True)

``load`` resolves the reference in a library, picks an engine, verifies the snapshot with
:func:`gptstore.verify` (integrity through the stamp cache, every registered verifier, safety) and
loads it, reusing weights that are already warm in this process. A package over a base model (a
peft adapter) has its base resolved by the pinned digest and verified the same way here, and the
engine is handed both. Verification warnings (an unsigned model under the ``warn`` policy) are
logged once per load. Every generation applies the manifest's prompt template
(unless ``raw=True``), resolves the params (call > manifest > built-in), runs the
``before_generate`` / ``after_generate`` hooks and appends a row to the usage log.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from . import config, plugins, usage
from .engines import pick_engine
from .engines.base import check_device, check_dtype, placement
from .engines.completion import Completion, TextStream, Usage
from .engines.params import GenerationParams
from .checks import CheckResult
from .errors import ModelNotFound, PluginError, StoreError, UsageError
from .library import Library, LocalModel
from .refs import Reference
from .verification import VerificationReport, show_warnings, verify

if TYPE_CHECKING:
    from .engines.base import Engine, Runner
    from .manifest import Manifest

#: loaded models kept warm per process (besides those held by open ``Model`` objects)
WARM_MODELS = 2


# -- resolving and verifying ---------------------------------------------------------------------

def resolve(reference: str | Reference, store: str | Path | None = None, *,
            allow_unsafe: bool = False, token: str | None = None) -> tuple[Library, LocalModel]:
    """Find a model in the local library; when the library does not have it yet, pull it
    (verified, like ``gptstore pull``) from ``store``, else from the effective store
    (``GPTSTORE_STORE``, else ``hf://``: :func:`gptstore.config.effective_store`).

    A model already in the library is used as it is, also offline. When the store was not named
    and cannot be asked (offline, unreachable), the error says the model is not in the library
    and why the store was not asked.
    """
    library = Library()
    try:
        return library, library.get(reference)
    except ModelNotFound as missing:
        if store is None and config.offline_variable():
            raise ModelNotFound(missing.reference, hint=f"{config.offline_variable()} is set, so "
                                f"{config.effective_store()} was not asked; unset it to pull the model") from None
        found_missing = missing
    from .pulling import pull

    # the pull's warnings are this load's verification's too: shown once, by load
    try:
        return library, pull(reference, store=None if store is None else str(store), library=library,
                             allow_unsafe=allow_unsafe, token=token, warn=False).model
    except StoreError as exc:
        if store is not None:
            raise
        raise ModelNotFound(found_missing.reference,
                            hint=f"{config.effective_store()} could not be asked: {exc.message}") from None


def _verified_base(library: Library, local: LocalModel, *,
                  allow_unsafe: bool = False) -> tuple[LocalModel, VerificationReport] | None:
    """For a package over a base model (``format.base``): the base it pins, verified like any
    model (errors name it as the base of this package); ``None`` for a package without one."""
    if local.manifest.format.base is None:
        return None
    base = library.base_of(local.manifest)
    context = (f"base {base.manifest.repo_id}:{base.manifest.version} of "
               f"{local.manifest.repo_id}:{local.manifest.version}")
    return base, verify(base, library=library, allow_unsafe=allow_unsafe, context=context)


# -- keep-warm cache -----------------------------------------------------------------------------

class _Warm:
    """Loaded runners by (digest, device, dtype, engine), least recently used dropped first.

    A runner is freed when it leaves the cache with no open ``Model`` using it, or when the last
    ``Model`` using it is closed.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple, Runner] = OrderedDict()
        self.users: dict[int, weakref.WeakSet] = {}
        self.lock = threading.RLock()

    def acquire(self, key: tuple, load: Any) -> Runner:
        """The runner for ``key``, loaded with ``load()`` when it is not warm. Hold ``lock`` until
        a Model has registered as its user, so that no other thread evicts it first."""
        with self.lock:
            runner = self.entries.get(key)
            if runner is None:
                runner = load()
                self.entries[key] = runner
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                _, old = self.entries.popitem(last=False)
                if not self.users.get(id(old)):
                    self._free(old)
            return runner

    def use(self, runner: Runner, model: Model) -> None:
        with self.lock:
            self.users.setdefault(id(runner), weakref.WeakSet()).add(model)

    def release(self, runner: Runner, model: Model) -> None:
        """``model`` is done with ``runner``; free it if nobody else uses it."""
        with self.lock:
            users = self.users.get(id(runner))
            if users is not None:
                users.discard(model)
                if users:
                    return
            for key, value in list(self.entries.items()):
                if value is runner:
                    del self.entries[key]
            self._free(runner)

    def _free(self, runner: Runner) -> None:
        self.users.pop(id(runner), None)
        runner.close()


_WARM = _Warm(WARM_MODELS)


# -- the model -----------------------------------------------------------------------------------

class Model:
    """A verified model loaded by an engine. Use :func:`load` to get one."""

    def __init__(self, local: LocalModel, runner: Runner, *, engine: str, load_s: float,
                 allow_unsafe: bool = False, checks: list[CheckResult] | None = None) -> None:
        self.reference: Reference = local.reference
        self.manifest: Manifest = local.manifest
        self.digest: str = local.digest
        self.path: Path = local.path
        self.name = local.name
        self.engine = engine
        self.device = runner.device
        self.dtype = runner.dtype
        self.load_s = load_s
        self.allow_unsafe = allow_unsafe
        self.checks = checks or []
        self._runner: Runner | None = runner
        _WARM.use(runner, self)

    def __repr__(self) -> str:
        state = "closed" if self._runner is None else f"{self.engine} on {self.device} ({self.dtype})"
        return f"<gptstore.Model {self.name} sha256:{self.digest[:12]} {state}>"

    @property
    def context_length(self) -> int:
        return self.runner.context_length

    @property
    def output_filtered(self) -> bool:
        """Whether a plugin's ``after_generate`` may rewrite this model's completions (e.g. a
        redacting guard). Then text streamed piece by piece can differ from the final text, so a
        caller that must show only filtered text (``gptstore run``) generates instead of streaming."""
        return bool(plugins.call_order("after_generate"))  # a wrapper with nothing to wrap never runs

    @property
    def runner(self) -> Runner:
        """The engine's loaded model, for work beyond generate/stream/perplexity (``gptstore
        eval`` measures through a transformers runner's ``model`` and ``tokenizer``). Valid while
        this model is open; raises :class:`~gptstore.errors.UsageError` once it is closed."""
        if self._runner is None:
            raise UsageError(f"model {self.name} is closed", hint="load it again with gptstore.load()")
        return self._runner

    # -- generation ------------------------------------------------------------------------
    def params(self, params: GenerationParams | dict | None = None, **kwargs: Any) -> GenerationParams:
        """The params a call with these arguments would use (call > manifest > built-in)."""
        return GenerationParams.coerce(params, **kwargs).resolve(self.manifest.generation)

    def generate(self, prompt: str | Sequence[str], params: GenerationParams | dict | None = None, *,
                 raw: bool = False, **kwargs: Any) -> Completion | list[Completion]:
        """Generate from one prompt (→ a :class:`Completion`) or a list (→ a list, batched).

        Params come as a :class:`GenerationParams`, a dict, or keywords (``max_new_tokens=20``);
        keywords win. ``raw=True`` skips the manifest's prompt template.
        """
        resolved = self.params(params, **kwargs)
        single = isinstance(prompt, str)
        prompts = _prompt_list(prompt)
        if not prompts:
            return []
        runner = self.runner
        start = perf_counter()
        prompts = self._before(self._render(prompts, raw), resolved)
        completions = runner.generate(prompts, resolved)
        for completion in completions:
            completion.timings.load_s = self.load_s
        completions = self._after(completions)
        self._record([c.usage for c in completions], perf_counter() - start)
        return completions[0] if single else completions

    def stream(self, prompt: str, params: GenerationParams | dict | None = None, *, raw: bool = False,
               **kwargs: Any) -> TextStream:
        """Yield text pieces as they are produced; joined, they equal ``generate``'s text.

        The returned stream's ``completion`` is set once it is exhausted. Closing it early stops
        the generation (what was generated is still recorded in the usage log). With beam search
        the text comes as one piece at the end. ``after_generate`` runs when the stream ends: what
        it changes lands in ``stream.completion``, but text already yielded cannot be taken back.
        """
        resolved = self.params(params, **kwargs)
        if not isinstance(prompt, str):
            raise UsageError("stream takes one prompt", hint="use generate() for a list of prompts")
        runner = self.runner
        start = perf_counter()
        prompts = self._before(self._render([prompt], raw), resolved)
        inner = runner.stream(prompts[0], resolved)
        return TextStream(self._relay(inner, start), inner.usage)

    def _relay(self, inner: TextStream, start: float) -> Iterator[str]:
        try:
            yield from inner
        except GeneratorExit:  # the caller stopped early: record what was generated
            self._record([inner.usage], perf_counter() - start)
            raise
        completion = inner.completion
        assert completion is not None
        completion.timings.load_s = self.load_s
        completion = self._after([completion])[0]
        self._record([completion.usage], perf_counter() - start)
        return completion

    def stream_batch(self, prompts: Sequence[str], params: GenerationParams | dict | None = None, *,
                     cancelled: Sequence[threading.Event] | None = None, raw: bool = False,
                     **kwargs: Any) -> Iterator[tuple[str, int, Any]]:
        """Stream several prompts as one batch (one forward pass per step for every row), for a
        server that answers concurrent streaming clients at once (``gptstore serve``).

        Yields ``("piece", row, text)`` as row ``row``'s text grows, ``("end", row, Completion)``
        when that row is finished, and ``("dropped", row, Usage)`` when ``cancelled[row]`` was
        set (its client went away): that row stops, the others go on. Per row, the pieces joined
        equal the ``end`` completion's text, as with :meth:`stream`.

        As every generation does, it applies the prompt template (unless ``raw=True``), runs
        ``before_generate`` on all prompts and ``after_generate`` on each finished row (what it
        changes lands in the ``end`` completion; pieces already yielded cannot be taken back), and
        writes one usage-log row for the batch once the iterator ends or is closed, with the
        tokens of every row, dropped rows' tokens included (closing the iterator early loses
        only the rows still unfinished then). Not for beam search. Raises
        :class:`~gptstore.errors.UsageError` when the engine cannot stream a batch (a runner
        without ``batched_streams``): use :meth:`stream` per prompt then.
        """
        resolved = self.params(params, **kwargs)
        prompts = _prompt_list(prompts)
        events = list(cancelled) if cancelled is not None else [threading.Event() for _ in prompts]
        if len(events) != len(prompts):
            raise UsageError(f"stream_batch got {len(prompts)} prompt(s) but {len(events)} cancel event(s)",
                             hint="pass one threading.Event per prompt, or none")
        runner = self.runner
        if not getattr(runner, "batched_streams", False):
            raise UsageError(f"the {self.engine} engine cannot stream a batch", hint="use stream() per prompt")
        if not prompts:
            return iter(())
        return self._relay_batch(runner, prompts, resolved, events, raw)

    def _relay_batch(self, runner: Runner, prompts: list[str], resolved: GenerationParams,
                     cancelled: list[threading.Event], raw: bool) -> Iterator[tuple[str, int, Any]]:
        start = perf_counter()
        usages: list[Usage] = []
        inner = None
        try:
            rendered = self._before(self._render(prompts, raw), resolved)
            inner = runner.stream_batch(rendered, resolved, cancelled)
            for what, row, value in inner:
                if what == "end":
                    value.timings.load_s = self.load_s
                    value = self._after([value])[0]
                    usages.append(value.usage)
                elif what == "dropped":
                    usages.append(value)
                yield what, row, value
        finally:
            if inner is not None:
                inner.close()
            if usages:
                self._record(usages, perf_counter() - start)

    def perplexity(self, texts: str | Sequence[str], *, batch_size: int = 8) -> float:
        """exp(mean token cross-entropy) over ``texts`` (no template), in blocks of the model's
        context, ``batch_size`` blocks per forward pass; see :mod:`gptstore.perplexity`."""
        return self.runner.perplexity(_prompt_list(texts), batch_size=batch_size)

    # -- steps -----------------------------------------------------------------------------
    def _render(self, prompts: list[str], raw: bool) -> list[str]:
        return list(prompts) if raw else [self.manifest.render(p) for p in prompts]

    def _before(self, prompts: list[str], params: GenerationParams) -> list[str]:
        current = list(prompts)  # replaced in place, so each plugin sees the previous one's prompts
        for plugin, result in plugins.call_each("before_generate", strict=True, model=self, prompts=current,
                                                params=params):
            if result is None:
                continue
            if (not isinstance(result, (list, tuple)) or len(result) != len(current)
                    or not all(isinstance(p, str) for p in result)):
                raise PluginError(plugin, "before_generate",
                                  TypeError(f"must return None or {len(current)} prompt string(s)"))
            current[:] = result
        return current

    def _after(self, completions: list[Completion]) -> list[Completion]:
        current = list(completions)
        for plugin, result in plugins.call_each("after_generate", strict=True, model=self, completions=current):
            if result is None:
                continue
            if (not isinstance(result, (list, tuple)) or len(result) != len(current)
                    or not all(isinstance(c, Completion) for c in result)):
                raise PluginError(plugin, "after_generate",
                                  TypeError(f"must return None or {len(current)} Completion(s)"))
            current[:] = result
        return current

    def _record(self, usages: list[Usage], duration: float) -> None:
        pricing = self.manifest.pricing
        entry = usage.UsageRecord(
            reference=str(self.reference), model=f"{self.manifest.repo_id}:{self.manifest.version}",
            digest=self.digest, engine=self.engine, device=self.device, prompts=len(usages),
            prompt_tokens=sum(u.prompt_tokens for u in usages),
            completion_tokens=sum(u.completion_tokens for u in usages), duration_s=duration,
            allow_unsafe=self.allow_unsafe, pricing=pricing.model, amount=pricing.amount, currency=pricing.currency)
        try:
            usage.record(entry)
        except Exception as exc:  # the log must never cost the caller their result
            warnings.warn(f"could not write the usage log {usage.path()}: {exc}", RuntimeWarning, stacklevel=3)

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """Free the weights (unless another open Model shares them). Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            _WARM.release(runner, self)

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _prompt_list(prompt: str | Sequence[str]) -> list[str]:
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if not all(isinstance(p, str) for p in prompts):
        raise UsageError("prompts must be strings", hint="pass a string or a list of strings")
    return prompts


def load(reference: str | Reference, *, store: str | Path | None = None, device: str = "auto",
         dtype: str = "auto", engine: str | None = None, allow_unsafe: bool = False,
         token: str | None = None) -> Model:
    """Load a model from the library, verified, on a device.

    Args:
        reference: ``namespace/name[:tag][@sha256:<hex>]``.
        store: a store URL (``http(s)://``, ``hf://``, a library path or ``file://`` URL) to pull
            from when the local library does not have the model yet; default ``GPTSTORE_STORE``,
            else ``hf://`` (huggingface.co, or ``HF_ENDPOINT``). A Hub repo without a
            ``gptstore.json`` (``openai-community/gpt2``) is imported as an unsigned package.
        device: ``auto`` (cuda > mps > cpu), ``cpu``, ``mps``, ``cuda`` or ``cuda:N``.
        dtype: ``auto`` (bfloat16 on GPUs that support it, float32 on cpu), ``float32``,
            ``float16`` or ``bfloat16``.
        engine: an engine name; default the first installed engine for the package's format.
        allow_unsafe: accept pickle-based weights (recorded in the usage log).
        token: for the store a pull goes to (``store``, else the effective store) and no other,
            as ``GPTSTORE_TOKEN`` would be.

    Loading the same model (digest, device, dtype, engine) again in a process reuses the weights.

    Raises:
        ModelNotFound, IntegrityError (naming the file), UnsafeContentError, UnknownComponent,
        MissingDependency, UsageError.
    """
    start = perf_counter()
    device, dtype = check_device(device), check_dtype(dtype)
    library, local = resolve(reference, store, allow_unsafe=allow_unsafe, token=token)
    chosen: Engine = pick_engine(local.manifest.format.adapter, engine)
    report = verify(local, library=library, allow_unsafe=allow_unsafe)
    based = _verified_base(library, local, allow_unsafe=allow_unsafe)
    show_warnings((based[1].warnings if based else []) + report.warnings)
    extra = {"base": based[0]} if based else {}  # only engines for formats over a base take one
    device, dtype = placement(chosen, device, dtype)
    key = (local.digest, device, dtype, chosen.name)
    with _WARM.lock:
        runner = _WARM.acquire(key, lambda: chosen.load(local.path, local.manifest, device=device, dtype=dtype,
                                                        allow_unsafe=allow_unsafe, **extra))
        return Model(local, runner, engine=chosen.name, load_s=perf_counter() - start,
                     allow_unsafe=allow_unsafe, checks=report.checks)
