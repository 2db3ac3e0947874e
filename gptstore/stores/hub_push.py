"""Pushing a library model to a hub so that racing pushes of one version end with one winner.

A push reads ``main``'s head and the version tags, commits on top of exactly that head
(``parent_commit``), then creates the tag ``v<version>`` on its commit. When two pushes of
``alice/race:1.0.0`` with different contents race:

- the store refuses the later commit because ``main`` moved (412), or because the version is
  already tagged with other content (409, what ``gptstore server`` answers: it tags the version in
  the same transaction as the commit): the push fails with a ConflictError, ``main`` untouched;
- the commit went in but the tag already names another commit with other content (a plain Hub,
  where commit and tag are two requests): ``main`` now holds content the tag disagrees with, so
  it is rolled back (a commit on top of ours, ``parent_commit`` = ours, restoring the files of
  the head we started from), then the push fails with the same ConflictError.

A 409 from ``create_tag`` for a tag that names our own commit (``gptstore server`` tagged it with
the commit) or a commit with the same manifest digest is success.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConflictError, GPTStoreError
from .bounded_http import check_commit_id

if TYPE_CHECKING:
    from ..library import LocalModel
    from .hub import HubStore


def _status(exc: Exception) -> int | None:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return exc.response.status_code
    return None


def _lost(what: str, url: str) -> ConflictError:
    return ConflictError(f"another push of {what} won on {url} with other content; bump the version",
                         hint="a published version never changes: push this content as a new version")


def _digest_at(store: HubStore, repo_id: str, commit: str) -> str | None:
    from ..errors import ManifestError

    try:
        manifest = store.manifest_at(repo_id, commit)
    except ManifestError:
        return None
    return None if manifest is None else manifest.digest


def _ensure_repo(store: HubStore, repo_id: str, *, private: bool) -> None:
    """Create the repo unless it exists. Not ``create_repo(exist_ok=True)``: on a refusal (401/403)
    it looks the repo up and builds a URL that only parses for huggingface.co, so against any other
    endpoint the user got "unexpected HfUriError" instead of the store's refusal."""
    try:
        store.api.create_repo(repo_id, private=private, exist_ok=False)
    except Exception as exc:
        status = _status(exc)
        if status == 409:
            return  # it exists: the commit below says whether this token may write to it
        if status not in (401, 402, 403):
            raise
        try:
            store.api.repo_info(repo_id)
        except Exception:
            raise exc from None  # not visible to this token: the refusal to create it is the answer
        # it exists and this token may read it: the commit says whether it may write


