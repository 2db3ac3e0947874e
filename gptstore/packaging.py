"""Make a package: inspect a model directory with an adapter and write its ``gptstore.json``.

Writing a new manifest makes a ``gptstore.sig`` beside it stale (it signs the digest of the old
one): it is removed, with a warning saying to sign again, so that ``publish`` and ``push`` never
ship a signature that does not match.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from . import plugins
from .adapters import Adapter, adapters, get_adapter
from .blobs import hash_file
from .errors import ManifestError, PackageError, UsageError
from .fsutil import package_files
from .manifest import (MANIFEST_FILE, METADATA_FILES, OMS_SIGNATURE_FILE, SCHEMA_VERSION, SIGNATURE_FILE, Manifest,
                       dumps, load_manifest, save, validate)
from .refs import parse_repo_id
from .signed_digest import MAX_BYTES, signed_digest

log = logging.getLogger("gptstore.packaging")

#: fields a prepare_manifest plugin may not change
PROTECTED = frozenset({"files", "format", "namespace", "name", "version", "schema_version"})


def pick_adapter(path: Path, name: str | None) -> Adapter:
    if name:
        return get_adapter(name)
    for adapter in adapters().values():
        if adapter.detect(path):
            return adapter
    raise PackageError(f"no adapter recognises {path}", path=path,
                       hint="pass --adapter NAME (see `gptstore plugins`) or check the directory")


def file_entries(root: Path) -> list[dict[str, Any]]:
    from concurrent.futures import ThreadPoolExecutor

    paths = package_files(root, skip=METADATA_FILES)
    with ThreadPoolExecutor(max_workers=4) as pool:
        hashes = list(pool.map(lambda rel: hash_file(root / rel), paths))
    return [{"path": rel, "size": size, "sha256": sha} for rel, (sha, size) in zip(paths, hashes)]


def package(path: Path | str, *, name: str, version: str, adapter: str | None = None,
            allow_unsafe: bool = False, base: str | None = None, **fields: Any) -> Manifest:
    """Write ``path/gptstore.json`` for a model directory and return the manifest.

    Fields of an existing ``gptstore.json`` (e.g. the metrics and provenance that ``finetune``
    drafted) are kept unless given again in ``fields``; the format and the file list are always
    recomputed, and the manifest is written in the current :data:`~gptstore.manifest.SCHEMA_VERSION`
    (an earlier version-1 draft is upgraded: its fields all mean the same in version 2).
    ``fields`` include the catalogue's ``category`` and ``use_cases`` (``--category``,
    ``--use-case``). ``prepare_manifest`` plugins may then enrich it. ``base`` (a library reference)
    is for formats over a base model (e.g. ``peft``): it is passed to the adapter's ``inspect``
    (the :class:`~gptstore.adapters.Adapter` protocol), which records it as ``format.base``; a
    format that is not over a base refuses it.
    """
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", hint="give the model directory to package")
    ref = parse_repo_id(name)
    chosen = pick_adapter(root, adapter)
    format_fields = chosen.inspect(root, allow_unsafe=allow_unsafe, base=base)
    data: dict[str, Any] = {}
    if (root / MANIFEST_FILE).is_file():
        data = load_manifest(root).model_dump(exclude_none=True)
        data.pop("created_at", None)
    data.update({k: v for k, v in fields.items() if v is not None})
    data.update(schema_version=SCHEMA_VERSION, namespace=ref.namespace, name=ref.name, version=version,
                format=format_fields, files=file_entries(root))
    manifest = validate(data, source=f"manifest for {root}")
    for plugin, updates in plugins.call_each("prepare_manifest", strict=True, manifest=manifest, path=root):
        if not updates:
            continue
        bad = PROTECTED & set(updates)
        if bad:
            raise ManifestError(f"plugin {plugin!r} tried to change {', '.join(sorted(bad))} in prepare_manifest",
                                hint="plugins may enrich descriptive fields only")
        merged = manifest.model_dump(exclude_none=True) | updates
        manifest = validate(merged, source=f"manifest after plugin {plugin!r}")
    save(manifest, root)
    drop_stale_signature(root, manifest)
    return manifest


def stale_signature(root: Path, manifest: Manifest) -> str | None:
    """One warning line when ``root/gptstore.sig`` does not sign ``manifest`` (``publish`` says it:
    the library keeps the signature, and ``verify`` / ``push`` then name it as stale); else None."""
    sig = root / SIGNATURE_FILE
    if not sig.is_file() or _signed(sig) == manifest.digest:
        return None
    return (f"{sig} signs another manifest than {MANIFEST_FILE} (it is stale); sign again with "
            f"`gptstore sign {root} --key NAME` and publish again")


def drop_stale_signature(root: Path, manifest: Manifest) -> bool:
    """Remove ``root/gptstore.sig`` when it does not sign ``manifest``, and ``root/model.sig`` when
    it lists another ``gptstore.json`` (warning once each); True if either was removed. A
    ``model.sig`` over the files only (made before packaging) does not cover the manifest: it stays."""
    removed = False
    sig = root / SIGNATURE_FILE
    if sig.is_file() and (signed := _signed(sig)) != manifest.digest:
        sig.unlink()
        was = f"sha256:{signed[:12]}…" if signed else "no readable manifest"
        log.warning("removed %s: it signed the previous manifest (%s), not this one (sha256:%s…); sign again with "
                    "`gptstore sign %s --key NAME`", sig, was, manifest.digest[:12], root)
        removed = True
    oms = root / OMS_SIGNATURE_FILE
    if oms.is_file():
        with oms.open("rb") as fh:
            listed = _oms_listed_manifest(fh.read(MAX_BYTES + 1))
        if listed is not None and listed != hashlib.sha256(dumps(manifest)).hexdigest():
            oms.unlink()
            log.warning("removed %s: it covered the previous %s, not this one; sign again with "
                        "`gptstore sign %s --key NAME --format oms`", oms, MANIFEST_FILE, root)
            removed = True
    return removed


def _oms_listed_manifest(data: bytes) -> str | None:
    """The sha256 a ``model.sig`` lists for ``gptstore.json`` (as ``gptstore sign --format oms``
    writes it), read without checking the signature (gptstore.oms does that); None when it lists
    none or cannot be read."""
    try:
        statement = json.loads(base64.b64decode(json.loads(data)["dsseEnvelope"]["payload"]))
        for resource in statement["predicate"]["resources"]:
            if resource["name"] == MANIFEST_FILE and resource["algorithm"] == "sha256":
                return str(resource["digest"])
    except (ValueError, KeyError, TypeError):  # binascii.Error and JSONDecodeError are ValueErrors
        return None
    return None


def _signed(sig: Path) -> str | None:
    with sig.open("rb") as fh:
        return signed_digest(fh.read(MAX_BYTES + 1))
