"""Package formats (adapters): each knows one on-disk model format.

An adapter is any object with:

- ``name`` — the format name recorded in ``manifest.format.adapter``;
- ``detect(path) -> bool`` — whether a directory looks like its format;
- ``inspect(path, *, allow_unsafe=False, base=None) -> dict`` — check the directory (refusing
  unsafe content with :class:`~gptstore.errors.UnsafeContentError`) and return the manifest's
  ``format`` fields (architecture, parameters, context_length, dtype, and ``base`` for adapters
  over a base). ``base`` is the library reference ``gptstore package --base`` gave: a format over
  a base model records it, any other format refuses it with :func:`refuse_base`.

Adapters are registered through the ``register_adapters`` hook.
"""

from __future__ import annotations

from typing import Any, Protocol

from .. import plugins
from ..errors import UnknownComponent, UsageError


class Adapter(Protocol):
    name: str

    def detect(self, path: Any) -> bool: ...

    def inspect(self, path: Any, *, allow_unsafe: bool = False, base: str | None = None) -> dict[str, Any]: ...


def refuse_base(adapter: Adapter, base: str | None) -> None:
    """For a format that is not over a base model: raise :class:`UsageError` when given one."""
    if base is not None:
        raise UsageError(f"package format {adapter.name!r} does not take a base model (got --base {base})",
                         hint="--base is for formats over a base model, e.g. peft adapters")


def adapters() -> dict[str, Adapter]:
    """Every registered adapter by name."""
    found = plugins.collect("register_adapters", "adapter", key=lambda adapter: adapter.name)
    return {name: args[0] for name, (_plugin, args, _kw) in found.items()}


def get_adapter(name: str) -> Adapter:
    known = adapters()
    if name not in known:
        raise UnknownComponent("adapter", name, list(known))
    return known[name]
