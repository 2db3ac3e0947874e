"""gptstore-peft: LoRA adapters as gptstore packages.

- package format (adapter) ``peft``: a directory with ``adapter_config.json`` and
  ``adapter_model.safetensors``; its manifest references the base model by reference and
  manifest digest (``format.base``), so only the adapter is stored, signed and uploaded;
- engines ``peft`` (the adapter applied on top of the base, exactly what peft computes) and
  ``peft-merged`` (the adapter merged into the base weights at load: plain-model speed);
- training method ``lora`` for ``gptstore finetune --method lora``.

Importing this module is cheap (the CLI imports it at every start): torch, transformers and peft
are imported inside the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gptstore.hookspecs import hookimpl

if TYPE_CHECKING:
    from .adapter import PeftAdapter
    from .engine import PeftEngine

__version__ = "0.1.0"
__all__ = ["PeftAdapter", "PeftEngine", "__version__"]


def __getattr__(name: str) -> Any:  # the classes load on first use, not at CLI start
    if name == "PeftAdapter":
        from .adapter import PeftAdapter

        return PeftAdapter
    if name == "PeftEngine":
        from .engine import PeftEngine

        return PeftEngine
    raise AttributeError(f"module 'gptstore_peft' has no attribute {name!r}")


@hookimpl
def register_adapters(register):
    from .adapter import PeftAdapter

    register(PeftAdapter())


@hookimpl
def register_engines(register):
    from .engine import PeftEngine

    register(PeftEngine())  # first: the default for peft packages
    register(PeftEngine(merge=True))


@hookimpl
def register_finetune_methods(register):
    from . import lora
    from .adapter import PeftAdapter

    register("lora", lora.prepare, options=lora.LoraOptions, save=lora.save, adapter=PeftAdapter.name,
             over_base=True)
