"""``HubStore``: huggingface.co (``hf://``) or any Hub-compatible endpoint (``http(s)://``).

Everything goes through ``huggingface_hub``. On a hub a model is a repo ``namespace/name`` with
``gptstore.json``, ``gptstore.sig``, a generated ``README.md`` card and the files; version
``1.2.0`` is the git tag ``v1.2.0`` and ``latest`` is ``main``. For endpoints other than
huggingface.co, Xet is switched off in-process (uploads then use the LFS batch API).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import config
from ..errors import (AuthError, ConflictError, GPTStoreError, ManifestError, ModelNotFound, StoreError,
                      UsageError)
from ..hookspecs import hookimpl
from .base import Located, SearchHit, Sort, Store, format_price

if TYPE_CHECKING:
    from ..blobs import BlobWriter
    from ..library import LocalModel
    from ..manifest import FileEntry
    from ..refs import Reference

HF_ENDPOINT = "https://huggingface.co"
MANIFEST = "gptstore.json"
SIGNATURE = "gptstore.sig"
CARD = "README.md"


def revision_of(ref: Reference) -> str:
    """The hub revision a tag names: ``latest`` → ``main``, ``1.2.0`` → ``v1.2.0``."""
    from ..refs import SEMVER

    if ref.tag == "latest":
        return "main"
    return f"v{ref.tag}" if SEMVER.match(ref.tag) else ref.tag


class _Sink:
    """The file object ``huggingface_hub.file_download.http_get`` writes into: a BlobWriter."""

    def __init__(self, writer: BlobWriter) -> None:
        self.writer = writer

    def write(self, data: bytes) -> int:
        self.writer.write(data)
        return len(data)

    def tell(self) -> int:
        return self.writer.size

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset == 0 and whence == 0:  # the server ignored Range: start the blob over
            self.writer.restart()
        return self.writer.size

    def truncate(self, size: int | None = None) -> int:
        return self.writer.size


def _silent_bar() -> type:
    """A progress bar class that shows nothing: pull shows one bar for all files itself."""
    from tqdm import tqdm

    class Silent(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


class HubStore(Store):
    def __init__(self, url: str, *, token: str | None = None) -> None:
        from huggingface_hub import HfApi, constants

        self.url = url.rstrip("/")
        if self.url.startswith("hf://"):
            self.endpoint = HF_ENDPOINT
        elif self.url.startswith(("http://", "https://")):
            self.endpoint = self.url
        else:
            raise UsageError(f"not a hub URL: {url}", hint="use hf:// or http(s)://host:port")
        if self.endpoint != HF_ENDPOINT:
            constants.HF_HUB_DISABLE_XET = True  # protocol doc §4: no Xet server behind other endpoints
        from .auth import token_for

        self.token = token or token_for(self.url)
        self.api = HfApi(endpoint=self.endpoint, token=self.token or False)

    # -- errors ------------------------------------------------------------------------------
    def _fail(self, exc: Exception, what: str, *, write: bool = False) -> GPTStoreError:
        """Turn a huggingface_hub error into one that says which problem it is and what to do."""
        from huggingface_hub.errors import (HfHubHTTPError, OfflineModeIsEnabled, RemoteEntryNotFoundError,
                                            RepositoryNotFoundError, RevisionNotFoundError)

        login = f"pass --token, set GPTSTORE_TOKEN, or run `gptstore login --store {self.url}`"
        if isinstance(exc, OfflineModeIsEnabled):
            return StoreError(f"offline: cannot reach {self.url} for {what}",
                              hint="unset GPTSTORE_OFFLINE / HF_HUB_OFFLINE, or use a model already pulled")
        if isinstance(exc, (RevisionNotFoundError, RemoteEntryNotFoundError)):
            return ModelNotFound(what, where=self.url, hint="check the version with `gptstore search`")
        if isinstance(exc, RepositoryNotFoundError):
            hint = ("it does not exist, or it is private and you are not authorised: " + login)
            return ModelNotFound(what, where=self.url, hint=hint)
        if isinstance(exc, HfHubHTTPError) and exc.response is not None:
            status = exc.response.status_code
            if status == 401:
                return AuthError(f"not authorised by {self.url} for {what} (invalid or missing token)", hint=login)
            if status == 403:
                return AuthError(f"the token lacks write scope for {what} on {self.url}" if write else
                                 f"forbidden: {what} on {self.url}",
                                 hint="create a token with --scope write for a member of the namespace")
            message = exc.server_message or str(exc).splitlines()[0]
            return StoreError(f"{self.url} refused {what}: {message}")
        import httpx2

        if isinstance(exc, (OSError, httpx2.TransportError)):
            return StoreError(f"cannot reach {self.url} for {what}: {exc}",
                              hint="check the URL and that the store is running")
        raise exc

    def _check_online(self, what: str) -> None:
        if config.offline():
            raise StoreError(f"offline (GPTSTORE_OFFLINE/HF_HUB_OFFLINE): {what} needs {self.url}",
                             hint="pull it while online, or unset the offline variable")

    # -- reading -----------------------------------------------------------------------------
    def _download(self, repo_id: str, path: str, revision: str) -> bytes | None:
        from huggingface_hub.errors import RemoteEntryNotFoundError

        try:
            local = self.api.hf_hub_download(repo_id, path, revision=revision,
                                             cache_dir=str(config.home() / "hub-cache"))
        except RemoteEntryNotFoundError:
            return None
        with open(local, "rb") as handle:
            return handle.read()

    def locate(self, ref: Reference, *, revision: str | None = None) -> Located:
        """Resolve a reference to a commit and read its manifest and signature (no weights)."""
        from ..manifest import parse_bytes

        self._check_online(f"resolving {ref}")
        what = str(ref)
        try:
            if revision is None and ref.digest:
                revision = self._find_digest(ref)
            info = self.api.model_info(ref.repo_id, revision=revision or revision_of(ref))
            commit = info.sha
            data = self._download(ref.repo_id, MANIFEST, commit)
            signature = self._download(ref.repo_id, SIGNATURE, commit)
        except GPTStoreError:
            raise
        except Exception as exc:
            raise self._fail(exc, what) from exc
        if data is None:
            raise ManifestError(f"{ref.repo_id} at {revision_of(ref)} on {self.url} has no {MANIFEST}",
                                hint="it is not a gptstore package; push it with `gptstore push`")
        manifest = parse_bytes(data, source=f"{MANIFEST} of {ref.repo_id} on {self.url}")
        if manifest.repo_id != ref.repo_id:
            raise ManifestError(f"{MANIFEST} of {ref.repo_id} names another model ({manifest.repo_id})")
        if ref.digest and manifest.digest != ref.digest:
            raise ModelNotFound(what, where=self.url,
                                hint=f"the store has sha256:{manifest.digest[:12]}… at that revision")
        return Located(ref, manifest, manifest.digest, signature, commit)

    def _find_digest(self, ref: Reference) -> str:
        """The commit whose manifest has the pinned digest: the tag first, then every tag and main."""
        refs = self.api.list_repo_refs(ref.repo_id)
        candidates = [b.target_commit for b in refs.branches if b.name == "main"]
        candidates = [t.target_commit for t in refs.tags] + candidates
        if ref.explicit_tag:
            preferred = revision_of(ref)
            candidates = [t.target_commit for t in refs.tags if t.name == preferred] + candidates
        from ..manifest import parse_bytes

        for commit in dict.fromkeys(candidates):
            data = self._download(ref.repo_id, MANIFEST, commit)
            if data is not None and parse_bytes(data).digest == ref.digest:
                return commit
        raise ModelNotFound(str(ref), where=self.url, hint="no tag or main of that model has this digest")

    def resolve(self, ref: Reference) -> str:
        return self.locate(ref).digest

    def tags(self, repo_id: str) -> dict[str, str]:
        """``{version: commit}`` of the model's version tags, plus ``latest``."""
        self._check_online(f"listing tags of {repo_id}")
        try:
            refs = self.api.list_repo_refs(repo_id)
        except Exception as exc:
            raise self._fail(exc, repo_id) from exc
        tags = {t.name[1:]: t.target_commit for t in refs.tags if t.name.startswith("v")}
        tags.update({"latest": b.target_commit for b in refs.branches if b.name == "main"})
        return tags

    def search(self, query: str = "", *, tag: str | None = None, sort: Sort = "recent",
               limit: int = 50) -> list[SearchHit]:
        self._check_online("search")
        filters = ["gptstore"] + ([tag] if tag else [])
        order = "downloads" if sort == "downloads" else "last_modified"
        try:
            infos = list(self.api.list_models(filter=filters, search=query or None, sort=order, limit=limit))
        except Exception as exc:
            raise self._fail(exc, "search") from exc
        return [_hit(info) for info in infos]

    def fetch(self, located: Located, entry: FileEntry, writer: BlobWriter) -> None:
        """Stream one file into ``writer`` (hashing as it writes), resuming after its bytes."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.file_download import http_get
        from huggingface_hub.utils import build_hf_headers

        self._check_online(f"downloading {entry.path}")
        url = hf_hub_url(located.reference.repo_id, entry.path, revision=located.revision, endpoint=self.endpoint)
        headers = build_hf_headers(token=self.token or False)
        try:
            http_get(url, _Sink(writer), resume_size=writer.size, headers=headers,
                     expected_size=entry.size, displayed_filename=entry.path, tqdm_class=_silent_bar())
        except OSError as exc:
            if "Consistency check failed" in str(exc):
                return  # the size check of BlobWriter.commit names the file
            raise self._fail(exc, f"{located.reference} file {entry.path}") from exc
        except Exception as exc:
            raise self._fail(exc, f"{located.reference} file {entry.path}") from exc

    # -- writing -----------------------------------------------------------------------------
    def push(self, model: LocalModel, *, private: bool = False) -> str:
        """Upload a library model: only what the remote lacks, then tag the version, move main."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        from ..manifest import dumps
        from .card import model_card

        manifest = model.manifest
        repo_id = manifest.repo_id
        tag = f"v{manifest.version}"
        what = f"{repo_id}:{manifest.version}"
        self._check_online(f"pushing {what}")
        try:
            self.api.create_repo(repo_id, private=private, exist_ok=True)
            existing = self.tags(repo_id)
            if manifest.version in existing:
                remote = self._download(repo_id, MANIFEST, existing[manifest.version])
                from ..manifest import parse_bytes

                if remote is None or parse_bytes(remote).digest != model.digest:
                    raise ConflictError(f"{what} is already on {self.url} with other content",
                                        hint="bump the version; a published version never changes")
                return f"{self.endpoint}/{repo_id}/tree/{tag}"
            remote_files = set(self.api.list_repo_files(repo_id, revision="main"))
            signature = model.path / SIGNATURE
            ops: list[Any] = [CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(model.path / f.path))
                              for f in manifest.files]
            ops.append(CommitOperationAdd(path_in_repo=MANIFEST, path_or_fileobj=dumps(manifest)))
            if signature.is_file():
                ops.append(CommitOperationAdd(path_in_repo=SIGNATURE, path_or_fileobj=signature.read_bytes()))
            ops.append(CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=model_card(manifest, model.digest).encode()))
            keep = {f.path for f in manifest.files} | {MANIFEST, SIGNATURE, CARD, ".gitattributes"}
            ops += [CommitOperationDelete(path_in_repo=p) for p in sorted(remote_files - keep)]
            info = self.api.create_commit(repo_id, ops, commit_message=f"gptstore push {what}",
                                          commit_description=f"manifest sha256:{model.digest}", revision="main")
            self.api.create_tag(repo_id, tag=tag, revision=info.oid, tag_message=f"{what} sha256:{model.digest}")
        except GPTStoreError:
            raise
        except Exception as exc:
            raise self._fail(exc, what, write=True) from exc
        return f"{self.endpoint}/{repo_id}/tree/{tag}"


def _hit(info: Any) -> SearchHit:
    summary = getattr(info, "gptstore", None) or {}
    pricing = summary.get("pricing") or {}
    price = format_price(pricing.get("model", "free"), pricing.get("amount", 0), pricing.get("currency", "USD"))
    version = summary.get("version", "")
    return SearchHit(reference=f"{info.id}:{version}" if version else info.id, version=version,
                     description=summary.get("description", ""),
                     provider=(summary.get("provider") or {}).get("name"), license=summary.get("license"),
                     price=price, downloads=info.downloads or 0, tags=list(summary.get("tags", [])),
                     digest=summary.get("digest"))


def _factory(url: str, **options: Any) -> HubStore:
    return HubStore(url, **options)


@hookimpl
def register_stores(register):
    register("hf", _factory)
    register("http", _factory)
    register("https", _factory)
