"""Pull a model from a store into the local library, verified before it appears.

Order of work: find the model and read its manifest (validated) and signature; check safety and
authenticity against the trust policy; fetch the small ``config.json`` (verified like every file)
and refuse custom code it declares (``auto_map``) — all before any weight is fetched; then download the files
the library lacks, in parallel, hashing each while it streams into the blob store (a mismatch
names the file and leaves no blob); an interrupted download resumes where it stopped; the ref is
written only when every file is in. A package over a base model (``format.base``, e.g. a peft
adapter) brings its base along: the base, pinned to its manifest digest, is pulled from the same
store first (verified the same way), unless the library already has that digest.
"""

from __future__ import annotations

import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from filelock import FileLock

from .blobs import BlobWriter
from .errors import ConflictError, ManifestError
from .library import Library, LocalModel
from .manifest import SIGNATURE_FILE, FileEntry
from .refs import DEFAULT_TAG, Reference, parse as parse_ref
from .stores.base import Located, Store, get_store


@dataclass
class PullResult:
    model: LocalModel
    located: Located
    fetched_files: int
    fetched_bytes: int
    reused_files: int
    resumed_bytes: int = 0  # bytes of interrupted downloads that were kept, not fetched again
    base: PullResult | None = None  # the base model pulled first for an adapter package, if needed


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


def _check_before_download(located: Located, *, allow_unsafe: bool) -> None:
    """Safety and authenticity only need the manifest and signature: check them first."""
    from .signing import authenticity
    from .verify import check_safety

    manifest = located.manifest
    check_safety([f.path for f in manifest.files], allow_unsafe=allow_unsafe,
                 where=f"{manifest.repo_id}:{manifest.version}")
    with tempfile.TemporaryDirectory() as tmp:
        if located.signature is not None:
            (Path(tmp) / SIGNATURE_FILE).write_bytes(located.signature)
        authenticity(manifest, tmp)


CONFIG_FILE = "config.json"
#: the largest config.json read to check it for custom code before the weights
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def _fetch_blob(source: Store, located: Located, library: Library, entry: FileEntry,
                advance: Callable[[int], None] | None = None) -> tuple[int, int, bool]:
    """One file into the library's blobs, verified; (bytes fetched, bytes resumed, fetched at all)."""
    from .blobs import is_sha256

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
                                 allow_unsafe: bool) -> list[tuple[int, int, bool]]:
    """Custom code a ``config.json`` declares (``auto_map``) is refused before any weight is
    fetched: that small file comes first, verified against the manifest like every file."""
    import json

    from .verify import check_safety

    manifest = located.manifest
    entry = manifest.file(CONFIG_FILE)
    if entry is None:
        return []
    where = f"{manifest.repo_id}:{manifest.version}"
    if entry.size > MAX_CONFIG_BYTES:
        raise ManifestError(f"{where}: {CONFIG_FILE} is {entry.size} bytes, more than the {MAX_CONFIG_BYTES} "
                            "a model config may have; refusing it", hint="the package is broken or hostile")
    counts = [_fetch_blob(source, located, library, entry)]
    try:
        model_config = json.loads(library.blobs.read_bytes(entry.sha256))
    except (ValueError, RecursionError):
        model_config = None
    check_safety([f.path for f in manifest.files], allow_unsafe=allow_unsafe,
                 config=model_config if isinstance(model_config, dict) else None, where=where)
    return counts


def pull(reference: str | Reference, *, store: str | Store | None = None, library: Library | None = None,
         allow_unsafe: bool = False, revision: str | None = None, token: str | None = None,
         workers: int = 4, progress: Callable[[int, int], None] | None = None) -> PullResult:
    """Bring a model into the library. ``revision`` pins the store's revision (lock files).

    ``progress(done, total)`` is called with the bytes fetched so far (from any download thread).
    """
    ref = parse_ref(reference) if isinstance(reference, str) else reference
    library = library or Library()
    source = store if isinstance(store, Store) else get_store(store, token=token)
    located = source.locate(ref, revision=revision)
    manifest = located.manifest
    _check_before_download(located, allow_unsafe=allow_unsafe)
    tags = [manifest.version]
    if ref.tag == DEFAULT_TAG or DEFAULT_TAG not in library.tags(manifest.repo_id):
        tags.append(DEFAULT_TAG)
    current = library.tags(manifest.repo_id).get(manifest.version)
    if current is not None and current != located.digest:
        raise ConflictError(f"{manifest.repo_id}:{manifest.version} in the local library has other content "
                            f"(sha256:{current[:12]}…) than {source.url} (sha256:{located.digest[:12]}…)",
                            hint=f"remove the local copy with `gptstore rm {manifest.repo_id}:{manifest.version}`")
    # from here until the ref is written, `rm` (garbage collection) in any process keeps these blobs
    with library.pin(f.sha256 for f in manifest.files):
        first = _check_config_before_weights(source, located, library, allow_unsafe=allow_unsafe)
        base = manifest.format.base
        base_result = None
        if base is not None and not library.has_manifest(base.digest):  # the base first, pinned by digest
            pinned = replace(parse_ref(base.reference), digest=base.digest)
            base_result = pull(pinned, store=source, library=library, allow_unsafe=allow_unsafe, token=token,
                               workers=workers, progress=progress)
        missing = [f for f in manifest.files if not library.blobs.has(f.sha256)]
        missing = list({f.sha256: f for f in missing}.values())

        ahead = sum(c[0] + c[1] for c in first)  # config.json, fetched before the weights
        total = sum(f.size for f in missing) + ahead
        done = [ahead]
        lock = threading.Lock()
        if progress and ahead:
            progress(ahead, total)

        def advance(n: int) -> None:
            with lock:
                done[0] += n
                progress(done[0], total)

        def one(entry: FileEntry) -> tuple[int, int, bool]:
            return _fetch_blob(source, located, library, entry, advance if progress else None)

        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(missing) or 1))) as pool:
            counts = first + list(pool.map(one, missing))
        model = library.add(manifest, signature=located.signature, tags=tags)
    fetched = sum(1 for c in counts if c[2])
    return PullResult(model, located, fetched, sum(c[0] for c in counts), len(manifest.files) - fetched,
                      sum(c[1] for c in counts), base=base_result)
