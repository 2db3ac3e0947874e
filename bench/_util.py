"""Helpers shared by the benchmark scripts: timing and table printing."""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_cmd(args: list[str], **kwargs) -> Callable[[], None]:
    def call() -> None:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return call


def print_table(title: str, headers: list[str], rows: list[list[object]]) -> None:
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def publish_bench_model(base: Path) -> None:
    """Build the benchmarks' tiny GPT (4 layers, 256 wide, context 512) and publish it as
    ``bench/gpt:1.0.0`` in the current library, once (the model is kept in ``base``)."""
    from gptstore.library import Library
    from gptstore.packaging import package
    from gptstore.training.tiny import build_tiny_gpt

    model_dir = base / "model"
    if not (model_dir / "gptstore.json").is_file():
        build_tiny_gpt(model_dir, n_layer=4, n_head=4, n_embd=256, context_length=512, seed=0)
        package(model_dir, name="bench/gpt", version="1.0.0")
    library = Library()
    if not library.tags("bench/gpt"):
        library.publish(model_dir)
