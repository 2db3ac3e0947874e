"""Finding an adapter's base model in the local library, by reference and manifest digest."""

from __future__ import annotations

from pathlib import Path

from gptstore.errors import DigestMismatch, ModelNotFound, PackageError
from gptstore.library import Library, LocalModel
from gptstore.manifest import BaseModelRef, Manifest
from gptstore.refs import parse as parse_ref

#: the package format a base must have (the engine loads it with the transformers engine)
BASE_FORMAT = "transformers"


def library_of(snapshot: Path) -> Library:
    """The library a snapshot directory belongs to (``<root>/snapshots/<digest>``), else the default."""
    snapshot = Path(snapshot)
    root = snapshot.parent.parent
    if snapshot.parent.name == "snapshots" and (root / "manifests").is_dir():
        return Library(root)
    return Library()


def check_base_format(base: LocalModel, what: str) -> None:
    if base.manifest.format.adapter != BASE_FORMAT:
        raise PackageError(f"base {base.manifest.repo_id}:{base.manifest.version} of {what} is a "
                           f"{base.manifest.format.adapter!r} package; a peft adapter's base must be a full "
                           f"model ({BASE_FORMAT!r} format)", hint="package the adapter over the full base model")


def find_base(manifest: Manifest, library: Library) -> LocalModel:
    """The base an adapter package was made for: exactly the manifest digest it pins.

    Refused, naming both digests, when the library has the base's reference with other content;
    refused when it does not have the base at all. The hint says what to pull.
    """
    base: BaseModelRef | None = manifest.format.base
    adapter = f"{manifest.repo_id}:{manifest.version}"
    if base is None:
        raise PackageError(f"{adapter} is a peft package without a base model (format.base)",
                           hint="package it again with --base REF")
    pinned = f"{base.reference}@sha256:{base.digest}"
    if library.has_manifest(base.digest):
        found = library.get(pinned)
        check_base_format(found, adapter)
        return found
    try:
        _, have = library.resolve(parse_ref(base.reference))
    except ModelNotFound:
        raise ModelNotFound(pinned, hint=f"{adapter} is an adapter over this base: run `gptstore pull {pinned}` "
                                         "(with --store URL: the store the adapter came from)") from None
    raise DigestMismatch(
        f"{adapter} was made for base {base.reference} sha256:{base.digest}, but the local library has "
        f"{base.reference} as sha256:{have}",
        reference=base.reference, expected=base.digest, actual=have,
        hint=f"get the base it was made for: `gptstore rm {base.reference}` (that tag names other content here), "
             f"then `gptstore pull {pinned}`")
