"""Signing keys, and DSSE signatures over the manifest digest.

**Keys** are Ed25519 (the default) or ECDSA P-256 (``--type ec-p256``: the kind the OpenSSF
``model_signing`` tool signs with, see :mod:`gptstore.oms`), under ``GPTSTORE_HOME/keys/``: ``NAME.key`` (PKCS#8 PEM, mode 0600,
optionally encrypted with a passphrase) and ``NAME.pub`` (SubjectPublicKeyInfo PEM). A private
key file that others may read is refused, as ssh does. A key's **key id** is the first 16 hex
characters of the sha256 of its raw 32-byte public key (Ed25519) or of its DER
SubjectPublicKeyInfo (P-256).

**Signatures** (``gptstore.sig`` beside ``gptstore.json``) are DSSE envelopes::

    {"payloadType": "application/vnd.gptstore.manifest+json",
     "payload": "<base64 of the statement>",
     "signatures": [{"keyid": "<key id>", "sig": "<base64 Ed25519 or ECDSA-SHA256 signature>"}]}

The signature is over DSSE's ``PAE(payloadType, payload)``; the statement is canonical JSON
``{"digest": "sha256:<manifest digest>", "reference": "namespace/name:version",
"schema_version": 1, "signed_at": "<UTC time>"}``. Since the manifest pins every file by sha256,
one signature covers every byte of the package.

:func:`check_signature` says what a signature proves about a manifest against a set of trusted
keys; which keys to trust, and what to do when the answer is no, is the trust policy's business
(:func:`gptstore.trust.authenticity`). This module neither logs nor reads that policy.

``cryptography`` (the ``signing`` extra) is imported only by the functions that need it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import config
from .errors import ConflictError, MalformedSignature, MissingDependency, NotFoundError, TrustError, UsageError
from .fsutil import atomic_write
from .integrity import check_integrity
from .manifest import SIGNATURE_FILE, Manifest, canonical_json, load_manifest
from .signed_digest import MAX_BYTES as MAX_SIGNATURE_BYTES  # one cap for every reader of gptstore.sig

PAYLOAD_TYPE = "application/vnd.gptstore.manifest+json"
STATEMENT_VERSION = 1
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KEY_TYPES = ("ed25519", "ec-p256")
_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


# -- keys -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyInfo:
    """A signing key in ``GPTSTORE_HOME/keys``."""

    name: str
    keyid: str
    public_key: str  # PEM
    encrypted: bool
    path: Path  # the private key file
    type: str = "ed25519"  # one of KEY_TYPES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:  # pragma: no cover - the extra is installed in development
        raise MissingDependency("cryptography (needed to sign and check signatures)", "signing") from None
    return serialization, ed25519


def keys_dir() -> Path:
    return config.home() / "keys"


def check_key_name(name: str) -> str:
    if not isinstance(name, str) or not _KEY_NAME.fullmatch(name):
        raise UsageError(f"invalid key name {name!r}",
                         hint="use letters, digits and -_. (at most 64), starting with a letter or digit")
    return name


def key_type(key: Any) -> str:
    """``ed25519`` or ``ec-p256`` for a public or private key object."""
    _, ed25519 = _crypto()
    return "ed25519" if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)) else "ec-p256"


def key_id(public_key: Any) -> str:
    """First 16 hex of sha256 over the raw 32-byte Ed25519 public key, or a P-256 key's DER SPKI."""
    serialization, _ = _crypto()
    if key_type(public_key) == "ed25519":
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_bytes(private_key: Any, message: bytes) -> bytes:
    """Ed25519, or ECDSA with SHA-256 (DER) for a P-256 key."""
    if key_type(private_key) == "ed25519":
        return private_key.sign(message)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    return private_key.sign(message, ec.ECDSA(hashes.SHA256()))


def verify_bytes(public_key: Any, signature: bytes, message: bytes) -> None:
    """Raise ``cryptography.exceptions.InvalidSignature`` unless ``signature`` signs ``message``."""
    if key_type(public_key) == "ed25519":
        public_key.verify(signature, message)
        return
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


