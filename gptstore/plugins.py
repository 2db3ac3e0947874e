"""Plugin loading, and hook calls made by pluggy, one plugin at a time.

**Built-ins are plugins.** ``DEFAULT_PLUGINS`` lists gptstore's own plugin modules; they register
adapters, engines, stores, verifiers and training methods through the same hooks as third-party
plugins. They are imported at every CLI start, so they stay light (no pydantic, torch or
transformers at module level), and their ``register_*`` implementations are
``@hookimpl(trylast=True)``: pluggy calls them after every plugin that is not ``trylast`` itself,
so a plugin that registers a built-in name overrides it, unless it too asked to come last.

**Entry points.** Third-party plugins come from entry points in group ``gptstore``; each loads in
its own try/except. ``GPTSTORE_LOAD_PLUGINS`` (comma list of distributions or plugin names; empty =
none) limits which load. It is read again by every :func:`load_plugins`, so changing it in a running
process loads or unloads entry-point plugins to match: the test kit pins it to ``""`` for each test.

**Calls.** pluggy decides the order, ``reversed(get_hookimpls())``: ``tryfirst`` implementations
(last registered first), then the others (last registered first), then ``trylast`` ones (first
registered first: the built-ins before a ``trylast`` plugin). Each plugin is then called on its own
through ``pm.subset_hook_caller(hook, remove_plugins=<every other plugin>)``, so pluggy's own
machinery runs the implementation together with that plugin's wrappers. One plugin at a time,
rather than one ``pm.hook.<name>(...)`` for all, because pluggy stops a call at the first exception
without saying whose it was, and the host needs three things from each call:

- isolation: a plugin that raises while registering is reported by ``gptstore plugins`` and the
  others still register; one that raises in ``generate`` or ``package`` fails that operation with
  an error naming it (:class:`~gptstore.errors.PluginError`);
- ownership: a ``register`` callback knows which plugin is registering, so the first registration
  of a name stays and the later one is reported against the plugin that tried it;
- chaining: each result of ``before_generate``, ``after_generate`` and ``prepare_manifest`` is
  checked and handed on to the next plugin.

The other way, one pluggy call with every implementation's function wrapped for isolation, would
overwrite pluggy's ``HookImpl.function`` (declared ``Final``) and still not know the owner of a
registration. The price: a ``wrapper=True`` / ``hookwrapper=True`` implementation wraps its own
plugin's implementation of the hook, not other plugins'. A wrapper whose plugin has no
implementation of that hook would wrap nothing; it is reported instead of being silently skipped.
Order between plugins is what ``tryfirst`` / ``trylast`` are for.

An implementation of a hook that has no spec (a misspelled ``register_engine``) is reported as a
problem of its plugin: every one of them, where ``pm.check_pending()`` raises for the first.
``GPTSTORE_TRACE_PLUGINS=1`` prints every hook call through pluggy's ``add_hookcall_monitoring``,
as datasette does.
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import pluggy

from . import config, hookspecs
from .errors import GPTStoreError, PluginError

ENTRY_POINT_GROUP = "gptstore"
#: gptstore's own plugin modules, registered before any entry point. Add a built-in here: a light
#: module whose ``register_*`` hook implementations are ``@hookimpl(trylast=True)``.
DEFAULT_PLUGINS = (
    "gptstore.adapters.transformers",
    "gptstore.engines.transformers",
    "gptstore.stores.local",
    "gptstore.stores.hub",
    "gptstore.trust",
    "gptstore.safety",
    "gptstore.training.full",
)

pm = pluggy.PluginManager("gptstore")
pm.add_hookspecs(hookspecs)
#: every hook gptstore specifies (and calls)
HOOKS = tuple(sorted(vars(pm.hook)))


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that failed to load or raised in a hook, as ``gptstore plugins`` reports it."""

    plugin: str
    where: str
    error: str


@dataclass(frozen=True)
class _Override:
    winner: str
    what: str  # e.g. "adapter 'transformers' of gptstore.adapters.transformers"
    loser: str


