"""The NDJSON commit: parse it as it streams in, store its blobs, then apply it in one transaction.

Order of work, so that a failure at any step leaves the repo as it was:

1. Each line is validated (pydantic) as it arrives; inline files are decoded and written as
   blobs (content-addressed, so an abandoned commit only leaves unreferenced blobs behind);
   ``lfsFile`` lines must name a blob that is already stored, with the declared size.
2. Inside one catalog transaction: the branch head is read and checked against ``parentCommit``
   (412 when stale), the operations are applied to the parent's file list, the result is checked
   (no file/folder clash; a ``gptstore.json`` must validate and pin exactly the files present;
   with ``--require-signed``, a commit that adds or changes ``gptstore.json`` or ``gptstore.sig``
   must leave a valid signature by a key registered for the manifest's namespace — see
   ``keys.py``; README metadata must be YAML), and the commit, its files, the branch move and —
   on ``main`` — the repo's metadata and search index are written. Any error rolls all of it back.
3. A commit to ``main`` that brings a new ``gptstore.json`` also creates its version tag
   ``v<version>`` on the new commit, in the same transaction, so two racing pushes of one version
   cannot leave the tag and ``main`` on different contents: the first wins whole, the second gets
   412 (stale ``parentCommit``) or 409 (the version is published with another manifest digest,
   by the tag or by ``main`` itself). Re-pushing identical content is allowed; the tag stays.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import AsyncIterator, Literal, Union

import anyio
from pydantic import Field, ValidationError

from ..errors import ManifestError
from ..manifest import MANIFEST_FILE, OMS_SIGNATURE_FILE, SIGNATURE_FILE, Manifest, parse_bytes
from .catalog import MAIN, Catalog, Repo
from .gating import gate_paid_by_default
from .http import Body, HubError, bad_request, conflict, entry_not_found, revision_not_found, validation_message
from .keys import MAX_SIGNATURE, SigningKeys, check_signed, needs_signature
from .metadata import parse_card, repo_metadata, summarize
from .search import index_manifest
from .storage import FileRow, Storage, is_sha256, lfs_row, regular_row

FORBIDDEN_SEGMENTS = frozenset({".git", ".cache"})
README = "README.md"
MAX_MANIFEST = 4 * 1024 * 1024


class CommitHeader(Body):
    summary: str = ""
    description: str = ""
    parentCommit: str | None = None


class InlineFile(Body):
    path: str
    content: str
    encoding: Literal["base64"] = "base64"


class LfsFile(Body):
    path: str
    algo: Literal["sha256"] = "sha256"
    oid: str
    size: int | None = Field(None, ge=0)


class DeletedPath(Body):
    path: str


class CommitLine(Body):
    key: Literal["header", "file", "lfsFile", "deletedFile", "deletedFolder"]
    value: dict


@dataclass(frozen=True)
class Add:
    row: FileRow
    #: the size an lfsFile line declared; checked only once the committer may use the object
    declared_size: int | None = None


@dataclass(frozen=True)
class Delete:
    path: str
    folder: bool


Operation = Union[Add, Delete]


def not_uploaded(oid: str, path: str) -> HubError:
    """One answer for an object that is not stored and one the committer may not use: knowing a
    digest must not tell whether (or how big) another user's file is."""
    return bad_request(f"LFS object {oid[:12]}… for {path} was not uploaded to this repo; upload it first")


def check_path(path: str, *, folder: bool = False) -> str:
    """A repo path as the Hub client validates it; 400 for traversal, absolute or reserved paths."""
    if folder:
        path = path.rstrip("/")
    if not path:
        raise bad_request("empty path in commit")
    if path.startswith("/"):
        raise bad_request(f"invalid path {path!r}: absolute paths are not allowed")
    if "\\" in path:  # 422 as on the Hub (a Windows-style "..\\x" would escape a download folder)
        raise HubError(422, f"invalid path {path!r}: backslashes are not allowed; use / between folders")
    if any(ord(c) < 32 for c in path):
        raise bad_request(f"invalid path {path!r}: control characters are not allowed")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise bad_request(f"invalid path {path!r}: empty, '.' and '..' segments are not allowed")
    if any(part in FORBIDDEN_SEGMENTS for part in parts):
        raise bad_request(f"invalid path {path!r}: .git/ and .cache/ are reserved")
    if len(path) > 1024:
        raise bad_request(f"invalid path {path[:40]!r}…: longer than 1024 characters")
    return path


