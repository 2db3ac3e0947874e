"""A fine-tuning run's working directory and its output: where checkpoints live, which one a new run
may resume from, and how the finished package replaces an earlier output.

Checkpoints live outside the package (``GPTSTORE_HOME/finetune/<key of --out>/``, or a directory
given), beside ``run.json``: the identity of the run that wrote them and the base's held-out loss.
A checkpoint is resumed only by a run with the same identity; ``out`` only ever holds a package,
and is replaced only when it holds exactly what an earlier ``finetune`` wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .. import config as gconfig
from ..errors import ConflictError, GPTStoreError
from ..fsutil import package_files
from ..manifest import METADATA_FILES, load_manifest

#: what a checkpoint must share with a new run to be resumed from
IDENTITY = ("base", "data", "method", "method_options", "block_size", "eval_split", "seed", "text_mode",
            "eval_data")


def default_checkpoint_dir(out: Path) -> Path:
    key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return gconfig.home() / "finetune" / key


def is_finetune_output(out: Path) -> bool:
    """Whether ``out`` holds exactly the package an earlier ``finetune`` wrote (safe to replace)."""
    try:
        manifest = load_manifest(out)
    except GPTStoreError:
        return False
    if manifest.provenance is None or manifest.provenance.hyperparameters.get("method") is None:
        return False
    return set(package_files(out, skip=METADATA_FILES)) == {f.path for f in manifest.files}


def check_out(out: Path) -> None:
    """Refuse an output path that holds something other than an earlier finetune's package."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConflictError(f"output {out} is a file", hint="give a new or empty directory as --out")
    if any(out.iterdir()) and not is_finetune_output(out):
        raise ConflictError(f"output directory {out} is not empty and holds no earlier finetune output",
                            hint="choose a new --out, or empty the directory")


def last_checkpoint(workdir: Path, identity: dict[str, Any], *, resume: bool) -> Path | None:
    """The checkpoint to resume from; refuses checkpoints of a run with other base or data."""
    if not resume or not workdir.is_dir():
        return None
    checkpoints = [p for p in workdir.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()]
    if not checkpoints:
        return None
    recorded = read_run_record(workdir).get("identity") or {}
    changed = [k for k in IDENTITY if recorded.get(k) != identity.get(k)]
    if changed:
        raise ConflictError(
            f"the checkpoints for {identity['out']} come from a run with another {', '.join(changed)}",
            hint="pass --no-resume to start over, or choose another --out")
    return max(checkpoints, key=lambda p: int(p.name[11:]))


def finished_run(workdir: Path, out: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a finished run with this exact ``fingerprint`` (identity, hyper-parameters,
    name, version) whose package is still at ``out`` unchanged, else None. Re-running such a run
    is a no-op: the same package and digest, no further step."""
    finished = read_run_record(workdir).get("finished")
    if not isinstance(finished, dict) or finished.get("fingerprint") != fingerprint:
        return None
    try:
        manifest = load_manifest(out)
    except GPTStoreError:
        return None
    if manifest.digest != finished.get("digest") or not is_finetune_output(out):
        return None
    return finished if isinstance(finished.get("result"), dict) else None


def install(tmp: Path, out: Path) -> None:
    """Put the finished package at ``out``, replacing an earlier finetune output there."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def read_run_record(workdir: Path) -> dict[str, Any]:
    """``run.json`` beside the checkpoints: the run's identity, the base's held-out loss and, once
    the run has finished, what it wrote (``finished``: fingerprint, digest, result)."""
    try:
        record = json.loads((workdir / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