_NOT_LOADED = object()


@dataclass
class _State:
    builtins: bool = False
    loaded_for: Any = _NOT_LOADED  # the GPTSTORE_LOAD_PLUGINS value the entry points match
    entry_points: dict[str, str] = field(default_factory=dict)  # plugin name -> distribution
    versions: dict[str, str] = field(default_factory=dict)
    problems: list[PluginProblem] = field(default_factory=list)
    overrides: list[_Override] = field(default_factory=list)  # names a plugin took over
    untrace: Callable[[], None] | None = None


_state = _State()
_lock = threading.RLock()


def problems() -> list[PluginProblem]:
    load_plugins()
    return list(_state.problems)


def report(plugin: str, where: str, error: BaseException | str) -> None:
    """Record a problem of ``plugin`` (once), on one line."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    one_line = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    problem = PluginProblem(plugin, where, one_line)
    if problem not in _state.problems:
        _state.problems.append(problem)


# -- loading -----------------------------------------------------------------------------------

def load_plugins() -> None:
    """Register the built-ins (once) and the entry-point plugins ``GPTSTORE_LOAD_PLUGINS``
    allows (again whenever it changed). Never raises for a broken plugin."""
    allowed = config.load_plugins()
    _sync_tracing()
    if _state.builtins and _state.loaded_for == allowed:
        return
    with _lock:
        if not _state.builtins:
            for module_name in DEFAULT_PLUGINS:
                module = importlib.import_module(module_name)
                if not pm.is_registered(module):
                    pm.register(module, name=module_name)
            _state.builtins = True
        if _state.loaded_for != allowed:
            _unload_entry_points()
            _state.loaded_for = allowed  # before loading: a plugin that calls back in sees it loaded
            if allowed != []:
                _load_entry_points(allowed)
        _check_hooks()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _load_entry_points(allowed: Sequence[str] | None) -> None:
    from importlib.metadata import entry_points

    wanted = None if allowed is None else {_canonical(name) for name in allowed}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else ep.name
        if wanted is not None and _canonical(dist) not in wanted and _canonical(ep.name) not in wanted:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        _state.entry_points[ep.name] = dist
        try:
            _register(ep.load(), ep.name)
        except Exception as exc:  # a broken plugin must never take gptstore down
            report(ep.name, "load", exc)
            continue
        if ep.dist is not None:
            _state.versions[ep.name] = ep.dist.version


def _unload_entry_points() -> None:
    for name in list(_state.entry_points):
        unregister(name)
    _state.entry_points.clear()


def entry_point_plugins() -> dict[str, str]:
    """The entry-point plugins loaded now: ``{plugin name: distribution}``."""
    load_plugins()
    return {name: dist for name, dist in _state.entry_points.items() if pm.get_plugin(name) is not None}


def _register(plugin: object, name: str) -> None:
    try:
        hash(plugin)
    except TypeError:  # pm.subset_hook_caller keeps the plugins it leaves out in a set
        raise TypeError(f"plugin {name!r} is unhashable ({type(plugin).__name__}); register a module or an "
                        "ordinary instance (a dataclass needs eq=False)") from None
    pm.register(plugin, name=name)


def register(plugin: object, name: str) -> None:
    """Register a plugin object (a module or an instance) by name, e.g. in tests."""
    load_plugins()
    _register(plugin, name)
    _check_hooks()


def unregister(name: str) -> None:
    """Remove a plugin and everything recorded about it."""
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin, name=name)
    _state.problems[:] = [p for p in _state.problems if p.plugin != name]
    _state.overrides[:] = [o for o in _state.overrides if name not in (o.winner, o.loser)]
    _state.versions.pop(name, None)


def _check_hooks() -> None:
    """Report implementations that would never run: those of hooks without a spec (what
    ``pm.check_pending()`` looks for) and wrappers with nothing of their own plugin to wrap."""
    for hook, caller in list(vars(pm.hook).items()):
        impls = caller.get_hookimpls()
        if caller.spec is None:
            guess = difflib.get_close_matches(hook, HOOKS, n=1)
            hint = f"did you mean {guess[0]!r}?" if guess else f"the hooks are {', '.join(HOOKS)}"
            for impl in impls:
                if not impl.optionalhook:
                    report(impl.plugin_name, hook, f"no such hook, so it is never called; {hint}")
            continue
        implemented = {impl.plugin_name for impl in impls if not (impl.wrapper or impl.hookwrapper)}
        for impl in impls:
            if (impl.wrapper or impl.hookwrapper) and impl.plugin_name not in implemented:
                report(impl.plugin_name, hook,
                       "a wrapper wraps only its own plugin's implementation of the hook and this plugin "
                       "has none, so it never runs; implement the hook (tryfirst/trylast set the order)")


# -- tracing -----------------------------------------------------------------------------------

def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(impls: Sequence[pluggy.HookImpl]) -> str:
    """The plugins of a call, in call order (pluggy runs the list from its end)."""
    return ", ".join(dict.fromkeys(impl.plugin_name for impl in reversed(impls))) or "(none)"


def _trace_before(hook: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
    args = ", ".join(_short(f"{k}={v!r}", 80) for k, v in kwargs.items())
    print(f"[gptstore] {hook}({args}) -> {_names(impls)}", file=sys.stderr)


def _trace_after(outcome: pluggy.Result[Any], hook: str, impls: Sequence[pluggy.HookImpl],
                 kwargs: Mapping[str, Any]) -> None:
    error = outcome.exception
    text = f"raised {type(error).__name__}: {error}" if error is not None else repr(outcome.get_result())
    print(f"[gptstore] {hook} <- {_names(impls)}: {_short(text, 200)}", file=sys.stderr)


def _sync_tracing() -> None:
    """Hook-call monitoring on while ``GPTSTORE_TRACE_PLUGINS`` is set, off otherwise."""
    wanted = config.trace_plugins()
    if wanted and _state.untrace is None:
        _state.untrace = pm.add_hookcall_monitoring(_trace_before, _trace_after)
    elif not wanted and _state.untrace is not None:
        _state.untrace()
        _state.untrace = None


# -- calling -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Caller:
    name: str
    plugin: object
    default: bool  # its implementation is trylast: a default that others may override


def _call_order(hook: str) -> list[_Caller]:
    """Plugins implementing ``hook``, in pluggy's call order (wrappers run with their plugin)."""
    order: dict[str, _Caller] = {}
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):
        if not (impl.wrapper or impl.hookwrapper):
            order.setdefault(impl.plugin_name, _Caller(impl.plugin_name, impl.plugin, impl.trylast))
    return list(order.values())


