"""Plugin loading and isolated hook calls.

Built-in components are plugins too (``DEFAULT_PLUGINS``), registered through the same hooks.
Third-party plugins come from entry points in group ``gptstore``; each loads inside its own
try/except, and ``GPTSTORE_LOAD_PLUGINS`` (comma list, empty = none) limits which load.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pluggy

from . import config, hookspecs
from .errors import GPTStoreError, PluginError

ENTRY_POINT_GROUP = "gptstore"
DEFAULT_PLUGINS = (
    "gptstore.adapters.transformers",
    "gptstore.engines.transformers",
    "gptstore.stores.local",
    "gptstore.stores.hub",
    "gptstore.trust",
)

pm = pluggy.PluginManager("gptstore")
pm.add_hookspecs(hookspecs)


@dataclass
class PluginProblem:
    """A plugin that failed to load or raised in a hook, as ``gptstore plugins`` reports it."""

    plugin: str
    where: str
    error: str


@dataclass
class _State:
    loaded: bool = False
    problems: list[PluginProblem] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    dists: dict[str, str] = field(default_factory=dict)  # plugin name -> distribution name


_state = _State()


def problems() -> list[PluginProblem]:
    load_plugins()
    return list(_state.problems)


def report(plugin: str, where: str, error: BaseException | str) -> None:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    _state.problems.append(PluginProblem(plugin, where, text))


def load_plugins() -> None:
    """Register built-ins and installed plugins, once. Never raises for a broken plugin."""
    if _state.loaded:
        return
    _state.loaded = True
    for module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        if not pm.is_registered(module):
            pm.register(module, name=module_name)
    allowed = config.load_plugins()
    if allowed == []:
        return
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else ep.name
        if allowed is not None and dist not in allowed and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must never take gptstore down
            report(ep.name, "load", exc)
            continue
        _state.dists[ep.name] = dist
        if ep.dist is not None:
            _state.versions[ep.name] = ep.dist.version


def register(plugin: object, name: str) -> None:
    """Register a plugin object (a module or an instance) by name, e.g. in tests."""
    load_plugins()
    pm.register(plugin, name=name)


def unregister(name: str) -> None:
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin, name=name)
    _state.problems[:] = [p for p in _state.problems if p.plugin != name]


def plugin_name(impl: pluggy.HookImpl) -> str:
    return impl.plugin_name


def _trace(hook: str, plugin: str, kwargs: dict[str, Any], result: Any = None, *, done: bool = False) -> None:
    if not config.trace_plugins():
        return
    if done:
        print(f"[gptstore] {hook} <- {plugin}: {result!r}", file=sys.stderr)
    else:
        args = ", ".join(f"{k}={v!r}"[:80] for k, v in kwargs.items())
        print(f"[gptstore] {hook}({args}) -> {plugin}", file=sys.stderr)


def call_each(hook: str, *, strict: bool, **kwargs: Any) -> Iterator[tuple[str, Any]]:
    """Call each plugin's implementation of ``hook`` on its own, in pluggy's call order.

    Yields ``(plugin_name, result)``. When a plugin raises: with ``strict`` a
    :class:`PluginError` naming the plugin is raised (the operation fails); without, the problem
    is reported (``gptstore plugins`` shows it) and the other plugins still run. A
    ``GPTStoreError`` raised on purpose by a plugin passes through unchanged.
    """
    load_plugins()
    caller = getattr(pm.hook, hook)
    for impl in reversed(caller.get_hookimpls()):
        name = plugin_name(impl)
        args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
        _trace(hook, name, args)
        try:
            result = impl.function(*[kwargs[a] for a in impl.argnames])
        except GPTStoreError:
            raise
        except Exception as exc:
            if strict:
                raise PluginError(name, hook, exc) from exc
            report(name, hook, exc)
            continue
        _trace(hook, name, args, result, done=True)
        yield name, result


def collect(hook: str, kind: str, key: Callable[..., str]) -> dict[str, tuple[str, tuple, dict]]:
    """Run a ``register_*`` hook; returns ``{name: (plugin, args, kwargs)}``, first wins.

    ``key(*args, **kwargs)`` gives the registered name. A duplicate name is reported against the
    plugin that tried to register it, and the first registration stays.
    """
    found: dict[str, tuple[str, tuple, dict]] = {}
    current = {"plugin": "?"}

    def register(*args: Any, **kw: Any) -> None:
        name = key(*args, **kw)
        if name in found:
            report(current["plugin"], hook,
                   f"{kind} {name!r} is already registered by {found[name][0]}; the first one stays")
            return
        found[name] = (current["plugin"], args, kw)

    caller = getattr(pm.hook, hook)
    load_plugins()
    for impl in caller.get_hookimpls():  # registration order: built-ins first, so they win names
        current["plugin"] = plugin_name(impl)
        _trace(hook, current["plugin"], {})
        try:
            impl.function(*[register for _ in impl.argnames])
        except Exception as exc:
            report(current["plugin"], hook, exc)
    return found


@dataclass
class PluginInfo:
    name: str
    version: str | None
    hooks: list[str]
    builtin: bool
    errors: list[str]


def describe() -> list[PluginInfo]:
    """Every registered plugin plus every plugin that failed to load."""
    load_plugins()
    infos: dict[str, PluginInfo] = {}
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        infos[name] = PluginInfo(name, _state.versions.get(name), hooks, name in DEFAULT_PLUGINS, [])
    for problem in _state.problems:
        info = infos.setdefault(problem.plugin, PluginInfo(problem.plugin, _state.versions.get(problem.plugin), [], False, []))
        info.errors.append(f"{problem.where}: {problem.error}")
    return sorted(infos.values(), key=lambda i: (i.builtin, i.name))
