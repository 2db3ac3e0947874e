"""Verification: integrity (sizes and sha256 against the manifest) and safety.

Integrity hashes files in parallel threads (hashlib releases the GIL) with large reads. A stamp
cache of ``(inode, size, mtime_ns)`` per file, recorded after a full check, lets a re-verify of an
unchanged model skip hashing; ``full=True`` re-hashes everything.

Plugins add further checks (authenticity, policy) through ``register_verifiers``; :func:`verify_model`
runs them all.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .blobs import hash_file
from .errors import DigestMismatch, FileMissing, IntegrityError, UnlistedFile, UnsafeContentError
from .fsutil import atomic_write, package_files
from .manifest import METADATA_FILES, Manifest

if TYPE_CHECKING:
    from .library import Library, LocalModel

#: weight formats that can execute code when loaded (pickle)
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})
CODE_SUFFIXES = frozenset({".py", ".pyc", ".so"})


@dataclass
class CheckResult:
    """The outcome of one verification layer, as ``gptstore verify`` prints it."""

    name: str
    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    warning: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IntegrityReport:
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
            self.stamps: dict[str, list[int]] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.stamps = {}

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


def check_integrity(root: Path, manifest: Manifest, *, full: bool = False,
                    stamps: StampCache | None = None, workers: int | None = None,
                    reference: str | None = None) -> IntegrityReport:
    """Check every listed file under ``root`` against the manifest; report missing and extra files."""
    root = Path(root)
    report = IntegrityReport(files=len(manifest.files), bytes=manifest.total_size)
    listed = {f.path for f in manifest.files}
    for rel in package_files(root, skip=METADATA_FILES):
        if rel not in listed:
            report.problems.append(UnlistedFile(
                f"{rel} is present but not listed in the manifest", path=rel, reference=reference,
                hint="remove it, or run `gptstore package` again to list it"))
    to_hash = []
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
        if not full and stamps is not None and stamps.matches(entry.path, st):
            new_stamps[entry.path] = stamps.stamp_of(st)
            continue
        to_hash.append((entry, path, st))

    def work(item):
        entry, path, st = item
        return entry, st, hash_file(path)[0]

    to_hash.sort(key=lambda item: -item[0].size)  # largest first balances the threads
    workers = workers or min(len(to_hash), os.cpu_count() or 1) or 1
    if len(to_hash) <= 1 or workers == 1:
        results = map(work, to_hash)
    else:
        pool = ThreadPoolExecutor(max_workers=workers)
        results = pool.map(work, to_hash)
    for entry, st, actual in results:
        report.hashed += 1
        if actual != entry.sha256:
            report.problems.append(DigestMismatch(
                f"{entry.path} does not match its sha256 in the manifest (expected {entry.sha256[:12]}…, "
                f"got {actual[:12]}…)", path=entry.path, reference=reference, expected=entry.sha256,
                actual=actual, hint=_fix(entry.path)))
        else:
            new_stamps[entry.path] = StampCache.stamp_of(st)
    if stamps is not None:
        if report.ok:
            stamps.save(new_stamps)
        else:
            stamps.clear()
    return report


def unsafe_files(paths: list[str]) -> tuple[list[str], list[str]]:
    """(pickle files, code files) among package paths."""
    pickles = [p for p in paths if Path(p).suffix.lower() in PICKLE_SUFFIXES]
    code = [p for p in paths if Path(p).suffix.lower() in CODE_SUFFIXES]
    return pickles, code


def check_safety(paths: list[str], *, allow_unsafe: bool = False, config: dict | None = None,
                 where: str = "package") -> CheckResult:
    """Refuse pickle weights unless ``allow_unsafe``; custom code is always refused."""
    pickles, code = unsafe_files(paths)
    auto_map = bool(config and config.get("auto_map"))
    if code or auto_map:
        what = ", ".join(code) if code else "config.json auto_map"
        raise UnsafeContentError(f"{where} contains custom code ({what})", path=what,
                                 hint="gptstore never runs model code; remove it from the package")
    if pickles and not allow_unsafe:
        raise UnsafeContentError(
            f"{where} contains pickle-based weights that can run code when loaded: {', '.join(pickles)}",
            path=pickles[0], hint="convert them to safetensors, or pass --allow-unsafe if you trust the source")
    if pickles:
        return CheckResult("safety", True, f"pickle files allowed by --allow-unsafe: {', '.join(pickles)}",
                           {"pickle_files": pickles, "allow_unsafe": True}, warning=True)
    return CheckResult("safety", True, "no pickle weights, no custom code",
                       {"pickle_files": [], "allow_unsafe": allow_unsafe})


def read_model_config(root: Path) -> dict | None:
    try:
        return json.loads((root / "config.json").read_text())
    except (OSError, ValueError):
        return None


def safety_verifier(manifest: Manifest, path: Path, *, allow_unsafe: bool = False) -> CheckResult:
    return check_safety([f.path for f in manifest.files], allow_unsafe=allow_unsafe,
                        config=read_model_config(Path(path)), where=f"{manifest.repo_id}:{manifest.version}")


def verifiers() -> dict[str, tuple[str, Callable[[Manifest, Path], CheckResult]]]:
    """Extra checks registered by plugins (``register_verifiers``): ``{name: (plugin, check)}``."""
    from . import plugins

    found = plugins.collect("register_verifiers", "verifier", key=lambda name, check: name)
    return {name: (plugin, args[1]) for name, (plugin, args, _kw) in found.items()}


@dataclass
class VerificationReport:
    """Integrity, safety and every registered check (e.g. authenticity) for one model."""

    reference: str
    digest: str
    checks: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": f"sha256:{self.digest}", "ok": self.ok,
                "checks": [c.to_dict() for c in self.checks]}


def verify_model(model: LocalModel, library: Library, *, full: bool = False, allow_unsafe: bool = False,
                 strict: bool = True) -> VerificationReport:
    """Run every layer on a library model: integrity, then the registered checks, then safety.

    With ``strict`` the first failure raises (what ``load`` and ``pull`` do); without, failures
    are collected in the report (what ``gptstore verify`` prints).
    """
    integrity = library.check(model, full=full)
    return _run_checks(model.name, model.digest, model.manifest, model.path, integrity,
                       allow_unsafe=allow_unsafe, strict=strict)


def verify_directory(path: Path, *, full: bool = True, allow_unsafe: bool = False,
                     strict: bool = False) -> VerificationReport:
    """The same layers for a package directory (before it is published)."""
    from .manifest import load

    manifest = load(path)
    integrity = check_integrity(path, manifest, full=full, reference=str(path))
    return _run_checks(str(path), manifest.digest, manifest, Path(path), integrity,
                       allow_unsafe=allow_unsafe, strict=strict)


def _run_checks(reference: str, digest: str, manifest: Manifest, path: Path, integrity: IntegrityReport,
                *, allow_unsafe: bool, strict: bool) -> VerificationReport:
    from .errors import GPTStoreError, PluginError

    if strict:
        integrity.raise_first()
    checks = [integrity.as_check()]
    steps: list[tuple[str, str, Callable[[], CheckResult]]] = []
    for name, (plugin, check) in verifiers().items():
        steps.append((name, plugin, lambda check=check: check(manifest, path)))
    steps.append(("safety", "gptstore", lambda: safety_verifier(manifest, path, allow_unsafe=allow_unsafe)))
    for name, plugin, step in steps:
        try:
            result = step()
        except GPTStoreError as exc:
            if strict:
                raise
            result = CheckResult(name, False, str(exc))
        except Exception as exc:
            error = PluginError(plugin, f"verifier {name!r}", exc)
            if strict:
                raise error from exc
            result = CheckResult(name, False, str(error))
        checks.append(result)
    return VerificationReport(reference, digest, checks)
