"""The one place that reads gptstore's environment variables and default paths.

Values are read on every call (cheap), so tests and long-running processes see changes.

| variable                | meaning                                                            |
|-------------------------|--------------------------------------------------------------------|
| GPTSTORE_HOME           | the local library and all state (default: the user data dir)       |
| GPTSTORE_STORE          | default store URL for search/pull/show/run (default: hf://)        |
| HF_ENDPOINT             | where hf:// points (default https://huggingface.co)                |
| HF_TOKEN                | token for hf:// when no other is given                             |
| GPTSTORE_LOAD_PLUGINS   | comma list of plugin distributions to load; empty = none           |
| GPTSTORE_DEBUG          | 1 = print tracebacks                                               |
| GPTSTORE_TRACE_PLUGINS  | 1 = print every hook call to stderr                                |
| GPTSTORE_NO_USAGE_LOG   | 1 = do not record generations                                      |
| GPTSTORE_OFFLINE        | 1 = never touch the network (HF_HUB_OFFLINE=1 counts too)          |
| GPTSTORE_TOKEN          | token for the store named by --store or GPTSTORE_STORE only (never |
|                         | sent to another URL: a lock file's other stores, a redirect)       |
| GPTSTORE_HTTP_TIMEOUT   | seconds to connect to a store and to wait for any one read (30)    |
| GPTSTORE_STALL_TIMEOUT  | seconds in which a download must bring 64 KiB, and a manifest,     |
|                         | signature or API answer must arrive whole (60)                     |
| GPTSTORE_SERVER_DATA    | data directory of `gptstore server` (catalog, blobs, secret)       |
| GPTSTORE_SERVER_URL     | public base URL of `gptstore server` behind a proxy                |
| GPTSTORE_SERVER_SECRET  | key that signs LFS upload URLs (default: DATA/secret, generated)   |
| GPTSTORE_KEY_PASSPHRASE | passphrase of an encrypted signing key (keys generate, sign)       |
"""

from __future__ import annotations

import os
from pathlib import Path

TRUTHY = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUTHY


def home() -> Path:
    """Root of the local library and every piece of gptstore state."""
    value = os.environ.get("GPTSTORE_HOME")
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("gptstore", appauthor=False))


#: the store used when neither ``--store`` nor ``GPTSTORE_STORE`` names one (as ollama uses its registry)
DEFAULT_STORE = "hf://"
#: where ``hf://`` points unless ``HF_ENDPOINT`` says otherwise
HUGGINGFACE_ENDPOINT = "https://huggingface.co"


def default_store() -> str | None:
    """The store URL the user set (``GPTSTORE_STORE``); None when unset (then :func:`effective_store`)."""
    return os.environ.get("GPTSTORE_STORE") or None


def effective_store() -> str:
    """The store a command without ``--store`` uses: ``GPTSTORE_STORE``, else ``hf://``."""
    return default_store() or DEFAULT_STORE


