"""The ``lora`` training method for ``gptstore finetune --method lora``.

Its options are :class:`LoraOptions` (``FinetuneConfig.method_options``; on the CLI
``--method-option KEY=VALUE``, e.g. ``--method-option r=8 --method-option target_modules=c_attn,c_proj``):
``r`` (rank, default 8), ``alpha`` (scaling, default 16), ``dropout`` (default 0.0) and
``target_modules`` (module names to adapt, default peft's choice for the architecture, e.g.
``c_attn`` for GPT-2). Without ``--learning-rate`` LoRA trains at
:attr:`LoraOptions.default_learning_rate` (2e-4), not full fine-tuning's 5e-5. The host validates them with this model before anything heavy runs, and
records them, defaults filled in, in the manifest's provenance. Only the adapter is trained and
saved: the package holds ``adapter_config.json`` and ``adapter_model.safetensors`` and references
its base by digest.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gptstore.errors import UsageError


class LoraOptions(BaseModel):
    """The options of ``--method lora``; CLI values arrive as strings and are converted here."""

    model_config = ConfigDict(extra="forbid")

    #: the learning rate when ``--learning-rate`` is not given (``Method.default_learning_rate``):
    #: LoRA trains few, freshly initialised weights and needs a larger step than full fine-tuning's
    #: 5e-5 (peft practice: 1e-4 to 2e-4; 5e-5 changed a small model's loss by 0.002 in 40 steps)
    default_learning_rate: ClassVar[float] = 2e-4

    r: int = Field(8, ge=1, le=4096, description="LoRA rank, a whole number >= 1, e.g. r=8")
    alpha: float = Field(16, gt=0, description="LoRA scaling alpha, a number > 0, e.g. alpha=16")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA layers, in [0, 1), e.g. dropout=0.05")
    target_modules: list[str] | None = Field(None, min_length=1, description=(
        "module names to adapt, comma-separated, e.g. target_modules=c_attn,c_proj "
        "(default: peft's choice for the architecture)"))

    @field_validator("r", "alpha", "dropout", mode="before")
    @classmethod
    def _not_a_flag(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("a number is needed, not true/false")
        return value

    @field_validator("target_modules", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        """``"c_attn, c_proj"`` (the CLI's form) → ``["c_attn", "c_proj"]``; blank names refused."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, (list, tuple)):
            names = [name.strip() if isinstance(name, str) else name for name in value]
            if any(name == "" for name in names):
                raise ValueError("a module name is empty")
            return names
        return value


def adaptable_modules(model: Any) -> list[str]:
    """Names (last segment) of the linear-like layers of a model, for error hints."""
    import torch
    from transformers.pytorch_utils import Conv1D

    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if name and isinstance(module, (torch.nn.Linear, Conv1D))})


def prepare(model: Any, options: dict[str, Any]) -> Any:
    """Wrap the base in LoRA adapters; only they are trained."""
    from peft import LoraConfig, get_peft_model

    options = LoraOptions.model_validate(options).model_dump()
    config = LoraConfig(r=options["r"], lora_alpha=options["alpha"], lora_dropout=options["dropout"],
                        target_modules=options.get("target_modules"), bias="none", task_type="CAUSAL_LM")
    try:
        with warnings.catch_warnings():  # GPT-2's Conv1D layers: peft switches fan_in_fan_out on itself
            warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, config)
    except ValueError as exc:
        raise UsageError(f"LoRA cannot adapt this model: {exc}",
                         hint=f"name the layers with --method-option target_modules=NAME,...; this model has: "
                              f"{', '.join(adaptable_modules(model))}") from None


def save(*, model: Any, tokenizer: Any, out_dir: Path, base: str | None) -> None:
    """Write the adapter only (no tokenizer: the base's is used; no model card: stores make one).

    ``adapter_config.json`` names the base by its gptstore reference instead of a local path.
    """
    out_dir = Path(out_dir)
    # saved while base_model_name_or_path is still the local base directory: peft reads its
    # config.json there (to tell whether the vocabulary changed) instead of asking the Hub
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "README.md").unlink(missing_ok=True)  # peft's generated card
    if base is not None:
        path = out_dir / "adapter_config.json"
        config = json.loads(path.read_text())
        config["base_model_name_or_path"] = base
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
