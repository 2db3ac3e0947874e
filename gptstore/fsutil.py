"""Small filesystem helpers: atomic writes, directory fsync, hard links with a copy fallback."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
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


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
