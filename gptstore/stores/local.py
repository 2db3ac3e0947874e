"""A library on disk used as a store: the default, and any ``file://`` path or bare path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..hookspecs import hookimpl
from ..errors import UsageError
from .base import SERVER_SORTS, Located, SearchHit, Sort, Store

if TYPE_CHECKING:
    from ..blobs import BlobWriter
    from ..library import LocalModel
    from ..manifest import FileEntry, Manifest
    from ..refs import Reference


def _matches(manifest: Manifest, query: str) -> bool:
    if not query:
        return True
    text = " ".join([manifest.repo_id, manifest.description, " ".join(manifest.tags),
                     manifest.provider.name if manifest.provider else ""]).lower()
    return all(word in text for word in query.lower().split())


def _passes(manifest: Manifest, filters: dict[str, Any]) -> bool:
    """Whether a library model passes the catalogue ``filters`` (as a store server applies them)."""
    checks = {
        "category": lambda v: manifest.category in ([v] if isinstance(v, str) else list(v)),
        "license": lambda v: manifest.license.lower() == v.lower(),
        "min_price": lambda v: manifest.pricing.amount >= v,
        "max_price": lambda v: manifest.pricing.amount <= v,
        "min_parameters": lambda v: manifest.format.parameters >= v,
        "max_parameters": lambda v: manifest.format.parameters <= v,
        "format": lambda v: ("adapter" if manifest.format.base else "full") == v,
        "language": lambda v: v.lower() in (language.lower() for language in manifest.languages),
    }
    return all(checks[name](value) for name, value in filters.items() if name in checks)


class LocalStore(Store):
    def __init__(self, root: Path | str | None = None) -> None:
        from ..library import Library

        self.library = Library(root)
        self.url = f"file://{self.library.root}"

    def search(self, query: str = "", *, tag: str | None = None, sort: Sort = "recent",
               limit: int = 50, filters: dict[str, Any] | None = None) -> list[SearchHit]:
        filters = {k: v for k, v in (filters or {}).items() if v is not None and v is not False}
        if sort in SERVER_SORTS or "verified" in filters:
            asked = f"--sort {sort}" if sort in SERVER_SORTS else "--verified"
            raise UsageError(f"{asked} needs a store server's catalogue; the local library has no ratings, "
                             "download history or registered keys", hint="search a store: --store URL")
        latest: dict[str, Manifest] = {}
        digests: dict[str, str] = {}
        for entry, manifest in self.library.iter_models():
            if entry.tag != "latest" or not _matches(manifest, query):
                continue
            if (tag and tag not in manifest.tags) or not _passes(manifest, filters):
                continue
            latest[entry.repo_id] = manifest
            digests[entry.repo_id] = entry.digest
        ordered = sorted(latest.values(), key=lambda m: m.created_at, reverse=True)
        return [SearchHit.of(m, digests[m.repo_id]) for m in ordered[:limit]]

    def locate(self, ref: Reference, *, revision: str | None = None, allow_unsafe: bool = False) -> Located:
        # allow_unsafe only matters to importing stores; a library holds packages with manifests
        digest = revision or self.library.resolve(ref)[1]
        return Located(ref, self.library.manifest(digest), digest, self.library.signature(digest), digest,
                       self.library.oms_signature(digest))

    def tags(self, repo_id: str) -> dict[str, str]:
        return self.library.tags(repo_id)

    def fetch(self, located: Located, entry: FileEntry, writer: BlobWriter) -> None:
        for chunk in self.library.blobs.iter_range(entry.sha256, start=writer.size):
            writer.write(chunk)

    def push(self, model: LocalModel, *, private: bool = False) -> str:
        for entry in model.manifest.files:
            if not self.library.blobs.has(entry.sha256):
                self.library.blobs.put_file(model.path / entry.path, expected_sha256=entry.sha256,
                                            label=entry.path)
        source_sig = model.path / "gptstore.sig"
        signature = source_sig.read_bytes() if source_sig.is_file() else None
        self.library.add(model.manifest, signature=signature)
        return f"{self.url}#{model.manifest.repo_id}:{model.manifest.version}"


def _from_url(url: str, **_options) -> LocalStore:
    """A library directory as a store. The local library itself (``GPTSTORE_HOME``, what
    :func:`~gptstore.stores.base.get_store` gives when no store is named) may not exist yet: it is
    made by the first write. Any other directory must already be a library."""
    from .. import config
    from ..errors import UsageError

    root = Path(url[len("file://"):] if url.startswith("file://") else url).expanduser()
    if not root.is_dir() and root.absolute() != config.home().absolute():
        raise UsageError(f"store {url} is not a library directory", hint="give a GPTSTORE_HOME-style directory")
    return LocalStore(root)


@hookimpl(trylast=True)  # a built-in: plugins registering the same name override it
def register_stores(register):
    register("file", _from_url)