async def lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Split a streamed body at newlines without rescanning (lines may be many MB)."""
    buffer = bytearray()
    scanned = 0
    async for chunk in chunks:
        buffer += chunk
        while (end := buffer.find(b"\n", scanned)) != -1:
            line = bytes(buffer[:end])
            del buffer[:end + 1]
            scanned = 0
            yield line
        scanned = len(buffer)
    if buffer.strip():
        yield bytes(buffer)


class CommitParser:
    """Turns NDJSON lines into a header and operations, storing inline blobs on the way."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.header: CommitHeader | None = None
        self.operations: list[Operation] = []
        self.count = 0

    async def feed(self, line: bytes) -> None:
        if not line.strip():
            return
        self.count += 1
        operation = await anyio.to_thread.run_sync(self._parse, line, self.count)
        if operation is not None:
            self.operations.append(operation)

    def _parse(self, line: bytes, number: int) -> Operation | None:
        what = f"commit line {number}"
        try:
            item = CommitLine.model_validate_json(line)
            if item.key == "header":
                if number != 1:
                    raise bad_request(f"invalid {what}: the header must be the first line")
                self.header = CommitHeader.model_validate(item.value)
                return None
            if number == 1:
                raise bad_request("invalid commit: the first line must be the header")
            if item.key == "file":
                return self._inline(InlineFile.model_validate(item.value), what)
            if item.key == "lfsFile":
                return self._lfs(LfsFile.model_validate(item.value))
            deleted = DeletedPath.model_validate(item.value)
            folder = item.key == "deletedFolder"
            return Delete(check_path(deleted.path, folder=folder), folder)
        except ValidationError as exc:
            raise bad_request(validation_message(exc, what)) from None

    def _inline(self, value: InlineFile, what: str) -> Add:
        path = check_path(value.path)
        try:
            data = base64.b64decode(value.content, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(f"invalid {what}: the content of {path} is not valid base64") from None
        return Add(regular_row(path, data, self.storage.put_bytes(data)))

    def _lfs(self, value: LfsFile) -> Add:
        path = check_path(value.path)
        if not is_sha256(value.oid):
            raise bad_request(f"invalid lfsFile {path}: oid must be 64 lowercase hex characters")
        if not self.storage.blobs.has(value.oid):  # the same answer as for another user's object
            raise not_uploaded(value.oid, path)
        return Add(lfs_row(path, value.oid, self.storage.blobs.size(value.oid)), value.size)


def apply_operations(files: dict[str, FileRow], operations: list[Operation]) -> dict[str, FileRow]:
    result = dict(files)
    for op in operations:
        if isinstance(op, Add):
            result[op.row.path] = op.row
        elif op.folder or op.path not in result:  # a deletedFile naming a folder deletes it, as on the Hub
            prefix = op.path + "/"
            doomed = [p for p in result if p.startswith(prefix)]
            if not doomed:
                raise entry_not_found(op.path)
            for path in doomed:
                del result[path]
        else:
            del result[op.path]
    folders = {path.rsplit("/", i)[0] for path in result for i in range(1, path.count("/") + 1)}
    clash = sorted(folders & result.keys())
    if clash:
        raise bad_request(f"{clash[0]} cannot be both a file and a folder")
    return result


def _changed(before: dict[str, FileRow], after: dict[str, FileRow], path: str) -> bool:
    old, new = before.get(path), after.get(path)
    return (old.sha256 if old else None) != (new.sha256 if new else None)


class Committer:
    """Applies a parsed commit to a branch of a repo."""

    def __init__(self, catalog: Catalog, storage: Storage, *, require_signed: bool = False) -> None:
        self.catalog = catalog
        self.storage = storage
        #: refuse commits that bring a manifest without a valid signature by a registered key
        self.require_signed = require_signed
        self.keys = SigningKeys(catalog.db)

    def commit(self, repo: Repo, branch: str, header: CommitHeader, operations: list[Operation], *,
               author: str, namespaces: tuple[str, ...]) -> str:
        db = self.catalog.db
        with db.transaction():
            for op in operations:
                if not (isinstance(op, Add) and op.row.lfs):
                    continue
                if not self.catalog.object_available(repo, op.row.sha256, namespaces):
                    raise not_uploaded(op.row.sha256, op.row.path)
                if op.declared_size is not None and op.declared_size != op.row.size:
                    raise bad_request(f"lfsFile {op.row.path}: declared size {op.declared_size} differs from the "
                                      f"uploaded {op.row.size} bytes")
            head = self.catalog.branch_head(repo, branch, lock=True)
            if head is None:
                raise revision_not_found(branch)
            parent = header.parentCommit
            if parent and not (len(parent) >= 7 and head.startswith(parent)):
                raise HubError(412, "The branch was updated since you opened this page. Please refresh and try "
                                    f"again. (parent commit {parent} is not the head of {branch} ({head}); "
                                    "pull the latest revision and retry)")
            before = {f.path: f for f in self.catalog.files(head)}
            files = apply_operations(before, operations)
            manifest = self._check_manifest(files)
            if manifest is not None and self.require_signed and needs_signature(before, files):
                self._check_signature(repo, manifest, files)
            summary = summarize(manifest, manifest.digest) if manifest is not None else None
            card = self._card(files) if branch == MAIN else {}
            version_tag = None
            if branch == MAIN and manifest is not None and _changed(before, files, MANIFEST_FILE):
                version_tag = self._version_tag(repo, before, manifest)
            title = header.summary.strip() or "Update"
            commit = self.catalog.write_commit(repo, branch, head, files, author=author, title=title,
                                               message=header.description)
            if version_tag is not None:
                self.catalog.add_ref(repo, "tag", version_tag, commit)
            if branch == MAIN:
                meta = repo_metadata(card, summary)
                self.catalog.set_metadata(repo, card=card, summary=summary, tags=meta.tags,
                                          library_name=meta.library_name, pipeline_tag=meta.pipeline_tag)
                index_manifest(db, repo.id, summary)
                if manifest is not None and manifest.pricing.model != "free":
                    gate_paid_by_default(db, repo.id)  # a paid model is gated unless its owner chose
        return commit

    def _version_tag(self, repo: Repo, before: dict[str, FileRow], manifest: Manifest) -> str | None:
        """The tag to create for ``manifest`` on main (None: it exists with this very manifest); 409
        when the version is already published with another manifest."""
        tag = f"v{manifest.version}"
        taken = conflict(f"{repo.repo_id}:{manifest.version} is already published with other content; "
                         "bump the version")
        existing = self.catalog.ref(repo, "tag", tag)
        if existing is not None:
            published = self._stored_manifest(self.catalog.file(existing.target, MANIFEST_FILE))
            if published is None or published.digest != manifest.digest:
                raise taken
            return None
        current = self._stored_manifest(before.get(MANIFEST_FILE))
        if current is not None and current.version == manifest.version and current.digest != manifest.digest:
            raise taken
        return tag

    def _stored_manifest(self, row: FileRow | None) -> Manifest | None:
        """The manifest a committed file holds; None when there is none or it does not parse."""
        if row is None or row.size > MAX_MANIFEST:
            return None
        try:
            return parse_bytes(self.storage.blobs.read_bytes(row.sha256), source=MANIFEST_FILE)
        except (ManifestError, OSError):
            return None

    def _check_manifest(self, files: dict[str, FileRow]) -> Manifest | None:
        row = files.get(MANIFEST_FILE)
        if row is None:
            return None
        if row.size > MAX_MANIFEST:
            raise bad_request(f"invalid {MANIFEST_FILE}: larger than {MAX_MANIFEST} bytes")
        try:
            manifest = parse_bytes(self.storage.blobs.read_bytes(row.sha256), source=MANIFEST_FILE)
        except ManifestError as exc:
            raise bad_request(exc.message) from None
        for entry in manifest.files:
            present = files.get(entry.path)
            if present is None:
                raise bad_request(f"invalid {MANIFEST_FILE}: files: {entry.path} is listed but not in the revision")
            if present.sha256 != entry.sha256 or present.size != entry.size:
                raise bad_request(f"invalid {MANIFEST_FILE}: files: {entry.path} is pinned to sha256 "
                                  f"{entry.sha256[:12]}… ({entry.size} bytes), the revision has "
                                  f"{present.sha256[:12]}… ({present.size} bytes)")
        return manifest

    def _check_signature(self, repo: Repo, manifest: Manifest, files: dict[str, FileRow]) -> None:
        """TrustError (→ 400) unless the revision's gptstore.sig or model.sig is valid for a registered key."""
        found: list[bytes | None] = []
        for name in (SIGNATURE_FILE, OMS_SIGNATURE_FILE):
            row, data = files.get(name), None
            if row is not None:  # at most one byte past the limit: enough to call it oversized
                with self.storage.blobs.open(row.sha256) as handle:
                    data = handle.read(MAX_SIGNATURE + 1)
            found.append(data)
        check_signed(manifest, repo.repo_id, found[0], self.keys.trusted(manifest.namespace), oms=found[1])

    def _card(self, files: dict[str, FileRow]) -> dict:
        row = files.get(README)
        if row is None:
            return {}
        text = self.storage.blobs.read_bytes(row.sha256).decode("utf-8", "replace")
        try:
            return parse_card(text)
        except ValueError as exc:
            raise bad_request(f"invalid {README}: {exc}") from None
