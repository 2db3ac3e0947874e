"""A LoRA adapter, end to end: train it over a base, package only the adapter, publish, run it.

    python examples/lora_adapter.py     # in a throw-away library (a temporary GPTSTORE_HOME, removed after)

Needs the gptstore-peft plugin (``pip install -e plugins/gptstore-peft``). Steps:

1. build a tiny GPT-2-shaped base model offline and publish it as ``acme/tiny:1.0.0``;
2. ``finetune`` it with ``method="lora"`` on the docstrings of ``argparse`` (what
   ``gptstore finetune --method lora --method-option r=8 --method-option target_modules=c_attn,c_proj``
   does): the package holds only ``adapter_config.json`` and ``adapter_model.safetensors``, and its
   manifest pins the base by reference and manifest digest (``format.base``);
3. package it again with a description (the base is kept) and publish it;
4. load it (the engine finds and verifies the base, applies the adapter) and generate, next to
   the base model; then once more with the adapter merged into the weights (``peft-merged``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


TRAIN_BASE, TRAIN_LORA = 60, 40  # optimizer steps: seconds on a CPU (more steps, better text)
PROMPT = "The parser"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gptstore-lora-"))
    os.environ["GPTSTORE_HOME"] = str(work / "home")  # never the user's own library
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path) -> None:

    import gptstore
    from gptstore.training.config import methods
    from gptstore.training.tiny import build_tiny_gpt, stdlib_docstrings

    if "lora" not in methods():
        sys.exit("this example needs the gptstore-peft plugin: pip install -e plugins/gptstore-peft")
    started = time.monotonic()
    library = gptstore.Library()
    print(f"library: {library.root}")

    # 1. a base model in the library
    base_dir = build_tiny_gpt(work / "tiny", seed=0, train_steps=TRAIN_BASE)
    gptstore.package(base_dir, name="acme/tiny", version="1.0.0", license="mit",
                     description="A tiny GPT-2-shaped model trained on standard-library docstrings.")
    base = library.publish(base_dir)
    print(f"published {base.name} (sha256:{base.digest[:12]}, {base.manifest.total_size:,} bytes)")

    # 2. LoRA fine-tuning: only the adapter is trained and saved
    data = work / "argparse.txt"
    data.write_text("\n\n".join(stdlib_docstrings(modules=("argparse",))), encoding="utf-8")
    result = gptstore.finetune("acme/tiny:1.0.0", data, work / "tiny-argparse-lora", name="acme/tiny-argparse-lora",
                               version="0.1.0", method="lora",
                               method_options={"r": 8, "alpha": 16, "target_modules": ["c_attn", "c_proj"]},
                               max_steps=TRAIN_LORA, learning_rate=3e-3, batch_size=8, seed=0)
    print(f"fine-tuned in {result.seconds:.1f}s: held-out perplexity {result.perplexity:.1f} "
          f"(base {result.base_perplexity:.1f})")

    # 3. package (the base recorded by finetune is kept) and publish
    manifest = gptstore.package(result.out, name="acme/tiny-argparse-lora", version="0.1.0",
                                description="LoRA adapter for acme/tiny: writes like the argparse docs.")
    adapter = library.publish(result.out)
    ratio = manifest.total_size / base.manifest.total_size
    print(f"published {adapter.name}: {[f.path for f in manifest.files]}, {manifest.total_size:,} bytes "
          f"= {ratio:.1%} of the base; base {manifest.format.base.reference} "
          f"sha256:{manifest.format.base.digest[:12]}")

    # 4. run it next to the base
    prompt, params = PROMPT, {"max_new_tokens": 24, "repetition_penalty": 1.3}
    with gptstore.load("acme/tiny:1.0.0") as model:
        print(f"base:    {prompt}{model.generate(prompt, **params).text!r}")
    with gptstore.load("acme/tiny-argparse-lora") as model:
        print(f"adapter: {prompt}{model.generate(prompt, **params).text!r}  [{model.engine}]")
    with gptstore.load("acme/tiny-argparse-lora", engine="peft-merged") as model:
        print(f"merged:  {prompt}{model.generate(prompt, **params).text!r}  [{model.engine}]")
    print(f"done in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
