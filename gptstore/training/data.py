"""Training and evaluation data: read and validate files, hold documents out, pack token blocks.

Formats, chosen by the file's suffix:

- ``.jsonl`` / ``.ndjson`` — one JSON object per line, either ``{"text": ...}`` or
  ``{"prompt": ..., "completion": ...}``; a prompt is rendered with the base model's prompt
  template when it has one (else the document is ``prompt + completion``). Other keys are ignored,
  blank lines skipped.
- ``.csv`` — a header row naming the columns, then one example per row: ``prompt`` and
  ``completion`` columns (rendered like JSONL prompts), or a ``text`` column; other columns are
  ignored (column names are matched case-insensitively). A CSV without those columns is refused,
  naming the columns it has.
- anything else — UTF-8 text. With ``text_mode="paragraphs"`` (the default) documents are separated
  by blank lines, **except** that a file with several lines and no blank line at all is read one
  document per line (a file of one example per line); ``text_mode="lines"`` always reads one
  document per non-blank line, ``text_mode="file"`` makes the whole file one document.

Reading and validating import nothing heavy, so bad data fails fast with the file (and line) named.
``gptstore eval`` reads its data the same way, so a claim measured by ``finetune`` is re-measured on
the same documents.

Held out for evaluation are whole *documents* (:func:`split_documents`, seeded), never trained on;
``finetune`` writes them to a JSONL file (:func:`write_heldout`) that is the perplexity claim's
dataset. Packing (:func:`training_blocks`) needs the base model's tokenizer: the training documents,
each followed by the EOS token, are cut into blocks of ``block_size`` tokens.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from ..errors import UsageError
from ..fsutil import atomic_write
from ..perplexity import context_length

TextMode = Literal["paragraphs", "lines", "file"]
#: renders a prompt with a model's prompt template (``Manifest.render``)
Render = Callable[[str], str]
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
CSV_SUFFIXES = frozenset({".csv"})
#: the held-out documents of a finetune are written to ``<checkpoint dir>/<dataset name><HELDOUT_SUFFIX>``
HELDOUT_SUFFIX = ".held-out.jsonl"
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class DataFile:
    """One training file, read and validated."""

    path: Path
    sha256: str
    size: int
    format: Literal["text", "jsonl", "csv"]
    documents: tuple[str, ...] = field(repr=False)

    @property
    def name(self) -> str:
        """The file name recorded in manifests (never the full local path)."""
        return self.path.name

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "size": self.size}


@dataclass
class Blocks:
    """Token blocks ready for training (evaluation runs on held-out documents, not blocks)."""

    train: list[list[int]]
    block_size: int

    @property
    def train_tokens(self) -> int:
        return len(self.train) * self.block_size

    def examples(self) -> list[dict[str, list[int]]]:
        """Causal-LM examples: inputs are their own labels, nothing is padded."""
        return [{"input_ids": b, "attention_mask": [1] * len(b), "labels": b} for b in self.train]


def _bad(path: Path, what: str, hint: str | None = None) -> UsageError:
    return UsageError(f"data file {path}: {what}", hint=hint)


def _read_jsonl(path: Path, text: str, render: Render | None) -> list[str]:
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
            document = (render(obj["prompt"]) if render else obj["prompt"]) + obj["completion"]
        if document.strip():
            documents.append(document)
    return documents


def _read_csv(path: Path, text: str, render: Render | None) -> list[str]:
    """Rows of a CSV with a header naming ``prompt`` and ``completion`` columns, or ``text``."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise _bad(path, f"is not valid CSV ({exc})", "give a header row, then one example per row") from None
    header = [name.strip().lower() for name in rows[0]] if rows else []
    if "prompt" in header and "completion" in header:
        columns = (header.index("prompt"), header.index("completion"))
    elif "text" in header:
        columns = (header.index("text"),)
    else:
        shown = ", ".join(repr(name) for name in header[:10]) or "none"
        raise _bad(path, f"has no 'prompt' and 'completion' columns, nor a 'text' column (header: {shown})",
                   "make the first row a header naming them, e.g. prompt,completion")
    documents = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(columns):
            raise _bad(path, f"row {number}: has {len(row)} column(s), the header {len(header)}",
                       "quote values that hold commas")
        if len(columns) == 2:
            prompt, completion = row[columns[0]], row[columns[1]]
            document = (render(prompt) if render else prompt) + completion
        else:
            document = row[columns[0]]
        if document.strip():
            documents.append(document)
    return documents


def _text_documents(text: str, text_mode: TextMode) -> list[str]:
    """Documents of a plain-text file (the rule is in the module docstring)."""
    if text_mode == "file":
        return [text.strip()] if text.strip() else []
    paragraphs = [part.strip() for part in _BLANK_LINE.split(text) if part.strip()]
    if text_mode == "lines" or (len(paragraphs) == 1 and "\n" in paragraphs[0]):
        return [line.strip() for line in text.splitlines() if line.strip()]
    return paragraphs


