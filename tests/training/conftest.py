"""Fixtures for the fine-tuning tests: an on-topic corpus split into training and held-out text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

#: the topic: command-line parsing, from the docstrings of three standard-library modules
TOPIC_MODULES = ("argparse", "optparse", "getopt")


@dataclass(frozen=True)
class Corpus:
    train: Path  # blank-line separated documents
    heldout: list[str]  # documents the model never trains on


@pytest.fixture(scope="session")
def topic_corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    from gptstore.training.tiny import stdlib_docstrings

    docs = stdlib_docstrings(modules=TOPIC_MODULES)
    heldout = docs[3::6]  # every sixth document, spread over the three modules
    train = [d for d in docs if d not in heldout]
    assert len(train) > 30 and len(heldout) >= 6
    path = tmp_path_factory.mktemp("topic") / "topic.txt"
    path.write_text("\n\n".join(train), encoding="utf-8")
    return Corpus(path, heldout)
