"""Publishers' public keys registered per namespace, and the ``--require-signed`` commit check.

The operator registers Ed25519 or P-256 public keys (PEM, as ``gptstore keys export`` prints them) for a
namespace with ``gptstore server key add NAMESPACE PUBKEY_FILE``; they live in the catalog's
``signing_keys`` table, so they survive restarts and apply at once to a running server.

A server started with ``--require-signed`` refuses a commit that adds or changes
``gptstore.json``, ``gptstore.sig`` or ``model.sig`` on any branch unless the resulting revision
carries a ``gptstore.sig`` (:func:`gptstore.signing.check_signature`) or an OpenSSF ``model.sig``
(:func:`gptstore.oms.check_oms`, a P-256 key) that verifies against the keys of the manifest's
namespace, and the manifest names the repo it is committed to. The refusal is a
:class:`~gptstore.errors.TrustError`, which the app answers with ``400`` and the one-line message
(``X-Error-Message`` and the JSON ``error``) that the Hub client shows; the commit's transaction
rolls back, so nothing is written.

Nothing here imports starlette or cryptography at import time (the admin CLI uses this module).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConflictError, NotFoundError, TrustError, UsageError
from ..manifest import MANIFEST_FILE, OMS_SIGNATURE_FILE, SIGNATURE_FILE, Manifest
from ..signing import MAX_SIGNATURE_BYTES as MAX_SIGNATURE
from .db import Database
from .timeutil import now

SIGN_HINT = "sign it with `gptstore sign DIR --key NAME` and upload gptstore.sig with gptstore.json"


@dataclass(frozen=True)
class RegisteredKey:
    namespace: str
    keyid: str
    public_key: str  # PEM (SubjectPublicKeyInfo)
    added_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(row: Any) -> RegisteredKey:
    return RegisteredKey(row["namespace"], row["keyid"], row["public_key"], row["added_at"])


class SigningKeys:
    """The ``signing_keys`` table: which public keys may sign packages of which namespace."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, namespace: str, pem: str | bytes, *, source: str = "public key") -> RegisteredKey:
        """Register an Ed25519 or P-256 public key (PEM) for an existing user or org namespace."""
        from ..signing import key_id, load_public_key, public_key_pem

        data = pem.encode() if isinstance(pem, str) else pem
        if b"PRIVATE KEY-----" in data:
            raise UsageError(f"{source} is a private key, which must never leave the publisher's machine",
                             hint="give the public key instead: `gptstore keys export NAME > NAME.pub`")
        key = load_public_key(data, source=source)
        keyid = key_id(key)
        with self.db.transaction():
            self._require_namespace(namespace)
            if self.db.one("SELECT 1 FROM signing_keys WHERE namespace = ? AND keyid = ?", (namespace, keyid)):
                raise ConflictError(f"key {keyid} is already registered for {namespace}",
                                    hint="`gptstore server key list` shows the registered keys")
            added = RegisteredKey(namespace, keyid, public_key_pem(key), now())
            self.db.execute("INSERT INTO signing_keys (namespace, keyid, public_key, added_at) VALUES (?, ?, ?, ?)",
                            (added.namespace, added.keyid, added.public_key, added.added_at))
        return added

    def list(self, namespace: str | None = None) -> list[RegisteredKey]:
        rows = self.db.all("SELECT * FROM signing_keys WHERE ? IS NULL OR namespace = ? "
                           "ORDER BY namespace, added_at, keyid", (namespace, namespace))
        return [_key(r) for r in rows]

    def remove(self, namespace: str, keyid: str) -> RegisteredKey:
        """Unregister one key of a namespace; a unique prefix of its key id will do."""
        prefix = keyid.strip().lower()
        if not prefix:
            raise UsageError("empty key id", hint="`gptstore server key list` shows the key ids")
        with self.db.transaction():
            found = [k for k in self.list(namespace) if k.keyid.startswith(prefix)]
            if not found:
                raise NotFoundError(f"no key {keyid} is registered for {namespace}",
                                    hint="`gptstore server key list` shows the registered keys")
            if len(found) > 1:
                raise UsageError(f"key id {keyid!r} matches {len(found)} keys registered for {namespace}",
                                 hint="give more characters of the key id")
            self.db.execute("DELETE FROM signing_keys WHERE namespace = ? AND keyid = ?", (namespace, found[0].keyid))
        return found[0]

    def trusted(self, namespace: str) -> dict[str, str]:
        """``{keyid: PEM}`` of a namespace, as :func:`gptstore.signing.check_signature` takes it."""
        return {k.keyid: k.public_key for k in self.list(namespace)}

    def _require_namespace(self, namespace: str) -> None:
        if self.db.one("SELECT 1 FROM namespaces WHERE name = ?", (namespace,)) is None:
            raise NotFoundError(f"no user or organisation {namespace!r} on this store",
                                hint="create it first with `gptstore server user add` or `org add`")


