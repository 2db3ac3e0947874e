"""``HubStore``: huggingface.co (``hf://``) or any Hub-compatible endpoint (``http(s)://``).

On a hub a model is a repo ``namespace/name`` with ``gptstore.json``, ``gptstore.sig``, a
generated ``README.md`` card and the files; version ``1.2.0`` is the git tag ``v1.2.0`` and
``latest`` is ``main``. ``hf://`` is huggingface.co, or the Hub that ``HF_ENDPOINT`` names (a mirror,
or a local ``gptstore server`` in the tests); its token is ``HF_TOKEN`` when no other is given, and
``GPTSTORE_OFFLINE`` / ``HF_HUB_OFFLINE`` stop every request before it is made. A repo without a
``gptstore.json`` (any Hub causal LM) is imported as an unsigned package by :mod:`.hub_import`.

**Xet.** huggingface_hub 2.4 uploads through Xet whenever ``is_xet_available()`` says so: it reads
the process-wide ``constants.HF_HUB_DISABLE_XET`` at each call and takes no per-call argument. A
gptstore server (or any other endpoint than huggingface.co) has no Xet service, so a store for such
an endpoint gets a client (:func:`lfs_only_api`) whose uploads run inside :func:`without_xet`: a
context-local switch that the upload code's ``is_xet_available`` is routed through. The process-wide
setting is never changed, so a huggingface.co upload elsewhere in the process (another thread, a
later ``hf://`` store, the user's own code) still uses Xet. Routing means replacing the name
``is_xet_available`` in the huggingface_hub modules that ask it (:data:`XET_DECIDERS`), a coupling
to its internals that tests/stores/test_hub.py pins: should a later huggingface_hub decide
elsewhere, the push of a large file to a gptstore server there fails.

A store is untrusted. Everything read from it (model info, refs, manifest, signature, files,
search results) goes through :mod:`.bounded_http`: into memory or a BlobWriter, size-capped and
time-limited, never through ``huggingface_hub``'s file cache (which names files after the store's
headers). Commit ids a store sends are checked to be 40 hex before use; a version tag must hold a
manifest of that version (a validly signed older release served as a newer one is a rollback).
Writing (push) uses ``HfApi``; see :mod:`.hub_push` for how racing pushes of a version end.
"""

from __future__ import annotations

import functools
import importlib
import math
import re
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import quote, urljoin

from .. import config
from ..blobs import is_sha256
from ..errors import (AuthError, GPTStoreError, ManifestError, ModelNotFound, StoreError, UsageError)
from ..hookspecs import hookimpl
from .base import Located, SearchHit, Sort, Store
from .bounded_http import (MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, BoundedHTTP, check_commit_id, one_line,
                           origin, without_retries)
from .bounded_http import error_body, is_commit_id, is_non_hub_answer, not_hub_compatible

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from ..blobs import BlobWriter
    from ..library import LocalModel
    from ..manifest import FileEntry, Manifest
    from ..refs import Reference

HF_ENDPOINT = "https://huggingface.co"
#: manifests read at most while looking for a pinned digest among a model's tags
MAX_DIGEST_SEARCH = 100
#: pages of search results read at most
MAX_SEARCH_PAGES = 100
_TAG_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


#: the huggingface_hub modules whose upload code asks ``is_xet_available()`` (2.4: ``create_commit``
#: through ``_commit_api._upload_files``; ``upload_folder`` in ``hf_api``)
XET_DECIDERS = ("huggingface_hub._commit_api", "huggingface_hub.hf_api")
_xet_off: ContextVar[bool] = ContextVar("gptstore_xet_off", default=False)
_gate_lock = threading.Lock()


def _gate_xet() -> None:
    """Route the ``is_xet_available`` of :data:`XET_DECIDERS` through a gate that answers False
    inside :func:`without_xet` and huggingface_hub's own answer everywhere else (done once)."""
    with _gate_lock:
        for name in XET_DECIDERS:
            module = importlib.import_module(name)
            decide = module.is_xet_available
            if getattr(decide, "gptstore_gate", False):
                continue

            def gated(decide: Any = decide) -> bool:
                return False if _xet_off.get() else decide()

            gated.gptstore_gate = True  # type: ignore[attr-defined]
            module.is_xet_available = gated


@contextmanager
def without_xet() -> Iterator[None]:
    """Inside the block, in this thread (or task) only, huggingface_hub uploads over LFS, not Xet."""
    _gate_xet()
    token = _xet_off.set(True)
    try:
        yield
    finally:
        _xet_off.reset(token)


