"""Pull a model from a store into the local library, verified before it appears.

Order of work: find the model and read its manifest (validated) and signature; check safety and
authenticity against the trust policy (:func:`~gptstore.verification.verify_located`); fetch the
small ``config.json`` (verified like every file) and refuse custom code it declares
(``auto_map``) — all before any weight is fetched; then download the files the library lacks, in
parallel, hashing each while it streams into the blob store (a mismatch names the file and leaves
no blob); an interrupted download resumes where it stopped; the ref is written only when every
file is in. A package over a base model (``format.base``, e.g. a peft adapter) brings its base
along: the base, pinned to its manifest digest, is pulled from the same store first (verified the
same way), unless the library already has that digest.

Last, the model is verified as ``load`` verifies it (:func:`~gptstore.verification.verify`).
Downloads were hashed while they streamed and are not read again (their stamps are recorded);
blobs that were already in the library are checked. A damaged one is fetched again, so
"verified" in ``gptstore pull``'s output means what ``gptstore verify`` says.

Why the module is ``pulling`` and not ``pull``: a package's attributes and its submodules share
one namespace. ``gptstore.pull`` is the front-door function (:func:`gptstore.sdk.pull`, served
lazily by ``gptstore/__init__.py``); once anything imported a submodule ``gptstore.pull``, Python
would set the package attribute ``gptstore.pull`` to that module, and ``gptstore.pull(...)``
would fail with "'module' object is not callable" in every later caller of the process. The
same happened to ``gptstore.verify`` (hence ``verification.py``). An alias or a ``__getattr__``
trick cannot undo the import system's assignment, so no submodule is named like a public
function (``tests/test_sdk.py`` checks every name of ``gptstore.__all__``); the name follows
``packaging``, ``signing`` and ``verification``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from filelock import FileLock

from .blobs import BlobWriter, hash_file, is_sha256
from .checks import CheckResult
from .errors import ConflictError, ManifestError
from .fsutil import durable_batch
from .integrity import IntegrityReport
from .library import Library, LocalModel
from .manifest import FileEntry
from .origins import record_origin
from .refs import DEFAULT_TAG, Reference, parse_reference
from .safety import CONFIG_FILE, MAX_CONFIG_BYTES, check_safety, parse_model_config
from .stores.base import Located, Store, get_store
from .verification import VerificationReport, show_warnings, verify, verify_located


@dataclass
class PullResult:
    model: LocalModel
    located: Located
    fetched_files: int
    fetched_bytes: int
    reused_files: int
    resumed_bytes: int = 0  # bytes of interrupted downloads that were kept, not fetched again
    base: PullResult | None = None  # the base model pulled first for an adapter package, if needed
    checks: list[CheckResult] = field(default_factory=list)  # the verification of the pulled model
    repaired_files: int = 0  # damaged blobs that were in the library and were fetched again

    @property
    def warnings(self) -> list[str]:
        """The warning lines of this pull's verification (the base's first)."""
        lines = self.base.warnings if self.base is not None else []
        return lines + [line for line in (c.warning_line for c in self.checks) if line]

    def to_dict(self) -> dict[str, Any]:
        """What ``gptstore pull --json`` prints for this model (its base, if pulled, is a result of its own)."""
        return {"reference": self.model.name, "digest": f"sha256:{self.model.digest}",
                "fetched_files": self.fetched_files, "fetched_bytes": self.fetched_bytes,
                "reused_files": self.reused_files, "repaired_files": self.repaired_files,
                "resumed_bytes": self.resumed_bytes,
                "path": str(self.model.path)}  # the snapshot: a plain directory (model_signing verify runs on it)


class _Counting:
    """A BlobWriter that reports every write (for a progress bar)."""

    def __init__(self, writer: BlobWriter, advance: Callable[[int], None]) -> None:
        self._writer = writer
        self._advance = advance

    def write(self, data: bytes | memoryview) -> None:
        self._writer.write(data)
        self._advance(len(data))

    def restart(self) -> None:
        self._advance(-self._writer.size)
        self._writer.restart()

    def __getattr__(self, name: str):
        return getattr(self._writer, name)


def _fetch_blob(source: Store, located: Located, library: Library, entry: FileEntry,
                advance: Callable[[int], None] | None = None) -> tuple[int, int, bool]:
    """One file into the library's blobs, verified; (bytes fetched, bytes resumed, fetched at all)."""
    manifest = located.manifest
    if not is_sha256(entry.sha256):  # the manifest checks it; a lock file name is built from it
        raise ManifestError(f"{manifest.repo_id}:{manifest.version} {entry.path}: invalid sha256")
    library.blobs.tmp.mkdir(parents=True, exist_ok=True)
    # one downloader per blob across processes: a second pull waits, then finds the blob in.
    # The lock file goes once the blob exists (anyone holding or taking it then returns early).
    lock_path = library.blobs.tmp / f"pull-{entry.sha256}.lock"
    with FileLock(str(lock_path)):
        if library.blobs.has(entry.sha256):
            lock_path.unlink(missing_ok=True)
            return 0, 0, False  # another pull brought it meanwhile
        with library.blobs.writer(expected_sha256=entry.sha256, expected_size=entry.size,
                                  resume_name=f"pull-{entry.sha256}") as writer:
            resumed = writer.size
            if advance and resumed:
                advance(resumed)
            source.fetch(located, entry, _Counting(writer, advance) if advance else writer)
            writer.commit(label=f"{manifest.repo_id}:{manifest.version} {entry.path}")
        lock_path.unlink(missing_ok=True)
    return entry.size - resumed, resumed, True


