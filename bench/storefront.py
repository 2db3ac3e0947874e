"""Benchmark the storefront's pages over a catalog of many models; print p50 / p95 per page.

    .venv/bin/python bench/storefront.py [--models 10000] [--requests 300]

The catalog is filled in-process through the server's own API (``Catalog.create_repo`` with a
real ``gptstore.json`` and ``README.md`` in storage (fsync skipped while filling), ``set_metadata``, the full-text index, a
version tag), plus reviews from 50 users and per-day downloads, then ``catalogue.refresh`` builds
the catalogue rows as the server would on its first request. A real ``gptstore server`` then
serves the pages; each page is requested sequentially over one keep-alive connection, after a
warm-up, and timed at the client (loopback: an upper bound of the server-side time).

Target (issue 15): the model page and a filtered search page at p50 ≤ 50 ms and p95 ≤ 150 ms.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = ["poet", "haiku", "sonnet", "support", "code", "legal", "medical", "story", "tiny", "math",
         "summarise", "translate", "french", "german", "spanish", "sql", "python", "rust", "news", "finance"]
USERS = 50


def fill(data: Path, count: int) -> dict[str, float]:
    """``count`` public gptstore packages in the catalog at ``data``; seconds per phase."""
    import hashlib

    from gptstore.manifest import CATEGORIES, MANIFEST_FILE, dumps, validate
    from gptstore.server.accounts import Accounts
    from gptstore.server.catalog import Catalog
    from gptstore.server.catalogue import refresh
    from gptstore.server.db import connect
    from gptstore.server.metadata import repo_metadata, summarize
    from gptstore.server.search import index_manifest
    from gptstore.server.storage import Storage, lfs_row, regular_row
    from gptstore.server.timeutil import now

    import os

    os.fsync = lambda fd: None  # filling only: durability is not what this measures (the server is a new process)
    rng = random.Random(0)
    db = connect(data / "catalog.sqlite3")
    storage = Storage(data / "blobs", data / "uploads")
    catalog, accounts = Catalog(db), Accounts(db)
    times: dict[str, float] = {}
    start = time.perf_counter()
    for user in ["bench", *(f"user{i}" for i in range(USERS))]:
        accounts.add_user(user)
    weights = "0" * 64
    for first in range(0, count, 500):
        with db.transaction():
            for i in range(first, min(first + 500, count)):
                words = rng.sample(WORDS, 3)
                name = f"{words[0]}-{i}"
                priced = rng.random() < 0.4
                manifest = validate({
                    "namespace": "bench", "name": name, "version": "1.0.0",
                    "description": f"A {words[0]} model that writes {words[1]} and {words[2]}.",
                    "provider": {"name": f"provider{i % 50}"}, "license": rng.choice(["mit", "apache-2.0", "other"]),
                    "tags": words, "languages": rng.sample(["en", "de", "fr", "es"], 2),
                    "category": rng.choice(CATEGORIES), "use_cases": [f"{words[1]} drafts", f"{words[2]} answers"],
                    "pricing": ({"model": "per_1k_tokens", "amount": round(rng.uniform(0.001, 0.1), 4)} if priced
                                else {"model": "free"}),
                    "metrics": [{"name": "perplexity", "value": rng.uniform(5, 40), "dataset": "heldout.txt",
                                 "dataset_sha256": hashlib.sha256(name.encode()).hexdigest(), "split": "held-out"}],
                    "format": {"adapter": "transformers", "architecture": "GPT2LMHeadModel",
                               "parameters": rng.choice([124_000_000, 350_000_000, 1_300_000_000, 7_000_000_000]),
                               "context_length": 1024, "dtype": "float32"},
                    "files": [{"path": "model.safetensors", "size": 1000, "sha256": weights}]})
                raw = dumps(manifest)
                card = f"---\nlicense: mit\n---\n# {name}\n\nA **{words[0]}** model.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
                files = [regular_row(MANIFEST_FILE, raw, storage.put_bytes(raw)),
                         regular_row("README.md", card.encode(), storage.put_bytes(card.encode())),
                         lfs_row("model.safetensors", weights, 1000)]
                repo = catalog.create_repo("bench", name, private=False, author="bench", initial=files)
                summary = summarize(manifest, manifest.digest)
                meta = repo_metadata({"license": "mit"}, summary)
                catalog.set_metadata(repo, card={"license": "mit"}, summary=summary, tags=meta.tags,
                                     library_name=meta.library_name, pipeline_tag=meta.pipeline_tag)
                index_manifest(db, repo.id, summary)
                head = catalog.branch_head(repo, "main")
                catalog.add_ref(repo, "tag", "v1.0.0", head)
                db.execute("UPDATE repos SET downloads = ? WHERE id = ?", (rng.randrange(10_000), repo.id))
    times["models"] = time.perf_counter() - start

    start = time.perf_counter()
    today = datetime.now(timezone.utc).date()
    stamp = now()
    with db.transaction():
        ids = [row["id"] for row in db.all("SELECT id FROM repos")]
        for repo in ids:
            for day in rng.sample(range(30), 6):
                db.execute("INSERT OR IGNORE INTO daily_downloads (repo, day, count) VALUES (?, ?, ?)",
                           (repo, (today - timedelta(days=day)).isoformat(), rng.randrange(1, 50)))
        for repo in rng.sample(ids, min(len(ids), count // 3)):
            for user in rng.sample(range(USERS), 3):
                db.execute("INSERT INTO reviews (repo, user, stars, text, created_at, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (repo, f"user{user}", rng.randrange(1, 6), "ok", stamp, stamp))
    times["reviews and downloads"] = time.perf_counter() - start

    start = time.perf_counter()
    refresh(db, storage)
    times["catalogue refresh (first request)"] = time.perf_counter() - start
    db.close()
    return times


def measure(client, paths: list[str], requests: int, warmup: int = 20) -> tuple[float, float]:
    for path in paths[:warmup]:
        assert client.get(path).status_code == 200, path
    latencies = []
    for i in range(requests):
        path = paths[i % len(paths)]
        start = time.perf_counter()
        answer = client.get(path)
        latencies.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    latencies.sort()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    import httpx

    from gptstore.testing import StoreServer

    work = Path(tempfile.mkdtemp(prefix="gptstore-bench-storefront-"))
    try:
        data = work / "data"
        setup = fill(data, args.models)
        for phase, seconds in setup.items():
            print(f"setup: {phase}: {seconds:.1f} s")
        server = StoreServer(data, work / "server.log", [])
        server.start()
        try:
            client = httpx.Client(base_url=server.url, timeout=30)
            rng = random.Random(1)
            names = [row["id"] for row in client.get("/api/models", params={"limit": 1000}).json()]
            model_pages = ["/" + name for name in rng.sample(names, 200)]
            searches = [f"/models?category={c}&max_price=0.05&min_parameters=100000000&sort=trending&page={p}"
                        for c in ("chat", "code", "writing", "legal") for p in (1, 2, 3)]
            text_searches = [f"/models?q={w}&category=chat&category=code&sort=rating" for w in WORDS]
            rows = [("model page", *measure(client, model_pages, args.requests)),
                    ("filtered search page", *measure(client, searches, args.requests)),
                    ("text + filter search page", *measure(client, text_searches, args.requests)),
                    ("home page", *measure(client, ["/"], args.requests // 3)),
                    ("provider profile (200 cards)", *measure(client, ["/bench"], args.requests // 10, warmup=2))]
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nstorefront pages over {args.models} models ({args.requests} requests each, after warm-up)")
    print(f"{'page':32} {'p50 ms':>8} {'p95 ms':>8}  target")
    for name, p50, p95 in rows:
        target = "p50 <= 50, p95 <= 150" if name in ("model page", "filtered search page") else ""
        verdict = "" if not target else (" ok" if p50 <= 50 and p95 <= 150 else " MISSED")
        print(f"{name:32} {p50:8.1f} {p95:8.1f}  {target}{verdict}")


if __name__ == "__main__":
    main()
