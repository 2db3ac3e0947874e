"""The local, content-addressed model library under ``GPTSTORE_HOME``.

Layout::

    blobs/sha256/<hex>              file contents, one blob serves every model that holds it
    manifests/sha256/<hex>          canonical manifest JSON, named by the manifest digest
    manifests/sha256/<hex>.sig      the package signature, when there is one
    manifests/sha256/<hex>.oms      its OpenSSF model.sig (gptstore.oms), when there is one
    refs/<namespace>/<name>/<tag>   "<manifest digest>" — written last
    snapshots/<hex>/...             the package as a directory, files hard-linked to the (read-only) blobs
    stamps/<hex>.json               verification stamp cache
    pins/<id>.pin                   blobs a running pull needs (garbage collection keeps them)
    library.lock                    serialises writers across processes

Writes are atomic (temp file, rename) and a ref is written only after every blob, the
manifest and the snapshot are in place *and durable*, so a model appears whole or not at all, also
after a crash or a power loss. Blobs are fsynced one by one as they are committed (other pulls
trust a blob that is in place). The small files of a model (manifest, signatures, snapshot,
stamps: some twenty) are written in a :func:`~gptstore.fsutil.durable_batch` — no fsync each, one
``syncfs`` when the batch ends — and only then are the refs written (and synced, with the batch
around them). A crash before that sync leaves files no ref names (garbage collection's business),
never a ref that names missing or torn data. Publishing and removing hold ``library.lock``.

A pull writes blobs before it holds the lock (downloads take long), so it first *pins* the blobs
of its manifest (:meth:`Library.pin`): a pin file whose lock the pulling process holds. Garbage
collection, under ``library.lock``, keeps every blob named by a pin whose lock is still held
and removes pins whose process has gone. Anything in the library folders that is not what this
layout names (``.DS_Store``, editor backups, a half-copied folder) is ignored, never fatal.
"""

from __future__ import annotations

import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterator

from filelock import FileLock, Timeout

from . import config
from .blobs import BlobStore, hash_file
from .errors import (ConflictError, DigestMismatch, IntegrityError, InvalidReference, ModelNotFound, PackageError,
                     UsageError)
from .fsutil import atomic_write, durable_batch, fsync_dir, link_or_copy, sync_barrier, sync_later
from .integrity import StampCache, check_integrity
from .manifest import MANIFEST_FILE, OMS_SIGNATURE_FILE, SIGNATURE_FILE, Manifest, dumps, load_manifest, parse_bytes
from .origins import ORIGIN_SUFFIX
from .refs import DEFAULT_TAG, Reference, is_digest, parse_reference
from .safety import check_safety, read_model_config

#: beside ``manifests/sha256/<hex>``: the package's OpenSSF ``model.sig``
OMS_SUFFIX = ".oms"


@dataclass(frozen=True)
class LocalModel:
    """A model resolved in the library."""

    reference: Reference
    digest: str
    manifest: Manifest
    path: Path  # the snapshot directory

    @property
    def name(self) -> str:
        return f"{self.reference.repo_id}:{self.reference.tag}"


@dataclass(frozen=True)
class RefEntry:
    repo_id: str
    tag: str
    digest: str


def _valid_ref_part(namespace: str, name: str = "x", tag: str = DEFAULT_TAG) -> bool:
    try:
        ref = parse_reference(f"{namespace}/{name}:{tag}")
    except InvalidReference:
        return False
    return (ref.namespace, ref.name, ref.tag) == (namespace, name, tag)


def _read_ref(path: Path) -> str:
    """What a ref file says (its first 128 bytes: a digest and a newline, when it is not damaged)."""
    with open(path, "rb") as handle:
        return handle.read(128).decode("ascii", "replace").strip()


def _entries(folder: Path, *, dirs: bool) -> list[str]:
    """Sorted names of the sub-folders (or files) of ``folder``; hidden names and others skipped."""
    try:
        found = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(e.name for e in found
                  if not e.name.startswith(".") and (e.is_dir(follow_symlinks=False) if dirs
                                                     else e.is_file(follow_symlinks=False)))


