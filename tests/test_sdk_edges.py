"""Issue 13, item 11: the SDK's edges refuse clearly instead of failing deep inside.

``perplexity([])`` (an IndexError in the tokenizer before) and an empty text are UsageErrors that
say what is wrong; an empty *prompt* stays valid for ``generate`` (it starts from the start token,
tests/engines/test_transformers.py). ``--price-model per_1k_tokens`` without ``--price`` is
refused by ``gptstore package`` (tests/test_manifest_pricing.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import gptstore
from gptstore.errors import UsageError
from gptstore.library import Library
from gptstore.packaging import package


@pytest.fixture(scope="module")
def package_dir(tiny_gpt_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edges") / "tiny"
    shutil.copytree(tiny_gpt_dir, path)
    package(path, name="acme/tiny", version="1.0.0")
    return path


@pytest.fixture
def model(package_dir):
    Library().publish(package_dir)
    return gptstore.load("acme/tiny", device="cpu")


@pytest.mark.parametrize("texts, message", [
    ([], "no texts given \\(an empty list\\)"),
    ((), "no texts given \\(an empty list\\)"),
    ("", "the text is empty"),
    ([" \n"], "the text is empty"),
    (["Hello world", ""], "text 2 of 2 is empty"),
])
def test_perplexity_refuses_no_text_and_empty_texts(model, texts, message):
    with pytest.raises(UsageError, match=message) as raised:
        model.perplexity(texts)
    assert raised.value.hint


def test_perplexity_of_real_texts_still_works(model):
    assert model.perplexity(["Hello world", "The cat"]) > 1


def test_the_shared_maths_refuses_an_empty_list(model):
    """gptstore.perplexity.evaluate is what finetune and `gptstore eval` use too."""
    from gptstore.perplexity import evaluate

    runner = model.runner
    with pytest.raises(UsageError, match="perplexity needs at least one text"):
        evaluate(runner.model, runner.tokenizer, [])


def test_eval_cli_with_an_empty_data_file(model, tmp_path, run_cli):
    data = tmp_path / "empty.txt"
    data.write_text("")
    result = run_cli("eval", "acme/tiny", "--data", str(data), "--device", "cpu")
    assert result.exit_code != 0
    assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert "empty.txt: is empty" in result.output
