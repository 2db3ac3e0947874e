"""Tokens for remote stores: ``--token`` > ``GPTSTORE_TOKEN`` > ``gptstore login`` > ``HF_TOKEN``.

A token goes only where it belongs. ``--token`` and ``GPTSTORE_TOKEN`` are for the store the
user named (``--store`` or ``GPTSTORE_STORE``; applied by :func:`~gptstore.stores.base.get_store`),
never for a URL that came from data (a lock file naming another store). Logins are kept per
store URL in ``GPTSTORE_HOME/credentials.json`` with mode 0600 and used for exactly that URL;
``HF_TOKEN`` only for ``hf://`` (huggingface.co).

:func:`gptstore.stores.login.login` checks a token against a store before keeping it here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import config
from ..errors import AuthError
from ..fsutil import atomic_write


def credentials_file() -> Path:
    return config.home() / "credentials.json"


def _read() -> dict[str, str]:
    path = credentials_file()
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return {}
    if mode & 0o077:
        raise AuthError(f"{path} is readable by others (mode {mode:o})", hint=f"run chmod 600 {path}")
    return json.loads(path.read_text() or "{}")


def _key(url: str) -> str:
    return url.rstrip("/")


def same_store(a: str | None, b: str | None) -> bool:
    """Whether two store URLs name the same store (as logins are keyed: trailing ``/`` ignored)."""
    return a is not None and b is not None and _key(a) == _key(b)


def token_for(url: str) -> str | None:
    """The token for a store when none was given: the login saved for this very URL, else
    ``HF_TOKEN`` for ``hf://``. Never ``GPTSTORE_TOKEN`` (that is for the named store only)."""
    token = _read().get(_key(url))
    if token is None and url.startswith("hf://"):
        token = config.env("HF_TOKEN")
    return token


def save_login(url: str, token: str) -> Path:
    data = _read()
    data[_key(url)] = token
    path = credentials_file()
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True).encode(), mode=0o600)
    os.chmod(path, 0o600)
    return path


def remove_login(url: str) -> bool:
    data = _read()
    if data.pop(_key(url), None) is None:
        return False
    atomic_write(credentials_file(), json.dumps(data, indent=2, sort_keys=True).encode(), mode=0o600)
    return True