@functools.cache
def _lfs_only_api_class() -> type[HfApi]:
    from huggingface_hub import HfApi

    class LfsOnlyApi(HfApi):
        """An ``HfApi`` whose uploads never use Xet (for endpoints without a Xet service)."""

        def preupload_lfs_files(self, *args: Any, **kwargs: Any) -> Any:  # create_commit uploads here
            with without_xet():
                return super().preupload_lfs_files(*args, **kwargs)

        def upload_folder(self, *args: Any, **kwargs: Any) -> Any:
            with without_xet():
                return super().upload_folder(*args, **kwargs)

    return LfsOnlyApi


def lfs_only_api(endpoint: str, token: str | bool | None) -> HfApi:
    """An ``HfApi`` for ``endpoint`` that uploads over LFS, leaving Xet as it is for the rest of
    the process."""
    return _lfs_only_api_class()(endpoint=endpoint, token=token)


def revision_of(ref: Reference) -> str:
    """The hub revision a tag names: ``latest`` → ``main``, ``1.2.0`` → ``v1.2.0``."""
    from ..refs import SEMVER

    if ref.tag == "latest":
        return "main"
    return f"v{ref.tag}" if SEMVER.fullmatch(ref.tag) else ref.tag


class HubStore(Store):
    def __init__(self, url: str, *, token: str | None = None) -> None:
        """``token`` is used as given; without one, only a login saved for exactly this URL (or
        ``HF_TOKEN`` for ``hf://``) is used. ``GPTSTORE_TOKEN`` is applied by
        :func:`~gptstore.stores.base.get_store` to the store the user named, never here."""
        from huggingface_hub import HfApi

        if url.startswith("hf://"):  # "hf://" itself keeps its slashes; HF_ENDPOINT moves it (tests, mirrors)
            if url[len("hf://"):].strip("/"):
                raise UsageError(f"not a hub URL: {one_line(url, 100)}",
                                 hint="hf:// takes no host; set HF_ENDPOINT to use another Hub")
            self.url, self.endpoint = "hf://", config.hf_endpoint()
        elif url.startswith(("http://", "https://")):
            self.url = self.endpoint = url.rstrip("/")
        else:
            raise UsageError(f"not a hub URL: {url}", hint="use hf:// or http(s)://host:port")
        from .auth import token_for

        self.token = token or token_for(self.url)
        # no Xet service behind other endpoints than huggingface.co: LFS for this client's uploads only
        # huggingface_hub's retries off for our calls: a store that is down fails in a second, in one line
        self.api = without_retries(HfApi(endpoint=self.endpoint, token=self.token or False)
                                   if self.endpoint == HF_ENDPOINT else lfs_only_api(self.endpoint, self.token or False))
        self.http = BoundedHTTP(self.endpoint, self.token)

    # -- errors ------------------------------------------------------------------------------
    def _fail(self, exc: Exception, what: str, *, write: bool = False) -> GPTStoreError:
        """Turn a huggingface_hub error into one that says which problem it is and what to do."""
        from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled,
                                            RemoteEntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)

        login = f"pass --token, set GPTSTORE_TOKEN, or run `gptstore login --store {self.url}`"
        if isinstance(exc, GPTStoreError):
            return exc
        if isinstance(exc, OfflineModeIsEnabled):
            return StoreError(f"offline: cannot reach {self.url} for {what}",
                              hint="unset GPTSTORE_OFFLINE / HF_HUB_OFFLINE, or use a model already pulled")
        if isinstance(exc, (RevisionNotFoundError, RemoteEntryNotFoundError)):
            return ModelNotFound(what, where=self.url, hint="check the version with `gptstore search`")
        if isinstance(exc, GatedRepoError):  # before RepositoryNotFoundError, its base class
            page = f"{self.url if self.url != 'hf://' else self.endpoint}/{exc.repo_id or what}"
            if exc.response is not None and exc.response.status_code == 401:
                return AuthError(f"{what} is gated on {self.url}: sign in, then request access at {page}",
                                 hint=login)
            return AuthError(f"{what} is gated on {self.url}: request access at {page}",
                             hint="the provider approves requests; pull again once access is granted")
        if isinstance(exc, RepositoryNotFoundError):
            hint = ("it does not exist, or it is private and you are not authorised: " + login)
            return ModelNotFound(what, where=self.url, hint=hint)
        if isinstance(exc, HfHubHTTPError) and exc.response is not None:
            status = exc.response.status_code
            if is_non_hub_answer(status, exc.response.headers, error_body(exc.response)):
                return not_hub_compatible(self.url, what, status)
            message = one_line(exc.server_message or str(exc).splitlines()[0])
            said = f" (the store says: {message})" if exc.server_message else ""
            if status == 401:
                return AuthError(f"not authorised by {self.url} for {what}{said}", hint=login)
            if status == 403:
                return AuthError(f"{self.url} refused to write {what}{said or ' (forbidden)'}" if write else
                                 f"forbidden: {what} on {self.url}{said}",
                                 hint="use a write-scope token of a user who is a member of the namespace "
                                      "(`gptstore org add`), or push under your own namespace")
            return StoreError(f"{self.url} refused {what}: {message}")
        import httpx2

        if isinstance(exc, (OSError, httpx2.TransportError)):
            return StoreError(f"cannot reach {self.url} for {what}: {one_line(str(exc) or type(exc).__name__)}",
                              hint="check the URL and that the store is running")
        if isinstance(exc, httpx2.HTTPError):  # e.g. a body that does not decode
            return StoreError(f"{self.url} sent a broken answer for {what}: {one_line(str(exc) or type(exc).__name__)}",
                              hint="the store is broken or hostile; try again or use another store")
        raise exc

    def _check_online(self, what: str) -> None:
        variable = config.offline_variable()
        if variable:
            raise StoreError(f"offline ({variable} is set): {what} needs {self.url}",
                             hint=f"pull it while online, or unset {variable}")

    # -- reading (bounded, validated) --------------------------------------------------------
    def _api(self, repo_id: str, *parts: str) -> str:
        return "/".join([f"{self.endpoint}/api/models/{quote(repo_id, safe='/')}", *parts])

    def _file_url(self, repo_id: str, path: str, commit: str) -> str:
        return f"{self.endpoint}/{quote(repo_id, safe='/')}/resolve/{commit}/{quote(path, safe='/')}"

    def commit_of(self, repo_id: str, revision: str) -> str:
        """The commit id (checked: 40 hex) that a branch or tag of a model names now."""
        info, _ = self.http.get_json(self._api(repo_id, "revision", quote(revision, safe="")),
                                     what=f"the model info of {repo_id}")
        sha = info.get("sha") if isinstance(info, dict) else None
        return check_commit_id(sha, where=f"{self.url} (model info of {repo_id})")

    def refs(self, repo_id: str) -> tuple[str | None, dict[str, str]]:
        """(head commit of ``main`` or None, ``{tag name: commit}``), every commit id checked."""
        data, _ = self.http.get_json(self._api(repo_id, "refs"), what=f"the refs of {repo_id}")
        if not isinstance(data, dict):
            raise StoreError(f"{self.url} answered the refs of {repo_id} with something other than an object",
                             hint="the store is broken or hostile")
        where = f"{self.url} (refs of {repo_id})"
        main = None
        tags: dict[str, str] = {}
        for group in ("branches", "tags"):
            items = data.get(group) or []
            for item in items if isinstance(items, list) else []:
                name = item.get("name") if isinstance(item, dict) else None
                if not isinstance(name, str) or not _TAG_NAME.fullmatch(name):
                    continue  # not a name gptstore ever asks for
                commit = check_commit_id(item.get("targetCommit"), where=where)
                if group == "branches":
                    main = commit if name == "main" else main
                else:
                    tags[name] = commit
        return main, tags

    def read_file(self, repo_id: str, path: str, commit: str, *, limit: int) -> bytes | None:
        """A small file of a commit, into memory (at most ``limit`` bytes); None when it is absent."""
        from huggingface_hub.errors import RemoteEntryNotFoundError

        commit = check_commit_id(commit, where=self.url)
        try:
            return self.http.get_bytes(self._file_url(repo_id, path, commit), limit=limit,
                                       what=f"{path} of {repo_id}")
        except RemoteEntryNotFoundError:
            return None

    def manifest_at(self, repo_id: str, commit: str) -> Manifest | None:
        """The parsed manifest of a commit, or None when the commit has none."""
        from ..manifest import MANIFEST_FILE, parse_bytes

        data = self.read_file(repo_id, MANIFEST_FILE, commit, limit=MAX_MANIFEST_BYTES)
        return None if data is None else parse_bytes(data, source=f"{MANIFEST_FILE} of {repo_id} on {self.url}")

    def locate(self, ref: Reference, *, revision: str | None = None, allow_unsafe: bool = False) -> Located:
        """Resolve a reference to a commit and read its manifest and signature (no weights).

        A plain repo (no manifest) is imported; ``allow_unsafe`` lets it bring pickle-only weights.
        """
        from ..manifest import MANIFEST_FILE, OMS_SIGNATURE_FILE, SIGNATURE_FILE, parse_bytes

        self._check_online(f"resolving {ref}")
        what = str(ref)
        if revision is not None:
            commit = str(revision)
            if not is_commit_id(commit):
                raise UsageError(f"invalid revision {commit[:60]!r} for {ref} on {self.url}",
                                 hint="a hub revision is a commit id of 40 hex characters (see the lock file)")
        try:
            if revision is None:
                commit = self._find_digest(ref) if ref.digest else self.commit_of(ref.repo_id, revision_of(ref))
            data = self.read_file(ref.repo_id, MANIFEST_FILE, commit, limit=MAX_MANIFEST_BYTES)
            signature = self.read_file(ref.repo_id, SIGNATURE_FILE, commit, limit=MAX_SIGNATURE_BYTES)
            oms = (self.read_file(ref.repo_id, OMS_SIGNATURE_FILE, commit, limit=MAX_SIGNATURE_BYTES)
                   if data is not None else None)
        except Exception as exc:
            raise self._fail(exc, what) from exc
        if data is None:  # a plain Hub repo (e.g. openai-community/gpt2): imported as an unsigned package
            from .hub_import import import_located

            return import_located(self, ref, commit, allow_unsafe=allow_unsafe)
        manifest = parse_bytes(data, source=f"{MANIFEST_FILE} of {ref.repo_id} on {self.url}")
        if manifest.repo_id != ref.repo_id:
            raise ManifestError(f"{MANIFEST_FILE} of {ref.repo_id} names another model ({manifest.repo_id})")
        if ref.digest and manifest.digest != ref.digest:
            raise ModelNotFound(what, where=self.url,
                                hint=f"the store has sha256:{manifest.digest[:12]}… at that revision")
        check_version(ref, manifest, self.url)
        return Located(ref, manifest, manifest.digest, signature, commit, oms)

    def _find_digest(self, ref: Reference) -> str:
        """The commit whose manifest has the pinned digest: the tag first, then every tag and main."""
        main, tags = self.refs(ref.repo_id)
        candidates = []
        if ref.explicit_tag and revision_of(ref) in tags:
            candidates.append(tags[revision_of(ref)])
        candidates += list(tags.values()) + ([main] if main else [])
        for commit in list(dict.fromkeys(candidates))[:MAX_DIGEST_SEARCH]:
            try:
                manifest = self.manifest_at(ref.repo_id, commit)
            except ManifestError:
                continue  # a broken manifest at another tag does not hide the one asked for
            if manifest is not None and manifest.digest == ref.digest:
                return commit
        raise ModelNotFound(str(ref), where=self.url, hint="no tag or main of that model has this digest")

    def tags(self, repo_id: str) -> dict[str, str]:
        """``{version: commit}`` of the model's version tags, plus ``latest``."""
        self._check_online(f"listing tags of {repo_id}")
        try:
            main, refs = self.refs(repo_id)
        except Exception as exc:
            raise self._fail(exc, repo_id) from exc
        tags = {name[1:]: commit for name, commit in refs.items() if name.startswith("v")}
        if main:
            tags["latest"] = main
        return tags

    def search(self, query: str = "", *, tag: str | None = None, sort: Sort = "recent",
               limit: int = 50, filters: dict[str, Any] | None = None) -> list[SearchHit]:
        """``list_models`` with the catalogue's filters and sorts as query parameters (a store
        server applies them; the Hub ignores what it does not know)."""
        self._check_online("search")
        params: list[tuple[str, str]] = [("filter", "gptstore")] + ([("filter", tag)] if tag else [])
        params += [("search", query)] if query else []
        params += [("sort", _HUB_SORTS.get(sort, sort)), ("limit", str(limit))]
        for name, value in (filters or {}).items():
            values = [value] if isinstance(value, (str, int, float)) else list(value or ())
            params += [(name, str(item).lower() if isinstance(item, bool) else str(item)) for item in values
                       if item is not None and item is not False]
        url: str = f"{self.endpoint}/api/models"
        query_params: Any = params
        hits: list[SearchHit] = []
        try:
            for _page in range(MAX_SEARCH_PAGES):
                data, links = self.http.get_json(url, what="search", params=query_params)
                if not isinstance(data, list):
                    raise StoreError(f"{self.url} answered a search with something other than a list",
                                     hint="the store is broken or hostile")
                hits += [hit for hit in map(_hit, data) if hit is not None]
                following = (links.get("next") or {}).get("url") if isinstance(links, dict) else None
                if len(hits) >= limit or not following:
                    break
                url, query_params = urljoin(url, following), None
                if origin(url) != origin(self.endpoint):
                    break  # results come from the store itself, never from where it points
        except Exception as exc:
            raise self._fail(exc, "search") from exc
        return hits[:limit]

    def fetch(self, located: Located, entry: FileEntry, writer: BlobWriter) -> None:
        """Stream one file into ``writer`` (hashing as it writes), resuming after its bytes; the
        body stops at the manifest's size."""
        self._check_online(f"downloading {entry.path}")
        manifest = located.manifest
        label = f"{manifest.repo_id}:{manifest.version} {entry.path}"
        try:
            commit = check_commit_id(located.revision, where=self.url)
            url = self._file_url(located.reference.repo_id, entry.path, commit)
            self.http.download(url, writer, size=entry.size, what=label)
        except Exception as exc:
            raise self._fail(exc, f"{located.reference} file {entry.path}") from exc

    # -- writing -----------------------------------------------------------------------------
    def push(self, model: LocalModel, *, private: bool = False) -> str:
        """Upload a library model: only what the remote lacks, on top of the head it read, then tag
        the version; a racing push of the same version ends in one winner (see :mod:`.hub_push`)."""
        from .hub_push import push

        return push(self, model, private=private)


