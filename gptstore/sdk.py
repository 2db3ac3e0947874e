"""The front door: one function per step of a provider's or a consumer's flow, on ``gptstore``.

    >>> import gptstore                                                          # doctest: +SKIP
    >>> run = gptstore.finetune("acme/tiny", "notes.txt", "out/poet", name="acme/poet",
    ...                         version="1.0.0", eval_data="heldout.txt", max_steps=200)
    >>> gptstore.evaluate("out/poet", "heldout.txt", check=True).raise_for_claim()
    >>> gptstore.sign("out/poet", key="acme-release")
    >>> gptstore.Library().publish("out/poet")
    >>> gptstore.push("acme/poet:1.0.0", store="http://127.0.0.1:8765", token="gst_...")
    >>> [hit.reference for hit in gptstore.search("poet", store="http://127.0.0.1:8765")]
    >>> gptstore.pull("acme/poet", store="http://127.0.0.1:8765").model.digest
    >>> gptstore.verify("acme/poet", full=True).ok

Each function takes plain arguments (references, paths, a store URL, a token), does the whole step
and returns a result object; the CLI commands (``pull``, ``push``, ``search``, ``sign``,
``finetune``, ``eval``) parse their options, make one of these calls and print its result, so a
script and the CLI run the same code. Before, a provider imported from seven modules and the CLI
assembled the steps (resolve the library model, build the store with the right token, push...).

The rest of the front door lives where it is defined, also served by ``gptstore``:
:func:`gptstore.load` (:mod:`gptstore.model`), :func:`gptstore.package`
(:mod:`gptstore.packaging`), :func:`gptstore.verify` (:mod:`gptstore.verification`, which already
takes plain arguments) and :class:`gptstore.Library` (``publish``, ``get``, ``remove``).

**Tokens.** A ``token`` applies to the store the call names (``store``, else ``GPTSTORE_STORE``)
and to no other URL (:func:`gptstore.stores.base.get_store`); without one, ``GPTSTORE_TOKEN``,
then a login saved for exactly that URL (``gptstore login``, :func:`gptstore.stores.login.login`),
then ``HF_TOKEN`` for ``hf://``.

**Light.** ``gptstore.push`` imports this module and nothing else: each function imports what its
step needs when it is called, so ``import gptstore`` stays free of torch, transformers and
huggingface_hub (``tests/test_imports.py``).

**Names.** No submodule of ``gptstore`` may be named like one of these functions: importing it
would replace the function on the package (see :mod:`gptstore.pulling`, once ``pull.py``).

This module sits on top of the SDK, just below the CLI: it imports :mod:`gptstore.evaluation`,
:mod:`gptstore.training`, :mod:`gptstore.pulling`, the stores and :mod:`gptstore.signing`; nothing
in ``gptstore`` but the CLI imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .errors import UsageError

if TYPE_CHECKING:
    from .claims import ClaimsReport, TasksReport
    from .evaluation import EvalReport
    from .library import Library
    from .manifest import Manifest
    from .pulling import PullResult
    from .refs import Reference
    from .signing import SignResult
    from .stores.base import SearchHit, Store
    from .training.config import FinetuneConfig
    from .training.finetune import FinetuneResult

__all__ = ["PushResult", "SignatureStatus", "check_claims", "evaluate", "evaluate_tasks", "finetune", "pull", "push",
           "search", "sign", "signature_status"]

#: what ``search`` can order by (trending, rating, newest and price need a store server)
SORTS = ("downloads", "recent", "trending", "rating", "newest", "price")
#: the most results one ``search`` returns
MAX_SEARCH_LIMIT = 1000


@dataclass(frozen=True)
class PushResult:
    """Where :func:`push` put a model."""

    reference: str  # namespace/name:version
    digest: str  # manifest digest (hex)
    store: str  # the store's URL
    url: str  # where the store says the model is now
    base: PushResult | None = None  # the base pushed first (``with_base``) for an adapter
    warnings: tuple[str, ...] = ()  # e.g. an adapter whose base the store lacks
    uploaded_files: int = 0  # package files sent: those the repo's latest version did not hold
    uploaded_bytes: int = 0
    reused_files: int = 0  # package files the repo's latest version already held (by sha256): not sent

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": f"sha256:{self.digest}", "store": self.store,
                "url": self.url, "base": self.base.to_dict() if self.base else None, "warnings": list(self.warnings),
                "uploaded_files": self.uploaded_files, "uploaded_bytes": self.uploaded_bytes,
                "reused_files": self.reused_files}


def pull(reference: str | Reference, *, store: str | Store | None = None, token: str | None = None,
         allow_unsafe: bool = False, revision: str | None = None,
         progress: Callable[[int, int], None] | None = None, library: Library | None = None) -> PullResult:
    """Bring a model from a store into the local library, verified; resumes an interrupted pull.

    Args:
        reference: ``namespace/name[:tag][@sha256:<hex>]``.
        store: the store's URL (``hf://``, ``http(s)://host:port``, a library path); default
            ``GPTSTORE_STORE``, else ``hf://`` (``HF_ENDPOINT`` moves it).
        token: access token for that store only (see the module docstring).
        allow_unsafe: accept pickle-based weights (only from a source you trust).
        revision: the store's immutable revision to pull (a commit id, as a lock file records).
        progress: ``progress(done, total)`` in bytes, called from the download threads.
        library: the library to pull into (default: the one under ``GPTSTORE_HOME``).

    Returns:
        :class:`~gptstore.pulling.PullResult`: the library model, what was fetched, reused and
        repaired (damaged blobs fetched again), the verification's checks and warnings (each
        warning is also logged once). A model over a base (an adapter) brings its base
        (``result.base``). Lock files: :func:`gptstore.lockfile.pull_locked`.
    """
    from .pulling import pull as pull_into_library

    return pull_into_library(reference, store=store, token=token, library=library, allow_unsafe=allow_unsafe,
                             revision=revision, progress=progress)


def push(reference: str | Reference, *, store: str | None = None, token: str | None = None,
         private: bool = False, library: Library | None = None, with_base: bool = False) -> PushResult:
    """Push a model of the local library to a store; only what the store lacks is uploaded.

    Args:
        reference: a model of the library (``namespace/name[:tag]``, as ``gptstore list`` shows).
        store: the store's URL; default ``GPTSTORE_STORE``. The local library itself is refused
            (the model is already there).
        token: access token for that store only, with write scope for the model's namespace.
        private: create the repo as private (on a hub), visible to its namespace only.
        library: the library holding the model (default: the one under ``GPTSTORE_HOME``).
        with_base: for an adapter (``format.base``), push its base (from the library, exactly the
            pinned digest) first when the store lacks it. Without it, a missing base is a warning
            (``result.warnings``, also logged): consumers could not pull the adapter.

    Raises:
        UsageError: no store named; ModelNotFound: no such model in the library (or, with
        ``with_base``, no such base); AuthError: the token is missing, invalid or may not write to
        the namespace (the store's reason is passed on); ConflictError: the store holds this version
        with other content; IntegrityError: the model's signature signs another manifest.
    """
    from . import config
    from .library import Library
    from .stores.base import get_store
    from .stores.local import LocalStore

    library = library or Library()
    model = library.get(reference)
    if store is None and config.default_store() is None:  # never publish to huggingface.co by default
        raise UsageError(f"{model.name} is in the local library already ({library.root}); name the store to push it to",
                         hint="pass --store URL (hf://, http(s)://host:port or a library path) or set GPTSTORE_STORE")
    target = get_store(store, token=token)
    if isinstance(target, LocalStore) and target.library.root.resolve() == library.root.resolve():
        raise UsageError(f"{model.name} is in the local library already ({library.root}); push it to another store",
                         hint="pass --store URL (hf://, http(s)://host:port or a library path) or set GPTSTORE_STORE")
    return _push(model, target, library, private=private, with_base=with_base)


def _push(model: Any, target: Store, library: Library, *, private: bool, with_base: bool) -> PushResult:
    """Push one library model (its base first, with ``with_base``); refuse a stale signature."""
    import logging

    from .errors import IntegrityError, ModelNotFound
    from .refs import parse_reference
    from .signed_digest import signed_digest

    signature = library.signature(model.digest)
    if signature is not None and signed_digest(signature) != model.digest:
        raise IntegrityError(f"the signature of {model.name} in the library signs another manifest; pushing it "
                             "would ship a stale gptstore.sig",
                             hint="sign the package directory again (`gptstore sign DIR --key NAME`), publish it "
                                  "again, then push")
    base, base_result, warnings = model.manifest.format.base, None, []
    if base is not None:
        pinned = parse_reference(f"{base.reference}@sha256:{base.digest}")
        try:
            target.locate(pinned)
        except ModelNotFound:
            if with_base:
                base_model = library.base_of(model.manifest)
                base_result = _push(base_model, target, library, private=private, with_base=True)
            else:
                what = f"{model.manifest.repo_id}:{model.manifest.version}"
                warnings.append(f"{target.url} does not have the base {base.reference} (sha256:{base.digest[:12]}…) "
                                f"of {what}, so it cannot be pulled from there; push it with --with-base")
    held = _held_by_store(target, model.manifest)
    where = target.push(model, private=private)
    for line in warnings:
        logging.getLogger("gptstore.push").warning("%s", line)
    sent = [f for f in model.manifest.files if f.sha256 not in held]
    return PushResult(f"{model.manifest.repo_id}:{model.manifest.version}", model.digest, target.url, where,
                      base=base_result, warnings=tuple(warnings), uploaded_files=len(sent),
                      uploaded_bytes=sum(f.size for f in sent), reused_files=len(model.manifest.files) - len(sent))


def _held_by_store(target: Store, manifest: Any) -> set[str]:
    """The sha256 of the files the store's latest version of this repo holds: the push sends only
    the others (the store keeps files by content; a Hub skips an LFS object it has). Empty for a
    new repo or one this token cannot read."""
    from .errors import AuthError, GPTStoreError, ModelNotFound, StoreError
    from .refs import parse_reference

    try:
        held, _digest, _signature = target.manifest(parse_reference(f"{manifest.repo_id}:latest"))
    except (ModelNotFound, AuthError):  # a new repo, or one this token cannot read
        return set()
    except StoreError:
        raise  # the store failed: the push would fail as well, so say so now (one try, one line)
    except GPTStoreError:  # e.g. the latest version is not a gptstore package
        return set()
    return {f.sha256 for f in held.files}


def search(query: str = "", *, store: str | None = None, token: str | None = None, tag: str | None = None,
           sort: str = "downloads", limit: int = 50, category: str | Iterable[str] | None = None,
           license: str | None = None, min_price: float | None = None, max_price: float | None = None,
           min_parameters: int | None = None, max_parameters: int | None = None, format: str | None = None,
           verified: bool = False, language: str | None = None) -> list[SearchHit]:
    """Models of a store whose name, description, provider, tags or use cases match ``query``
    (all words), filtered and ordered by the store's catalogue (docs/catalogue.md).

    Args:
        query: words to match; empty matches every model.
        store: the store's URL; default ``GPTSTORE_STORE``, else ``hf://`` (``HF_ENDPOINT`` moves it).
        token: access token for that store only (private models show only to their namespace).
        tag: only models with this tag.
        sort: ``downloads`` (most first), ``recent``, or on a store server ``trending`` (downloads
            of the last 7 days), ``rating``, ``newest`` or ``price`` (cheapest first).
        limit: at most this many results, 1 to 1000.
        category: only models of this category (or of any of these), from
            :data:`gptstore.manifest.CATEGORIES`.
        license: only models under this SPDX license (case does not matter).
        min_price, max_price: only models whose price amount is in this range (in the model's
            currency; free models cost 0).
        min_parameters, max_parameters: only models with this many parameters.
        format: ``full`` models or ``adapter``\\ s over a base model.
        verified: only models signed by a key the store has registered for their namespace
            (a store server's "verified publisher").
        language: only models listing this language code.

    Returns:
        :class:`~gptstore.stores.base.SearchHit`\\ s (reference, description, provider, license,
        price, downloads, tags, category, rating, reviews, verified; ``hit.to_dict()`` for JSON).
    """
    if sort not in SORTS:
        raise UsageError(f"cannot sort search results by {sort!r}", hint=f"use one of: {', '.join(SORTS)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise UsageError(f"search limit must be a whole number from 1 to {MAX_SEARCH_LIMIT} (got {limit!r})")
    from .manifest import CATEGORIES
    from .stores.base import get_store

    categories = [category] if isinstance(category, str) else list(category or ())
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise UsageError(f"unknown category {unknown[0]!r}", hint=f"use one of: {', '.join(CATEGORIES)}")
    if format not in (None, "full", "adapter"):
        raise UsageError(f"unknown format {format!r}", hint="use full or adapter")
    for name, value in (("min_price", min_price), ("max_price", max_price), ("min_parameters", min_parameters),
                        ("max_parameters", max_parameters)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value < float("inf")):
            raise UsageError(f"{name} must be a number of at least 0 (got {value!r})")
    filters = {"category": categories or None, "license": license, "min_price": min_price, "max_price": max_price,
               "min_parameters": min_parameters, "max_parameters": max_parameters, "format": format,
               "verified": bool(verified), "language": language}
    filters = {name: value for name, value in filters.items() if value is not None and value is not False}
    extra = {"filters": filters} if filters else {}  # a plugin's store written before filters still searches
    found = get_store(store, token=token)
    return found.search(query, tag=tag, sort=sort, limit=limit, **extra)  # type: ignore[arg-type]


def sign(directory: Path | str, *, key: str, passphrase: str | None = None, format: str = "gptstore") -> SignResult:
    """Sign a package directory: writes ``DIRECTORY/gptstore.sig`` over its manifest digest, and/or
    (``format="oms"`` or ``"both"``, a P-256 key) ``DIRECTORY/model.sig``, the OpenSSF model signature.

    Every file is checked against ``gptstore.json`` first, so the one signature covers every byte.

    Args:
        directory: a package directory (``gptstore.package`` wrote its manifest).
        key: the name of one of your signing keys (``gptstore keys generate NAME``).
        passphrase: the key's passphrase, when it has one (default: ``GPTSTORE_KEY_PASSPHRASE``).
        format: ``gptstore`` (gptstore.sig), ``oms`` (model.sig, :mod:`gptstore.oms`) or ``both``.

    Returns:
        :class:`~gptstore.signing.SignResult` (path(s), reference, digest, key name and keyid).
    """
    from .oms import sign_package

    return sign_package(directory, key=key, passphrase=passphrase, format=format)


def finetune(base: str | Path, data: Path | str | Iterable[Path | str], out: Path | str, *,
             name: str | None = None, version: str = "0.1.0", method: str | None = None,
             method_options: Mapping[str, Any] | None = None,
             eval_data: Path | str | Iterable[Path | str] | None = None, resume: bool = True,
             checkpoint_dir: Path | str | None = None, progress: bool = False,
             config: FinetuneConfig | None = None, **options: Any) -> FinetuneResult:
    """Fine-tune a model on text and write a package (with a manifest draft) to ``out``.

    Args:
        base: a library reference (``namespace/name[:tag]``, verified) or a model directory.
        data: file(s) of text (documents separated by blank lines; a file of lines without a
            blank one is one example per line), JSONL (``{"text"}`` or ``{"prompt", "completion"}``)
            or CSV (``prompt``/``completion`` or ``text`` columns, with a header row).
        out: the package directory: new, empty, or an earlier run's output (which resumes).
        name, version: ``namespace/name`` (default: the base's name + ``-finetuned``) and semver.
        method: the training method (``full``; plugins add others, e.g. ``lora``).
        method_options: the method's own options (e.g. ``{"r": 8}`` for lora), validated by it.
        eval_data: file(s) the perplexity claim is measured on (else a held-out split of ``data``).
        resume: continue from the last checkpoint of an earlier run with the same ``out``.
        checkpoint_dir: where checkpoints go (default: under ``GPTSTORE_HOME/finetune``).
        progress: show a progress bar on stderr.
        config: a ready :class:`~gptstore.training.config.FinetuneConfig`, instead of the
            keyword options.
        **options: any other field of :class:`~gptstore.training.config.FinetuneConfig`
            (``epochs``, ``max_steps``, ``learning_rate``, ``batch_size``, ``seed``, ``device``...);
            ``None`` means the default.

    Returns:
        :class:`~gptstore.training.finetune.FinetuneResult` (the manifest, losses, perplexity
        claim, steps, the held-out file). Bad options, data or base raise before anything is written.
    """
    from .training.config import make_config
    from .training.finetune import finetune as train

    given = {k: v for k, v in {**options, "method": method, "method_options": method_options}.items()
             if v is not None}
    if config is None:
        config = make_config(**given)
    elif given:
        raise UsageError(f"give either config= or the options ({', '.join(sorted(given))}), not both",
                         hint="put the options in the FinetuneConfig, or leave out config=")
    return train(base, data, out, config=config, name=name, version=version, resume=resume,
                 checkpoint_dir=checkpoint_dir, eval_data=eval_data, progress=progress)


def evaluate(target: str | Path, data: Path | str | Iterable[Path | str], *, check: bool = False,
             tolerance: float | None = None, device: str = "auto", batch_size: int = 8) -> EvalReport:
    """A model's perplexity on data files; with ``check``, compared with the claim of its manifest.

    Args:
        target: a library reference (loaded verified in full) or a package directory (integrity
            and safety checked; a draft need not be signed yet) or a plain model directory.
        data: text or JSONL file(s), read as :func:`finetune` reads them.
        check: compare with the manifest's ``perplexity`` metric; refused before any model is
            loaded unless the data are the claim's own (same sha256).
        tolerance: relative distance from the claim that still holds (default 0.02, i.e. 2%).
        device: ``auto`` (cuda > mps > cpu), ``cpu``, ``mps``, ``cuda`` or ``cuda:N``.
        batch_size: blocks of context per forward pass.

    Returns:
        :class:`~gptstore.evaluation.EvalReport`; ``report.claim.ok`` says whether a checked claim
        holds, ``report.raise_for_claim()`` raises :class:`~gptstore.errors.ClaimMismatch` if not.
    """
    from .evaluation import DEFAULT_TOLERANCE, evaluate_model

    return evaluate_model(target, data, check=check, tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
                          device=device, batch_size=batch_size)


def evaluate_tasks(target: str | Path, tasks: str | Iterable[str], include_path: Path | str, *,
                   num_fewshot: int | None = None, limit: int | None = None, seed: int | None = None,
                   device: str = "auto", batch_size: int = 8, record: bool = True) -> TasksReport:
    """Run EleutherAI lm-evaluation-harness tasks on a model through its own engine, and (for a
    package directory) record the scores as claims in its ``gptstore.json``.

    Args:
        target: a library reference (loaded verified in full) or a package or plain model directory.
        tasks: task names (a list, or one string ``"a,b"``), defined by YAML files under
            ``include_path`` over local data files (no hub access).
        num_fewshot: few-shot examples per prompt (default: each task's own, else 0).
        limit: documents per task (default: all).
        seed: seeds python, numpy, torch and the few-shot sampler (default 1234).
        device, batch_size: as for :func:`evaluate`.
        record: write the metrics into ``target/gptstore.json`` (package directories only: a
            library model is immutable); a stale signature is removed, so sign again after.

    Returns:
        :class:`~gptstore.claims.TasksReport`: per task its version, task hash, few-shot count,
        data sha256 and scores; ``recorded`` names the manifest written, if any.
    """
    from .claims import DEFAULT_SEED, evaluate_tasks as run

    names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    return run(target, names, include_path, num_fewshot=num_fewshot, limit=limit,
               seed=DEFAULT_SEED if seed is None else seed, device=device, batch_size=batch_size, record=record)


def check_claims(target: str | Path, data: Path | str | Iterable[Path | str] = (),
                 include_path: Path | str | None = None, *, tolerance: float | None = None,
                 device: str = "auto", batch_size: int = 8) -> ClaimsReport:
    """Re-run every claim a model's manifest makes (perplexity, loss and harness tasks), as
    ``gptstore eval REF --check`` does.

    Args:
        target: a library reference or a package directory.
        data: the files the ``perplexity`` / ``loss`` claims were measured on (matched by sha256).
        include_path: the directory with the YAML of the harness tasks the claims name.
        tolerance: relative distance from each claim that still holds (default 0.02, i.e. 2%).

    Returns:
        :class:`~gptstore.claims.ClaimsReport`; ``report.raise_for_claims()`` raises
        :class:`~gptstore.errors.ClaimMismatch` naming the first claim that is off or that
        "cannot be re-checked" (its task version, task hash or data sha256 differs from what it
        names): such a claim never counts as passed.
    """
    from .claims import check_claims as run
    from .evaluation import DEFAULT_TOLERANCE

    files = [data] if isinstance(data, (str, Path)) else list(data)
    return run(target, files, include_path, tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
               device=device, batch_size=batch_size)


@dataclass(frozen=True)
class SignatureStatus:
    """What one signature file beside a manifest says, under this machine's trust store."""

    file: str  #: ``gptstore.sig`` or ``model.sig`` (OpenSSF model signing)
    present: bool
    verified: bool  #: signed by a key trusted for the namespace, over exactly this manifest's files
    keyid: str | None = None
    problem: str = ""  #: in a few words, when present but not verified ("signed by untrusted key")

    def describe(self) -> str:
        """One phrase: ``"none"``, ``"key 1a2b… (trusted)"``, ``"signed by untrusted key"``."""
        if not self.present:
            return "none"
        if self.verified:
            return f"key {self.keyid} (trusted)"
        return self.problem + (f" (key {self.keyid})" if self.keyid and self.keyid not in self.problem else "")


def signature_status(manifest: Manifest, signature: bytes | None,
                     oms_signature: bytes | None) -> list[SignatureStatus]:
    """Each signature format's status for a manifest (``gptstore show``): its ``gptstore.sig``
    and its OpenSSF ``model.sig``, each checked on its own against the keys the trust store
    trusts for the namespace (the policy is not applied: this reports, it refuses nothing).
    ``model.sig`` needs the ``model-signing`` library; without it the status says so."""
    from .errors import MissingDependency
    from .manifest import OMS_SIGNATURE_FILE, SIGNATURE_FILE
    from .oms import check_oms
    from .signing import check_signature
    from .trust import TrustStore

    trusted = {k.keyid: k.public_key for k in TrustStore.load().keys_for(manifest.namespace)}
    statuses = []
    for file, data, check in ((SIGNATURE_FILE, signature, check_signature), (OMS_SIGNATURE_FILE, oms_signature, check_oms)):
        if data is None:
            statuses.append(SignatureStatus(file, False, False))
            continue
        try:
            result = check(manifest, data, trusted)
        except MissingDependency as exc:
            statuses.append(SignatureStatus(file, True, False, problem=f"not checked ({exc.message})"))
            continue
        statuses.append(SignatureStatus(file, True, result.ok, result.keyid, "" if result.ok else result.short))
    return statuses