# -- the commit check ------------------------------------------------------------------------

def needs_signature(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a commit (file rows before → after, by path) must leave a signed revision:
    it has a manifest and the commit added, changed or removed the manifest or its signature."""
    if MANIFEST_FILE not in after:
        return False
    return any(_sha(before, path) != _sha(after, path) for path in (MANIFEST_FILE, SIGNATURE_FILE, OMS_SIGNATURE_FILE))


def _sha(files: dict[str, Any], path: str) -> str | None:
    row = files.get(path)
    return row.sha256 if row is not None else None


def _refuse(problem: str, hint: str) -> TrustError:
    return TrustError(f"this store accepts signed packages only: {problem}", hint=hint)


def check_signed(manifest: Manifest, repo_id: str, signature: bytes | None, trusted: dict[str, str], *,
                 oms: bytes | None = None) -> None:
    """Raise :class:`TrustError` (one line: what is wrong; what to do) unless ``signature`` is a
    valid ``gptstore.sig`` (or ``oms`` a valid ``model.sig``) for ``manifest`` by one of ``trusted``
    and the manifest names ``repo_id``."""
    from ..oms import check_any
    from ..signing import reference_of

    if manifest.repo_id != repo_id:
        raise _refuse(f"{MANIFEST_FILE} names {manifest.repo_id}, not this repo {repo_id}",
                      f"package it as {repo_id} (`gptstore package DIR --name {repo_id} --version "
                      f"{manifest.version}`), sign it and upload it again")
    reference = reference_of(manifest)
    namespace = manifest.namespace
    if signature is not None and len(signature) > MAX_SIGNATURE:
        raise _refuse(f"{reference} has a malformed signature ({SIGNATURE_FILE}: larger than 1 MiB)",
                      "sign it again with `gptstore sign DIR --key NAME`")
    if oms is not None and len(oms) > MAX_SIGNATURE:
        raise _refuse(f"{reference} has a malformed signature ({OMS_SIGNATURE_FILE}: larger than 1 MiB)",
                      "sign it again with `gptstore sign DIR --key NAME --format oms`")
    result, which = check_any(manifest, signature, oms, trusted, namespace=namespace)
    if result.ok:
        return
    short = result.short  # check_signature's reason in a few words; reworded here for the uploader
    if which == OMS_SIGNATURE_FILE:
        if short.startswith("signed by untrusted key"):
            raise _refuse(f"{reference} is signed ({OMS_SIGNATURE_FILE}) by a key that is not registered for "
                          f"{namespace} on this store", f"ask the store's operator to run `gptstore server key add "
                          f"{namespace} PUBKEY_FILE` with your P-256 public key, or sign with a registered key")
        raise _refuse(f"{reference} {result.problem}", "sign it again with a key registered for "
                      f"{namespace} (`gptstore sign DIR --key NAME --format oms`, an ec-p256 key)")
    if short.startswith("signed by untrusted key"):
        shown = short.removeprefix("signed by untrusted key").strip()
        what = (f"which is not registered for {namespace} on this store" if trusted
                else f"and no key is registered for {namespace} on this store")
        raise _refuse(f"{reference} is signed by key {shown}, {what}",
                      f"ask the store's operator to run `gptstore server key add {namespace} PUBKEY_FILE` "
                      "with your public key (`gptstore keys export NAME`), or sign with a registered key")
    if short == "invalid signature":
        raise _refuse(f"{reference} has a signature that claims key {result.keyid} (registered for {namespace}) "
                      "but does not verify with it", "sign it again with `gptstore sign DIR --key NAME`")
    hints = {
        "unsigned": SIGN_HINT,
        "malformed signature": "sign it again with `gptstore sign DIR --key NAME`",
        "signature for another model": f"{SIGNATURE_FILE} belongs to another package; sign this one with "
                                       "`gptstore sign DIR --key NAME`",
        "manifest changed after signing": "the manifest was changed after signing; sign it again with "
                                          "`gptstore sign DIR --key NAME` after the last `gptstore package`",
    }
    raise _refuse(f"{reference} {result.problem}", hints.get(short, SIGN_HINT))