def _check_config_before_weights(source: Store, located: Located, library: Library, *,
                                 allow_unsafe: bool) -> list[tuple[FileEntry, tuple[int, int, bool]]]:
    """Custom code a ``config.json`` declares (``auto_map``) is refused before any weight is
    fetched: that small file comes first, verified against the manifest like every file."""
    manifest = located.manifest
    entry = manifest.file(CONFIG_FILE)
    if entry is None:
        return []
    where = f"{manifest.repo_id}:{manifest.version}"
    if entry.size > MAX_CONFIG_BYTES:
        raise ManifestError(f"{where}: {CONFIG_FILE} is {entry.size} bytes, more than the {MAX_CONFIG_BYTES} "
                            "a model config may have; refusing it", hint="the package is broken or hostile")
    fetched = [(entry, _fetch_blob(source, located, library, entry))]
    check_safety([f.path for f in manifest.files], allow_unsafe=allow_unsafe,
                 config=parse_model_config(library.blobs.read_bytes(entry.sha256)), where=where)
    return fetched


def pull(reference: str | Reference, *, store: str | Store | None = None, library: Library | None = None,
         allow_unsafe: bool = False, revision: str | None = None, token: str | None = None,
         workers: int = 4, progress: Callable[[int, int], None] | None = None, warn: bool = True) -> PullResult:
    """Bring a model into the library, verified. ``revision`` pins the store's revision (lock files).

    ``progress(done, total)`` is called with the bytes fetched so far (from any download thread).
    The verification's warnings (e.g. an unsigned model under the ``warn`` policy) are in
    ``result.warnings``; with ``warn`` they are also logged, once each
    (:func:`~gptstore.verification.show_warnings`). A caller that verifies again and shows its own
    report's warnings (``gptstore.load``) passes ``warn=False``.
    """
    result = _pull(reference, store=store, library=library, allow_unsafe=allow_unsafe, revision=revision,
                   token=token, workers=workers, progress=progress)
    if warn:
        show_warnings(result.warnings)
    return result


def _pull(reference: str | Reference, *, store: str | Store | None, library: Library | None, allow_unsafe: bool,
          revision: str | None, token: str | None, workers: int,
          progress: Callable[[int, int], None] | None) -> PullResult:
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    library = library or Library()
    source = store if isinstance(store, Store) else get_store(store, token=token)
    located = source.locate(ref, revision=revision, allow_unsafe=allow_unsafe)
    manifest = located.manifest
    verify_located(located, allow_unsafe=allow_unsafe)  # refusals before any byte; warnings come again below
    tags = [manifest.version]
    existing = library.tags(manifest.repo_id)
    if ref.tag == DEFAULT_TAG or DEFAULT_TAG not in existing:
        tags.append(DEFAULT_TAG)
    current = existing.get(manifest.version)
    if current is not None and current != located.digest:
        raise ConflictError(f"{manifest.repo_id}:{manifest.version} in the local library has other content "
                            f"(sha256:{current[:12]}…) than {source.url} (sha256:{located.digest[:12]}…)",
                            hint=f"remove the local copy with `gptstore rm {manifest.repo_id}:{manifest.version}`")
    # from here until the ref is written, `rm` (garbage collection) in any process keeps these blobs
    with library.pin(f.sha256 for f in manifest.files):
        fetched = _check_config_before_weights(source, located, library, allow_unsafe=allow_unsafe)
        base = manifest.format.base
        base_result = None
        if base is not None and not library.has_manifest(base.digest):  # the base first, pinned by digest
            pinned = replace(parse_reference(base.reference), digest=base.digest)
            base_result = _pull(pinned, store=source, library=library, allow_unsafe=allow_unsafe, revision=None,
                                token=token, workers=workers, progress=progress)
        fetched += _fetch_missing(source, located, library, fetched, workers=workers, progress=progress)
        # the small files (manifest, snapshot, stamps, origin) without an fsync each: add() syncs
        # them all at once before it writes the refs, the refs and origin are synced when this ends
        with durable_batch(library.root):
            report, repaired, model = _stage_verify_add(source, located, library, fetched, tags,
                                                        allow_unsafe=allow_unsafe)
            record_origin(library.root, located.digest, source.url)  # what `gptstore lock` pins by default
        fetched += repaired
    counts = [count for _entry, count in fetched]
    files = sum(1 for c in counts if c[2])
    return PullResult(model, located, files, sum(c[0] for c in counts), len(manifest.files) - files,
                      sum(c[1] for c in counts), base=base_result, checks=report.checks,
                      repaired_files=len(repaired))


