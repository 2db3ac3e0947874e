"""The generate API against plain transformers on the same weights.

Usage: python bench/generate.py [--device cpu|cuda|auto] [--dtype auto] [--repeat 15] [--dir DIR]

A GPT-2-shaped model bigger than the test one (4 layers, 256 wide, 512 context) is built once into
--dir (default .bench/generate) and published to a library there. Cases:

  per-call overhead   Model.generate (20-token prompt, 32 new tokens, greedy; usage log on)
                      against tokenizer + model.generate + decode        target <= 1.05x
  batch throughput    one Model.generate of 8 prompts against 8 sequential
                      Model.generate calls, in generated tokens/s         target >= 3x
  cold start          a fresh process: import, gptstore.load (verified through the stamp cache)
                      and the first token, against import, from_pretrained and the first token
                                                                          target <= 1.1x
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, os.path.dirname(__file__))
from _util import print_table, publish_bench_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Return the value of the object, or raise an error when the file cannot be read"
BATCH = ["Return the", "A long prompt about many things in the standard library, such as", "x",
         "The value of the object", "Raise an error if", "import os and then", "If the file", "Open a"]
NEW_TOKENS = 32

COLD_OURS = """
import time; start = time.perf_counter()
import gptstore
model = gptstore.load("bench/gpt", device={device!r}, dtype={dtype!r})
model.generate("Return the", max_new_tokens=1)
print(time.perf_counter() - start)
"""
COLD_RAW = """
import time; start = time.perf_counter()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
options = {{"device_map": {device!r}}} if {device!r} != "cpu" else {{}}
model = AutoModelForCausalLM.from_pretrained({path!r}, local_files_only=True, use_safetensors=True,
                                             dtype=getattr(torch, {dtype!r}), **options)
tokenizer = AutoTokenizer.from_pretrained({path!r}, local_files_only=True)
encoded = tokenizer(["Return the"], return_tensors="pt").to(model.device)
model.generate(**encoded, max_new_tokens=1, do_sample=False)
print(time.perf_counter() - start)
"""


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, run in turns so drift hits all alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def cold(code: str, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=os.environ | {"TRANSFORMERS_VERBOSITY": "error"})
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--cold-repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=ROOT / ".bench" / "generate")
    args = parser.parse_args()
    os.environ["GPTSTORE_HOME"] = str(args.dir / "home")
    os.environ.pop("GPTSTORE_NO_USAGE_LOG", None)
    logging.getLogger("gptstore.trust").setLevel(logging.ERROR)  # the bench model is unsigned
    publish_bench_model(args.dir)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    import gptstore

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model = gptstore.load("bench/gpt", device=args.device, dtype=args.dtype)
    device, dtype = model.device, model.dtype
    options = {"device_map": device} if device != "cpu" else {}
    raw = AutoModelForCausalLM.from_pretrained(model.path, local_files_only=True, use_safetensors=True,
                                               dtype=getattr(torch, dtype), **options)
    tokenizer = AutoTokenizer.from_pretrained(model.path, local_files_only=True)
    tokenizer.padding_side = "left"

    def raw_generate(prompts: list[str]) -> list[str]:
        encoded = tokenizer(prompts, return_tensors="pt", padding=True).to(raw.device)
        output = raw.generate(**encoded, max_new_tokens=NEW_TOKENS, do_sample=False)
        return tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)

    ours_text = model.generate(PROMPT, raw=True, max_new_tokens=NEW_TOKENS).text
    assert ours_text == raw_generate([PROMPT])[0], "outputs differ: the comparison would be unfair"

    call = interleaved({
        "ours": lambda: model.generate(PROMPT, raw=True, max_new_tokens=NEW_TOKENS),
        "raw": lambda: raw_generate([PROMPT]),
    }, args.repeat)
    batch = interleaved({
        "batched": lambda: model.generate(BATCH, raw=True, max_new_tokens=NEW_TOKENS),
        "sequential": lambda: [model.generate(p, raw=True, max_new_tokens=NEW_TOKENS) for p in BATCH],
        "raw batched": lambda: raw_generate(BATCH),
    }, max(3, args.repeat // 3))
    tokens = sum(c.usage.completion_tokens for c in model.generate(BATCH, raw=True, max_new_tokens=NEW_TOKENS))

    fill = {"device": device, "dtype": dtype, "path": str(model.path)}
    cold_ours = cold(COLD_OURS.format(**fill), args.cold_repeat)
    cold_raw = cold(COLD_RAW.format(**fill), args.cold_repeat)

    overhead = call["ours"] / call["raw"]
    speedup = batch["sequential"] / batch["batched"]
    start_ratio = cold_ours / cold_raw
    rows = [
        ["per-call overhead", f"{call['ours'] * 1000:.1f} ms", f"raw {call['raw'] * 1000:.1f} ms",
         f"{overhead:.3f}x", "<= 1.05x", "met" if overhead <= 1.05 else "NOT met"],
        ["batch of 8 vs 8 calls", f"{tokens / batch['batched']:.0f} tok/s",
         f"sequential {tokens / batch['sequential']:.0f} tok/s (raw batched {tokens / batch['raw batched']:.0f})",
         f"{speedup:.2f}x", ">= 3x", "met" if speedup >= 3 else "NOT met"],
        ["cold start + 1st token", f"{cold_ours:.2f} s", f"raw {cold_raw:.2f} s",
         f"{start_ratio:.3f}x", "<= 1.1x", "met" if start_ratio <= 1.1 else "NOT met"],
    ]
    print_table(f"Generate on {device} ({dtype}), {sum(p.numel() for p in raw.parameters()):,} parameters, "
                f"{NEW_TOKENS} new tokens; medians of {args.repeat} (cold start: {args.cold_repeat} fresh processes)",
                ["case", "gptstore", "plain transformers", "ratio", "target", "result"], rows)
    print(json.dumps({"overhead": round(overhead, 4), "batch_speedup": round(speedup, 3),
                      "cold_start": round(start_ratio, 4)}))


if __name__ == "__main__":
    main()