def call_order(hook: str) -> list[str]:
    """The names of the plugins ``hook`` calls, in the order it calls them."""
    load_plugins()
    return [caller.name for caller in _call_order(hook)]


def _call(hook: str, plugin: object, kwargs: Mapping[str, Any]) -> list[Any]:
    """Run one plugin's implementation of ``hook`` (and its wrappers) through pluggy; its results."""
    result = pm.subset_hook_caller(hook, remove_plugins=pm.get_plugins() - {plugin})(**kwargs)
    if getattr(pm.hook, hook).spec.opts.get("firstresult"):
        return [] if result is None else [result]
    return list(result) if isinstance(result, list) else [result]


def call_each(hook: str, *, strict: bool, **kwargs: Any) -> Iterator[tuple[str, Any]]:
    """Call each plugin's implementation of ``hook`` on its own, in pluggy's call order.

    Yields ``(plugin_name, result)`` (``None`` when it returned nothing), after each plugin, so
    the caller can check a result and hand it to the next plugin. When a plugin raises: with
    ``strict`` a :class:`PluginError` naming the plugin is raised (the operation fails); without,
    the problem is reported (``gptstore plugins`` shows it) and the other plugins still run. A
    ``GPTStoreError`` raised on purpose by a plugin passes through unchanged.
    """
    load_plugins()
    for caller in _call_order(hook):
        try:
            results = _call(hook, caller.plugin, kwargs)
        except GPTStoreError:
            raise
        except Exception as exc:
            if strict:
                raise PluginError(caller.name, hook, exc) from exc
            report(caller.name, hook, exc)
            continue
        for result in results or [None]:
            yield caller.name, result


