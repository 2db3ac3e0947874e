"""Lock files: the exact models a project uses, by store, manifest digest and store revision.

``gptstore lock REF… > gptstore.lock`` writes one; ``gptstore pull --lock gptstore.lock``
reproduces exactly those bytes (the manifest digest pins every file) or fails.

A lock file may come from a stranger: its store URLs are data, not the user's choice, so
``--token`` / ``GPTSTORE_TOKEN`` go only to entries on the store the user named (``--store`` or
``GPTSTORE_STORE``); other entries get only a login saved for their own URL. Revisions must be
commit ids (40 hex) or, for a library store, manifest digests (64 hex).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ModelNotFound, UsageError
from .refs import Reference, parse_reference

if TYPE_CHECKING:
    from .stores.base import Store

LOCK_VERSION = 1


class LockedModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    store: str = Field(description="Store URL the model came from.")
    reference: str = Field(description="Reference as the user wrote it, e.g. acme/poet:1.0.0.")
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="Manifest digest.")
    # pydantic's regex engine (Rust): ``$`` is the end of the text, so a trailing newline fails too
    revision: str = Field(pattern=r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$",
                          description="The store's immutable revision: a hub commit id, or a library's "
                                      "manifest digest.")


class LockFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(LOCK_VERSION, description="Lock file format version.")
    models: list[LockedModel] = Field(default_factory=list)


def lock(references: list[str], *, store: str | None = None, token: str | None = None) -> LockFile:
    """Pin each reference to its manifest digest and the store's revision.

    With ``store`` (or ``GPTSTORE_STORE``), every reference is looked up there. Without, a model in the local library
    is pinned on the store it was pulled from (recorded at pull: a consumer of the lock file
    cannot reach this machine's library), and one that was only published here is refused with a
    hint to pass ``--store`` or push it first; a model not in the library is looked up on the
    effective store (``hf://``).
    """
    from . import config
    from .stores.base import get_store

    store = store or config.default_store()
    named = get_store(store, token=token) if store else None
    models = []
    for text in references:
        ref = parse_reference(text)
        source = named or _origin_store(ref, text, token)
        located = source.locate(ref)
        models.append(LockedModel(store=source.url, reference=text, digest=f"sha256:{located.digest}",
                                  revision=located.revision))
    return LockFile(models=models)


def _origin_store(ref: Reference, text: str, token: str | None) -> Store:
    """The store ``ref`` was pulled from; the effective store when the library lacks it."""
    from . import config
    from .library import Library
    from .origins import read_origin
    from .stores.auth import same_store
    from .stores.base import get_store

    library = Library()
    try:
        _, digest = library.resolve(ref)
    except ModelNotFound:
        return get_store(None, token=token)
    origin = read_origin(library.root, digest)
    if origin is None:
        raise UsageError(f"{text} was published to the local library only, so no store to pin it on is known",
                         hint=f"pass --store URL (where it is pushed), or push it first: `gptstore push {text} "
                              "--store URL`")
    return get_store(origin, token=token, named=same_store(origin, config.effective_store()))


def dumps(lockfile: LockFile) -> str:
    return json.dumps(lockfile.model_dump(), indent=2) + "\n"


def read(path: Path | str) -> LockFile:
    path = Path(path)
    try:
        data: Any = json.loads(path.read_text())
        return LockFile.model_validate(data)
    except FileNotFoundError:
        raise UsageError(f"no lock file at {path}", hint="write one with `gptstore lock REF... > gptstore.lock`") from None
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise UsageError(f"{path} is not a valid gptstore lock file ({first})") from None


def pull_locked(lockfile: LockFile, *, token: str | None = None, allow_unsafe: bool = False, progress=None,
                store: str | None = None):
    """Pull every locked model at its locked revision; a different digest fails.

    ``store`` is the store the user named (default ``GPTSTORE_STORE``): ``token`` (else
    ``GPTSTORE_TOKEN``) is used only for entries on that store, never sent to another URL.
    """
    from . import config
    from .pulling import pull
    from .stores.auth import same_store
    from .stores.base import get_store

    named = store or config.default_store()
    results = []
    for item in lockfile.models:
        ref = parse_reference(item.reference)
        pinned = parse_reference(f"{ref.repo_id}:{ref.tag}@{item.digest}")
        source = get_store(item.store, token=token, named=same_store(item.store, named))
        results.append(pull(pinned, store=source, revision=item.revision,
                            allow_unsafe=allow_unsafe, progress=progress))
    return results
