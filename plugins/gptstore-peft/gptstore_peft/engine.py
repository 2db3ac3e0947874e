"""The ``peft`` engines: an adapter package applied to its base model, then the transformers runner.

gptstore hands the engine the base model the adapter's manifest pins (``format.base``), already
resolved by its digest and verified like any model (``Engine.load(..., base=...)``). The engine
checks that the base is a full model, loads it with the built-in transformers engine (offline,
safetensors only, no remote code) and applies the adapter with ``peft.PeftModel.from_pretrained``.
Generation, streaming and perplexity are the transformers engine's runner, unchanged.

Two engines are registered:

- ``peft`` (the default for peft packages): the adapter stays separate, so the output is exactly
  what ``PeftModel.from_pretrained(base, adapter)`` gives;
- ``peft-merged``: the adapter is merged into the base weights at load (``merge_and_unload``), so
  generation runs at the plain model's speed; the output equals the unmerged one up to float
  rounding. Choose it with ``gptstore.load(ref, engine="peft-merged")`` or ``--engine peft-merged``.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gptstore.engines.transformers import TransformersEngine, TransformersRunner
from gptstore.errors import PackageError, UsageError

from .base import check_base_format

if TYPE_CHECKING:
    from gptstore.library import LocalModel
    from gptstore.manifest import Manifest

#: files that mean the package brings its own tokenizer (else the base's is used)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class PeftRunner(TransformersRunner):
    """The transformers runner over a peft model (or a merged one)."""

    def __init__(self, model: Any, tokenizer: Any, *, engine: str, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        self.engine = engine


class PeftEngine:
    formats = frozenset({"peft"})
    install_hint = "pip install gptstore-peft 'gptstore[runtime]'"

    def __init__(self, *, merge: bool = False) -> None:
        self.merge = merge
        self.name = "peft-merged" if merge else "peft"
        self._base_engine = TransformersEngine()

    def __repr__(self) -> str:
        return f"<PeftEngine {self.name}>"

    def available(self) -> bool:
        return self._base_engine.available() and importlib.util.find_spec("peft") is not None

    def placement(self, device: str, dtype: str) -> tuple[str, str]:
        return self._base_engine.placement(device, dtype)

    def load(self, path: Path, manifest: Manifest, *, device: str, dtype: str,
             allow_unsafe: bool = False, base: LocalModel | None = None) -> PeftRunner:
        if base is None:
            raise UsageError(f"{manifest.repo_id}:{manifest.version} is a peft adapter; the {self.name} engine "
                             "needs its base model", hint="load it with gptstore.load(), which resolves and "
                                                          "verifies the base the adapter pins")
        check_base_format(base, f"{manifest.repo_id}:{manifest.version}")
        loaded = self._base_engine.load(base.path, base.manifest, device=device, dtype=dtype,
                                        allow_unsafe=allow_unsafe)
        model, tokenizer = loaded.model, loaded.tokenizer
        try:
            from peft import PeftModel

            with warnings.catch_warnings():  # peft asks transformers for a deprecated attribute
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                model = PeftModel.from_pretrained(model, str(path), is_trainable=False, torch_device=device)
            if self.merge:
                model = model.merge_and_unload()
            if any((Path(path) / name).is_file() for name in TOKENIZER_FILES):
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise PackageError(f"peft could not apply {manifest.repo_id}:{manifest.version} to its base "
                               f"{base.manifest.repo_id}:{base.manifest.version}: {exc}", path=path,
                               hint="check the adapter with `gptstore verify`; it may not fit this base") from exc
        model.eval()
        return PeftRunner(model, tokenizer, engine=self.name, device=device, dtype=dtype,
                          context_length=manifest.format.context_length)