def _registrar(caller: _Caller, on_register: Callable[[_Caller, tuple, dict], None]) -> Callable[..., None]:
    def register(*args: Any, **kw: Any) -> None:
        on_register(caller, args, kw)

    return register


def _register_each(hook: str, on_register: Callable[[_Caller, tuple, dict], None]) -> None:
    """Call each plugin's ``hook(register)``; a registration that raises is reported."""
    load_plugins()
    for caller in _call_order(hook):
        try:
            _call(hook, caller.plugin, {"register": _registrar(caller, on_register)})
        except Exception as exc:  # registration never takes the host down
            report(caller.name, hook, exc)


def collect(hook: str, kind: str, key: Callable[..., str]) -> dict[str, tuple[str, tuple, dict]]:
    """Run a ``register_*`` hook; returns ``{name: (plugin, args, kwargs)}``.

    ``key(*args, **kwargs)`` gives the registered name. Who owns a name is decided in pluggy's
    call order: the first registration stays. A later one is reported against the plugin that
    tried it, unless that plugin's implementation is ``trylast`` (a default, such as a built-in):
    then the winner is recorded as overriding it, which ``gptstore plugins`` shows.

    The mapping lists the names in plugin registration order (built-ins first, each plugin's in
    the order it registered them): the stable order the registries list and choose from, e.g.
    the first engine that loads a format. A plugin takes a built-in's place by taking its name.
    """
    found: dict[str, tuple[str, tuple, dict]] = {}

    def on_register(caller: _Caller, args: tuple, kw: dict) -> None:
        name = key(*args, **kw)
        if name not in found:
            found[name] = (caller.name, args, kw)
            return
        owner = found[name][0]
        if caller.default and owner != caller.name:
            override = _Override(owner, f"{kind} {name!r} of {caller.name}", caller.name)
            if override not in _state.overrides:
                _state.overrides.append(override)
            return
        report(caller.name, hook, f"{kind} {name!r} is already registered by {owner}; the first one stays")

    _register_each(hook, on_register)
    rank = {name: index for index, (name, _) in enumerate(pm.list_name_plugin())}
    return dict(sorted(found.items(), key=lambda item: rank.get(item[1][0], len(rank))))


# -- describing --------------------------------------------------------------------------------

@dataclass
class PluginInfo:
    name: str
    version: str | None
    hooks: list[str]
    builtin: bool
    errors: list[str]
    overrides: list[str] = field(default_factory=list)


def describe() -> list[PluginInfo]:
    """Every registered plugin plus every plugin that failed to load.

    The ``register_*`` hooks taking a ``register`` callback run first (registering nothing), so
    a plugin that raises while registering shows up in any process, not only once a registry was
    used. ``register_commands`` is left to the CLI, which runs it at every start.
    """
    load_plugins()
    _check_hooks()  # also for plugins put into ``pm`` directly
    for hook in HOOKS:
        if getattr(pm.hook, hook).spec.argnames == ("register",):
            _register_each(hook, lambda *_: None)
    infos: dict[str, PluginInfo] = {}
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        infos[name] = PluginInfo(name, _state.versions.get(name), hooks, name in DEFAULT_PLUGINS, [])
    for problem in _state.problems:
        unknown = PluginInfo(problem.plugin, _state.versions.get(problem.plugin), [], False, [])
        info = infos.setdefault(problem.plugin, unknown)
        info.errors.append(f"{problem.where}: {problem.error}")
    for override in _state.overrides:
        if override.winner in infos:
            infos[override.winner].overrides.append(override.what)
    return sorted(infos.values(), key=lambda i: (i.builtin, i.name))
