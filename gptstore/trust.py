"""The trust policy: which publishers' keys you trust, per namespace, and how strict to be.

Stored in ``GPTSTORE_HOME/trust.json`` (written atomically, edits serialised by a file lock)::

    {"schema_version": 1, "default_policy": "warn",
     "namespaces": {"acme": {"policy": null, "allow_unsigned": false,
                             "keys": [{"keyid": "1a2b…", "public_key": "-----BEGIN PUBLIC KEY-----…",
                                       "added_at": "2026-…Z"}]}}}

A policy is ``off`` (skip), ``warn`` (go on, with one warning line) or ``require`` (refuse with
:class:`~gptstore.errors.TrustError`). The policy of a namespace is, first match wins:

1. an override given by the caller (``policy_override=``);
2. the namespace's own policy (``gptstore trust policy require --namespace acme``);
3. ``require`` when the namespace has at least one trusted key;
4. the global default (``warn`` unless set with ``gptstore trust policy off|warn|require``).

**Unsigned models.** A namespace can be allowed to be unsigned (``gptstore trust allow-unsigned
NAMESPACE``), e.g. ``openai-community`` for Hub repos imported without a ``gptstore.json``
(:mod:`gptstore.stores.hub_import`): such a model passes every policy and is reported as
"unsigned, imported from <store>/<repo>@<commit>" (or "unsigned, allowed for NAMESPACE"). A
signature that is present but does not verify is never excused by it.

:func:`authenticity` applies the policy to a manifest and its signature bytes (what
:func:`gptstore.signing.check_signature` proves) and returns a
:class:`~gptstore.checks.CheckResult`; under ``warn`` the result carries the warning line in
``note`` and nothing is logged, so the operation that asked shows it once. This module is also a
built-in plugin: it registers that check as the ``authenticity`` verifier. It stays light (the
CLI imports it at every start): :mod:`gptstore.signing` is imported only when a signature is checked.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from . import config
from .checks import CheckResult
from .errors import InvalidReference, MissingDependency, NotFoundError, TrustError, UsageError
from .fsutil import atomic_write
from .hookspecs import hookimpl
from .refs import check_segment

if TYPE_CHECKING:
    from .manifest import Manifest

POLICIES = ("off", "warn", "require")
DEFAULT_POLICY = "warn"
TRUST_FILE = "trust.json"
SCHEMA_VERSION = 1


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise UsageError(f"unknown trust policy {policy!r}", hint="use off, warn or require")
    return policy


def check_namespace(namespace: str) -> str:
    try:
        check_segment(namespace, namespace, "namespace")
    except InvalidReference:
        raise UsageError(f"invalid namespace {namespace!r}",
                         hint="a namespace is one segment of letters, digits and -_., e.g. acme") from None
    return namespace


def trust_file() -> Path:
    return config.home() / TRUST_FILE


@dataclass
class TrustedKey:
    keyid: str
    public_key: str  # PEM
    added_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NamespaceTrust:
    policy: str | None = None
    keys: list[TrustedKey] = field(default_factory=list)
    allow_unsigned: bool = False


@dataclass
class TrustStore:
    """The parsed trust file; change it inside :meth:`edit` so that edits are saved together."""

    path: Path
    default_policy: str = DEFAULT_POLICY
    namespaces: dict[str, NamespaceTrust] = field(default_factory=dict)

    # -- reading and writing ------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path | str | None = None) -> TrustStore:
        path = Path(path) if path is not None else trust_file()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        try:
            data = json.loads(raw)
            store = cls(path, check_policy(data.get("default_policy", DEFAULT_POLICY)))
            for namespace, entry in (data.get("namespaces") or {}).items():
                policy = entry.get("policy")
                keys = [TrustedKey(k["keyid"], k["public_key"], k.get("added_at", ""))
                        for k in entry.get("keys") or []]
                store.namespaces[namespace] = NamespaceTrust(check_policy(policy) if policy else None, keys,
                                                             entry.get("allow_unsigned", False) is True)
        except (ValueError, TypeError, KeyError, AttributeError, UsageError) as exc:
            raise TrustError(f"trust policy file {path} is damaged ({type(exc).__name__}: {exc})",
                             hint="fix it by hand, or remove it and add your trusted keys again") from None
        return store

    @classmethod
    @contextmanager
    def edit(cls, path: Path | str | None = None) -> Iterator[TrustStore]:
        """Load, let the caller change, and save atomically, holding a lock against other writers."""
        from filelock import FileLock

        path = Path(path) if path is not None else trust_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path.with_name(f".{path.name}.lock")), timeout=60):
            store = cls.load(path)
            yield store
            store.save()

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "default_policy": self.default_policy,
                "namespaces": {ns: {"policy": entry.policy, "keys": [k.to_dict() for k in entry.keys],
                                    **({"allow_unsigned": True} if entry.allow_unsigned else {})}
                               for ns, entry in sorted(self.namespaces.items())}}

    def save(self) -> None:
        atomic_write(self.path, (json.dumps(self.to_dict(), indent=2) + "\n").encode("utf-8"))

    # -- queries ------------------------------------------------------------------------------
    def keys_for(self, namespace: str) -> list[TrustedKey]:
        entry = self.namespaces.get(namespace)
        return list(entry.keys) if entry else []

    def allows_unsigned(self, namespace: str) -> bool:
        entry = self.namespaces.get(namespace)
        return bool(entry and entry.allow_unsigned)

    def set_allow_unsigned(self, namespace: str, allowed: bool = True) -> None:
        """Let unsigned models of ``namespace`` pass every policy (or stop letting them)."""
        check_namespace(namespace)
        entry = self.namespaces.setdefault(namespace, NamespaceTrust())
        entry.allow_unsigned = allowed
        if not allowed and entry.policy is None and not entry.keys:
            del self.namespaces[namespace]

    def effective_policy(self, namespace: str) -> tuple[str, str]:
        """(policy, why) for a namespace; ``why`` is "namespace policy", "trusted key" or "default"."""
        entry = self.namespaces.get(namespace)
        if entry and entry.policy:
            return entry.policy, "namespace policy"
        if entry and entry.keys:
            return "require", "trusted key"
        return self.default_policy, "default"

    def describe(self) -> dict[str, Any]:
        """What ``gptstore trust list --json`` prints: the file plus each effective policy."""
        data = self.to_dict()
        for namespace, entry in data["namespaces"].items():
            entry["effective_policy"], entry["policy_source"] = self.effective_policy(namespace)
        return data

    # -- changes ------------------------------------------------------------------------------
    def add_key(self, namespace: str, public_key: str | bytes, *, source: str = "public key") -> tuple[TrustedKey, bool]:
        """Trust an Ed25519 or P-256 public key (PEM) for a namespace; returns (key, newly added).
        A P-256 key also verifies OpenSSF ``model.sig`` bundles (:mod:`gptstore.oms`)."""
        from .signing import key_id, load_public_key, public_key_pem

        check_namespace(namespace)
        key = load_public_key(public_key, source=source)
        keyid = key_id(key)
        entry = self.namespaces.setdefault(namespace, NamespaceTrust())
        for existing in entry.keys:
            if existing.keyid == keyid:
                return existing, False
        now = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        trusted = TrustedKey(keyid, public_key_pem(key), now)
        entry.keys.append(trusted)
        return trusted, True

    def remove(self, namespace: str, keyid: str | None = None) -> list[TrustedKey]:
        """Stop trusting one key (a unique key id prefix will do) or every key of a namespace."""
        check_namespace(namespace)
        entry = self.namespaces.get(namespace)
        keys = entry.keys if entry else []
        if keyid:
            doomed = [k for k in keys if k.keyid.startswith(keyid.lower())]
            if len(doomed) > 1:
                raise UsageError(f"key id {keyid!r} matches {len(doomed)} keys trusted for {namespace}",
                                 hint="give more characters of the key id")
        else:
            doomed = list(keys)
        if not doomed:
            what = f"key {keyid} " if keyid else "key "
            raise NotFoundError(f"no {what}is trusted for namespace {namespace}",
                                hint="`gptstore trust list` shows the trusted keys")
        assert entry is not None
        entry.keys = [k for k in keys if k not in doomed]
        if not entry.keys and entry.policy is None and not entry.allow_unsigned:
            del self.namespaces[namespace]
        return doomed

    def set_policy(self, policy: str | None, namespace: str | None = None) -> None:
        """Set the global default, or a namespace's policy (``None`` = follow the rules again)."""
        if namespace is None:
            if policy is None:
                raise UsageError("the global policy cannot be unset", hint="use off, warn or require")
            self.default_policy = check_policy(policy)
            return
        check_namespace(namespace)
        entry = self.namespaces.setdefault(namespace, NamespaceTrust())
        entry.policy = check_policy(policy) if policy is not None else None
        if entry.policy is None and not entry.keys and not entry.allow_unsigned:
            del self.namespaces[namespace]