def public_key_pem(public_key: Any) -> str:
    serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_key(text: str | bytes, *, source: str = "public key") -> Any:
    """An Ed25519 or P-256 public key from PEM text (explanatory lines around the block are ignored)."""
    serialization, ed25519 = _crypto()
    data = text.encode() if isinstance(text, str) else text
    match = _PEM_BLOCK.search(data)
    if match is None:
        raise TrustError(f"{source} holds no PEM public key (-----BEGIN PUBLIC KEY-----)",
                         hint="give the file that `gptstore keys export NAME` wrote")
    try:
        key = serialization.load_pem_public_key(match.group(0))
    except ValueError as exc:
        raise TrustError(f"{source} is not a readable public key ({exc})",
                         hint="give the file that `gptstore keys export NAME` wrote") from None
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name != "secp256r1":
        raise TrustError(f"{source} is an EC key on curve {key.curve.name}, not P-256 (secp256r1)",
                         hint="make one with `gptstore keys generate NAME --type ec-p256`")
    if not isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
        raise TrustError(f"{source} is a {type(key).__name__.removeprefix('_')}, not an Ed25519 or P-256 key",
                         hint="gptstore signs with Ed25519 or P-256 keys; make one with `gptstore keys generate NAME`")
    return key


def _paths(name: str) -> tuple[Path, Path]:
    folder = keys_dir()
    return folder / f"{name}.key", folder / f"{name}.pub"


def _info(name: str) -> KeyInfo:
    private, public = _paths(name)
    pem = public.read_text()
    encrypted = b"ENCRYPTED" in private.read_bytes()[:64]
    key = load_public_key(pem, source=str(public))
    return KeyInfo(name, key_id(key), pem, encrypted, private, key_type(key))


def generate_key(name: str, *, passphrase: str | None = None, force: bool = False,
                 type: str = "ed25519") -> KeyInfo:
    """Make a key pair ``NAME.key`` (0600) / ``NAME.pub`` under the keys directory:
    Ed25519, or ECDSA P-256 (``type="ec-p256"``, which ``model_signing`` also signs with)."""
    serialization, ed25519 = _crypto()
    check_key_name(name)
    if type not in KEY_TYPES:
        raise UsageError(f"unknown key type {type!r}", hint=f"use one of {', '.join(KEY_TYPES)}")
    private_path, public_path = _paths(name)
    if private_path.exists() and not force:
        raise ConflictError(f"a key named {name!r} already exists ({private_path})",
                            hint="choose another name, or pass --force to replace it (signatures made "
                                 "with the old key will no longer match a key you hold)")
    private_path.parent.mkdir(parents=True, exist_ok=True)
    if os.name != "nt":
        os.chmod(private_path.parent, 0o700)
    if type == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        from cryptography.hazmat.primitives.asymmetric import ec
        key = ec.generate_private_key(ec.SECP256R1())
    encryption = (serialization.BestAvailableEncryption(passphrase.encode())
                  if passphrase else serialization.NoEncryption())
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    atomic_write(private_path, data, mode=0o600)
    atomic_write(public_path, public_key_pem(key.public_key()).encode("ascii"), mode=0o644)
    return _info(name)


def list_keys() -> list[KeyInfo]:
    folder = keys_dir()
    if not folder.is_dir():
        return []
    names = sorted(p.stem for p in folder.glob("*.key") if (folder / f"{p.stem}.pub").is_file())
    return [_info(name) for name in names]


def get_key(name: str) -> KeyInfo:
    check_key_name(name)
    private, public = _paths(name)
    if not private.is_file() or not public.is_file():
        known = ", ".join(k.name for k in list_keys()) or "none"
        raise NotFoundError(f"no signing key named {name!r} (known: {known})",
                            hint=f"make one with `gptstore keys generate {name}`")
    return _info(name)


def export_public_key(name: str) -> str:
    """The public key as PEM with a comment line naming the key and its key id."""
    info = get_key(name)
    return f"# gptstore key {info.name!r}, keyid {info.keyid}\n{info.public_key}"


def check_permissions(path: Path) -> None:
    """Refuse a private key file that anyone but its owner may read or write."""
    if os.name == "nt":  # pragma: no cover
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise TrustError(f"permissions {mode:04o} for private key {path} are too open; it must be "
                         "readable by you only", hint=f"run `chmod 600 {path}`")


def load_private_key(name: str, passphrase: str | None = None) -> tuple[Any, KeyInfo]:
    """(private key, info); the passphrase defaults to ``GPTSTORE_KEY_PASSPHRASE``."""
    serialization, _ = _crypto()
    info = get_key(name)
    check_permissions(info.path)
    data = info.path.read_bytes()
    secret = None
    if info.encrypted:
        secret = passphrase if passphrase is not None else config.key_passphrase()
        if not secret:
            raise TrustError(f"key {name!r} is protected by a passphrase and none was given",
                             hint="pass --passphrase or set GPTSTORE_KEY_PASSPHRASE")
    try:
        key = serialization.load_pem_private_key(data, secret.encode() if secret else None)
    except ValueError:
        if info.encrypted:
            raise TrustError(f"wrong passphrase for key {name!r}",
                             hint="check --passphrase or GPTSTORE_KEY_PASSPHRASE") from None
        raise TrustError(f"private key file {info.path} is damaged",
                         hint=f"restore it from your backup, or make a new key with "
                              f"`gptstore keys generate {name} --force`") from None
    if key_id(key.public_key()) != info.keyid:
        raise TrustError(f"{info.path} and {info.path.with_suffix('.pub')} are not one key pair",
                         hint="restore both files from your backup")
    return key, info


