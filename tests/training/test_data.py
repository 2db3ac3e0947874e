"""Reading, validating, holding out and packing fine-tuning data (no torch needed)."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from gptstore.errors import UsageError
from gptstore.manifest import Manifest
from gptstore.training.data import (HELDOUT_SUFFIX, dataset_identity, read_data, read_file, resolve_block_size,
                                    split_documents, tokenize, training_blocks, write_heldout)


class WordTokenizer:
    """A stand-in tokenizer: one token per word, EOS = 0."""

    eos_token_id = 0

    def __call__(self, texts, add_special_tokens=False, verbose=False):
        return {"input_ids": [[len(w) for w in text.split()] for text in texts]}


def test_text_paragraphs_and_whole_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"first doc\nstill first\n\n  \nsecond doc\r\n\r\nthird\n")
    data = read_file(path)
    assert data.documents == ("first doc\nstill first", "second doc", "third")
    assert data.format == "text" and data.name == "notes.txt"
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and data.size == path.stat().st_size
    assert read_file(path, text_mode="file").documents == ("first doc\nstill first\n\n  \nsecond doc\n\nthird",)


def test_text_one_example_per_line(tmp_path):
    """A text file with several lines and no blank line is one document per line, so its lines can
    be held out with no other option; blank-line paragraphs and --text-mode lines/file as documented."""
    path = tmp_path / "examples.txt"
    path.write_text("Q: 2+2? A: 4\n  Q: capital of France? A: Paris  \nQ: red+blue? A: purple\n")
    data = read_file(path)
    assert data.documents == ("Q: 2+2? A: 4", "Q: capital of France? A: Paris", "Q: red+blue? A: purple")
    train, held = split_documents([data], 0.34, seed=0)
    assert len(held) == 1 and held[0] in data.documents and held[0] not in train[0].documents
    assert len(train[0].documents) == 2
    assert read_file(path, text_mode="file").documents == (path.read_text().strip(),)
    paragraphs = tmp_path / "paragraphs.txt"
    paragraphs.write_text("one\ntwo\n\nthree\n")
    assert read_file(paragraphs).documents == ("one\ntwo", "three")  # a blank line anywhere: paragraphs
    assert read_file(paragraphs, text_mode="lines").documents == ("one", "two", "three")
    (tmp_path / "single.txt").write_text("just one line\n")
    assert read_file(tmp_path / "single.txt").documents == ("just one line",)


def test_csv_prompt_completion_and_text_columns(tmp_path):
    path = tmp_path / "chat.csv"
    path.write_text('id, Prompt ,completion\n1,"Hi, you",  there\n\n2,Bye, now\n', encoding="utf-8")
    data = read_file(path)
    assert data.format == "csv" and data.documents == ("Hi, you  there", "Bye now")
    assert read_file(path, render=lambda p: f"Q: {p}\nA:").documents == ("Q: Hi, you\nA:  there", "Q: Bye\nA: now")
    (tmp_path / "text.csv").write_text('text,source\n"a line, with a comma",x\nsecond,y\n')
    assert read_file(tmp_path / "text.csv").documents == ("a line, with a comma", "second")


@pytest.mark.parametrize("content, message", [
    ("question,answer\nhi,there\n", "has no 'prompt' and 'completion' columns, nor a 'text' column "
                                      "(header: 'question', 'answer'); make the first row a header"),
    ("hi,there\n", "has no 'prompt' and 'completion' columns"),
    ("prompt,completion\nonly one\n", "row 2: has 1 column"),
    ("prompt,completion\n,\n", "holds no text"),
])
def test_bad_csv(tmp_path, content, message):
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(UsageError, match=re.escape(message)) as info:
        read_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_jsonl_text_and_prompt_completion(tmp_path):
    path = tmp_path / "chat.jsonl"
    lines = [{"text": "plain"}, {"prompt": "Hi", "completion": " there", "id": 7}, {"text": "   "}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    assert read_file(path).documents == ("plain", "Hi there")
    # the prompt goes through the model's template, rendered by the manifest (one place renders them)
    manifest = Manifest.model_validate({
        "namespace": "acme", "name": "chat", "version": "1.0.0", "description": "d", "license": "mit",
        "prompt_template": "Q: {prompt}\nA:",
        "format": {"adapter": "transformers", "architecture": "GPT2LMHeadModel", "parameters": 1,
                   "context_length": 8, "dtype": "float32"},
        "files": [{"path": "config.json", "size": 2, "sha256": "0" * 64}]})
    assert read_file(path, render=manifest.render).documents == ("plain", "Q: Hi\nA: there")


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"  \n\n \n", "is empty"),
    (b'{"text": "ok"}\n\n{"text": "broken"\n', "line 3: invalid JSON"),
    (b'{"text": "ok"}\n{"prompt": "p"}\n', "line 2: missing key 'completion'"),
    (b'{"completion": "c"}\n', "line 1: missing key 'prompt'"),
    (b'{"body": "x"}\n', "line 1: missing key 'text'"),
    (b'["text"]\n', "line 1: expected a JSON object"),
    (b'{"text": 3}\n', "line 1: 'text' must be a string"),
    (b'{"text": ""}\n', "holds no text"),
    (b'{"text": "caf\xe9"}\n', "is not UTF-8"),
])
def test_bad_jsonl(tmp_path, content, message):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message) as info:
        read_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_file(tmp_path / "missing.txt")
    with pytest.raises(UsageError, match="is a directory"):
        read_file(tmp_path)
    (tmp_path / "list.json").write_text('[{"text": "x"}]')
    with pytest.raises(UsageError, match="use JSONL"):
        read_file(tmp_path / "list.json")
    with pytest.raises(UsageError, match="no data files"):
        read_data([])


def test_dataset_identity(tmp_path):
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "b.txt").write_text("beta")
    a, b = read_data([tmp_path / "a.txt", tmp_path / "b.txt"])
    assert dataset_identity([a]) == ("a.txt", a.sha256)
    name, sha = dataset_identity([a, b])
    listing = f"{a.sha256}  a.txt\n{b.sha256}  b.txt\n"
    assert name == "a.txt+b.txt" and sha == hashlib.sha256(listing.encode()).hexdigest()


def test_training_blocks(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("\n\n".join(" ".join(["w"] * 9) for _ in range(10)))  # 10 docs x (9 + eos) = 100 tokens
    files = read_data([path])
    blocks = training_blocks(files, WordTokenizer(), block_size=12)
    assert len(blocks.train) == 8 and blocks.train_tokens == 96  # the 4-token tail is dropped
    assert all(len(b) == 12 for b in blocks.train)
    assert blocks.train[0] == [1] * 9 + [0] + [1, 1]  # documents joined with EOS
    example = blocks.examples()[0]
    assert example["input_ids"] == example["labels"] and example["attention_mask"] == [1] * 12
    with pytest.raises(UsageError, match=r"after holding out 3 document\(s\) the training data have 100 tokens, "
                                         r"fewer than one block \(128\)"):
        training_blocks(files, WordTokenizer(), block_size=128, held_out=3)


def test_held_out_documents_are_whole_and_seeded(tmp_path):
    (tmp_path / "a.txt").write_text("\n\n".join(f"a{i}" for i in range(6)))
    (tmp_path / "b.txt").write_text("\n\n".join(f"b{i}" for i in range(4)))
    files = read_data([tmp_path / "a.txt", tmp_path / "b.txt"])
    train, held = split_documents(files, 0.2, seed=1)
    trained = [d for f in train for d in f.documents]
    assert len(held) == 2 and split_documents(files, 0.2, seed=1)[1] == held  # seeded
    assert sorted(trained + held) == sorted(d for f in files for d in f.documents)  # nothing lost or doubled
    assert not set(held) & set(trained)
    assert [f.sha256 for f in train] == [f.sha256 for f in files]  # the files keep their identity
    assert split_documents(files, 0, seed=1) == (files, [])
    (tmp_path / "one.txt").write_text("a single document")
    with pytest.raises(UsageError, match=r"the data hold 1 document\(s\), too few to hold 0.5 of them out"):
        split_documents(read_data([tmp_path / "one.txt"]), 0.5, seed=0)
    written = write_heldout(tmp_path / "ckpt", "a.txt+b.txt", held)
    assert written.name == "a.txt+b.txt" + HELDOUT_SUFFIX
    assert read_data([written])[0].documents == tuple(held)  # reads back exactly, as eval --data reads it


def test_every_file_must_fill_a_block(tmp_path):
    (tmp_path / "long.txt").write_text(" ".join(["w"] * 50))
    (tmp_path / "short.txt").write_text("only three words")
    files = read_data([tmp_path / "long.txt", tmp_path / "short.txt"])
    with pytest.raises(UsageError, match=r"short.txt: has 4 tokens, fewer than one block \(16\)"):
        tokenize(files, WordTokenizer(), block_size=16)
    assert tokenize(files[:1], WordTokenizer(), block_size=16) == [1] * 50 + [0]


def test_block_size_from_the_model_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"n_positions": 128}))
    assert resolve_block_size(tmp_path, None) == 128
    assert resolve_block_size(tmp_path, 64) == 64
    with pytest.raises(UsageError, match="exceeds the base model's context length"):
        resolve_block_size(tmp_path, 256)
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    assert resolve_block_size(tmp_path, None) == 1024