def check_version(ref: Reference, manifest: Manifest, where: str) -> None:
    """A version tag must hold a manifest of that version: a validly signed 0.9.0 served for
    ``:1.0.0`` is a rollback (or a mis-tagged release) and is refused."""
    from ..refs import SEMVER

    if SEMVER.fullmatch(ref.tag) and manifest.version != ref.tag:
        raise ManifestError(f"{ref.repo_id}:{ref.tag} on {where} holds a manifest of version {manifest.version}; "
                            "refusing it (a rollback or a mis-tagged release)",
                            hint="tell the store's operator; pin an exact release with @sha256:<digest>")


#: the Hub's names of the sorts it also has (rating and price are a store server's own)
_HUB_SORTS = {"recent": "lastModified", "trending": "trendingScore", "newest": "createdAt"}


def _text(value: Any, limit: int = 200) -> str:
    return one_line(value, limit) if isinstance(value, str) else ""


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _hit(info: Any) -> SearchHit | None:
    """One search result from a store's JSON; anything malformed is dropped or blanked, and every
    text made one printable line (no terminal escapes from a store)."""
    from ..manifest import Pricing

    if not isinstance(info, dict) or not isinstance(info.get("id"), str):
        return None
    summary = _dict(info.get("gptstore"))
    pricing = _dict(summary.get("pricing"))
    amount = pricing.get("amount", 0)
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
        amount = 0
    priced = Pricing.unchecked(_text(pricing.get("model")) or "free", amount,
                               _text(pricing.get("currency"), 8) or "USD")
    price = priced.label()
    version = _text(summary.get("version"), 64)
    repo_id = _text(info["id"], 200)
    downloads = info.get("downloads")
    digest = summary.get("digest")
    tags = summary.get("tags")
    rating = _dict(summary.get("rating"))
    average, reviews = rating.get("average"), rating.get("count")
    return SearchHit(reference=f"{repo_id}:{version}" if version else repo_id, version=version,
                     description=_text(summary.get("description"), 2000),
                     provider=_text(_dict(summary.get("provider")).get("name")) or None,
                     license=_text(summary.get("license"), 64) or None, price=price,
                     pricing={"model": priced.model, "amount": float(priced.amount), "currency": priced.currency},
                     downloads=downloads if isinstance(downloads, int) and not isinstance(downloads, bool) else 0,
                     tags=[_text(t, 64) for t in tags[:50] if isinstance(t, str)] if isinstance(tags, list) else [],
                     digest=digest if is_sha256(digest) else None,
                     category=_text(summary.get("category"), 32) or None,
                     rating=float(average) if isinstance(average, (int, float)) and not isinstance(average, bool)
                     and math.isfinite(average) else None,
                     reviews=reviews if isinstance(reviews, int) and not isinstance(reviews, bool) else 0,
                     verified=summary.get("verified") is True)


def _factory(url: str, **options: Any) -> HubStore:
    return HubStore(url, **options)


@hookimpl(trylast=True)  # a built-in: plugins registering the same name override it
def register_stores(register):
    register("hf", _factory)
    register("http", _factory)
    register("https", _factory)
