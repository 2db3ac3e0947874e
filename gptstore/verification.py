"""Verification: every check gptstore makes before a model is used, in one call.

:func:`verify` runs the layers on a library model (by :class:`~gptstore.library.LocalModel` or
reference) or on a package directory, in this order:

1. integrity (:mod:`gptstore.integrity`): every file against the manifest; a library model
   through its stamp cache (``full=True`` re-hashes), a directory always in full;
2. every check registered with the ``register_verifiers`` hook, first the built-ins:
   ``authenticity`` (:func:`gptstore.trust.authenticity`: the signature under the trust policy)
   and ``safety`` (:mod:`gptstore.safety`: no pickle weights without ``allow_unsafe``, never
   custom code), then the plugins'. A check gets, as keywords, the options it asked for when it
   registered (``allow_unsafe``).

:func:`verify_located` is the check of a remote model before any of its bytes are fetched: safety
of its file list and authenticity of its manifest and signature bytes, as a store returned them.

Checks never log. A report carries each warning as one line (:attr:`VerificationReport.warnings`);
the operation that asked for it shows those lines once (:func:`show_warnings`: ``gptstore.load``,
``gptstore.pull``), or prints the whole report (``gptstore verify``).

This module sits above the library and the checks, below the operations that use it (``load``,
``pull``, ``eval``, ``finetune``, the CLI); nothing below imports it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable

from .checks import CheckResult
from . import strictjson
from .errors import (GPTStoreError, IntegrityError, InvalidReference, ManifestError, ModelNotFound,
                     PluginError, UsageError)
from .integrity import IntegrityReport, check_integrity
from .library import Library, LocalModel
from .manifest import MANIFEST_FILE, Manifest, load_manifest
from .refs import parse_reference
from .safety import check_safety
from .trust import authenticity

if TYPE_CHECKING:
    from .stores.base import Located

log = logging.getLogger("gptstore.verification")

#: checks a caller can never leave out (``integrity`` is the layer itself, ``safety`` a built-in verifier)
BUILT_IN_LAYERS = ("integrity", "safety")
#: the verification options a registered check may ask for (``register(..., options=(...))``)
CHECK_OPTIONS = frozenset({"allow_unsafe"})


@dataclass(frozen=True)
class Verifier:
    """A check registered through ``register_verifiers``."""

    plugin: str
    check: Callable[..., CheckResult]
    options: tuple[str, ...] = ()


def verifiers() -> dict[str, Verifier]:
    """Every registered check (built-ins first): ``{name: Verifier}``."""
    from . import plugins

    found = plugins.collect("register_verifiers", "verifier", key=lambda name, check, **_: name)
    return {name: Verifier(plugin, args[1], tuple(kw.get("options") or ()))
            for name, (plugin, args, kw) in found.items()}


@dataclass
class VerificationReport:
    """Integrity, every registered check (e.g. authenticity) and safety, for one model."""

    reference: str
    digest: str
    checks: list[CheckResult]
    #: the integrity layer's file-by-file findings (what a repair needs), not part of the JSON
    integrity: IntegrityReport | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def warnings(self) -> list[str]:
        """One line per check that passed with a warning (e.g. an unsigned model under ``warn``)."""
        return [line for line in (c.warning_line for c in self.checks) if line]

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": f"sha256:{self.digest}", "ok": self.ok,
                "checks": [c.to_dict() for c in self.checks]}


def verify(target: LocalModel | Path | str, *, library: Library | None = None, full: bool = False,
           allow_unsafe: bool = False, strict: bool = True, skip: Collection[str] = (),
           context: str | None = None) -> VerificationReport:
    """Verify a library model or a package directory; see the module docstring for the layers.

    Args:
        target: a :class:`~gptstore.library.LocalModel`; a reference (``namespace/name[:tag]``)
            in ``library``; or a package directory (a :class:`~pathlib.Path`, or a string naming
            a directory that holds a ``gptstore.json``).
        library: the library of a model or reference (default: the one under ``GPTSTORE_HOME``).
        full: re-hash every file instead of trusting unchanged stamps (a directory is always
            re-hashed).
        allow_unsafe: accept pickle weights (reported as a warning).
        strict: raise the first failure (what ``load`` and ``pull`` need); without, failures are
            collected in the report (what ``gptstore verify`` prints).
        skip: registered checks to leave out, e.g. ``{"authenticity"}`` for your own draft before
            ``gptstore sign``. Integrity and safety are never skipped.
        context: what the target is to the caller (``"base acme/tiny:1.0.0 of acme/lora:0.1.0"``),
            put in front of a raised error's message.
    """
    refused = set(skip) & set(BUILT_IN_LAYERS)
    if refused:
        raise UsageError(f"the {', '.join(sorted(refused))} check cannot be skipped",
                         hint="only registered verifiers (e.g. authenticity) can be left out")
    try:
        name, digest, manifest, root, integrity = _integrity(target, library, full)
        return _run_checks(name, digest, manifest, root, integrity, allow_unsafe=allow_unsafe,
                           strict=strict, skip=skip)
    except GPTStoreError as exc:
        if context is None:
            raise
        raise _in_context(exc, context) from exc


def verify_located(located: Located, *, allow_unsafe: bool = False) -> list[CheckResult]:
    """Safety and authenticity of a model found in a store, before any of its files is fetched.

    Both need only what the store already returned: the manifest's file list, and the signature
    bytes. A refusal raises (:class:`~gptstore.errors.UnsafeContentError`,
    :class:`~gptstore.errors.TrustError`); a warning is in the returned results.
    """
    manifest = located.manifest
    where = f"{manifest.repo_id}:{manifest.version}"
    safety = check_safety([f.path for f in manifest.files], allow_unsafe=allow_unsafe, where=where)
    return [safety, authenticity(manifest, located.signature, oms_signature=located.oms_signature)]


def show_warnings(lines: Iterable[str]) -> None:
    """Log each distinct warning line once (logger ``gptstore.verification``, level WARNING).

    The operations call this once with all their reports' warnings, so a warning found by two
    checks of one operation (``pull``'s check before the download and its verification after)
    appears once.
    """
    for line in dict.fromkeys(lines):
        log.warning("%s", line)


# -- the steps -----------------------------------------------------------------------------------

def _integrity(target: LocalModel | Path | str, library: Library | None,
               full: bool) -> tuple[str, str, Manifest, Path, IntegrityReport]:
    """(name, manifest digest, manifest, directory, integrity report) of a target."""
    if isinstance(target, str):
        target = _resolve_text(target, library)
    if isinstance(target, LocalModel):
        library = library or Library()
        integrity = check_integrity(target.path, target.manifest, mode="full" if full else "stamps",
                                    stamps=library.stamps(target.digest), reference=target.name)
        return target.name, target.digest, target.manifest, target.path, integrity
    if isinstance(target, Path):
        manifest = load_manifest(target)
        integrity = check_integrity(target, manifest, mode="full", reference=str(target))
        return str(target), manifest.digest, manifest, target, integrity
    raise UsageError(f"cannot verify a {type(target).__name__}",
                     hint="give a LocalModel, a reference or a package directory")


def _resolve_text(text: str, library: Library | None) -> LocalModel | Path:
    """A package directory or a library model, from what a user typed.

    A directory with a manifest, or any text written as a path (``./x``, ``/x``, ``~/x``, ``x/``)
    or that is no reference, is a directory; otherwise a reference. A directory without a
    ``gptstore.json`` is named as such, never reported as an invalid or unknown reference.
    """
    path = Path(text).expanduser()
    if (path / MANIFEST_FILE).is_file():
        return path
    shown = strictjson.printable(text, 200)
    path_like = text.startswith((".", "/", "~")) or text.endswith("/") or not _is_reference(text)
    if path_like:
        _require_package_dir(path, shown)
        return path
    try:
        return (library or Library()).get(text)
    except ModelNotFound:
        if path.is_dir():
            raise ManifestError(
                f"{shown} is a directory without a manifest ({MANIFEST_FILE}), and no model {shown} is in "
                "the local library", path=path, hint=_PACKAGE_HINT) from None
        raise


_PACKAGE_HINT = ("package it first: `gptstore package DIR --name ns/name --version X.Y.Z` "
                 "(a directory from `hf download` of a gptstore model already has one)")


def _require_package_dir(path: Path, shown: str) -> None:
    if not path.exists():
        raise ManifestError(f"{shown}: no such directory", path=path,
                            hint="give a package directory or a library reference (namespace/name[:tag])")
    if not path.is_dir():
        raise ManifestError(f"{shown} is not a directory", path=path,
                            hint="give the package directory (the one holding gptstore.json)")
    if not (path / MANIFEST_FILE).exists():
        raise ManifestError(f"{shown} is a directory without a manifest ({MANIFEST_FILE})", path=path,
                            hint=_PACKAGE_HINT)


def _is_reference(text: str) -> bool:
    try:
        parse_reference(text)
    except InvalidReference:
        return False
    return True


def _run_checks(name: str, digest: str, manifest: Manifest, root: Path, integrity: IntegrityReport, *,
                allow_unsafe: bool, strict: bool, skip: Collection[str]) -> VerificationReport:
    if strict:
        integrity.raise_first()
    checks = [integrity.as_check()]
    registered = verifiers()
    missing = [layer for layer in BUILT_IN_LAYERS[1:] if layer not in registered]
    if missing:  # fail closed: a check that must run is not there
        raise GPTStoreError(f"the built-in {', '.join(missing)} verifier is not registered, so nothing is "
                            "verified", hint="reinstall gptstore; a plugin may not unregister it")
    given = {"allow_unsafe": allow_unsafe}
    for check_name, verifier in registered.items():
        if check_name in skip:
            continue
        try:
            unknown = sorted(set(verifier.options) - CHECK_OPTIONS)
            if unknown:
                raise TypeError(f"asked for unknown verification options {unknown}; known: {sorted(CHECK_OPTIONS)}")
            result = verifier.check(manifest, root, **{option: given[option] for option in verifier.options})
            if not isinstance(result, CheckResult):
                raise TypeError(f"returned {type(result).__name__}, not a CheckResult")
        except GPTStoreError as exc:
            if strict:
                raise
            result = CheckResult(check_name, False, str(exc))
        except Exception as exc:
            error = PluginError(verifier.plugin, f"verifier {check_name!r}", exc)
            if strict:
                raise error from exc
            result = CheckResult(check_name, False, str(error))
        if strict and not result.ok:
            raise IntegrityError(f"{name} failed the {result.name} check: {result.summary}", reference=name,
                                 hint=f"run `gptstore verify {name}` for details")
        checks.append(result)
    return VerificationReport(name, digest, checks, integrity)


def _in_context(error: GPTStoreError, context: str) -> GPTStoreError:
    """A copy of ``error`` (same type and fields) whose message starts with ``context``.

    The caught error itself is left as it was; the copy is raised ``from`` it. Error classes have
    different constructors, so the copy is made without calling one.
    """
    clone = type(error).__new__(type(error))
    clone.__dict__.update(error.__dict__)
    clone.message = f"{context}: {error.message}"
    clone.args = (clone.message,)
    return clone


__all__ = ["CheckResult", "VerificationReport", "show_warnings", "verifiers", "verify", "verify_located"]
