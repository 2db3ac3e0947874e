"""Safety: content that could run code when a model is loaded is refused.

- pickle-based weights (``.bin``, ``.pt``, ``.pth``, ``.pkl``, ``.pickle``, ``.ckpt``) are refused
  unless the user says ``--allow-unsafe`` (``allow_unsafe=True``);
- custom code (``.py``, ``.pyc``, ``.so`` files, or a ``config.json`` whose ``auto_map`` asks
  transformers to import code from the package) is always refused: gptstore never runs model
  code, and ``trust_remote_code`` is never enabled.

A pure check on a list of package paths and a parsed ``config.json``: it needs neither the
library nor the bytes of the weights, so ``pull`` runs it on a store's manifest before any
download, and again on ``config.json`` before any weight.

It is also a built-in plugin (listed in ``gptstore.plugins.DEFAULT_PLUGINS``): the ``safety``
verifier, registered through ``register_verifiers`` like any other check and run by
:func:`gptstore.verify` on every model it verifies, with the caller's ``allow_unsafe``.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from .checks import CheckResult
from .errors import UnsafeContentError
from .hookspecs import hookimpl

#: weight formats that can execute code when loaded (pickle)
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})
#: files that are code
CODE_SUFFIXES = frozenset({".py", ".pyc", ".so"})
#: the model config whose ``auto_map`` would import code
CONFIG_FILE = "config.json"
#: the largest ``config.json`` read to look for ``auto_map``
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def unsafe_files(paths: list[str]) -> tuple[list[str], list[str]]:
    """(pickle files, code files) among package paths."""
    pickles = [p for p in paths if PurePosixPath(p).suffix.lower() in PICKLE_SUFFIXES]
    code = [p for p in paths if PurePosixPath(p).suffix.lower() in CODE_SUFFIXES]
    return pickles, code


def check_safety(paths: list[str], *, allow_unsafe: bool = False, config: dict | None = None,
                 where: str = "package") -> CheckResult:
    """Refuse pickle weights unless ``allow_unsafe``; custom code is always refused.

    ``config`` is the package's parsed ``config.json`` (``None`` when there is none); ``where``
    names the package in the error.
    """
    pickles, code = unsafe_files(paths)
    auto_map = bool(isinstance(config, dict) and config.get("auto_map"))
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


def parse_model_config(data: bytes) -> dict | None:
    """A ``config.json``'s content as a dict; ``None`` for anything else (not JSON, not an object)."""
    try:
        config = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return config if isinstance(config, dict) else None


def read_model_config(root: Path | str) -> dict | None:
    """``root/config.json`` as a dict; ``None`` when absent or not a JSON object. One larger than
    :data:`MAX_CONFIG_BYTES` is refused (it could hide an ``auto_map`` we would not read)."""
    try:
        with open(Path(root) / CONFIG_FILE, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_CONFIG_BYTES:
        raise UnsafeContentError(f"{Path(root) / CONFIG_FILE} is larger than {MAX_CONFIG_BYTES} bytes, more "
                                 "than a model config may have; refusing it", path=CONFIG_FILE,
                                 hint="the package is broken or hostile")
    return parse_model_config(data)


__all__ = ["PICKLE_SUFFIXES", "CODE_SUFFIXES", "CONFIG_FILE", "MAX_CONFIG_BYTES", "unsafe_files",
           "check_safety", "parse_model_config", "read_model_config"]


# -- the built-in verifier ------------------------------------------------------------------------

def safety_verifier(manifest, path: Path, *, allow_unsafe: bool = False) -> CheckResult:
    """``check(manifest, path, allow_unsafe=…)`` for ``register_verifiers``: the package's file
    list and its ``config.json``."""
    return check_safety([f.path for f in manifest.files], allow_unsafe=allow_unsafe,
                        config=read_model_config(path), where=f"{manifest.repo_id}:{manifest.version}")


@hookimpl(trylast=True)  # a built-in; `gptstore.verify` never lets a caller skip it
def register_verifiers(register):
    register("safety", safety_verifier, options=("allow_unsafe",))