Fetched = list[tuple[FileEntry, tuple[int, int, bool]]]


def _stage_verify_add(source: Store, located: Located, library: Library, fetched: Fetched, tags: list[str], *,
                      allow_unsafe: bool) -> tuple[VerificationReport, Fetched, LocalModel]:
    """Verified as ``load`` will verify it (damaged blobs fetched again), before the ref makes it appear."""
    manifest = located.manifest
    staged = library.stage(manifest, signature=located.signature, oms_signature=located.oms_signature,
                           hashed={entry.sha256 for entry, count in fetched if count[2]})
    report = verify(staged, library=library, allow_unsafe=allow_unsafe, strict=False)
    repaired: Fetched = []
    if report.integrity is not None and not report.integrity.ok:
        repaired = _fetch_damaged(source, located, library, report.integrity)
        staged = library.stage(manifest, signature=located.signature, oms_signature=located.oms_signature,
                               hashed={entry.sha256 for entry, _count in repaired})
    if not report.ok:
        report = verify(staged, library=library, allow_unsafe=allow_unsafe)  # strict: raises what is still wrong
    model = library.add(manifest, signature=located.signature, oms_signature=located.oms_signature, tags=tags)
    return report, repaired, model


def _fetch_missing(source: Store, located: Located, library: Library, ahead: Fetched, *, workers: int,
                   progress: Callable[[int, int], None] | None) -> Fetched:
    """Every blob the library lacks, in parallel; ``ahead`` is what was fetched before (config.json)."""
    missing = [f for f in located.manifest.files if not library.blobs.has(f.sha256)]
    missing = list({f.sha256: f for f in missing}.values())
    before = sum(c[0] + c[1] for _entry, c in ahead)
    total = sum(f.size for f in missing) + before
    done = [before]
    lock = threading.Lock()
    if progress and before:
        progress(before, total)

    def advance(n: int) -> None:
        assert progress is not None
        with lock:
            done[0] += n
            progress(done[0], total)

    def one(entry: FileEntry) -> tuple[FileEntry, tuple[int, int, bool]]:
        return entry, _fetch_blob(source, located, library, entry, advance if progress else None)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(missing) or 1))) as pool:
        return list(pool.map(one, missing))


def _fetch_damaged(source: Store, located: Located, library: Library, integrity: IntegrityReport) -> Fetched:
    """Fetch again the blobs behind the files the verification found damaged.

    A file can be damaged in its blob (a write through a hard link: every model sharing the blob
    sees it) or only in the snapshot (a file replaced or removed there). Each named blob is hashed:
    damaged ones are discarded with every snapshot that links them and fetched again; the snapshot
    of this model is rebuilt either way.
    """
    manifest = located.manifest
    damaged: dict[str, FileEntry] = {}
    for problem in integrity.problems:
        entry = manifest.file(problem.path) if isinstance(problem.path, str) else None
        if entry is None or entry.sha256 in damaged:
            continue
        try:
            sound = hash_file(library.blobs.path(entry.sha256))[0] == entry.sha256
        except OSError:
            sound = False
        if not sound:
            damaged[entry.sha256] = entry
    library.discard_blobs(damaged, located.digest)
    return [(entry, _fetch_blob(source, located, library, entry)) for entry in damaged.values()]
