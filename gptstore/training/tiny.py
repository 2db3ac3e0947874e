"""Build tiny, real GPT-2-shaped models offline, in seconds.

A byte-level BPE tokenizer is trained with ``tokenizers`` on the docstrings of the Python
standard library (present on every machine), and a GPT-2 model is initialised from a small config
(optionally trained for a few steps so that it visibly learned). Used by the test kit, the demo
and the examples.
"""

from __future__ import annotations

import ast
import sysconfig
from pathlib import Path

EOS = "<|endoftext|>"


def stdlib_docstrings(max_chars: int = 400_000, *, modules: tuple[str, ...] | None = None) -> list[str]:
    """Docstrings of standard-library modules, read from source with ``ast`` (nothing imported)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py")) if modules is None else [stdlib / f"{m}.py" for m in modules]
    texts: list[str] = []
    total = 0
    for file in files:
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    texts.append(doc.strip())
                    total += len(doc)
                    if total >= max_chars:
                        return texts
    return texts


def train_tokenizer(texts: list[str], out_dir: Path, *, vocab_size: int = 512, context_length: int = 128):
    """Train a byte-level BPE tokenizer and save it as a transformers fast tokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS],
                            show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=EOS, eos_token=EOS,
                                        unk_token=EOS, pad_token=EOS, model_max_length=context_length)
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def build_tiny_gpt(out_dir: Path | str, *, texts: list[str] | None = None, vocab_size: int = 512,
                   n_layer: int = 2, n_head: int = 2, n_embd: int = 64, context_length: int = 128,
                   seed: int = 0, train_steps: int = 0, batch_size: int = 8, learning_rate: float = 3e-3) -> Path:
    """Write a GPT-2-shaped causal LM directory (safetensors, config, tokenizer) to ``out_dir``.

    With ``train_steps`` > 0 the model is trained that many steps on ``texts`` (cross-entropy LM
    loss, AdamW), enough for it to produce recognisable words.
    """
    from ..transformers_logging import quiet_transformers

    with quiet_transformers():
        return _build(Path(out_dir), texts=texts, vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                      n_embd=n_embd, context_length=context_length, seed=seed, train_steps=train_steps,
                      batch_size=batch_size, learning_rate=learning_rate)


def _build(out: Path, *, texts, vocab_size, n_layer, n_head, n_embd, context_length, seed, train_steps,
           batch_size, learning_rate) -> Path:
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    out.mkdir(parents=True, exist_ok=True)
    texts = texts if texts is not None else stdlib_docstrings()
    tokenizer = train_tokenizer(texts, out, vocab_size=vocab_size, context_length=context_length)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=context_length, n_embd=n_embd,
                        n_layer=n_layer, n_head=n_head, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
                        loss_type="ForCausalLM")
    model = GPT2LMHeadModel(config)
    if train_steps:
        _train(model, tokenizer, texts, steps=train_steps, block=context_length,
               batch_size=batch_size, lr=learning_rate, seed=seed)
    model.eval()
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id,
                                               eos_token_id=config.eos_token_id,
                                               pad_token_id=config.pad_token_id)
    model.save_pretrained(out)
    return out


def _train(model, tokenizer, texts, *, steps: int, block: int, batch_size: int, lr: float, seed: int) -> None:
    import torch

    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, verbose=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    data = torch.tensor(ids, dtype=torch.long)
    n_blocks = max(1, (len(data) - 1) // block)
    data = data[: n_blocks * block].view(n_blocks, block)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        rows = torch.randint(0, n_blocks, (batch_size,), generator=generator)
        batch = data[rows]
        loss = model(input_ids=batch, attention_mask=torch.ones_like(batch), labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