# -- authenticity: a signature under the policy ------------------------------------------------

def read_signature(path: Path | str) -> bytes | None:
    """The bytes of ``path/gptstore.sig`` (a package or snapshot directory), ``None`` when absent.

    At most one byte over :data:`gptstore.signing.MAX_SIGNATURE_BYTES` is read: a larger file is
    reported as a malformed signature, never read whole.
    """
    from .manifest import SIGNATURE_FILE
    from .signing import MAX_SIGNATURE_BYTES

    try:
        with open(Path(path) / SIGNATURE_FILE, "rb") as handle:
            return handle.read(MAX_SIGNATURE_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None


def authenticity(manifest: Manifest, signature: bytes | None, *, policy_override: str | None = None,
                 store: TrustStore | None = None, oms_signature: bytes | None = None) -> CheckResult:
    """Check a manifest's signature (the bytes of its ``gptstore.sig``, ``None`` if it has none;
    ``oms_signature``: of its OpenSSF ``model.sig``) under the trust policy of its namespace.
    Either signature verifying by a key trusted for the namespace is enough (:func:`gptstore.oms.check_any`).

    Under ``require`` a problem raises :class:`~gptstore.errors.TrustError`; under ``warn`` the
    result is ``ok`` with ``warning=True`` and ``note`` set to the one line to show (nothing is
    logged: the caller shows it); ``off`` checks nothing.
    """
    from .signing import SignatureCheck, reference_of

    store = store if store is not None else TrustStore.load()
    namespace = manifest.namespace
    if policy_override is not None:
        policy, why = check_policy(policy_override), "override"
    else:
        policy, why = store.effective_policy(namespace)
    details: dict[str, Any] = {"policy": policy, "policy_source": why, "reference": reference_of(manifest),
                               "digest": manifest.digest}
    if policy == "off":
        return CheckResult("authenticity", True, "not checked (policy off)", details | {"signed": None})
    imported = manifest.provenance.imported_from if manifest.provenance else None
    if signature is None and oms_signature is None:
        allowed = store.allows_unsigned(namespace)
        if imported or allowed:
            return _unsigned(manifest, imported, policy, details, allowed=allowed)
    trusted = {k.keyid: k.public_key for k in store.keys_for(namespace)}
    which = "gptstore.sig" if signature is not None or oms_signature is None else "model.sig"
    try:
        from .oms import check_any

        result, which = check_any(manifest, signature, oms_signature, trusted, namespace=namespace)
    except MissingDependency as exc:
        if policy == "require":
            raise
        result = SignatureCheck(False, f"could not be checked: {exc}", "signature not checked")
    if not result.ok and result.short.startswith("signed by untrusted key") and which == "gptstore.sig":
        result = _for_another_manifest(manifest, signature, result)
    details |= {"signed": result.signed, "keyid": result.keyid, "trusted_keys": sorted(trusted),
                "signature_file": which}
    if result.ok:
        via = "" if which == "gptstore.sig" else f"{which}, "
        return CheckResult("authenticity", True,
                           f"signed by key {result.keyid} ({via}trusted: {namespace}), policy {policy}", details)
    text = f"{reference_of(manifest)} {result.problem}"
    details["problem"] = text
    if policy == "require":
        raise TrustError(f"refused by the trust policy for {namespace} (require): {text}",
                         hint=result.hint or None)
    # an unsigned model under warn needs no advice; the other problems say how to trust
    hint = f"; {result.hint}" if result.hint and result.signed else ""
    return CheckResult("authenticity", True, f"{result.short}, policy {policy}", details, warning=True,
                       note=f"authenticity warning: {text}{hint}")


def _unsigned(manifest: Manifest, imported: str | None, policy: str, details: dict[str, Any], *,
              allowed: bool) -> CheckResult:
    """An unsigned model that was imported from a plain Hub repo, or whose namespace is allowed
    to be unsigned: passes when allowed; otherwise as any unsigned model, named for what it is."""
    from .signing import reference_of

    what = f"unsigned, imported from {imported}" if imported else f"unsigned, allowed for {manifest.namespace}"
    details |= {"signed": False, "imported_from": imported, "allow_unsigned": allowed}
    if allowed:
        return CheckResult("authenticity", True, f"{what}, policy {policy}", details)
    text = f"{reference_of(manifest)} is {what}"
    details["problem"] = text
    if policy == "require":
        raise TrustError(f"refused by the trust policy for {manifest.namespace} (require): {text}",
                         hint=f"allow it with `gptstore trust allow-unsigned {manifest.namespace}` if you trust "
                              "that publisher")
    return CheckResult("authenticity", True, f"{what}, policy {policy}", details, warning=True,
                       note=f"authenticity warning: {text}")


def _for_another_manifest(manifest: Manifest, signature: bytes | None, result: Any) -> Any:
    """A signature naming another manifest digest is stale, whoever signed it: say that rather
    than "untrusted key" (trusting the key would not make it match)."""
    from .signed_digest import signed_digest
    from .signing import SignatureCheck

    signed = signed_digest(signature)
    if signed is None or signed == manifest.digest:
        return result
    return SignatureCheck(False, f"has a signature for another manifest: gptstore.sig signs sha256:{signed[:12]}…, "
                                 f"this manifest is sha256:{manifest.digest[:12]}…", "signature for another manifest",
                          keyid=result.keyid,
                          hint="the manifest changed after signing (e.g. packaged again): sign it again with "
                               "`gptstore sign DIR --key NAME`, or get the original package")


# -- the built-in verifier ------------------------------------------------------------------------

def authenticity_verifier(manifest: Manifest, path: Path) -> CheckResult:
    """``check(manifest, path)`` for ``register_verifiers``: the directory's signatures under the policy."""
    from .oms import read_oms

    return authenticity(manifest, read_signature(path), oms_signature=read_oms(path))


@hookimpl(trylast=True)  # a built-in: plugins registering the same name override it
def register_verifiers(register):
    register("authenticity", authenticity_verifier)
