"""The ``lora`` training method for ``gptstore finetune --method lora``.

Options (``FinetuneConfig.method_options``; on the CLI ``--lora-r``, ``--lora-alpha``,
``--target-modules``): ``r`` (rank, default 8), ``alpha`` (scaling, default 16), ``dropout``
(default 0.0) and ``target_modules`` (module names to adapt, default peft's choice for the
architecture, e.g. ``c_attn`` for GPT-2). Only the adapter is trained and saved: the package holds
``adapter_config.json`` and ``adapter_model.safetensors`` and references its base by digest.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from gptstore.errors import UsageError

DEFAULTS: dict[str, Any] = {"r": 8, "alpha": 16, "dropout": 0.0}
OPTIONS = ("r", "alpha", "dropout", "target_modules")


def check(options: dict[str, Any]) -> dict[str, Any]:
    """Validate the options and fill in defaults (before anything heavy runs)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UsageError(f"method 'lora' has no option {', '.join(map(repr, unknown))}",
                         hint=f"its options: {', '.join(OPTIONS)}")
    result = DEFAULTS | {k: v for k, v in options.items() if v is not None}
    r, alpha, dropout = result["r"], result["alpha"], result["dropout"]
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise UsageError(f"LoRA rank r must be a whole number >= 1 (got {r!r})", hint="e.g. --lora-r 8")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise UsageError(f"LoRA alpha must be a number > 0 (got {alpha!r})", hint="e.g. --lora-alpha 16")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise UsageError(f"LoRA dropout must be in [0, 1) (got {dropout!r})")
    targets = result.get("target_modules")
    if targets is not None:
        if isinstance(targets, str):
            targets = [t.strip() for t in targets.split(",")]
        if (not isinstance(targets, (list, tuple)) or not targets
                or not all(isinstance(t, str) and t.strip() for t in targets)):
            raise UsageError(f"LoRA target_modules must be a list of module names (got {targets!r})",
                             hint="e.g. --target-modules c_attn,c_proj")
        result["target_modules"] = [t.strip() for t in targets]
    return result


def adaptable_modules(model: Any) -> list[str]:
    """Names (last segment) of the linear-like layers of a model, for error hints."""
    import torch
    from transformers.pytorch_utils import Conv1D

    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if name and isinstance(module, (torch.nn.Linear, Conv1D))})


def prepare(model: Any, options: dict[str, Any]) -> Any:
    """Wrap the base in LoRA adapters; only they are trained."""
    from peft import LoraConfig, get_peft_model

    options = check(options)
    config = LoraConfig(r=options["r"], lora_alpha=options["alpha"], lora_dropout=options["dropout"],
                        target_modules=options.get("target_modules"), bias="none", task_type="CAUSAL_LM")
    try:
        with warnings.catch_warnings():  # GPT-2's Conv1D layers: peft switches fan_in_fan_out on itself
            warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, config)
    except ValueError as exc:
        raise UsageError(f"LoRA cannot adapt this model: {exc}",
                         hint=f"name the layers with --target-modules; this model has: "
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
