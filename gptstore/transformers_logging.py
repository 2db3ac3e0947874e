"""Quiet transformers' logging: :func:`quiet_transformers` mutes its warnings, advice and progress
bars around a load or a training run (eval, finetune, the tiny base, ``gptstore run``,
``gptstore.load``), unless the user asked for them with ``gptstore --verbose`` or
``GPTSTORE_VERBOSE=1`` (:func:`verbose`). Imports transformers only inside the call, never at start."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

VERBOSE_ENV = "GPTSTORE_VERBOSE"


def verbose() -> bool:
    """Whether transformers may speak: ``GPTSTORE_VERBOSE=1`` (what ``gptstore --verbose`` sets)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def set_verbose() -> None:
    """Let transformers speak for the rest of this process and its children (``--verbose``)."""
    os.environ[VERBOSE_ENV] = "1"


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No warnings, advice or progress bars from transformers inside the block (restored after).

    A no-op where transformers is not installed (another engine) or when :func:`verbose`.
    """
    if verbose():
        yield
        return
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
