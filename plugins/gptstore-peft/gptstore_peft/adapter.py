"""The ``peft`` package format: a LoRA (or other peft) adapter over a base model in the library.

A package holds ``adapter_config.json`` and ``adapter_model.safetensors`` (and, optionally,
tokenizer files; without them the base's tokenizer is used). The manifest's ``format.base`` pins
the base by reference and manifest digest; architecture and context length come from the base's
manifest, ``parameters`` and ``dtype`` from the adapter's own weights. Only JSON and the
safetensors header are read: no torch import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gptstore.adapters.transformers import count_parameters
from gptstore.errors import InvalidReference, ManifestError, ModelNotFound, PackageError
from gptstore.fsutil import package_files
from gptstore.library import Library, LocalModel
from gptstore.manifest import MANIFEST_FILE, METADATA_FILES, load_manifest
from gptstore.refs import parse_reference
from gptstore.safety import check_safety

from .base import check_base_format

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PICKLE_WEIGHTS = "adapter_model.bin"


def read_adapter_config(root: Path) -> dict[str, Any]:
    try:
        config = json.loads((root / ADAPTER_CONFIG).read_text())
    except FileNotFoundError:
        raise PackageError(f"{root} has no {ADAPTER_CONFIG}", path=root,
                           hint="save the adapter with PeftModel.save_pretrained() into this directory") from None
    except ValueError as exc:
        raise PackageError(f"{ADAPTER_CONFIG} in {root} is not valid JSON ({exc})", path=root) from None
    if not isinstance(config, dict) or not config.get("peft_type"):
        raise PackageError(f"{ADAPTER_CONFIG} in {root} names no peft_type", path=root / ADAPTER_CONFIG,
                           hint="save the adapter with PeftModel.save_pretrained()")
    return config


class PeftAdapter:
    name = "peft"

    def detect(self, path: Path) -> bool:
        return (Path(path) / ADAPTER_CONFIG).is_file()

    def inspect(self, path: Path, *, allow_unsafe: bool = False, base: str | None = None) -> dict[str, Any]:
        """The ``format`` fields of an adapter directory.

        ``base`` is the base model's reference in the local library (``gptstore package
        --base REF``). Without it, the base recorded by an earlier ``gptstore.json`` in the
        directory is kept, or else ``base_model_name_or_path`` of ``adapter_config.json`` is used
        when it is a reference the library has.
        """
        root = Path(path)
        config = read_adapter_config(root)
        check_safety(package_files(root, skip=METADATA_FILES), allow_unsafe=allow_unsafe, where=str(root))
        weights = root / ADAPTER_WEIGHTS
        if weights.is_file():
            parameters, dtype = count_parameters([weights])
        elif allow_unsafe and (root / PICKLE_WEIGHTS).is_file():
            parameters, dtype = 0, "unknown"
        else:
            raise PackageError(f"{root} has no {ADAPTER_WEIGHTS}", path=root,
                               hint="save with PeftModel.save_pretrained(safe_serialization=True)")
        found = self._base(root, base, config)
        check_base_format(found, str(root))
        fmt = found.manifest.format
        return {"adapter": self.name, "architecture": fmt.architecture, "parameters": parameters,
                "context_length": fmt.context_length, "dtype": dtype,
                "base": {"reference": f"{found.manifest.repo_id}:{found.manifest.version}", "digest": found.digest}}

    def _base(self, root: Path, base: str | None, config: dict[str, Any]) -> LocalModel:
        library = Library()
        if base is not None:
            try:
                return library.get(base)
            except ModelNotFound as exc:
                raise ModelNotFound(exc.reference, hint="the base must be in the local library: publish or pull it "
                                                        "first (`gptstore list` shows what is there)") from None
        if (root / MANIFEST_FILE).is_file():  # re-packaging: keep the base recorded before
            try:
                recorded = load_manifest(root).format.base
            except ManifestError:
                recorded = None
            if recorded is not None:
                pinned = f"{recorded.reference}@sha256:{recorded.digest}"
                if not library.has_manifest(recorded.digest):
                    raise ModelNotFound(pinned, hint="the adapter's base must be in the local library: pull it, "
                                                     "or pass --base REF")
                return library.get(pinned)
        named = config.get("base_model_name_or_path")
        if isinstance(named, str):
            try:
                return library.get(parse_reference(named))
            except (InvalidReference, ModelNotFound):
                pass
        raise PackageError(f"{root} is a peft adapter; its base model must be named",
                           path=root, hint="pass --base REF, a model in the local library (`gptstore list`)")
