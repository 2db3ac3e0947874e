"""The ``peft`` engines: an adapter package applied to its base model, then the transformers runner.

Loading resolves the base by the digest the adapter's manifest pins (:func:`find_base`), verifies
the base snapshot like any model (integrity through the stamp cache, safety, registered
verifiers), loads it with the built-in transformers engine (offline, safetensors only, no remote
code) and applies the adapter with ``peft.PeftModel.from_pretrained``. Generation, streaming and
perplexity are the transformers engine's runner, unchanged.

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
from gptstore.errors import GPTStoreError, PackageError

from .base import find_base, library_of

if TYPE_CHECKING:
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
             allow_unsafe: bool = False) -> PeftRunner:
        from gptstore.model import verify_snapshot

        library = library_of(path)
        base = find_base(manifest, library)
        try:
            verify_snapshot(library, base, allow_unsafe=allow_unsafe)
        except GPTStoreError as exc:  # say that it is the base that failed, keep type and fields
            exc.message = (f"base {base.manifest.repo_id}:{base.manifest.version} of "
                           f"{manifest.repo_id}:{manifest.version}: {exc.message}")
            exc.args = (exc.message,)
            raise
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
