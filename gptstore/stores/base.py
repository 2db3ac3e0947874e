"""The store interface and the scheme registry.

A store answers: search, resolve a reference to a manifest digest, read a manifest (and its
signature), list tags, read a file's bytes, and accept a pushed model. Backends register a factory
per URL scheme through the ``register_stores`` hook; a bare path means ``file``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

from .. import config, plugins
from ..errors import UnknownComponent

if TYPE_CHECKING:
    from ..library import LocalModel
    from ..manifest import Manifest
    from ..refs import Reference


@dataclass
class SearchHit:
    """One search result, as ``gptstore search`` prints it."""

    reference: str
    version: str
    description: str = ""
    provider: str | None = None
    license: str | None = None
    price: str = "free"
    downloads: int = 0
    tags: list[str] = field(default_factory=list)
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def price_label(manifest: Manifest) -> str:
    pricing = manifest.pricing
    if pricing.model == "free":
        return "free"
    unit = "/1k tokens" if pricing.model == "per_1k_tokens" else " flat"
    return f"{pricing.amount:g} {pricing.currency}{unit}"


def hit_for(manifest: Manifest, digest: str | None = None, downloads: int = 0) -> SearchHit:
    return SearchHit(reference=f"{manifest.repo_id}:{manifest.version}", version=manifest.version,
                     description=manifest.description, provider=manifest.provider.name if manifest.provider else None,
                     license=manifest.license, price=price_label(manifest), downloads=downloads,
                     tags=list(manifest.tags), digest=digest)


Sort = Literal["downloads", "recent"]


class Store(ABC):
    """A place models live. Implementations: :class:`~gptstore.stores.local.LocalStore`, hubs."""

    url: str

    @abstractmethod
    def search(self, query: str = "", *, tag: str | None = None, sort: Sort = "recent",
               limit: int = 50) -> list[SearchHit]:
        """Models whose name, description, provider or tags match ``query``."""

    @abstractmethod
    def resolve(self, ref: Reference) -> str:
        """The manifest digest a reference names (a pinned digest wins over the tag)."""

    @abstractmethod
    def manifest(self, ref: Reference) -> tuple[Manifest, str, bytes | None]:
        """(manifest, digest, signature bytes or None), the manifest checked against its digest."""

    @abstractmethod
    def tags(self, repo_id: str) -> dict[str, str]:
        """``{tag: manifest digest}`` of one model."""

    @abstractmethod
    def iter_file(self, ref: Reference, path: str) -> Iterator[bytes]:
        """The bytes of one package file, in chunks."""

    @abstractmethod
    def push(self, model: LocalModel, *, private: bool = False) -> str:
        """Publish a library model here; returns where it went."""


def stores() -> dict[str, Callable[[str], Store]]:
    """Every registered store factory by URL scheme."""
    found = plugins.collect("register_stores", "store scheme", key=lambda scheme, factory: scheme)
    return {scheme: args[1] for scheme, (_plugin, args, _kw) in found.items()}


def get_store(url: str | None = None) -> Store:
    """The store for a URL; ``None`` means ``GPTSTORE_STORE`` or else the local library."""
    url = url or config.default_store()
    if url is None:
        from .local import LocalStore

        return LocalStore()
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    factories = stores()
    if scheme not in factories:
        raise UnknownComponent("store scheme", scheme, list(factories))
    return factories[scheme](url)
