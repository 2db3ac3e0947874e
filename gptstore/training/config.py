"""What a fine-tuning run is asked to do: :class:`FinetuneConfig`, the training :class:`Method`\\ s and
their options.

Kept apart from the orchestration (:mod:`gptstore.training.finetune`) so that the trainer, the CLI
and plugins can name the config without importing the run, and so that everything here is checked
before torch is imported and before anything is written.

Methods come from the ``register_finetune_methods`` hook only: the built-in ``full`` (every weight
trained, :mod:`gptstore.training.full`) is registered through it like the ``lora`` method of
gptstore-peft. A method's options (``FinetuneConfig.method_options``; on the CLI ``--method-option
KEY=VALUE``) are validated by the method's own pydantic model (:attr:`Method.options`), so a
plugin owns its options and their error messages while the host owns one generic way to pass them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import plugins
from ..errors import UsageError

HOOK = "register_finetune_methods"
#: AdamW's peak learning rate for a method that declares none (transformers' and full fine-tuning's)
DEFAULT_LEARNING_RATE = 5e-5


@dataclass(frozen=True)
class Method:
    """A training method, as ``register_finetune_methods`` registers it (see the hook's docs)."""

    name: str
    prepare: Callable[[Any, dict[str, Any]], Any]  # prepare(model, options) -> the model to train
    options: type[BaseModel] | None = None  # validates and fills in the options; None: takes none
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # further checks, after `options`
    save: Callable[..., None] | None = None  # save(model=, tokenizer=, out_dir=, base=)
    adapter: str | None = None  # package format of the result (default: detected)
    over_base: bool = False  # the package references its base by digest (format.base)
    plugin: str = "gptstore"
    learning_rate: float | None = None  # default learning rate (else the options model's, else 5e-5)

    @property
    def default_learning_rate(self) -> float:
        """The learning rate used when the user gives none. Methods differ: full fine-tuning moves
        every weight and wants ~5e-5, while an adapter (LoRA) trains few, freshly initialised
        weights and needs ~1e-4 to 2e-4 to move at all. A method declares it as ``learning_rate=``
        at registration or as a ``default_learning_rate`` ClassVar of its options model."""
        declared = self.learning_rate or getattr(self.options, "default_learning_rate", None)
        return float(declared) if declared else DEFAULT_LEARNING_RATE

    def option_names(self) -> list[str]:
        return list(self.options.model_fields) if self.options is not None else []

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options validated by the method's own model and normalised (defaults filled in,
        JSON values: what the manifest records). Raises a one-line :class:`UsageError` naming the
        method and the bad key or value. Idempotent, so a checked dict passes again unchanged."""
        values = dict(options)
        if self.options is not None:
            known = self.option_names()
            unknown = sorted(set(values) - set(known))
            if unknown:
                raise UsageError(f"method {self.name!r} has no option {unknown[0]!r}",
                                 hint=f"its options: {', '.join(known)}")
            try:
                values = self.options.model_validate(values).model_dump(mode="json")
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                key = str(first["loc"][0]) if first["loc"] else "options"
                field = self.options.model_fields.get(key)
                described = f"{key}: {field.description}" if field is not None and field.description else None
                raise UsageError(f"method {self.name!r} option {key}={values.get(key)!s} is invalid: "
                                 f"{first['msg'].removeprefix('Value error, ')}", hint=described) from None
        elif values and self.check is None:
            raise UsageError(f"method {self.name!r} takes no options (got {', '.join(sorted(values))})",
                             hint="leave out --method-option, or choose a method that takes these options")
        return self.check(values) if self.check is not None else values


def methods() -> dict[str, Method]:
    """Every training method by name, from the ``register_finetune_methods`` hook in pluggy's call
    order (the first registration of a name wins; built-ins register last)."""
    found: dict[str, Method] = {}
    collected = plugins.collect(HOOK, "finetune method", key=lambda name, *args, **kw: name)
    for name, (plugin, args, kw) in collected.items():
        try:
            method = Method(*args, **kw, plugin=plugin)
            if method.options is not None and not (isinstance(method.options, type)
                                                   and issubclass(method.options, BaseModel)):
                raise TypeError("options must be a pydantic model class")
        except TypeError as exc:
            problem = f"bad registration of finetune method {name!r}: {exc}"
            if not any(p.plugin == plugin and p.error == problem for p in plugins.problems()):
                plugins.report(plugin, HOOK, problem)
            continue
        found[name] = method
    return found


def get_method(name: str) -> Method:
    known = methods()
    if name not in known:
        raise UsageError(f"unknown method {name!r} (known: {', '.join(sorted(known))})",
                         hint="install the plugin that provides it (e.g. gptstore-peft for lora)")
    return known[name]


#: config fields that steer the run but are not hyper-parameters of the result
NOT_HYPER = frozenset({"eval_base", "save_steps", "logging_steps"})


class FinetuneConfig(BaseModel):
    """How to fine-tune. Validated before torch is imported; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field("full", description="Training method; 'full' trains every weight.")
    method_options: dict[str, Any] = Field(default_factory=dict, description=(
        "Options of the method, validated by the method's own options model (none for full)."))
    epochs: float = Field(3.0, gt=0, description="Passes over the training blocks (unless max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (wins over epochs).")
    learning_rate: float | None = Field(None, gt=0, le=1, description=(
        "Peak learning rate of AdamW (default: the method's, Method.default_learning_rate: 5e-5 for full)."))
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="Learning-rate schedule after warm-up.")
    warmup: float = Field(0.0, ge=0, description="Warm-up: a fraction of the steps if < 1, else a number of steps.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(8, ge=1, description="Blocks per device per step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Batches accumulated into one optimizer step.")
    block_size: int | None = Field(None, ge=2, description="Tokens per block (default: the context, at most 1024).")
    eval_split: float = Field(0.1, ge=0, le=0.5, description=(
        "Fraction of the documents held out for loss and perplexity (ignored with eval data)."))
    eval_base: bool = Field(True, description="Also measure the base model on the evaluation data.")
    seed: int = Field(42, ge=0, description="Seed for the held-out split, initialisation and data order.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Where to train: cuda > mps > cpu.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Mixed precision; auto = bf16 on a CUDA device that supports it, else fp32.")
    text_mode: Literal["paragraphs", "lines", "file"] = Field(
        "paragraphs", description=(
            "Plain-text files: documents separated by blank lines (a file without blank lines: one per "
            "line), one per line, or one per file."))
    save_steps: int = Field(200, ge=1, description="Write a checkpoint every this many steps (and at the end).")
    logging_steps: int = Field(10, ge=1, description="Report the training loss every this many steps.")

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        known = methods()
        if value not in known:
            raise ValueError(f"unknown method {value!r} (known: {', '.join(sorted(known))})")
        return value

    def checked(self) -> FinetuneConfig:
        """This config with its method options validated by the method (:meth:`Method.check_options`)
        and the method's own learning rate when none was given."""
        method = get_method(self.method)
        update: dict[str, Any] = {}
        options = method.check_options(self.method_options)
        if options != self.method_options:
            update["method_options"] = options
        if self.learning_rate is None:
            update["learning_rate"] = method.default_learning_rate
        return self.model_copy(update=update) if update else self


def make_config(**values: Any) -> FinetuneConfig:
    """Build a :class:`FinetuneConfig` with checked method options, raising :class:`UsageError`
    naming the first bad field (or the method and its bad option)."""
    try:
        config = FinetuneConfig(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "config"
        message = first["msg"].removeprefix("Value error, ")
        raise UsageError(f"invalid fine-tuning option {field}: {message}",
                         hint="see `gptstore finetune --help`") from None
    return config.checked()
