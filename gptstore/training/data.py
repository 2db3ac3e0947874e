"""Training data for ``finetune``: read and validate files, render documents, pack token blocks.

Formats, chosen by the file's suffix:

- ``.jsonl`` / ``.ndjson`` — one JSON object per line, either ``{"text": ...}`` or
  ``{"prompt": ..., "completion": ...}``; a prompt is rendered with the base model's prompt
  template when it has one (else the document is ``prompt + completion``). Other keys are ignored,
  blank lines skipped.
- anything else — UTF-8 text. With ``text_mode="paragraphs"`` documents are separated by blank
  lines; with ``text_mode="file"`` the whole file is one document.

Reading and validating import nothing heavy, so bad data fails fast with the file (and line) named.
Packing needs the base model's tokenizer: documents are joined with the EOS token and cut into
blocks of ``block_size`` tokens; a seeded shuffle holds a fraction of the blocks out for evaluation.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from ..adapters.transformers import CONTEXT_KEYS
from ..errors import UsageError

TextMode = Literal["paragraphs", "file"]
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class DataFile:
    """One training file, read and validated."""

    path: Path
    sha256: str
    size: int
    format: Literal["text", "jsonl"]
    documents: tuple[str, ...] = field(repr=False)

    @property
    def name(self) -> str:
        """The file name recorded in manifests (never the full local path)."""
        return self.path.name

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "size": self.size}


@dataclass
class Blocks:
    """Token blocks ready for training, split into train and held-out parts."""

    train: list[list[int]]
    eval: list[list[int]]
    block_size: int

    @property
    def train_tokens(self) -> int:
        return len(self.train) * self.block_size

    @property
    def eval_tokens(self) -> int:
        return len(self.eval) * self.block_size

    def examples(self, part: Literal["train", "eval"]) -> list[dict[str, list[int]]]:
        """Causal-LM examples of one part: inputs are their own labels, nothing is padded."""
        return [{"input_ids": b, "attention_mask": [1] * len(b), "labels": b} for b in getattr(self, part)]


def _bad(path: Path, what: str, hint: str | None = None) -> UsageError:
    return UsageError(f"data file {path}: {what}", hint=hint)


def render_template(template: str | None, prompt: str) -> str:
    return template.replace("{prompt}", prompt) if template else prompt


def _read_jsonl(path: Path, text: str, template: str | None) -> list[str]:
    documents = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad(path, f"line {number}: invalid JSON ({exc.msg} at column {exc.colno})",
                       "each line must be one JSON object") from None
        if not isinstance(obj, dict):
            raise _bad(path, f"line {number}: expected a JSON object, got {type(obj).__name__}")
        if "text" in obj:
            document = obj["text"]
            keys: tuple[str, ...] = ("text",)
        elif "prompt" in obj or "completion" in obj:
            missing = [k for k in ("prompt", "completion") if k not in obj]
            if missing:
                raise _bad(path, f"line {number}: missing key {missing[0]!r}",
                           'give both "prompt" and "completion", or "text"')
            keys = ("prompt", "completion")
            document = None
        else:
            raise _bad(path, f"line {number}: missing key 'text' (or 'prompt' and 'completion')",
                       'each line needs {"text": ...} or {"prompt": ..., "completion": ...}')
        for key in keys:
            if not isinstance(obj[key], str):
                raise _bad(path, f"line {number}: {key!r} must be a string, got {type(obj[key]).__name__}")
        if document is None:
            document = render_template(template, obj["prompt"]) + obj["completion"]
        if document.strip():
            documents.append(document)
    return documents


def read_file(path: Path | str, *, text_mode: TextMode = "paragraphs", template: str | None = None) -> DataFile:
    """Read, hash and validate one data file; raise :class:`UsageError` naming the problem."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        raise _bad(path, "a .json file is not supported",
                   'use JSONL (.jsonl: one {"text": ...} object per line) or plain text')
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _bad(path, "no such file") from None
    except IsADirectoryError:
        raise _bad(path, "is a directory", "give the data files themselves") from None
    except OSError as exc:
        raise _bad(path, f"cannot be read ({exc.strerror or exc})") from None
    if not raw.strip():
        raise _bad(path, "is empty", "give a file with training text")
    try:
        text = raw.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError as exc:
        raise _bad(path, f"is not UTF-8 text (bad byte at offset {exc.start})",
                   "convert it to UTF-8") from None
    if path.suffix.lower() in JSONL_SUFFIXES:
        fmt: Literal["text", "jsonl"] = "jsonl"
        documents = _read_jsonl(path, text, template)
    else:
        fmt = "text"
        parts = _BLANK_LINE.split(text) if text_mode == "paragraphs" else [text]
        documents = [part.strip() for part in parts if part.strip()]
    if not documents:
        raise _bad(path, "holds no text", "every record is empty")
    return DataFile(path, hashlib.sha256(raw).hexdigest(), len(raw), fmt, tuple(documents))