# -- DSSE envelopes -------------------------------------------------------------------------------

def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 <len> <type> <len> <payload>``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def reference_of(manifest: Manifest) -> str:
    return f"{manifest.repo_id}:{manifest.version}"


def make_envelope(manifest: Manifest, private_key: Any, *, signed_at: datetime | None = None) -> bytes:
    """A DSSE envelope (JSON bytes) signing the manifest digest and reference."""
    when = (signed_at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    statement = {"schema_version": STATEMENT_VERSION, "digest": f"sha256:{manifest.digest}",
                 "reference": reference_of(manifest), "signed_at": when.isoformat().replace("+00:00", "Z")}
    payload = canonical_json(statement)
    signature = sign_bytes(private_key, pae(PAYLOAD_TYPE, payload))
    envelope = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode("ascii"),
                "signatures": [{"keyid": key_id(private_key.public_key()),
                                "sig": base64.b64encode(signature).decode("ascii")}]}
    return (json.dumps(envelope, indent=2) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    statement: dict[str, Any]
    signatures: list[tuple[str, bytes]]  # (keyid, signature)

    @property
    def digest(self) -> str:
        return self.statement["digest"].removeprefix("sha256:")

    @property
    def reference(self) -> str:
        return self.statement["reference"]


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise MalformedSignature(f"{what} is not a base64 string")
    try:
        padded = text + "=" * (-len(text) % 4)
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedSignature(f"{what} is not valid base64") from None


def parse_envelope(data: bytes) -> Envelope:
    """Parse and shape-check an envelope; raises :class:`MalformedSignature` naming the problem."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise MalformedSignature("not JSON") from None
    if not isinstance(obj, dict):
        raise MalformedSignature("not a JSON object")
    if obj.get("payloadType") != PAYLOAD_TYPE:
        raise MalformedSignature(f"payloadType is {obj.get('payloadType')!r}, expected {PAYLOAD_TYPE!r}")
    payload = _b64(obj.get("payload"), "payload")
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise MalformedSignature("the payload is not JSON") from None
    if (not isinstance(statement, dict) or not isinstance(statement.get("reference"), str)
            or not isinstance(statement.get("digest"), str)
            or not re.fullmatch(r"sha256:[0-9a-f]{64}", statement["digest"])):
        raise MalformedSignature("the payload does not name a manifest digest (sha256:<hex>) and a reference")
    signatures = obj.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise MalformedSignature("no signatures in it")
    parsed = []
    for entry in signatures:
        if not isinstance(entry, dict) or not isinstance(entry.get("keyid", ""), str):
            raise MalformedSignature("a signature entry is not {keyid, sig}")
        parsed.append((entry.get("keyid", ""), _b64(entry.get("sig"), "a signature")))
    return Envelope(payload, statement, parsed)


@dataclass
class SignatureCheck:
    """What a signature says about a manifest, before any policy is applied."""

    ok: bool
    problem: str = ""  # follows the model's reference: "acme/poet:1.0.0 is not signed ..."
    short: str = ""  # the problem in a few words, for summaries
    hint: str = ""
    keyid: str | None = None
    signed: bool = True


def check_signature(manifest: Manifest, data: bytes | None, trusted: dict[str, str],
                    *, namespace: str | None = None) -> SignatureCheck:
    """Check an envelope against the manifest and ``trusted`` (``{keyid: public key PEM}``)."""
    namespace = namespace or manifest.namespace
    if data is None:
        return SignatureCheck(False, "is not signed (no gptstore.sig)", "unsigned", signed=False,
                              hint=f"ask the publisher for a signed package, or accept unsigned models of "
                                   f"{namespace} with `gptstore trust policy warn --namespace {namespace}`")
    if len(data) > MAX_SIGNATURE_BYTES:
        return SignatureCheck(False, f"has a malformed signature (gptstore.sig: larger than {MAX_SIGNATURE_BYTES >> 20} "
                                     "MiB)", "malformed signature",
                              hint="get the package and its gptstore.sig again from the publisher")
    try:
        envelope = parse_envelope(data)
    except MalformedSignature as exc:
        return SignatureCheck(False, f"has a malformed signature (gptstore.sig: {exc.message})",
                              "malformed signature",
                              hint="get the package and its gptstore.sig again from the publisher")
    _crypto()  # MissingDependency when the signing extra is not installed
    from cryptography.exceptions import InvalidSignature

    message = pae(PAYLOAD_TYPE, envelope.payload)
    verified = forged = None
    for keyid, sig in envelope.signatures:
        candidates = [keyid] if keyid in trusted else ([] if keyid else list(trusted))
        for candidate in candidates:
            try:
                verify_bytes(load_public_key(trusted[candidate], source=f"trusted key {candidate}"), sig, message)
            except InvalidSignature:
                if keyid:
                    forged = forged or candidate
                continue
            verified = candidate
            break
        if verified:
            break
    if verified is None:
        if forged:
            return SignatureCheck(False, f"has a signature that claims trusted key {forged} but does not "
                                         "verify with it", "invalid signature", keyid=forged,
                                  hint="the signature was altered or made with another key; get the "
                                       "package again from the publisher")
        shown = ", ".join(k or "(no keyid)" for k, _ in envelope.signatures)
        if trusted:
            what = f"which is not trusted for {namespace}"
        else:
            what = f"and no key is trusted for {namespace}"
        return SignatureCheck(False, f"is signed by key {shown}, {what}", f"signed by untrusted key {shown}",
                              keyid=envelope.signatures[0][0] or None,
                              hint=f"if you trust the publisher, run `gptstore trust add {namespace} "
                                   "PUBKEY_FILE` with their public key")
    expected_ref = reference_of(manifest)
    if envelope.reference != expected_ref:
        return SignatureCheck(False, f"carries a signature for another model: it signs {envelope.reference} "
                                     f"(sha256:{envelope.digest[:12]}…), not {expected_ref} "
                                     f"(sha256:{manifest.digest[:12]}…)", "signature for another model",
                              keyid=verified,
                              hint="gptstore.sig was copied from another package; get this model's own "
                                   "signature from the publisher")
    if envelope.digest != manifest.digest:
        return SignatureCheck(False, f"has a manifest that differs from the signed one: the signature covers "
                                     f"sha256:{envelope.digest[:12]}…, the manifest is sha256:"
                                     f"{manifest.digest[:12]}…", "manifest changed after signing",
                              keyid=verified,
                              hint="the manifest was changed after signing; get the original package, or "
                                   "(as its publisher) sign it again with `gptstore sign DIR --key NAME`")
    return SignatureCheck(True, keyid=verified)


# -- signing a package ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SignResult:
    path: Path
    reference: str
    digest: str
    key: str
    keyid: str
    #: every signature file written: gptstore.sig and/or model.sig (``--format``)
    paths: tuple[Path, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["paths"] = [str(p) for p in (self.paths or (self.path,))]
        return data


def check_package(root: Path, manifest: Manifest) -> None:
    """Refuse to sign a directory whose files do not match its manifest (every file hashed)."""
    report = check_integrity(root, manifest, mode="full", reference=str(root))
    if not report.ok:
        first = report.problems[0]
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        raise type(first)(f"cannot sign {root}: {first.message}{more}", path=first.path,
                          expected=first.expected, actual=first.actual,
                          hint=f"run `gptstore package {root} --name {manifest.repo_id} --version "
                               f"{manifest.version}` again to record the files, then sign")


def sign_package(package_dir: Path | str, *, key: str, passphrase: str | None = None) -> SignResult:
    """Write ``package_dir/gptstore.sig`` after checking every file against the manifest."""
    root = Path(package_dir)
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", hint="give the package directory to sign")
    manifest = load_manifest(root)
    private_key, info = load_private_key(key, passphrase)
    check_package(root, manifest)
    return write_signature(root, manifest, private_key, info)


def write_signature(root: Path, manifest: Manifest, private_key: Any, info: KeyInfo) -> SignResult:
    """Write ``root/gptstore.sig`` over ``manifest``; the caller has checked the files against it."""
    target = root / SIGNATURE_FILE
    atomic_write(target, make_envelope(manifest, private_key))
    return SignResult(target, reference_of(manifest), manifest.digest, info.name, info.keyid, (target,))


__all__ = [
    "PAYLOAD_TYPE", "KeyInfo", "SignResult", "Envelope", "SignatureCheck",
    "generate_key", "list_keys", "get_key", "export_public_key", "load_private_key", "load_public_key",
    "key_id", "key_type", "KEY_TYPES", "sign_bytes", "verify_bytes", "check_package", "pae", "make_envelope", "parse_envelope", "check_signature", "sign_package", "reference_of",
    "write_signature",
    "MAX_SIGNATURE_BYTES",
]
