"""The plugin contract: every hook gptstore calls, with every argument documented.

Plugins implement hooks with ``@gptstore.hookimpl`` and declare an entry point in the group
``gptstore``. An implementation may accept any subset of a hook's arguments. Arguments are only
ever added, never renamed or removed.

Call order is pluggy's: ``tryfirst`` implementations, then the others (each group last registered
first), then ``trylast`` ones in registration order (gptstore's built-ins are ``trylast``). Each
plugin is called on its own (see :mod:`gptstore.plugins`), so one broken plugin never takes the
others down, and a ``wrapper=True`` implementation wraps its own plugin's implementation of the
hook.

Collection hooks (``register_*``) receive a ``register`` callback; the host owns names, dedupe
and conflicts: the first registration of a name in call order stays and a later one is reported,
except a ``trylast`` (default) one, which is simply overridden.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    import click

    from .engines.completion import Completion
    from .engines.params import GenerationParams
    from .manifest import Manifest
    from .model import Model

hookspec = pluggy.HookspecMarker("gptstore")
hookimpl = pluggy.HookimplMarker("gptstore")


# -- registration hooks ------------------------------------------------------------------------

@hookspec
def register_adapters(register: Callable[..., None]) -> None:
    """Register package formats (adapters).

    :param register: call ``register(adapter)`` with an object that has a ``name`` attribute and
        the methods of :class:`gptstore.adapters.Adapter` (``detect``, ``inspect``).
    """


@hookspec
def register_engines(register: Callable[..., None]) -> None:
    """Register inference engines.

    :param register: call ``register(engine)`` with an object that has a ``name`` attribute, a
        ``formats`` set of adapter names it can load, ``available()`` and ``load(...)``; see
        :mod:`gptstore.engines.base`.
    """


@hookspec
def register_stores(register: Callable[..., None]) -> None:
    """Register store backends by URL scheme.

    :param register: call ``register(scheme, factory)``; ``factory(url)`` returns a
        :class:`gptstore.stores.base.Store` for URLs of that scheme (``"file"`` for local paths).
    """


@hookspec
def register_verifiers(register: Callable[..., None]) -> None:
    """Register extra verification checks, run by ``verify``, ``pull`` and ``load``.

    :param register: call ``register(name, check, *, options=())``; ``check(manifest, path,
        **options)`` receives the :class:`~gptstore.manifest.Manifest`, the snapshot directory and,
        as keywords, the verification options it names in ``options`` (known: ``"allow_unsafe"``,
        the caller's consent to pickle weights), and returns a :class:`gptstore.CheckResult` (or
        raises a ``GPTStoreError`` to refuse). Built in: ``authenticity`` and ``safety``
        (``trylast``: a plugin registering either name replaces it, and ``gptstore plugins``
        shows that it does).
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``gptstore`` CLI.

    :param cli: the root click group; call ``cli.add_command(...)`` or use ``@cli.command()``.
        Import heavy libraries inside the command, not at module level, so ``--help`` stays fast.
    """


@hookspec
def register_finetune_methods(register: Callable[..., None]) -> None:
    """Register training methods for ``gptstore finetune --method NAME``.

    :param register: call ``register(name, prepare, *, options=None, check=None, save=None,
        adapter=None, over_base=False)``. ``name`` is what ``--method`` takes (built in: ``full``,
        registered ``trylast`` so a plugin may take the name on purpose).
        ``prepare(model, options)`` receives the loaded base (a transformers causal LM in float32)
        and the method's options, and returns the model to train (e.g. wrapped with adapters).
        ``options``, optional, is a pydantic model class that validates the options
        (``--method-option KEY=VALUE``) and fills in defaults, before anything heavy runs; without
        it the method takes no options. ``check(options)``, optional, checks them further and
        returns them normalised (raise a ``UsageError`` naming the bad option).
        ``save(model=, tokenizer=, out_dir=, base=)``, optional, writes the package's files into
        ``out_dir`` (default: the whole model and the tokenizer, ``save_pretrained``); ``base`` is
        the base's reference, or None for a base directory without a manifest. ``adapter`` is the
        package format to package the result with (default: detected). With ``over_base`` the
        package holds only what was trained and references its base by manifest digest
        (``format.base``): finetune then needs a base from the local library and passes it to the
        adapter's ``inspect(..., base=REF)``.
    """


# -- packaging hooks ----------------------------------------------------------------------------

@hookspec
def prepare_manifest(manifest: Manifest, path: Path) -> dict[str, Any] | None:
    """Enrich a manifest while a package is made, before it is written and published.

    Called by ``gptstore package`` after the adapter filled the format and file list.

    :param manifest: the manifest as it stands (do not mutate it).
    :param path: the package directory.
    :return: a dict of top-level manifest fields to update (e.g. ``{"tags": [...]}``), or None.
        Updates are applied in call order and the result is validated again; ``files``,
        ``format``, ``namespace``, ``name`` and ``version`` cannot be changed.
    """


# -- generation hooks ---------------------------------------------------------------------------

@hookspec
def before_generate(model: Model, prompts: list[str], params: GenerationParams) -> list[str] | None:
    """Called before every generation (``generate``, ``stream``, ``gptstore run``).

    :param model: the :class:`gptstore.Model` about to generate (``model.reference``,
        ``model.manifest``, ``model.digest``).
    :param prompts: the prompts after the prompt template was applied.
    :param params: the resolved :class:`gptstore.GenerationParams`.
    :return: a replacement list of prompts (same length), or None to leave them. Raise a
        ``GPTStoreError`` to refuse the generation.
    """


@hookspec
def after_generate(model: Model, completions: list[Completion]) -> list[Completion] | None:
    """Called after every generation, before the completions reach the caller.

    :param model: the :class:`gptstore.Model` that generated.
    :param completions: the :class:`gptstore.Completion` objects, one per prompt.
    :return: replacement completions (same length), or None to keep them.
    """


# -- store server hooks -------------------------------------------------------------------------

@hookspec
def decide_access(repo_id: str, user: str, fields: dict[str, Any], gated: str,
                  pricing: dict[str, Any] | None) -> str | None:
    """Decide a request for access to a gated model on ``gptstore server`` (e.g. after a payment).

    Called by the store when a user requests access (``POST /api/models/{id}/ask-access`` or the
    model page's "Request access" form), in call order, until one plugin decides. Runs in the
    server's worker thread: keep it quick (check a payment, do not wait for one); a plugin that
    raises is reported and skipped, and the request stays as the store's own rule leaves it.

    :param repo_id: the model, ``namespace/name``.
    :param user: the requesting user's name on the store.
    :param fields: what the user filled in with the request (strings only; may be empty), e.g. a
        payment reference.
    :param gated: the model's setting, ``"auto"`` or ``"manual"``.
    :param pricing: the manifest's pricing at ``main`` (``{"model", "amount", "currency"}``), or
        None when main has no manifest.
    :return: ``"accepted"`` or ``"rejected"`` to decide, or None to leave it undecided (then
        ``"auto"`` accepts at once and ``"manual"`` waits for a namespace member).
    """
