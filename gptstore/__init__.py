"""gptstore: an open GPT store.

Importing this package is cheap: names are served lazily from their modules, and nothing here
imports torch or transformers until a model is loaded.

    >>> import gptstore
    >>> model = gptstore.load("acme/poet")                        # doctest: +SKIP
    >>> model.generate("Roses are", max_new_tokens=20).text       # doctest: +SKIP
    >>> gptstore.verify("acme/poet", full=True).ok                  # doctest: +SKIP

Each step of a flow is one function here (the front door, :mod:`gptstore.sdk`): ``search``,
``pull``, ``verify``, ``load`` for consumers; ``finetune``, ``evaluate``, ``evaluate_tasks``,
``check_claims``, ``package``, ``sign``, ``Library().publish``, ``push`` for providers. The CLI calls the same functions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY: dict[str, str] = {
    "hookimpl": "gptstore.hookspecs",
    "hookspec": "gptstore.hookspecs",
    "Reference": "gptstore.refs",
    "parse_reference": "gptstore.refs",
    "Manifest": "gptstore.manifest",
    "Library": "gptstore.library",
    "LocalModel": "gptstore.library",
    "package": "gptstore.packaging",
    "GPTStoreError": "gptstore.errors",
    "load": "gptstore.model",
    "Model": "gptstore.model",
    "verify": "gptstore.verification",
    "pull": "gptstore.sdk",
    "push": "gptstore.sdk",
    "search": "gptstore.sdk",
    "sign": "gptstore.sdk",
    "finetune": "gptstore.sdk",
    "evaluate": "gptstore.sdk",
    "evaluate_tasks": "gptstore.sdk",
    "check_claims": "gptstore.sdk",
    "VerificationReport": "gptstore.verification",
    "CheckResult": "gptstore.checks",
    "GenerationParams": "gptstore.engines.params",
    "Completion": "gptstore.engines.completion",
}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .checks import CheckResult
    from .engines.completion import Completion
    from .engines.params import GenerationParams
    from .errors import GPTStoreError
    from .hookspecs import hookimpl, hookspec
    from .library import Library, LocalModel
    from .manifest import Manifest
    from .model import Model, load
    from .packaging import package
    from .refs import Reference
    from .refs import parse_reference
    from .sdk import check_claims, evaluate, evaluate_tasks, finetune, pull, push, search, sign
    from .verification import VerificationReport, verify


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gptstore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
