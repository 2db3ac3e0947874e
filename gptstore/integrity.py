"""Integrity: every file of a package directory against its manifest (size and sha256).

:func:`check_integrity` reports files that are missing, files that are present but not listed,
sizes that differ and, depending on ``mode``, contents that differ:

- ``"full"`` re-hashes every file;
- ``"stamps"`` (the default) skips files whose ``(inode, size, mtime_ns)`` match the
  :class:`StampCache` recorded after the last clean check, and hashes the others; a snapshot of
  the library whose files are hard links to read-only blobs re-verifies in milliseconds;
- ``"listing"`` hashes nothing: the cheap check ``publish`` runs before it copies a byte (the
  copy itself hashes every file).

Hashing runs in parallel threads (hashlib releases the GIL) with large reads, largest files
first. This module knows nothing of libraries, stores or policies: it is a pure check, fed a
directory and a manifest.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .blobs import hash_file
from .checks import CheckResult
from .errors import DigestMismatch, FileMissing, IntegrityError, UnlistedFile
from .fsutil import atomic_write, package_files
from .manifest import METADATA_FILES, FileEntry, Manifest

Mode = Literal["stamps", "full", "listing"]
MODES: tuple[str, ...] = ("stamps", "full", "listing")


@dataclass
class IntegrityReport:
    """What :func:`check_integrity` found: counts, and every problem as an :class:`IntegrityError`."""

    files: int = 0
    bytes: int = 0
    hashed: int = 0
    problems: list[IntegrityError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_first(self) -> None:
        if self.problems:
            raise self.problems[0]

    def as_check(self) -> CheckResult:
        if self.ok:
            summary = f"{self.files} files, {self.bytes} bytes match the manifest ({self.hashed} hashed)"
        else:
            summary = f"{len(self.problems)} problem(s): " + "; ".join(p.message for p in self.problems[:3])
        return CheckResult("integrity", self.ok, summary,
                           {"files": self.files, "bytes": self.bytes, "hashed": self.hashed,
                            "problems": [str(p) for p in self.problems]})


class StampCache:
    """``{path: [inode, size, mtime_ns]}`` of files that passed a full hash, in a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            stamps = json.loads(path.read_text())
        except (OSError, ValueError):
            stamps = {}
        self.stamps: dict[str, list[int]] = stamps if isinstance(stamps, dict) else {}

    @staticmethod
    def stamp_of(st: os.stat_result) -> list[int]:
        return [st.st_ino, st.st_size, st.st_mtime_ns]

    def matches(self, rel: str, st: os.stat_result) -> bool:
        return self.stamps.get(rel) == self.stamp_of(st)

    def save(self, stamps: dict[str, list[int]]) -> None:
        self.stamps = stamps
        atomic_write(self.path, json.dumps(stamps, sort_keys=True).encode())

    def clear(self) -> None:
        self.stamps = {}
        self.path.unlink(missing_ok=True)


def _fix(rel: str) -> str:
    return f"restore {rel} from the original package, or remove the model and pull it again"


def check_integrity(root: Path | str, manifest: Manifest, *, mode: Mode = "stamps",
                    stamps: StampCache | None = None, workers: int | None = None,
                    reference: str | None = None) -> IntegrityReport:
    """Check every listed file under ``root`` against the manifest; report missing and extra files.

    ``stamps`` (modes ``stamps`` and ``full``) is read to skip unchanged files and rewritten after
    the check: with the stamps of every file when all is well, emptied when not.
    """
    if mode not in MODES:
        raise ValueError(f"unknown integrity mode {mode!r}: use one of {', '.join(MODES)}")
    root = Path(root)
    report = IntegrityReport(files=len(manifest.files), bytes=manifest.total_size)
    listed = {f.path for f in manifest.files}
    for rel in package_files(root, skip=METADATA_FILES):
        if rel not in listed:
            report.problems.append(UnlistedFile(
                f"{rel} is present but not listed in the manifest", path=rel, reference=reference,
                hint="remove it, or run `gptstore package` again to list it"))
    to_hash: list[tuple[FileEntry, Path, os.stat_result]] = []
    new_stamps: dict[str, list[int]] = {}
    for entry in manifest.files:
        path = root / entry.path
        try:
            st = path.stat()
        except FileNotFoundError:
            report.problems.append(FileMissing(
                f"{entry.path} is listed in the manifest but missing", path=entry.path,
                reference=reference, hint=_fix(entry.path)))
            continue
        if st.st_size != entry.size:
            report.problems.append(DigestMismatch(
                f"{entry.path} has {st.st_size} bytes, the manifest says {entry.size}",
                path=entry.path, reference=reference, expected=str(entry.size), actual=str(st.st_size),
                hint=_fix(entry.path)))
            continue
        if mode == "listing":
            continue
        if mode == "stamps" and stamps is not None and stamps.matches(entry.path, st):
            new_stamps[entry.path] = stamps.stamp_of(st)
            continue
        to_hash.append((entry, path, st))
    for entry, st, actual in _hash_all(to_hash, workers):
        report.hashed += 1
        if actual != entry.sha256:
            report.problems.append(DigestMismatch(
                f"{entry.path} does not match its sha256 in the manifest (expected {entry.sha256[:12]}…, "
                f"got {actual[:12]}…)", path=entry.path, reference=reference, expected=entry.sha256,
                actual=actual, hint=_fix(entry.path)))
        else:
            new_stamps[entry.path] = StampCache.stamp_of(st)
    if stamps is not None and mode != "listing":
        if report.ok:
            stamps.save(new_stamps)
        else:
            stamps.clear()
    return report


def _hash_all(items: list[tuple[FileEntry, Path, os.stat_result]],
              workers: int | None) -> list[tuple[FileEntry, os.stat_result, str]]:
    """``(entry, stat, sha256 hex)`` of each file; large files first, so the threads stay balanced."""
    def work(item: tuple[FileEntry, Path, os.stat_result]) -> tuple[FileEntry, os.stat_result, str]:
        entry, path, st = item
        return entry, st, hash_file(path)[0]

    items = sorted(items, key=lambda item: -item[0].size)
    workers = workers or min(len(items), os.cpu_count() or 1) or 1
    if len(items) <= 1 or workers == 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(work, items))


__all__ = ["MODES", "IntegrityReport", "StampCache", "check_integrity"]
