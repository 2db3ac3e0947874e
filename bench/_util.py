"""Helpers shared by the benchmark scripts: timing, table printing, the tiny model, a filled catalog."""

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


def fill_catalog(url: str, count: int, words: list[str], *, namespace: str = "bench") -> float:
    """``count`` public models with manifests straight into the catalog at ``url`` (three of
    ``words`` each, in the name, description and tags), indexed for search in both full-text tables
    as a store's commits and catalogue refreshes index them, then ANALYZE; seconds."""
    import json
    import random

    from gptstore.server.db import connect
    from gptstore.server.metadata import repo_metadata
    from gptstore.server.search import index_manifest
    from gptstore.server.timeutil import now

    started = time.perf_counter()
    db = connect(url)
    rng = random.Random(0)
    try:
        with db.transaction():
            db.execute("INSERT INTO namespaces (name, kind, created_at) VALUES (?, 'user', ?) "
                       "ON CONFLICT DO NOTHING", (namespace, now()))
            for i in range(count):
                picked = rng.sample(words, 3)
                summary = {"name": f"{namespace}/model-{i}", "version": "1.0.0", "task": "text-generation",
                           "description": f"A {picked[0]} model that writes {picked[1]} and {picked[2]}.",
                           "provider": {"name": f"provider{i % 50}"}, "license": "mit", "tags": picked,
                           "pricing": {"model": "free", "amount": 0.0, "currency": "USD"}}
                meta = repo_metadata({}, summary)
                stamp = now()
                repo = db.execute("INSERT INTO repos (namespace, name, private, created_at, last_modified, downloads, "
                                  "summary, library_name, pipeline_tag) VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?) "
                                  "RETURNING id", (namespace, f"{picked[0]}-{i}", stamp, stamp, rng.randrange(10_000),
                                                   json.dumps(summary), meta.library_name,
                                                   meta.pipeline_tag)).fetchone()[0]
                commit = f"{rng.getrandbits(160):040x}"
                db.execute("INSERT INTO commits (id, repo, parent, author, title, message, created_at) "
                           "VALUES (?, ?, NULL, ?, 'initial commit', '', ?)", (commit, repo, namespace, stamp))
                db.execute("INSERT INTO refs (repo, kind, name, target) VALUES (?, 'branch', 'main', ?)",
                           (repo, commit))
                for tag in meta.tags:
                    db.execute("INSERT INTO repo_tags (repo, tag) VALUES (?, ?) ON CONFLICT DO NOTHING", (repo, tag))
                index_manifest(db, repo, summary)
                # the storefront's index of the same manifest, as catalogue.refresh writes it
                db.execute("INSERT INTO catalogue_fts (rowid, name, description, tags, provider, category, "
                           "use_cases) VALUES (?, ?, ?, ?, ?, 'writing', ?)",
                           (repo, f"{namespace}/{picked[0]}-{i} {summary['name']}", summary["description"],
                            " ".join(picked), summary["provider"]["name"], f"write {picked[1]}"))
        # planner statistics, as autovacuum (PostgreSQL) would gather within a minute of a bulk load:
        # without them the first queries sort every repo instead of walking the listing's index
        db.execute("ANALYZE")
    finally:
        db.close()
    return time.perf_counter() - started
