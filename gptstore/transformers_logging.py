"""Quiet transformers' logging: :func:`quiet_transformers` mutes its warnings, advice and progress
bars around a load or a training run (eval, finetune, the tiny base, ``gptstore run``). Imports
transformers only inside the call, never at start."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No warnings, advice or progress bars from transformers inside the block (restored after).

    A no-op where transformers is not installed (another engine).
    """
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
