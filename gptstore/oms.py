"""OpenSSF model signatures (OMS v1.0): ``model.sig`` beside ``gptstore.json``, made and read
with the ``model_signing`` library, so that ``model_signing verify key`` checks a gptstore package.

``model.sig`` is a Sigstore bundle over a DSSE envelope whose in-toto statement lists every file
of the directory with its sha256 (``model_signing``'s "files" serialization). What it covers:

- signed by ``gptstore sign --format oms``: every package file **and** ``gptstore.json`` (so the
  manifest is covered too); ``gptstore.sig`` and ``model.sig`` are left out (recorded in the
  statement's ``ignore_paths``, so ``model_signing verify`` leaves them out too), and, as
  ``model_signing`` always does unless told otherwise, git files (``.gitattributes``,
  ``.gitignore``, ``.git/``, ``.github/``), which ``gptstore.json`` still pins by sha256;
- signed by the author with ``model_signing sign key`` before packaging: the files only. It is
  then accepted when its file list is exactly the manifest's files, each with the same sha256.

:func:`check_oms` says what a bundle proves about a manifest against the trusted keys (only
P-256 keys can have made one), in the terms of :class:`gptstore.signing.SignatureCheck`;
:func:`check_any` picks between ``gptstore.sig`` and ``model.sig``: a package is signed when
either one verifies. ``model_signing`` (the ``signing`` extra) is imported only when used.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from .errors import MissingDependency, UsageError
from .fsutil import atomic_write
from .manifest import MANIFEST_FILE, OMS_SIGNATURE_FILE, SIGNATURE_FILE, Manifest, dumps, load_manifest
from .signing import (MAX_SIGNATURE_BYTES, SignatureCheck, SignResult, check_signature, key_type,
                      load_public_key)

#: the files ``model_signing`` leaves out by default (``ignore_git_paths``)
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
SIGN_AGAIN = "sign it again with `gptstore sign DIR --key NAME --format oms`"


def _model_signing():
    try:
        import model_signing  # noqa: F401
        from model_signing import hashing, signing, verifying  # noqa: F401
    except ImportError:  # pragma: no cover - the extra is installed in development
        raise MissingDependency("model-signing (needed for OpenSSF model.sig signatures)", "signing") from None
    return model_signing


def sign_directory(root: Path, private_key_path: Path, passphrase: str | None) -> Path:
    """Write ``root/model.sig`` over every file of ``root`` (``gptstore.json`` included), leaving out
    ``gptstore.sig`` and ``model.sig``. The caller has checked the files against the manifest."""
    ms = _model_signing()
    hashing_config = ms.hashing.Config().use_file_serialization(hashing_algorithm="sha256").set_ignored_paths(
        paths=[SIGNATURE_FILE, OMS_SIGNATURE_FILE], ignore_git_paths=True)
    password = passphrase.encode() if passphrase else None
    with tempfile.TemporaryDirectory(prefix="gptstore-oms-") as tmp:
        out = Path(tmp) / OMS_SIGNATURE_FILE
        (ms.signing.Config().use_elliptic_key_signer(private_key=private_key_path, password=password)
         .set_hashing_config(hashing_config).sign(root, out))
        atomic_write(root / OMS_SIGNATURE_FILE, out.read_bytes())
    return root / OMS_SIGNATURE_FILE


def _verified_files(data: bytes, pem: str) -> tuple[dict[str, str], dict] | None:
    """({path: sha256 hex}, serialization parameters) of a bundle that ``pem`` verifies; None if it does not."""
    ms = _model_signing()
    from model_signing._signing import sign_ec_key, sign_sigstore_pb

    with tempfile.TemporaryDirectory(prefix="gptstore-oms-") as tmp:
        sig_path, key_path = Path(tmp) / OMS_SIGNATURE_FILE, Path(tmp) / "key.pub"
        sig_path.write_bytes(data)
        key_path.write_text(pem)
        bundle = sign_sigstore_pb.Signature.read(sig_path)  # malformed: raises (caught by the caller)
        try:
            manifest = sign_ec_key.Verifier(key_path).verify(bundle)
        except Exception:  # noqa: BLE001 - wrong key, bad signature: model_signing raises several kinds
            return None
    del ms
    files = {rd.identifier: rd.digest.digest_hex for rd in manifest.resource_descriptors()}
    return files, dict(manifest.serialization_type)


def _is_git_path(path: str) -> bool:
    return path.split("/", 1)[0] in GIT_PATHS


def check_oms(manifest: Manifest, data: bytes | None, trusted: dict[str, str], *,
              namespace: str | None = None) -> SignatureCheck:
    """Check ``model.sig`` bytes against the manifest and ``trusted`` (``{keyid: PEM}``)."""
    namespace = namespace or manifest.namespace
    if data is None:
        return check_signature(manifest, None, trusted, namespace=namespace)
    bad = SignatureCheck(False, "", "malformed signature", hint=f"get {OMS_SIGNATURE_FILE} again from the publisher")
    if len(data) > MAX_SIGNATURE_BYTES:
        bad.problem = f"has a malformed signature ({OMS_SIGNATURE_FILE}: larger than {MAX_SIGNATURE_BYTES >> 20} MiB)"
        return bad
    verified = keyid = None
    for candidate, pem in trusted.items():
        if key_type(load_public_key(pem, source=f"trusted key {candidate}")) != "ec-p256":
            continue  # model_signing signs with EC keys only
        try:
            verified = _verified_files(data, pem)
        except MissingDependency:
            raise
        except Exception as exc:  # noqa: BLE001 - not a bundle model_signing can read
            bad.problem = f"has a malformed signature ({OMS_SIGNATURE_FILE}: {type(exc).__name__}: {exc})"[:300]
            return bad
        if verified is not None:
            keyid = candidate
            break
    if verified is None:
        what = f"which is not trusted for {namespace}" if trusted else f"and no key is trusted for {namespace}"
        return SignatureCheck(False, f"is signed ({OMS_SIGNATURE_FILE}) by a key {what}", "signed by untrusted key",
                              hint=f"if you trust the publisher, run `gptstore trust add {namespace} PUBKEY_FILE` "
                                   "with their P-256 public key")
    files, params = verified
    if params.get("method") != "files" or params.get("hash_type") != "sha256":
        return SignatureCheck(False, f"has a {OMS_SIGNATURE_FILE} made with {params.get('method')}/"
                                     f"{params.get('hash_type')} hashing, which gptstore cannot match to the manifest",
                              "malformed signature", keyid=keyid,
                              hint="sign with sha256 file hashing (`model_signing sign key` without --shard/--hash)")
    return _match(manifest, files, keyid)


def _match(manifest: Manifest, files: dict[str, str], keyid: str) -> SignatureCheck:
    """The statement's files against the manifest: same paths, same sha256 (``gptstore.json``,
    when listed, must be this manifest; git files may be left out, as model_signing does)."""
    files = dict(files)
    listed_manifest = files.pop(MANIFEST_FILE, None)
    if listed_manifest is not None and listed_manifest != hashlib.sha256(dumps(manifest)).hexdigest():
        return SignatureCheck(False, f"has a manifest that differs from the signed one ({OMS_SIGNATURE_FILE} lists "
                                     f"another {MANIFEST_FILE})", "manifest changed after signing", keyid=keyid,
                              hint=f"the manifest was changed after signing; get the original package, or {SIGN_AGAIN}")
    expected = {f.path: f.sha256 for f in manifest.files if f.path in files or not _is_git_path(f.path)}
    missing = sorted(set(expected) - set(files))
    extra = sorted(set(files) - set(expected))
    changed = sorted(p for p in set(expected) & set(files) if expected[p] != files[p])
    if missing or extra or changed:
        parts = ([f"does not list {', '.join(missing[:3])}"] if missing else []) + \
                ([f"lists {', '.join(extra[:3])}, which the manifest does not"] if extra else []) + \
                ([f"has another sha256 for {', '.join(changed[:3])}"] if changed else [])
        return SignatureCheck(False, f"carries a signature for other files: {OMS_SIGNATURE_FILE} "
                                     + "; ".join(parts), "signature for another model", keyid=keyid,
                              hint=f"{OMS_SIGNATURE_FILE} was made for other files; get this model's own signature "
                                   f"from the publisher, or {SIGN_AGAIN}")
    return SignatureCheck(True, keyid=keyid)


def check_any(manifest: Manifest, signature: bytes | None, oms: bytes | None, trusted: dict[str, str], *,
              namespace: str | None = None) -> tuple[SignatureCheck, str]:
    """(check, which file) for a package with ``gptstore.sig`` and/or ``model.sig``: the first that
    verifies wins; when none does, the problem of ``gptstore.sig`` (or of ``model.sig`` alone)."""
    first = None
    if signature is not None or oms is None:
        first = check_signature(manifest, signature, trusted, namespace=namespace)
        if first.ok or oms is None:
            return first, SIGNATURE_FILE
    second = check_oms(manifest, oms, trusted, namespace=namespace)
    if second.ok or first is None:
        return second, OMS_SIGNATURE_FILE
    return first, SIGNATURE_FILE


def read_oms(path: Path | str) -> bytes | None:
    """The bytes of ``path/model.sig`` (at most one byte over the cap), None when absent."""
    try:
        with open(Path(path) / OMS_SIGNATURE_FILE, "rb") as handle:
            return handle.read(MAX_SIGNATURE_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None


FORMATS = ("gptstore", "oms", "both")


def sign_package(package_dir: Path | str, *, key: str, passphrase: str | None = None,
                 format: str = "gptstore") -> SignResult:
    """Sign a package directory in ``format``: ``gptstore`` (gptstore.sig), ``oms`` (model.sig,
    needs a P-256 key) or ``both``; every file is checked against the manifest once, first."""
    from . import signing

    if format not in FORMATS:
        raise UsageError(f"unknown signature format {format!r}", hint="use gptstore, oms or both")
    root = Path(package_dir)
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", hint="give the package directory to sign")
    manifest = load_manifest(root)
    private_key, info = signing.load_private_key(key, passphrase)
    if format != "gptstore" and info.type != "ec-p256":
        raise UsageError(f"key {key!r} is {info.type}; {OMS_SIGNATURE_FILE} (OpenSSF model signing) needs a P-256 key",
                         hint=f"make one with `gptstore keys generate NAME --type ec-p256`, or sign with "
                              f"--format gptstore")
    signing.check_package(root, manifest)
    written: list[Path] = []
    if format in ("gptstore", "both"):
        written.append(signing.write_signature(root, manifest, private_key, info).path)
    if format in ("oms", "both"):
        from . import config
        # model_signing reads the key file itself, so it needs the passphrase load_private_key used
        secret = (passphrase if passphrase is not None else config.key_passphrase()) if info.encrypted else None
        written.append(sign_directory(root, info.path, secret))
    del private_key
    return SignResult(written[0], signing.reference_of(manifest), manifest.digest, info.name, info.keyid,
                      tuple(written))


__all__ = ["FORMATS", "GIT_PATHS", "sign_directory", "sign_package", "check_oms", "check_any", "read_oms"]