def read_data(paths: Iterable[Path | str], *, text_mode: TextMode = "paragraphs",
              template: str | None = None) -> list[DataFile]:
    """Read every data file (see :func:`read_file`); at least one is needed."""
    files = [read_file(p, text_mode=text_mode, template=template) for p in paths]
    if not files:
        raise UsageError("no data files given", hint="pass --data FILE (repeatable)")
    return files


def dataset_identity(files: list[DataFile]) -> tuple[str, str]:
    """(name, sha256) naming the whole training set in metrics.

    One file: its name and sha256. Several: the names joined with ``+`` and the sha256 of their
    ``sha256sum``-style listing (``<sha256>  <name>`` lines), so it changes when any file does.
    """
    if len(files) == 1:
        return files[0].name, files[0].sha256
    listing = "".join(f"{f.sha256}  {f.name}\n" for f in files)
    return "+".join(f.name for f in files), hashlib.sha256(listing.encode()).hexdigest()


def tokenize(files: list[DataFile], tokenizer: Any, *, block_size: int) -> list[int]:
    """Token ids of every document, each followed by EOS; each file must fill one block."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for data in files:
        encoded = tokenizer(list(data.documents), add_special_tokens=False, verbose=False)["input_ids"]
        count = 0
        for ids in encoded:
            stream.extend(ids)
            count += len(ids)
            if eos is not None:
                stream.append(eos)
                count += 1
        if count < block_size:
            raise _bad(data.path, f"has {count} tokens, fewer than one block ({block_size})",
                       "give more text or a smaller --block-size")
    return stream


def pack(files: list[DataFile], tokenizer: Any, *, block_size: int, eval_split: float,
         seed: int) -> Blocks:
    """Cut the token stream into blocks and hold ``eval_split`` of them out (seeded shuffle)."""
    stream = tokenize(files, tokenizer, block_size=block_size)
    blocks = [stream[i:i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]
    n_eval = 0
    if eval_split > 0:
        n_eval = max(1, round(len(blocks) * eval_split))
        if len(blocks) - n_eval < 1:
            raise UsageError(f"the data make {len(blocks)} block(s) of {block_size} tokens, too few to hold "
                             f"{eval_split:g} out for evaluation",
                             hint="give more text, a smaller --block-size, or --eval-split 0")
    order = list(range(len(blocks)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    return Blocks(train=[b for i, b in enumerate(blocks) if i not in held],
                  eval=[b for i, b in enumerate(blocks) if i in held], block_size=block_size)


def resolve_block_size(path: Path, requested: int | None) -> int:
    """The block size: as asked (at most the model's context), else the context capped at 1024."""
    try:
        model_config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        model_config = {}
    context = next((model_config[k] for k in CONTEXT_KEYS if isinstance(model_config.get(k), int)), None)
    if requested is None:
        if context is None:
            raise UsageError("the base's config.json gives no context length", hint="pass --block-size")
        return min(context, 1024)
    if context is not None and requested > context:
        raise UsageError(f"block size {requested} exceeds the base model's context length ({context})",
                         hint=f"pass --block-size {context} or less")
    return requested