def push(store: HubStore, model: LocalModel, *, private: bool = False) -> str:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    from ..manifest import MANIFEST_FILE, OMS_SIGNATURE_FILE, SIGNATURE_FILE, dumps
    from .card import CARD_FILE, model_card

    manifest = model.manifest
    repo_id = manifest.repo_id
    tag = f"v{manifest.version}"
    what = f"{repo_id}:{manifest.version}"
    where = f"{store.endpoint}/{repo_id}/tree/{tag}"
    store._check_online(f"pushing {what}")
    try:
        _ensure_repo(store, repo_id, private=private)
        head, tags = store.refs(repo_id)
        if tag in tags:
            if _digest_at(store, repo_id, tags[tag]) != model.digest:
                raise ConflictError(f"{what} is already on {store.url} with other content",
                                    hint="bump the version; a published version never changes")
            return where
        remote_files = set(store.api.list_repo_files(repo_id, revision=head or "main"))
        signature = model.path / SIGNATURE_FILE
        ops: list[Any] = [CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(model.path / f.path))
                          for f in manifest.files]
        ops.append(CommitOperationAdd(path_in_repo=MANIFEST_FILE, path_or_fileobj=dumps(manifest)))
        keep = {f.path for f in manifest.files} | {MANIFEST_FILE, CARD_FILE, ".gitattributes"}
        if signature.is_file():
            ops.append(CommitOperationAdd(path_in_repo=SIGNATURE_FILE, path_or_fileobj=signature.read_bytes()))
            keep.add(SIGNATURE_FILE)  # an older signature must not stay beside a manifest it does not sign
        if (model.path / OMS_SIGNATURE_FILE).is_file():  # the OpenSSF model.sig (gptstore.oms), likewise
            ops.append(CommitOperationAdd(path_in_repo=OMS_SIGNATURE_FILE,
                                          path_or_fileobj=(model.path / OMS_SIGNATURE_FILE).read_bytes()))
            keep.add(OMS_SIGNATURE_FILE)
        if manifest.file(CARD_FILE) is None:  # the package's own README.md is a pinned file: never replaced
            card = model_card(manifest, model.digest).encode()
            ops.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card))
        deleted = sorted(remote_files - keep)
        ops += [CommitOperationDelete(path_in_repo=p) for p in deleted]
        touched = (keep - {".gitattributes"}) | set(deleted)  # what a roll back restores
        try:
            info = store.api.create_commit(repo_id, ops, commit_message=f"gptstore push {what}",
                                           commit_description=f"manifest sha256:{model.digest}", revision="main",
                                           parent_commit=head)
        except Exception as exc:
            if _status(exc) not in (409, 412):
                raise
            _after_refused_commit(store, repo_id, tag, model.digest, what, exc)
            return where  # an identical push won: the version holds our content
        commit = check_commit_id(info.oid, where=store.url)
        try:
            store.api.create_tag(repo_id, tag=tag, revision=commit, tag_message=f"{what} sha256:{model.digest}")
        except Exception as exc:
            if _status(exc) != 409:
                raise
            _after_existing_tag(store, repo_id, tag, commit, head, touched, model.digest, what)
    except GPTStoreError:
        raise
    except Exception as exc:
        raise store._fail(exc, what, write=True) from exc
    return where


def _after_refused_commit(store: HubStore, repo_id: str, tag: str, digest: str, what: str,
                          exc: Exception) -> None:
    """The store refused our commit (412: main moved; 409: the version is taken). Returns when the
    version now holds our very content; raises ConflictError otherwise."""
    _, tags = store.refs(repo_id)
    if tag in tags:
        if _digest_at(store, repo_id, tags[tag]) == digest:
            return
        raise _lost(what, store.url)
    if _status(exc) == 412:
        raise ConflictError(f"main of {repo_id} on {store.url} moved while pushing {what} (another push)",
                            hint="run the push again")
    raise store._fail(exc, what, write=True)


def _after_existing_tag(store: HubStore, repo_id: str, tag: str, commit: str, head: str | None,
                        touched: set[str], digest: str, what: str) -> None:
    """``create_tag`` said the tag exists. Our commit or our content under it is success; other
    content means another push won: roll main back off our commit, then ConflictError."""
    _, tags = store.refs(repo_id)
    target = tags.get(tag)
    if target is None:
        raise ConflictError(f"{store.url} refused tag {tag} of {repo_id} as existing, but it is not there",
                            hint="run the push again")
    if target == commit or _digest_at(store, repo_id, target) == digest:
        return
    rolled_back = head is not None and _roll_back(store, repo_id, commit, head, touched, what)
    if rolled_back:
        raise _lost(what, store.url)
    raise ConflictError(f"another push of {what} won on {store.url} with other content, and main of {repo_id} "
                        "could not be put back (it moved again)",
                        hint=f"bump the version; check main of {repo_id} holds what you expect")


def _roll_back(store: HubStore, repo_id: str, ours: str, parent: str, touched: set[str], what: str) -> bool:
    """Restore the paths our commit touched to their state in ``parent``, in a commit on top of
    ours only (``parent_commit=ours``); False when main moved meanwhile or the store refused."""
    from huggingface_hub import CommitOperationCopy, CommitOperationDelete

    try:
        before = set(store.api.list_repo_files(repo_id, revision=parent))
        ops: list[Any] = [CommitOperationCopy(src_path_in_repo=p, path_in_repo=p, src_revision=parent)
                          for p in sorted(touched & before)]
        ops += [CommitOperationDelete(path_in_repo=p) for p in sorted(touched - before)]
        store.api.create_commit(repo_id, ops, commit_message=f"gptstore: undo push of {what} (another push won)",
                                revision="main", parent_commit=ours)
    except Exception:
        return False
    return True