class Pin:
    """Blobs one pull needs, kept by garbage collection while this object holds its lock."""

    def __init__(self, folder: Path, shas: list[str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        self.path = folder / f"{name}.pin"
        self._lock = FileLock(str(folder / f"{name}.lock"))
        self._lock.acquire()
        atomic_write(self.path, "\n".join(shas).encode(), durable=False)  # means something only while we run

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
        self._lock.release()
        Path(self._lock.lock_file).unlink(missing_ok=True)

    def __enter__(self) -> Pin:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class GCResult:
    manifests: int = 0
    blobs: int = 0
    bytes: int = 0


class Library:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else config.home()
        self.blobs = BlobStore(self.root / "blobs")

    # -- paths -----------------------------------------------------------------------------
    def _manifest_path(self, digest: str) -> Path:
        return self.root / "manifests" / "sha256" / digest

    def _ref_path(self, repo_id: str, tag: str) -> Path:
        return self.root / "refs" / repo_id / tag

    def snapshot_path(self, digest: str) -> Path:
        return self.root / "snapshots" / digest

    def stamps(self, digest: str) -> StampCache:
        return StampCache(self.root / "stamps" / f"{digest}.json")

    def pin(self, shas) -> Pin:
        """Keep these blobs through garbage collection until released (a pull holds one while it downloads)."""
        with self.lock():  # a GC running now finishes first; the next one sees the pin
            return Pin(self.root / "pins", sorted(set(shas)))

    def _pinned(self) -> set[str]:
        """Blobs named by pins whose owner still holds them; stale pins are removed."""
        keep: set[str] = set()
        folder = self.root / "pins"
        for name in _entries(folder, dirs=False):
            if not name.endswith(".pin"):
                continue
            lock = FileLock(str(folder / (name[:-4] + ".lock")))
            try:
                lock.acquire(timeout=0)
            except Timeout:  # alive: its process holds the lock
                try:
                    keep.update(line for line in (folder / name).read_text().split() if is_digest(line))
                except OSError:
                    pass
                continue
            try:
                (folder / name).unlink(missing_ok=True)
            finally:
                lock.release()
                Path(lock.lock_file).unlink(missing_ok=True)
        return keep

    def lock(self, timeout: float = 600) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / "library.lock"), timeout=timeout)

    # -- reading ---------------------------------------------------------------------------
    def refs(self) -> list[RefEntry]:
        """Every ref; entries that are not a valid ``namespace/name/tag`` holding a digest are skipped."""
        base = self.root / "refs"
        found = []
        for ns in (n for n in _entries(base, dirs=True) if _valid_ref_part(n)):
            for name in (n for n in _entries(base / ns, dirs=True) if _valid_ref_part(ns, n)):
                for tag in _entries(base / ns / name, dirs=False):
                    if not _valid_ref_part(ns, name, tag):
                        continue
                    try:
                        digest = _read_ref(base / ns / name / tag)
                    except OSError:
                        continue
                    if is_digest(digest):
                        found.append(RefEntry(f"{ns}/{name}", tag, digest))
        return found

    def tags(self, repo_id: str) -> dict[str, str]:
        return {e.tag: e.digest for e in self.refs() if e.repo_id == repo_id}

    def has_manifest(self, digest: str) -> bool:
        return self._manifest_path(digest).is_file()

    def manifest(self, digest: str) -> Manifest:
        """The manifest stored under ``digest``, re-checked against its digest."""
        try:
            data = self._manifest_path(digest).read_bytes()
        except FileNotFoundError:
            raise ModelNotFound(f"sha256:{digest}") from None
        manifest = parse_bytes(data, source=f"manifest sha256:{digest[:12]}")
        if manifest.digest != digest:
            raise DigestMismatch(f"stored manifest sha256:{digest[:12]}… was modified",
                                 path=MANIFEST_FILE, expected=digest, actual=manifest.digest,
                                 hint="remove the model and publish or pull it again")
        return manifest

    def signature(self, digest: str) -> bytes | None:
        try:
            return self._manifest_path(digest).with_suffix(".sig").read_bytes()
        except FileNotFoundError:
            return None

    def oms_signature(self, digest: str) -> bytes | None:
        """The OpenSSF ``model.sig`` kept with a manifest (:mod:`gptstore.oms`), None when none."""
        try:
            return self._manifest_path(digest).with_suffix(OMS_SUFFIX).read_bytes()
        except FileNotFoundError:
            return None

    def resolve(self, reference: str | Reference) -> tuple[Reference, str]:
        """(parsed reference, manifest digest); a pinned digest wins over the tag."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        if ref.digest:
            if not self.has_manifest(ref.digest):
                raise ModelNotFound(str(ref))
            return ref, ref.digest
        try:
            digest = _read_ref(self._ref_path(ref.repo_id, ref.tag))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ModelNotFound(str(ref)) from None
        if not is_digest(digest):
            raise IntegrityError(f"the ref {ref.repo_id}:{ref.tag} in {self.root / 'refs'} is damaged",
                                 hint=f"remove it with `gptstore rm {ref.repo_id}:{ref.tag}` and pull or publish again")
        return ref, digest

    def get(self, reference: str | Reference) -> LocalModel:
        ref, digest = self.resolve(reference)
        manifest = self.manifest(digest)
        return LocalModel(ref, digest, manifest, self.snapshot(digest, manifest))

    def snapshot(self, digest: str, manifest: Manifest | None = None) -> Path:
        """The snapshot directory of a manifest, rebuilt from the blobs if it is missing."""
        path = self.snapshot_path(digest)
        if path.is_dir():
            return path
        manifest = manifest or self.manifest(digest)
        tmp = path.with_name(f".tmp-{digest}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        for entry in manifest.files:
            if not self.blobs.has(entry.sha256):
                shutil.rmtree(tmp, ignore_errors=True)
                raise IntegrityError(f"blob of {entry.path} is missing from the library", path=entry.path,
                                     hint=f"pull {manifest.repo_id}:{manifest.version} again")
            link_or_copy(self.blobs.path(entry.sha256), tmp / entry.path)
        tmp.mkdir(parents=True, exist_ok=True)
        atomic_write(tmp / MANIFEST_FILE, dumps(manifest))
        if (sig := self.signature(digest)) is not None:
            atomic_write(tmp / SIGNATURE_FILE, sig)
        if (oms := self.oms_signature(digest)) is not None:
            atomic_write(tmp / OMS_SIGNATURE_FILE, oms)
        try:
            os.replace(tmp, path)
        except OSError:  # another process built it first
            shutil.rmtree(tmp, ignore_errors=True)
        fsync_dir(path.parent)
        # in a durable batch without syncfs each file is synced by name: name them where they are now
        sync_later(files=[path / MANIFEST_FILE, path / SIGNATURE_FILE, path / OMS_SIGNATURE_FILE],
                   dirs=[Path(d) for d, _subdirs, _files in os.walk(path)])
        return path

    def base_of(self, manifest: Manifest) -> LocalModel:
        """The base an adapter package (``format.base``) was made for: exactly the digest it pins.
        Refused, naming both digests, when the library's base tag has other content or no base."""
        base = manifest.format.base
        package = f"{manifest.repo_id}:{manifest.version}"
        if base is None:
            raise PackageError(f"{package} is a {manifest.format.adapter} package without a base model "
                               "(format.base)", hint="package it again with --base REF")
        pinned = f"{base.reference}@sha256:{base.digest}"
        if self.has_manifest(base.digest):
            return self.get(pinned)
        try:
            _, have = self.resolve(parse_reference(base.reference))
        except ModelNotFound:
            raise ModelNotFound(pinned, hint=f"{package} is an adapter over this base: run `gptstore pull {pinned}` "
                                             "(with --store URL: the store the adapter came from)") from None
        raise DigestMismatch(
            f"{package} was made for base {base.reference} sha256:{base.digest}, but the local library has "
            f"{base.reference} as sha256:{have}",
            reference=base.reference, expected=base.digest, actual=have,
            hint=f"get the base it was made for: `gptstore rm {base.reference}` (that tag names other content "
                 f"here), then `gptstore pull {pinned}`")

    # -- writing ---------------------------------------------------------------------------
    def publish(self, package_dir: Path | str, *, force: bool = False, allow_unsafe: bool = False,
                tags: list[str] | None = None) -> LocalModel:
        """Add a package directory to the library under its version tag and ``latest``.

        Every file is hashed once, while it is copied into the blob store, and checked against the
        manifest. Publishing a version that already names other content needs ``force``.
        """
        package_dir = Path(package_dir)
        if not package_dir.is_dir():
            raise UsageError(f"{package_dir} is not a directory", hint="give the package directory")
        manifest = load_manifest(package_dir)
        check_safety([f.path for f in manifest.files], allow_unsafe=allow_unsafe,
                     config=read_model_config(package_dir), where=str(package_dir))
        # missing, unlisted and wrongly sized files before any byte is copied (the copy hashes)
        check_integrity(package_dir, manifest, mode="listing", reference=str(package_dir)).raise_first()
        sig_path = package_dir / SIGNATURE_FILE
        signature = sig_path.read_bytes() if sig_path.is_file() else None
        oms_path = package_dir / OMS_SIGNATURE_FILE
        oms = oms_path.read_bytes() if oms_path.is_file() else None
        tags = tags or [manifest.version, DEFAULT_TAG]
        with self.lock():
            self._check_tags(manifest, tags, force)
            added = self._ingest(package_dir, manifest)
            try:
                model = self._commit(manifest, signature, tags, oms)
            except BaseException:
                for sha in added:
                    self.blobs.delete(sha)
                raise
            if force:  # a replaced version may have left content nothing refers to
                self._gc()
            return model

    def _check_tags(self, manifest: Manifest, tags: list[str], force: bool) -> None:
        digest = manifest.digest
        for tag in (t for t in tags if t != DEFAULT_TAG):  # latest moves freely
            try:
                current = self._ref_path(manifest.repo_id, tag).read_text().strip()
            except FileNotFoundError:
                continue
            if current != digest and not force:
                raise ConflictError(
                    f"{manifest.repo_id}:{tag} is already published with other content "
                    f"(sha256:{current[:12]}…)", hint="bump the version, or pass --force to replace it")

    def _ingest(self, package_dir: Path, manifest: Manifest) -> list[str]:
        """Copy (hashing once) every file into the blob store; returns blobs that are new."""
        added: list[str] = []

        def one(entry):
            source = package_dir / entry.path
            if self.blobs.has(entry.sha256):
                actual, _ = hash_file(source)
                if actual != entry.sha256:
                    raise DigestMismatch(
                        f"{entry.path} does not match its sha256 in the manifest", path=entry.path,
                        expected=entry.sha256, actual=actual,
                        hint="run `gptstore package` again after changing files")
                return None
            self.blobs.put_file(source, expected_sha256=entry.sha256, label=entry.path)
            return entry.sha256

        entries = sorted(manifest.files, key=lambda e: -e.size)
        try:
            with ThreadPoolExecutor(max_workers=min(4, max(1, len(entries)))) as pool:
                for sha in pool.map(one, entries):
                    if sha:
                        added.append(sha)
        except BaseException:
            for sha in added:
                self.blobs.delete(sha)
            raise
        return added

    def stage(self, manifest: Manifest, *, signature: bytes | None = None,
              hashed: Collection[str] = (), oms_signature: bytes | None = None) -> LocalModel:
        """Write the manifest, signature and snapshot of a model whose blobs are in the store, but
        no ref: a pull verifies the staged model before :meth:`add` makes it appear.

        ``hashed`` names blobs the caller has just written and hashed (a pull's downloads): their
        snapshot files go into the stamp cache, so the verification that follows reads only the
        blobs that were already here.
        """
        with self.lock():  # a pull stages inside a durable_batch: synced once, before add() writes the refs
            model = self._stage(manifest, signature, oms_signature)
            self._stamp(model, set(hashed))
            return model

    def add(self, manifest: Manifest, *, signature: bytes | None = None, tags: list[str] | None = None,
            force: bool = False, oms_signature: bytes | None = None) -> LocalModel:
        """Record a manifest whose blobs are already in the store (used by pull)."""
        tags = tags or [manifest.version, DEFAULT_TAG]
        with self.lock():
            self._check_tags(manifest, tags, force)
            return self._commit(manifest, signature, tags, oms_signature)

    def _stamp(self, model: LocalModel, hashed: set[str]) -> None:
        """Add the snapshot files that are hard links to ``hashed`` blobs to the stamp cache."""
        if not hashed:
            return
        cache = self.stamps(model.digest)
        stamps = dict(cache.stamps)
        for entry in (e for e in model.manifest.files if e.sha256 in hashed):
            try:
                st, blob = (model.path / entry.path).stat(), self.blobs.path(entry.sha256).stat()
            except OSError:
                continue
            if st.st_ino == blob.st_ino:  # a hard link: the very bytes that were hashed, not a copy
                stamps[entry.path] = StampCache.stamp_of(st)
        cache.save(stamps)

    def discard_blobs(self, shas: Collection[str], digest: str) -> None:
        """Delete damaged blobs and rebuild what links to them: every snapshot holding one of
        ``shas``, and the snapshot of ``digest`` (whose files may be damaged copies), are removed
        and rebuilt from the blobs on their next use. A pull then fetches the blobs again."""
        doomed = set(shas)
        with self.lock():
            for name in filter(is_digest, _entries(self.root / "snapshots", dirs=True)):
                try:
                    holds = name == digest or any(f.sha256 in doomed for f in self.manifest(name).files)
                except (ModelNotFound, IntegrityError, ValueError):  # not ours to judge here
                    holds = False
                if holds:
                    shutil.rmtree(self.snapshot_path(name), ignore_errors=True)
                    self.stamps(name).clear()
            for sha in doomed:
                self.blobs.delete(sha)

    def _stage(self, manifest: Manifest, signature: bytes | None, oms: bytes | None = None) -> LocalModel:
        digest = manifest.digest
        for entry in manifest.files:
            if not self.blobs.has(entry.sha256):
                raise IntegrityError(f"blob of {entry.path} is missing", path=entry.path)
        mpath = self._manifest_path(digest)
        atomic_write(mpath, manifest.canonical_json())
        for data, suffix, name in ((signature, ".sig", SIGNATURE_FILE), (oms, OMS_SUFFIX, OMS_SIGNATURE_FILE)):
            if data is None:
                continue
            atomic_write(mpath.with_suffix(suffix), data)
            try:
                current = (self.snapshot_path(digest) / name).read_bytes()
            except OSError:
                current = None
            if current != data:  # rebuilt to carry the new signature
                shutil.rmtree(self.snapshot_path(digest), ignore_errors=True)
        # stamps stay: they name inodes, and a rebuilt snapshot links the same blobs (a copy does not match)
        path = self.snapshot(digest, manifest)
        ref = Reference(manifest.namespace, manifest.name, manifest.version, None, True)
        return LocalModel(ref, digest, manifest, path)

    def _commit(self, manifest: Manifest, signature: bytes | None, tags: list[str],
                oms: bytes | None = None) -> LocalModel:
        """Stage, make durable, then write the refs (synced when the outermost batch ends)."""
        with durable_batch(self.root):  # joins a pull's batch
            staged = self._stage(manifest, signature, oms)
            sync_barrier()  # everything the model needs is durable (one syncfs) before a ref names it
            for tag in tags:  # refs last
                atomic_write(self._ref_path(manifest.repo_id, tag), f"{staged.digest}\n".encode())
        ref = Reference(manifest.namespace, manifest.name, tags[0], None, True)
        return LocalModel(ref, staged.digest, manifest, staged.path)

    def remove(self, reference: str | Reference, *, check=None) -> list[RefEntry]:
        """Remove a tag (``ns/name:tag``), every tag of a digest (``@sha256:``), or every tag of a
        model (``ns/name``); then garbage-collect. Returns the refs removed. ``check(doomed, refs)``
        runs under the lock first and may refuse by raising (:mod:`gptstore.removal`)."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        with self.lock():
            refs = self.refs()
            entries = [e for e in refs if e.repo_id == ref.repo_id]
            if ref.digest:
                doomed = [e for e in entries if e.digest == ref.digest]
            elif ref.explicit_tag:
                doomed = [e for e in entries if e.tag == ref.tag]
            else:
                doomed = entries
            if not doomed:
                raise ModelNotFound(str(ref))
            if check is not None:
                check(doomed, refs)
            for entry in doomed:
                self._ref_path(entry.repo_id, entry.tag).unlink(missing_ok=True)
            folder = self.root / "refs" / ref.repo_id
            for empty in (folder, folder.parent):  # stray files (.DS_Store) keep a folder: fine
                try:
                    empty.rmdir()
                except OSError:
                    break
            self._gc()
        return doomed

    def gc(self) -> GCResult:
        with self.lock():
            return self._gc()

    def _gc(self) -> GCResult:
        result = GCResult()
        live = {e.digest for e in self.refs()}
        keep: set[str] = self._pinned()
        folder = self.root / "manifests" / "sha256"
        for name in _entries(folder, dirs=False):
            if not is_digest(name):  # .sig files, strays
                continue
            if name in live:
                keep.update(f.sha256 for f in self.manifest(name).files)
                continue
            (folder / name).unlink()
            for suffix in (".sig", OMS_SUFFIX, ORIGIN_SUFFIX):  # its signature, its origin (gptstore.origins)
                (folder / f"{name}{suffix}").unlink(missing_ok=True)
            shutil.rmtree(self.snapshot_path(name), ignore_errors=True)
            self.stamps(name).clear()
            result.manifests += 1
        for sha in list(self.blobs.all()):
            if is_digest(sha) and sha not in keep:
                result.bytes += self.blobs.size(sha)
                self.blobs.delete(sha)
                result.blobs += 1
        return result

    def iter_models(self) -> Iterator[tuple[RefEntry, Manifest]]:
        cache: dict[str, Manifest] = {}
        for entry in self.refs():
            if entry.digest not in cache:
                cache[entry.digest] = self.manifest(entry.digest)
            yield entry, cache[entry.digest]