def read_file(path: Path | str, *, text_mode: TextMode = "paragraphs", render: Render | None = None) -> DataFile:
    """Read, hash and validate one data file; raise :class:`UsageError` naming the problem.

    ``render`` applies the model's prompt template to a JSONL ``prompt`` (pass the manifest's
    ``render``: templates are rendered in one place); without it the prompt is used as it is.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        raise _bad(path, "a .json file is not supported",
                   'use JSONL (.jsonl: one {"text": ...} object per line), CSV or plain text')
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
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        fmt: Literal["text", "jsonl", "csv"] = "jsonl"
        documents = _read_jsonl(path, text, render)
    elif suffix in CSV_SUFFIXES:
        fmt = "csv"
        documents = _read_csv(path, text, render)
    else:
        fmt = "text"
        documents = _text_documents(text, text_mode)
    if not documents:
        raise _bad(path, "holds no text", "every record is empty")
    return DataFile(path, hashlib.sha256(raw).hexdigest(), len(raw), fmt, tuple(documents))


def read_data(paths: Iterable[Path | str], *, text_mode: TextMode = "paragraphs",
              render: Render | None = None) -> list[DataFile]:
    """Read every data file (see :func:`read_file`); at least one is needed."""
    files = [read_file(p, text_mode=text_mode, render=render) for p in paths]
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


def split_documents(files: list[DataFile], eval_split: float, seed: int) -> tuple[list[DataFile], list[str]]:
    """(training files, held-out documents): a seeded ``eval_split`` of all documents, held out whole,
    so that they are real text the model never trains on."""
    pool = [(i, j) for i, f in enumerate(files) for j in range(len(f.documents))]
    if eval_split <= 0:
        return files, []
    n_eval = max(1, round(len(pool) * eval_split))
    if len(pool) - n_eval < 1:
        raise UsageError(f"the data hold {len(pool)} document(s), too few to hold {eval_split:g} of them out "
                         "for evaluation", hint="give more documents (blank-line separated, or one per line "
                                                "with --text-mode lines), --eval-data, or --eval-split 0")
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    held = {pool[k] for k in order[:n_eval]}
    train = [replace(f, documents=tuple(d for j, d in enumerate(f.documents) if (i, j) not in held))
             for i, f in enumerate(files)]
    return train, [files[i].documents[j] for i, j in pool if (i, j) in held]


def write_heldout(folder: Path, dataset: str, documents: list[str]) -> Path:
    """Write documents as JSONL (one ``{"text": ...}`` per line, which reads back exactly)."""
    name = dataset if len(dataset) <= 100 and "/" not in dataset else "data"
    path = Path(folder) / f"{name}{HELDOUT_SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in documents).encode())
    return path


def _document_ids(tokenizer: Any, documents: Iterable[str]) -> list[list[int]]:
    """Token ids of each document (no special tokens), each followed by EOS when there is one."""
    eos = tokenizer.eos_token_id
    encoded = tokenizer(list(documents), add_special_tokens=False, verbose=False)["input_ids"]
    return [list(ids) + ([eos] if eos is not None else []) for ids in encoded]


def tokenize(files: list[DataFile], tokenizer: Any, *, block_size: int) -> list[int]:
    """Token ids of every document, each followed by EOS; each file must fill one block."""
    stream: list[int] = []
    for data in files:
        count = 0
        for ids in _document_ids(tokenizer, data.documents):
            stream.extend(ids)
            count += len(ids)
        if count < block_size:
            raise _bad(data.path, f"has {count} tokens, fewer than one block ({block_size})",
                       "give more text or a smaller --block-size")
    return stream


def training_blocks(files: list[DataFile], tokenizer: Any, *, block_size: int, held_out: int = 0) -> Blocks:
    """The training documents, each followed by EOS, cut into blocks of ``block_size`` tokens
    (the tail shorter than a block is dropped). ``held_out``, the number of documents held out,
    only goes into the error when no block is left."""
    stream = [token for data in files if data.documents
              for ids in _document_ids(tokenizer, data.documents) for token in ids]
    blocks = [stream[i:i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]
    if not blocks:
        raise UsageError(f"after holding out {held_out} document(s) the training data have {len(stream)} tokens, "
                         f"fewer than one block ({block_size})",
                         hint="give more text, a smaller --block-size, or a smaller --eval-split")
    return Blocks(train=blocks, block_size=block_size)


def resolve_block_size(path: Path, requested: int | None) -> int:
    """The block size: as asked (at most the model's context), else the context capped at 1024."""
    try:
        model_config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        model_config = {}
    context = context_length(model_config) if isinstance(model_config, dict) else None
    if requested is None:
        if context is None:
            raise UsageError("the base's config.json gives no context length", hint="pass --block-size")
        return min(context, 1024)
    if context is not None and requested > context:
        raise UsageError(f"block size {requested} exceeds the base model's context length ({context})",
                         hint=f"pass --block-size {context} or less")
    return requested
