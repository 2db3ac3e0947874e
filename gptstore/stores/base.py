"""The store interface and the scheme registry.

A store answers: search, resolve a reference to a manifest digest, read a manifest (and its
signature), list tags, read a file's bytes, and accept a pushed model. Backends register a factory
per URL scheme through the ``register_stores`` hook; a bare path means ``file``. The local library
is no exception: it is the ``file`` store of ``GPTSTORE_HOME``, registered by the built-in plugin
:mod:`gptstore.stores.local`, so a plugin that registers ``file`` first serves the default store too.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from .. import config, plugins
from ..errors import UnknownComponent, UsageError

if TYPE_CHECKING:
    from ..blobs import BlobWriter
    from ..library import LocalModel
    from ..manifest import FileEntry, Manifest
    from ..refs import Reference


@dataclass
class Located:
    """A model found in a store, pinned to an immutable revision of that store."""

    reference: Reference
    manifest: Manifest
    digest: str
    signature: bytes | None
    revision: str  # a hub commit id, or the manifest digest for a library
    oms_signature: bytes | None = None  # the OpenSSF model.sig beside the manifest (gptstore.oms)


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
    #: the manifest's pricing as ``{model, amount, currency}`` (``price`` is its label)
    pricing: dict[str, Any] = field(default_factory=lambda: {"model": "free", "amount": 0.0, "currency": "USD"})
    #: the catalogue: the manifest's category; what a store server adds (average stars and how many
    #: reviews; signed by a key registered for the namespace)
    category: str | None = None
    rating: float | None = None
    reviews: int = 0
    verified: bool = False

    @classmethod
    def of(cls, manifest: Manifest, digest: str | None = None, downloads: int = 0) -> SearchHit:
        """The hit for a manifest a store holds (its price labelled by :class:`~gptstore.manifest.Pricing`)."""
        return cls(reference=f"{manifest.repo_id}:{manifest.version}", version=manifest.version,
                   description=manifest.description, provider=manifest.provider.name if manifest.provider else None,
                   license=manifest.license, price=manifest.pricing.label(), downloads=downloads,
                   tags=list(manifest.tags), digest=digest,
                   pricing={"model": manifest.pricing.model, "amount": float(manifest.pricing.amount),
                            "currency": manifest.pricing.currency}, category=manifest.category)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


#: downloads and recent work everywhere; the others need a store server's catalogue
Sort = Literal["downloads", "recent", "trending", "rating", "newest", "price"]
#: what a store server ranks that the library cannot
SERVER_SORTS = ("trending", "rating", "newest", "price")
#: ``search(filters=…)`` keys (see ``gptstore.sdk.search``); ``verified`` needs a store server
FILTERS = ("category", "license", "min_price", "max_price", "min_parameters", "max_parameters", "format",
           "verified", "language")


class Store(ABC):
    """A place models live. Implementations: :class:`~gptstore.stores.local.LocalStore`, hubs."""

    url: str

    @abstractmethod
    def search(self, query: str = "", *, tag: str | None = None, sort: Sort = "recent",
               limit: int = 50, filters: dict[str, Any] | None = None) -> list[SearchHit]:
        """Models whose name, description, provider or tags match ``query`` and that pass
        ``filters`` (keys of :data:`FILTERS`, checked by ``gptstore.sdk.search``)."""

    @abstractmethod
    def locate(self, ref: Reference, *, revision: str | None = None, allow_unsafe: bool = False) -> Located:
        """Find a model (a pinned digest wins over the tag; ``revision`` pins the store's own
        revision, e.g. from a lock file) and read its manifest and signature, not its weights.

        ``allow_unsafe`` lets a store that imports plain repos (the Hub) take pickle-only weights;
        the safety checks of the pull still report them."""

    def resolve(self, ref: Reference) -> str:
        """The manifest digest a reference names."""
        return self.locate(ref).digest

    def manifest(self, ref: Reference) -> tuple[Manifest, str, bytes | None]:
        """(manifest, digest, signature bytes or None), the manifest checked against its digest."""
        located = self.locate(ref)
        return located.manifest, located.digest, located.signature

    @abstractmethod
    def fetch(self, located: Located, entry: FileEntry, writer: BlobWriter) -> None:
        """Write one file's bytes into ``writer``, after the ``writer.size`` bytes it already has."""

    @abstractmethod
    def tags(self, repo_id: str) -> dict[str, str]:
        """``{tag: manifest digest}`` of one model."""

    @abstractmethod
    def push(self, model: LocalModel, *, private: bool = False) -> str:
        """Publish a library model here; returns where it went."""


def stores() -> dict[str, Callable[[str], Store]]:
    """Every registered store factory by URL scheme."""
    found = plugins.collect("register_stores", "store scheme", key=lambda scheme, factory: scheme)
    return {scheme: args[1] for scheme, (_plugin, args, _kw) in found.items()}


def get_store(url: str | None = None, *, token: str | None = None, named: bool = True) -> Store:
    """The store for a URL; ``None`` means the effective store: ``GPTSTORE_STORE``, else ``hf://``
    (:func:`gptstore.config.effective_store`; ``HF_ENDPOINT`` moves it). The local library is the
    ``file`` store of ``GPTSTORE_HOME`` (:func:`library_store`). Every store comes from the factory
    registered for its scheme.

    ``named``: the user chose this store (``--store``, ``GPTSTORE_STORE``, an SDK argument), so
    ``token`` (e.g. from ``--token``), else ``GPTSTORE_TOKEN``, is passed to its factory. For a
    URL that came from data (a lock file's entry for another store) pass ``named=False``: then no
    token is passed and the store uses only a login saved for its own URL.
    """
    url = url or config.effective_store()
    token = (token or config.token()) if named else None
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if scheme == "file":
        _refuse_host_port(url)
    factories = stores()
    if scheme not in factories:
        raise UnknownComponent("store scheme", scheme, list(factories))
    return factories[scheme](url, token=token) if token else factories[scheme](url)


_HOST_PORT = re.compile(r"(?:localhost|[0-9.]+|\[[0-9a-fA-F:]+\]|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+):[0-9]{1,5}(?:/.*)?")


def _refuse_host_port(url: str) -> None:
    """``--store 127.0.0.1:8765`` is a server without its scheme, not a library directory."""
    if _HOST_PORT.fullmatch(url) and not Path(url).exists():
        raise UsageError(f"store {url[:200]} has no scheme", hint=f"did you mean --store http://{url[:200]} ?")


def library_store() -> Store:
    """The local library as a store (the ``file`` store of ``GPTSTORE_HOME``, from the registry)."""
    return get_store(f"file://{config.home()}", named=False)
