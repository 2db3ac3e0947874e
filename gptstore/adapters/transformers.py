"""Built-in ``transformers`` adapter: a Hugging Face causal-LM directory with safetensors weights.

Everything here reads JSON and safetensors headers only: no torch, no transformers import (and
the module itself imports nothing heavy, since every CLI start registers it).
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from math import prod
from pathlib import Path
from typing import Any

from ..errors import PackageError
from ..fsutil import package_files
from ..hookspecs import hookimpl
from ..perplexity import context_length

SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
    "BOOL": "bool",
}


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor names → dtype, shape, offsets)."""
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise PackageError(f"{path.name} is not a safetensors file (too short)", path=path)
        (length,) = struct.unpack("<Q", raw)
        if length > 100 * 1024 * 1024:
            raise PackageError(f"{path.name} has an implausible safetensors header", path=path)
        try:
            return json.loads(handle.read(length))
        except ValueError:
            raise PackageError(f"{path.name} has a corrupt safetensors header", path=path) from None


def weight_files(root: Path) -> list[Path]:
    index = root / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError):
            raise PackageError(f"{index.name} has no weight_map", path=index) from None
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (root / s).is_file()]
        if missing:
            raise PackageError(f"shard {missing[0]} named in {index.name} is missing", path=root / missing[0],
                               hint="copy every shard into the directory")
        return [root / s for s in shards]
    return sorted(root.glob("*.safetensors"))


def count_parameters(files: list[Path]) -> tuple[int, str]:
    """(parameter count, dominant dtype) from safetensors headers."""
    total = 0
    by_dtype: Counter[str] = Counter()
    for file in files:
        for name, info in read_safetensors_header(file).items():
            if name == "__metadata__":
                continue
            n = prod(info["shape"])
            total += n
            by_dtype[SAFETENSORS_DTYPES.get(info["dtype"], info["dtype"].lower())] += n
    dtype = by_dtype.most_common(1)[0][0] if by_dtype else "unknown"
    return total, dtype


#: the most layers a config may declare when its model is built (on ``meta``) to count parameters
MAX_LAYERS = 1024


def parameters_from_config(config: dict[str, Any]) -> tuple[int, str]:
    """(parameter count, dtype) of a causal LM from its ``config.json`` alone, for pickle weights.

    A pickle-only Hub repo has no safetensors header to count (and its pickle is never opened
    for that): the model is built from the config on torch's ``meta`` device (no memory, no
    weights, never remote code) and its parameters counted. ``model.parameters()`` yields a tied
    parameter once, as ``save_pretrained`` writes it once into safetensors, so one model gives
    the same count either way. The dtype is the config's ``torch_dtype`` (``float32`` without it).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..transformers_logging import quiet_transformers

    settings = dict(config)
    model_type = settings.pop("model_type", None)
    if not isinstance(model_type, str) or settings.get("auto_map"):
        raise PackageError("config.json names no model_type transformers knows without remote code")
    try:
        with quiet_transformers():
            parsed = AutoConfig.for_model(model_type, **settings)
            layers = getattr(parsed, "num_hidden_layers", None)
            if not isinstance(layers, int) or not 0 < layers <= MAX_LAYERS:  # a hostile config: bounded work
                raise PackageError(f"config.json declares {layers!r} layers; gptstore builds at most {MAX_LAYERS} "
                                   "to count parameters", hint="the repo is broken or hostile")
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(parsed, trust_remote_code=False)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise PackageError(f"transformers cannot build the model of config.json: {str(exc)[:300]}") from None
    dtype = config.get("torch_dtype") or config.get("dtype") or "float32"
    return sum(p.numel() for p in model.parameters()), str(dtype)


class TransformersAdapter:
    name = "transformers"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return (path / "config.json").is_file() and not (path / "adapter_config.json").is_file()

    def inspect(self, path: Path, *, allow_unsafe: bool = False, base: str | None = None) -> dict[str, Any]:
        from . import refuse_base

        refuse_base(self, base)  # a full model, never over a base
        root = Path(path)
        try:
            config = json.loads((root / "config.json").read_text())
        except FileNotFoundError:
            raise PackageError(f"{root} has no config.json", path=root,
                               hint="save the model with save_pretrained() into this directory") from None
        except ValueError as exc:
            raise PackageError(f"config.json in {root} is not valid JSON ({exc})", path=root) from None
        from ..manifest import METADATA_FILES
        from ..safety import check_safety

        files = package_files(root, skip=METADATA_FILES)
        check_safety(files, allow_unsafe=allow_unsafe, config=config, where=str(root))
        weights = weight_files(root)
        if not weights:
            if not allow_unsafe:
                raise PackageError(f"{root} has no safetensors weights", path=root,
                                   hint="save with save_pretrained(safe_serialization=True)")
            parameters, dtype = 0, str(config.get("torch_dtype") or config.get("dtype") or "unknown")
        else:
            parameters, dtype = count_parameters(weights)
        architectures = config.get("architectures") or []
        architecture = architectures[0] if architectures else config.get("model_type", "unknown")
        context = context_length(config) if isinstance(config, dict) else None
        if context is None:
            raise PackageError("config.json gives no context length (max_position_embeddings / n_positions)",
                               path=root / "config.json")
        return {"adapter": self.name, "architecture": architecture, "parameters": parameters,
                "context_length": context, "dtype": dtype}


@hookimpl(trylast=True)  # a built-in: plugins registering the same name override it
def register_adapters(register):
    register(TransformersAdapter())
