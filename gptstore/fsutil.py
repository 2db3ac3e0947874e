"""Small filesystem helpers: atomic writes, directory fsync, durable batches, hard links with a
copy fallback.

Durable batches (:func:`durable_batch`): a pull writes some twenty small files (manifest,
signatures, snapshot files and links, integrity stamps) before its ref. An fsync of each file
and of each folder it lands in cost ~3 ms apiece, ~60 ms a pull. Inside a batch,
:func:`atomic_write` and :func:`fsync_dir` only record what they touched; leaving the batch makes
all of it durable at once — one ``syncfs(2)`` of the filesystem (Linux), else an fsync of every
recorded file and folder in a thread pool (the filesystem folds concurrent fsyncs into few journal
commits). The caller writes what *names* the batch's data (a ref) only after the batch has been
left without an error, so the invariant "a ref names only durable data" holds at a fraction of
the cost. A crash inside a batch leaves files that nothing names yet; each write is still atomic
(temp file + rename), so a reader sees an old or a whole new file, and after a power loss a file
written in a batch may be empty or absent, never named by a ref.

A batch belongs to the thread that opened it: writes from other threads (download workers) keep
their own fsyncs.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

_local = threading.local()
#: fsyncs in flight at once where there is no syncfs
FSYNC_WORKERS = 8


class DurableBatch:
    """Files and folders written inside :func:`durable_batch`, made durable together on exit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: set[Path] = set()
        self.dirs: set[Path] = set()

    def sync(self) -> None:
        if not self.files and not self.dirs:
            return
        if not _syncfs(self.root):
            paths = sorted(self.files) + sorted(self.dirs)
            with ThreadPoolExecutor(max_workers=min(FSYNC_WORKERS, len(paths))) as pool:
                list(pool.map(_fsync_path, paths))
        self.files.clear()
        self.dirs.clear()


def libc_function(name: str) -> Any:
    """The C library's function ``name`` as a ctypes function (errno kept), on Linux; None elsewhere
    or where the C library has no such function. Callers look it up on first use, not at import,
    where importing ctypes and finding the library would cost every command milliseconds."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    for library in (None, "libc.so.6"):  # None: the symbols already loaded into the process
        try:
            return getattr(ctypes.CDLL(library, use_errno=True), name)
        except (OSError, AttributeError):
            continue
    return None


def _load_syncfs() -> Any:
    fn = libc_function("syncfs")
    if fn is not None:
        import ctypes

        fn.argtypes = [ctypes.c_int]
        fn.restype = ctypes.c_int
    return fn


#: the ``syncfs`` function, looked up on first use (``...`` until then); None where there is none
_SYNCFS: Any = ...


def _syncfs(root: Path) -> bool:
    """One ``syncfs`` of the filesystem that holds ``root``; False where there is none (or it failed)."""
    global _SYNCFS
    if _SYNCFS is ...:
        _SYNCFS = _load_syncfs()
    if _SYNCFS is None:
        return False
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        return False
    try:
        return _SYNCFS(fd) == 0
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # replaced or removed since: its successor was recorded too
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def durable_batch(root: Path) -> Iterator[DurableBatch]:
    """Defer the fsyncs of :func:`atomic_write` / :func:`fsync_dir` in this thread to one sync at
    the end (``root``: a folder on the filesystem written to).

    A nested batch joins the outer one (synced when that is left). A writer that must make its
    data durable before it writes what names the data calls :func:`sync_barrier` between the two.
    On an exception nothing is synced: what the batch wrote is named by nothing yet."""
    outer = _current()
    if outer is not None:
        yield outer
        return
    batch = DurableBatch(Path(root))
    _local.batch = batch
    try:
        yield batch
    finally:
        _local.batch = None
    batch.sync()


def _current() -> DurableBatch | None:
    return getattr(_local, "batch", None)


def sync_barrier() -> None:
    """Make everything the current batch recorded durable now (nothing to do outside a batch:
    every write there was synced on its own)."""
    if (batch := _current()) is not None:
        batch.sync()


def sync_later(files: Iterator[Path] | list[Path] = (), dirs: Iterator[Path] | list[Path] = ()) -> None:
    """Inside a batch, add files and folders that came to be by a rename of their parent (a
    snapshot folder moved into place) to what the batch syncs; outside one, nothing to do (they
    were synced before the rename)."""
    if (batch := _current()) is not None:
        batch.files.update(map(Path, files))
        batch.dirs.update(map(Path, dirs))


def fsync_dir(path: Path) -> None:
    if (batch := _current()) is not None:
        batch.dirs.add(Path(path))
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int | None = None, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part.

    Durable on return (fsync of the file, then of its folder), or at the end of the enclosing
    :func:`durable_batch`. ``durable=False``: for files that matter only while this process runs
    (a pull's pin), no fsync at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = _current() if durable else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable and batch is None:
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if batch is not None:
        batch.files.add(path)
        batch.dirs.add(path.parent)
    elif durable:
        fsync_dir(path.parent)


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` at ``target`` where the filesystem allows, copy otherwise."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


#: folders that tools keep inside a model directory and that are never part of a package:
#: ``hf download --local-dir`` / ``snapshot_download(local_dir=...)`` keep their download
#: metadata (``.cache/huggingface/``) there
TOOL_FOLDERS = (".cache/huggingface",)
#: git's per-directory settings: a Hub repo carries one (the LFS patterns), a model never needs it
GIT_FILES = frozenset({".gitattributes"})
#: the model card a store generates for every push (:mod:`gptstore.stores.card`), at the root
CARD_FILE = "README.md"
#: how much of a README.md is read to tell a generated card (its metadata block) from a user's own
CARD_SNIFF_BYTES = 8192


def is_generated_card(path: Path) -> bool:
    """Whether ``path`` is the card a gptstore store generated: its YAML metadata block (the first
    lines, between ``---``) says ``library_name: gptstore``.

    Such a card is regenerated on every push from the manifest, so it is store output, not a
    package file. A README.md of the user's own (no such line) stays a package file.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(CARD_SNIFF_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return False
    lines = head.splitlines()
    if not lines or lines[0].strip() != "---":
        return False
    for line in lines[1:]:
        if line.strip() == "---":
            return False
        if line.strip() == "library_name: gptstore":
            return True
    return False


def package_files(root: Path, *, skip: frozenset[str] = frozenset()) -> list[str]:
    """Every regular file under ``root`` as sorted POSIX relative paths, minus ``skip``.

    Never package files, so a directory made by ``hf download --local-dir`` packages, verifies
    and publishes as it is: the download tools' folders (:data:`TOOL_FOLDERS`), git's
    ``.gitattributes`` and, at the root, a ``README.md`` that is a store's generated card
    (:func:`is_generated_card`). Integrity still checks any of them that a manifest lists.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if (rel_dir / d).as_posix() not in TOOL_FOLDERS)
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if rel in skip or name in GIT_FILES:
                continue
            if rel == CARD_FILE and is_generated_card(Path(dirpath) / name):
                continue
            found.append(rel)
    return sorted(found)