def hf_endpoint() -> str:
    """Where ``hf://`` points: ``HF_ENDPOINT`` (as huggingface_hub reads it), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "").strip().rstrip("/") or HUGGINGFACE_ENDPOINT


def offline_variable() -> str | None:
    """The variable that switched offline mode on (``GPTSTORE_OFFLINE`` or ``HF_HUB_OFFLINE``), or None."""
    for name in ("GPTSTORE_OFFLINE", "HF_HUB_OFFLINE"):
        if _flag(name):
            return name
    return None


def load_plugins() -> list[str] | None:
    """Distributions whose plugins may load; None = all, [] = none."""
    value = os.environ.get("GPTSTORE_LOAD_PLUGINS")
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def debug() -> bool:
    return _flag("GPTSTORE_DEBUG")


def trace_plugins() -> bool:
    return _flag("GPTSTORE_TRACE_PLUGINS")


def usage_log_enabled() -> bool:
    return not _flag("GPTSTORE_NO_USAGE_LOG")


def offline() -> bool:
    return offline_variable() is not None


def token() -> str | None:
    return os.environ.get("GPTSTORE_TOKEN") or None


#: defaults of the network limits (seconds); see :func:`http_timeout` and :func:`stall_timeout`
HTTP_TIMEOUT = 30.0
STALL_TIMEOUT = 60.0


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        from .errors import UsageError

        raise UsageError(f"{name}={value!r} is not a positive number of seconds",
                         hint=f"unset it (default {default:g}) or set e.g. {name}={default:g}")
    return seconds


def http_timeout() -> float:
    """``GPTSTORE_HTTP_TIMEOUT``: connecting to a store, and waiting for any one read, fail after this."""
    return _seconds("GPTSTORE_HTTP_TIMEOUT", HTTP_TIMEOUT)


def stall_timeout() -> float:
    """``GPTSTORE_STALL_TIMEOUT``: a download that brings under 64 KiB in this long is abandoned
    (a trickling store), and small answers (manifest, signature, API JSON) must arrive whole in it."""
    return _seconds("GPTSTORE_STALL_TIMEOUT", STALL_TIMEOUT)


def env(name: str, default: str | None = None) -> str | None:
    """Read another variable (e.g. HF_TOKEN) through this module, so every read is here."""
    return os.environ.get(name, default)


def key_passphrase() -> str | None:
    """Passphrase for encrypted signing keys (``GPTSTORE_KEY_PASSPHRASE``); None when unset or empty."""
    return os.environ.get("GPTSTORE_KEY_PASSPHRASE") or None


def server_data() -> Path | None:
    """Data directory of ``gptstore server`` (``GPTSTORE_SERVER_DATA``); None when unset."""
    value = os.environ.get("GPTSTORE_SERVER_DATA")
    return Path(value).expanduser() if value else None


def server_public_url() -> str | None:
    """Public base URL of ``gptstore server`` (``GPTSTORE_SERVER_URL``), e.g. behind a proxy."""
    return os.environ.get("GPTSTORE_SERVER_URL") or None


def server_secret() -> str | None:
    """Key that signs LFS upload URLs (``GPTSTORE_SERVER_SECRET``); None = the data dir's own."""
    return os.environ.get("GPTSTORE_SERVER_SECRET") or None


def settings() -> dict[str, object]:
    """The effective settings, as ``gptstore config`` shows them: each value and where it came from."""

    def entry(value: object, source: str) -> dict[str, object]:
        return {"value": value, "source": source}

    store = default_store()
    hf = os.environ.get("HF_ENDPOINT", "").strip()
    offline_by = offline_variable()
    home_set = bool(os.environ.get("GPTSTORE_HOME"))
    plugins = load_plugins()
    return {
        "store": entry(effective_store(), "GPTSTORE_STORE" if store else "default"),
        "hf_endpoint": entry(hf_endpoint(), "HF_ENDPOINT" if hf else "default"),
        "offline": entry(offline_by is not None, offline_by or "default"),
        "home": entry(str(home()), "GPTSTORE_HOME" if home_set else "default"),
        "token": entry("set" if token() else "unset", "GPTSTORE_TOKEN"),
        "hf_token": entry("set" if env("HF_TOKEN") else "unset", "HF_TOKEN"),
        "load_plugins": entry("all" if plugins is None else ",".join(plugins) or "none",
                              "GPTSTORE_LOAD_PLUGINS" if plugins is not None else "default"),
        "usage_log": entry(usage_log_enabled(), "GPTSTORE_NO_USAGE_LOG" if not usage_log_enabled() else "default"),
        "http_timeout": entry(http_timeout(), "GPTSTORE_HTTP_TIMEOUT" if os.environ.get("GPTSTORE_HTTP_TIMEOUT")
                              else "default"),
        "stall_timeout": entry(stall_timeout(), "GPTSTORE_STALL_TIMEOUT" if os.environ.get("GPTSTORE_STALL_TIMEOUT")
                               else "default"),
    }
