"""Reading, validating and packing fine-tuning data (no torch needed)."""

from __future__ import annotations

import hashlib
import json

import pytest

from gptstore.errors import UsageError
from gptstore.training.data import dataset_identity, pack, read_data, read_file, resolve_block_size


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


def test_jsonl_text_and_prompt_completion(tmp_path):
    path = tmp_path / "chat.jsonl"
    lines = [{"text": "plain"}, {"prompt": "Hi", "completion": " there", "id": 7}, {"text": "   "}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    assert read_file(path).documents == ("plain", "Hi there")
    assert read_file(path, template="Q: {prompt}\nA:").documents == ("plain", "Q: Hi\nA: there")


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


def test_pack_blocks_and_split(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("\n\n".join(" ".join(["w"] * 9) for _ in range(10)))  # 10 docs x (9 + eos) = 100 tokens
    files = read_data([path])
    blocks = pack(files, WordTokenizer(), block_size=10, eval_split=0.2, seed=1)
    assert (len(blocks.train), len(blocks.eval)) == (8, 2)
    assert blocks.train_tokens == 80 and blocks.eval_tokens == 20
    assert all(len(b) == 10 for b in blocks.train + blocks.eval)
    again = pack(files, WordTokenizer(), block_size=10, eval_split=0.2, seed=1)
    assert again.eval == blocks.eval  # the held-out split is seeded
    example = blocks.examples("train")[0]
    assert example["input_ids"] == example["labels"] and example["attention_mask"] == [1] * 10
    assert pack(files, WordTokenizer(), block_size=10, eval_split=0, seed=1).eval == []


def test_pack_refuses_short_files(tmp_path):
    (tmp_path / "long.txt").write_text(" ".join(["w"] * 50))
    (tmp_path / "short.txt").write_text("only three words")
    files = read_data([tmp_path / "long.txt", tmp_path / "short.txt"])
    with pytest.raises(UsageError, match=r"short.txt: has 4 tokens, fewer than one block \(16\)"):
        pack(files, WordTokenizer(), block_size=16, eval_split=0.1, seed=0)
    one = read_data([tmp_path / "long.txt"])
    with pytest.raises(UsageError, match="too few to hold"):
        pack(one, WordTokenizer(), block_size=40, eval_split=0.1, seed=0)


def test_block_size_from_the_model_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"n_positions": 128}))
    assert resolve_block_size(tmp_path, None) == 128
    assert resolve_block_size(tmp_path, 64) == 64
    with pytest.raises(UsageError, match="exceeds the base model's context length"):
        resolve_block_size(tmp_path, 256)
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    assert resolve_block_size(tmp_path, None) == 1024
