"""Inference engines: registry and choice. The contract is in :mod:`gptstore.engines.base`.

Engines come from the ``register_engines`` hook (the built-in ``transformers`` engine uses it
too). Nothing here imports torch.
"""

from __future__ import annotations

from .. import plugins
from ..errors import MissingDependency, UnknownComponent, UsageError
from .base import Engine


def engines() -> dict[str, Engine]:
    """Every registered engine by name, in registration order (built-ins first)."""
    found = plugins.collect("register_engines", "engine", key=lambda engine: engine.name)
    return {name: args[0] for name, (_plugin, args, _kw) in found.items()}


def pick_engine(format_name: str, name: str | None = None) -> Engine:
    """The engine to load a package of ``format_name``: ``name`` if given, else the first available
    engine that supports the format.

    Raises :class:`UnknownComponent` for an engine nobody registered (or no engine for the format),
    :class:`UsageError` when the named engine cannot load the format, and
    :class:`MissingDependency` when the engines that could are not installed.
    """
    known = engines()
    if name:
        engine = known.get(name)
        if engine is None:
            raise UnknownComponent("engine", name, list(known))
        if format_name not in engine.formats:
            raise UsageError(f"engine {name!r} cannot load {format_name!r} packages "
                             f"(it loads: {', '.join(sorted(engine.formats))})",
                             hint="leave out --engine to pick one automatically")
        candidates = [engine]
    else:
        candidates = [e for e in known.values() if format_name in e.formats]
        if not candidates:
            loadable = sorted({f for e in known.values() for f in e.formats})
            raise UnknownComponent("engine for package format", format_name, loadable)
    for engine in candidates:
        if engine.available():
            return engine
    engine = candidates[0]
    error = MissingDependency(f"what engine {engine.name!r} needs", "runtime")
    error.hint = getattr(engine, "install_hint", None) or error.hint
    raise error
