"""The built-in ``full`` fine-tune method: every weight of the base is trained.

Registered through ``register_finetune_methods`` like any plugin's method (a ``DEFAULT_PLUGINS``
entry, ``trylast`` so that a plugin may take the name on purpose). It takes no options. Imported
at every CLI start, so it imports nothing but the hook marker.
"""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl


def prepare(model: Any, options: dict[str, Any]) -> Any:
    """The loaded base as it is: every parameter stays trainable."""
    return model


@hookimpl(trylast=True)
def register_finetune_methods(register):
    register("full", prepare)
