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
