"""Generation parameters: one pydantic model, validated before any model is loaded.

A :class:`GenerationParams` holds what a *call* asked for; fields left ``None`` are not set.
:meth:`GenerationParams.resolve` fills them in, in this order of precedence:

1. the call's own params;
2. the manifest's generation defaults (``manifest.generation``);
3. the built-in defaults (:data:`BUILTIN_DEFAULTS`).

The strategy is decided first. A call that sets sampling knobs (temperature, top_k, top_p) but no
strategy means ``sample``; one that sets ``num_beams`` > 1 means ``beam``; otherwise the manifest's
strategy (inferred the same way), otherwise ``greedy``. Then each knob that applies to that strategy
takes the first value found in the three layers. A manifest value that does not fit the strategy
(say ``temperature`` when the call asked for ``greedy``) is ignored, so contradictions can only come
from the call itself, and those raise :class:`~gptstore.errors.InvalidParams` when the params are
built:

    >>> GenerationParams(strategy="greedy", temperature=0.7)
    Traceback (most recent call last):
    gptstore.errors.InvalidParams: invalid generation params: temperature applies to strategy 'sample', not 'greedy'; ...

Field descriptions double as the ``gptstore run`` option help.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import InvalidParams
from ..manifest import Strategy

#: knobs that only make sense when sampling
SAMPLING_KNOBS = ("temperature", "top_k", "top_p")

#: what a call gets when neither it nor the manifest says otherwise
BUILTIN_DEFAULTS: dict[str, Any] = {
    "strategy": "greedy",
    "max_new_tokens": 256,
    "num_beams": 4,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "repetition_penalty": 1.0,
    "stop": [],
}

#: the fields each strategy uses (seed is accepted everywhere; only sampling draws from it)
APPLIES: dict[str, tuple[str, ...]] = {
    "greedy": ("max_new_tokens", "repetition_penalty", "stop", "seed"),
    "beam": ("max_new_tokens", "num_beams", "repetition_penalty", "stop", "seed"),
    "sample": ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "stop", "seed"),
}


class GenerationParams(BaseModel):
    """How to generate. Every field is optional; unset fields come from the manifest or built-ins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Strategy | None = Field(
        None, description="Decoding strategy: greedy, beam or sample (default: greedy, or what "
                          "the other options imply).")
    max_new_tokens: int | None = Field(None, ge=1, le=1_000_000,
                                       description="Generate at most this many tokens (default 256).")
    num_beams: int | None = Field(None, ge=1, le=64, description="Beams for beam search (>= 2, default 4).")
    temperature: float | None = Field(
        None, description="Sampling temperature, > 0; lower is more deterministic (default 1.0).")
    top_k: int | None = Field(None, ge=0, description="Sample among the k most likely tokens; 0 = all (default 50).")
    top_p: float | None = Field(None, gt=0, le=1,
                                description="Nucleus sampling: smallest set of tokens with this mass (default 1.0).")
    repetition_penalty: float | None = Field(
        None, gt=0, description="Penalty for tokens already present; 1.0 = none, >1 discourages repeats.")
    stop: list[str] | None = Field(
        None, max_length=16, description="Stop when this string appears; it is cut from the output (repeatable).")
    seed: int | None = Field(None, ge=0, lt=2**63, description="Random seed, for reproducible sampling.")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidParams(_describe(exc), hint=_hint(exc)) from None

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not s for s in value):
            raise ValueError("stop strings must not be empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> GenerationParams:
        strategy = implied_strategy(self.model_dump(exclude_none=True))
        knobs = [k for k in SAMPLING_KNOBS if getattr(self, k) is not None]
        beams = self.num_beams
        if strategy in ("greedy", "beam") and knobs:
            raise ValueError(f"{', '.join(knobs)} {'applies' if len(knobs) == 1 else 'apply'} to strategy "
                             f"'sample', not '{strategy}'; drop {'it' if len(knobs) == 1 else 'them'} "
                             "or use strategy='sample'")
        if strategy == "beam" and beams is not None and beams < 2:
            raise ValueError(f"beam search needs num_beams >= 2 (got {beams}); use strategy='greedy' for one beam")
        if strategy in ("greedy", "sample") and beams is not None and beams > 1:
            raise ValueError(f"num_beams={beams} needs strategy='beam', not '{strategy}'")
        if strategy == "sample" and self.temperature is not None and self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 for sampling (got {self.temperature}); "
                             "for deterministic output use strategy='greedy'")
        return self

    # -- resolution ----------------------------------------------------------------------------
    @classmethod
    def coerce(cls, params: GenerationParams | dict[str, Any] | None = None, **overrides: Any) -> GenerationParams:
        """Params from an object or dict plus keyword overrides (the overrides win)."""
        if isinstance(params, GenerationParams):
            base = params.model_dump(exclude_none=True)
        elif params is None:
            base = {}
        elif isinstance(params, dict):
            base = dict(params)
        else:
            raise InvalidParams(f"params must be a GenerationParams or a dict, not {type(params).__name__}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def resolve(self, defaults: Any = None) -> GenerationParams:
        """Fill every field that applies to the strategy: call > ``defaults`` > built-ins.

        ``defaults`` is the manifest's :class:`~gptstore.manifest.GenerationDefaults` (or a dict, or
        None). Fields that do not apply to the strategy come back as ``None``.
        """
        call = self.model_dump(exclude_none=True)
        if defaults is None:
            manifest: dict[str, Any] = {}
        elif isinstance(defaults, dict):
            manifest = {k: v for k, v in defaults.items() if v is not None}
        else:
            manifest = defaults.model_dump(exclude_none=True)
        try:
            from_manifest = implied_strategy(manifest)
        except ValueError:  # a manifest that mixes sampling knobs and beams: trust its strategy only
            from_manifest = manifest.get("strategy")
        strategy = implied_strategy(call) or from_manifest or BUILTIN_DEFAULTS["strategy"]
        resolved: dict[str, Any] = {"strategy": strategy}
        for name in APPLIES[strategy]:
            if name in call:
                resolved[name] = call[name]
            elif name in manifest and _fits(name, manifest[name], strategy):
                resolved[name] = manifest[name]
            elif name in BUILTIN_DEFAULTS:
                resolved[name] = BUILTIN_DEFAULTS[name]
        return GenerationParams(**resolved)

    @property
    def do_sample(self) -> bool:
        return self.strategy == "sample"


def implied_strategy(layer: dict[str, Any]) -> str | None:
    """The strategy a layer of params asks for, explicitly or through the knobs it sets."""
    if layer.get("strategy"):
        return layer["strategy"]
    if any(layer.get(k) is not None for k in SAMPLING_KNOBS):
        if (layer.get("num_beams") or 1) > 1:
            raise ValueError("sampling knobs (temperature, top_k, top_p) and num_beams > 1 contradict each "
                             "other; choose strategy='sample' or strategy='beam'")
        return "sample"
    if (layer.get("num_beams") or 1) > 1:
        return "beam"
    return None


def _fits(name: str, value: Any, strategy: str) -> bool:
    """Whether a manifest default can be used for ``strategy``."""
    if name == "num_beams":
        return value >= 2
    if name == "temperature":
        return value > 0
    return True


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(field, GenerationParams.model_fields, n=1)
            problems.append(f"unknown parameter {field!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            continue
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {message}" if field else message)
    return "invalid generation params: " + "; ".join(problems)


def _hint(error: ValidationError) -> str:
    if any(item["type"] == "extra_forbidden" for item in error.errors()):
        return "known parameters: " + ", ".join(GenerationParams.model_fields)
    return "see `gptstore run --help` for every parameter and its range"
