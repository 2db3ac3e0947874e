"""Scale-out benchmarks (issue 17): each measurement a ratio of two setups timed in the same run.

    .venv/bin/python bench/scale.py [--catalog postgresql|sqlite|postgresql://…] [--blobs moto|none|s3://…]
                                    [--clients 32] [--seconds 10] [--models 100000] [--upload-mb 256]
                                    [--only metadata,download,search,upload]

1. **metadata** — ``model_info`` and HEAD on ``resolve`` alternately from ``--clients`` keep-alive
   clients (an asyncio load generator in this process, on the same cores), for ``--seconds``, against
   1 replica and 2 (each client pinned to one replica, as a load balancer's connection would be),
   alternated twice, best of each. Target: 2 replicas ≥ 1.3× the requests/s of 1 on a 2-core machine.
2. **download** — server CPU seconds (the server process's utime + stime) per GB of LFS download:
   a store with S3 blobs (downloads answer with a redirect to a presigned URL, followed by the
   client to the bucket) against a store serving the same bytes from its disk. Target: ≤ 10 %.
3. **search** — p50 of ``/api/models?search=WORD`` over ``--models`` models. Target: ≤ 20 ms on
   PostgreSQL with 100,000 models.
4. **upload** — a ``--upload-mb`` file pushed with the stock ``huggingface_hub`` client to a store
   with S3 blobs (presigned PUTs straight to the bucket, then the server's verification) against
   boto3's ``upload_file`` of the same bytes to the same endpoint. Target: ≥ 0.8×.

``--catalog postgresql`` (the default) starts a throw-away PostgreSQL server with
``gptstore.testing.PostgresServer`` (Debian's binaries) and gives each store a fresh database; a
``postgresql://`` URL uses that server instead (one fresh database per store is created on it).
``--catalog sqlite`` runs the stores on SQLite: then the two replicas of (1) share one data
directory, which is safe for this read-only load only (SQLite's WAL serialises processes; nothing is
written while the replicas run) and is not a deployment ``docs/scale-out.md`` supports.
``--blobs moto`` (the default) starts moto's S3 server (``gptstore.testing.start_s3``); ``s3://…``
uses a real bucket through the AWS_* variables; ``none`` skips (2) and (4). A measurement that cannot
run says ``skipped:`` and why.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _util import fill_catalog, print_table  # noqa: E402

WORDS = ["poet", "haiku", "sonnet", "support", "code", "legal", "medical", "story", "tiny", "math",
         "summarise", "translate", "french", "german", "spanish", "sql", "python", "rust", "news", "finance"]
MB = 1024 * 1024


class Skipped(Exception):
    """A measurement that cannot run here; the message says what it needs."""


# -- stores ------------------------------------------------------------------------------------
class Backends:
    """Where the stores of this run keep their catalog and blobs (see the module doc)."""

    def __init__(self, catalog: str, blobs: str, work: Path) -> None:
        self.catalog, self.blobs, self.work = catalog, blobs, work
        self.postgres: Any = None
        self.s3: Any = None
        self.count = 0

    def catalog_url(self) -> str | None:
        """A fresh catalog for one store: None = SQLite in its data directory."""
        if self.catalog == "sqlite":
            return None
        if self.catalog.startswith("postgresql://"):
            import psycopg

            self.count += 1
            name = f"bench_scale_{os.getpid()}_{self.count}"
            with psycopg.connect(self.catalog, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            return self.catalog.rsplit("/", 1)[0] + "/" + name
        if self.postgres is None:
            from gptstore.testing import PostgresServer

            try:
                self.postgres = PostgresServer()
            except Exception as exc:  # noqa: BLE001 - any reason: say it and skip
                raise Skipped(f"needs --catalog postgresql://… (no local PostgreSQL: {exc})") from None
        return self.postgres.create_database()

    def s3_blobs(self, prefix: str) -> tuple[str, dict[str, str]]:
        """(``--blobs`` URL, environment) of a store keeping its blobs in the bucket under ``prefix``."""
        if self.blobs == "none":
            raise Skipped("needs --blobs moto or --blobs s3://… (an S3-compatible bucket)")
        if self.blobs.startswith("s3://"):
            env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
            return f"{self.blobs.rstrip('/')}/{prefix}", env
        if self.s3 is None:
            from gptstore.testing import start_s3

            self.s3 = start_s3(self.work / "moto", min_part_size=5 * MB)
        return self.s3.blobs_url(prefix), self.s3.env

    def boto3_client(self) -> tuple[Any, str, str]:
        """(client, bucket, key prefix) for the boto3 baseline on the same endpoint."""
        if self.blobs.startswith("s3://"):
            import boto3

            bucket, _, prefix = self.blobs[5:].partition("/")
            return boto3.client("s3"), bucket, prefix
        self.s3_blobs("baseline")
        return self.s3.client(), self.s3.bucket, "baseline"

    def close(self) -> None:
        if self.s3 is not None:
            self.s3.stop()
        if self.postgres is not None:
            self.postgres.stop()


def launch(root: Path, *, catalog: str | None, args: list[str] = (), env: dict[str, str] | None = None,
           data: Path | None = None, accounts: bool = True) -> Any:
    """A running ``gptstore server`` (quiet log) with user ``bench`` and its write token in
    ``server.tokens["bench:write"]``."""
    from gptstore.testing import StoreServer

    root.mkdir(parents=True, exist_ok=True)
    server = StoreServer(data or root / "data", root / "server.log", list(args), env=dict(env or {}),
                         catalog=catalog)
    if accounts:
        server.admin("user", "add", "bench")
        server.tokens["bench:write"] = server.admin("token", "create", "bench", "--scope", "write")
    server.start()
    return server


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- 1. metadata requests, 2 replicas vs 1 ---------------------------------------------------
async def _client(port: int, requests: list[bytes], deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.perf_counter() < deadline:
            request = requests[i % len(requests)]
            i += 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if not request.startswith(b"HEAD") and length:
                await reader.readexactly(length)
            counts[0 if status < 400 else 1] += 1
    finally:
        writer.close()


def load(ports: list[int], clients: int, seconds: float, repo: str, path: str) -> tuple[float, int]:
    """(successful requests/s, errors) of ``clients`` keep-alive clients spread over ``ports``."""
    requests = [f"GET /api/models/{repo} HTTP/1.1\r\nHost: bench\r\n\r\n".encode(),
                f"HEAD /{repo}/resolve/main/{path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()]
    counts = [0, 0]

    async def run() -> float:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(_client(ports[i % len(ports)], requests, deadline, counts) for i in range(clients)))
        return time.perf_counter() - started

    try:
        import uvloop

        wall = uvloop.run(run())
    except ImportError:
        wall = asyncio.run(run())
    return counts[0] / wall, counts[1]


def bench_metadata(backends: Backends, work: Path, clients: int, seconds: float) -> list[list[object]]:
    catalog = backends.catalog_url()
    first = launch(work / "replica-1", catalog=catalog)
    servers = [first]
    try:
        api = first.api("bench")
        api.create_repo("bench/meta")
        api.upload_file(path_or_fileobj=b"x" * 4096, path_in_repo="weights.bin", repo_id="bench/meta")
        # the second replica: the same catalog (PostgreSQL) or the same data directory (SQLite)
        servers.append(launch(work / "replica-2", catalog=catalog, accounts=False,
                              data=None if catalog else first.data))
        ports = [s.port for s in servers]
        load(ports, clients, 1.0, "bench/meta", "weights.bin")  # warm-up of both
        ones, twos, errors_one, errors_two = [], [], 0, 0
        for _ in range(2):  # alternated, best of two each: other load on the machine hits both alike
            rate, errors = load(ports[:1], clients, seconds, "bench/meta", "weights.bin")
            ones.append(rate)
            errors_one += errors
            rate, errors = load(ports, clients, seconds, "bench/meta", "weights.bin")
            twos.append(rate)
            errors_two += errors
        one, two = max(ones), max(twos)
    finally:
        for server in servers:
            server.stop()
    where = "PostgreSQL" if catalog else "SQLite (one data dir, read-only load)"
    return [["metadata: 1 replica", where, f"{one:.0f} req/s", f"{errors_one} errors", ""],
            ["metadata: 2 replicas", where, f"{two:.0f} req/s", f"{errors_two} errors",
             f"{two / one:.2f}x (target >= 1.3x)"]]


# -- 2. server CPU per GB downloaded: presigned redirects vs serving the bytes -----------------
def _download_cpu(server: Any, repo: str, size: int, times: int) -> float:
    import httpx

    url = f"{server.url}/{repo}/resolve/main/big.bin"
    before = cpu_seconds(server.proc.pid)
    with httpx.Client(follow_redirects=True, timeout=600) as http:
        for _ in range(times):
            got = 0
            with http.stream("GET", url) as answer:
                answer.raise_for_status()
                for chunk in answer.iter_bytes(4 * MB):
                    got += len(chunk)
            assert got == size, f"downloaded {got} of {size} bytes"
    return (cpu_seconds(server.proc.pid) - before) / (size * times / 1024**3)


def bench_download(backends: Backends, work: Path, size_mb: int, times: int) -> list[list[object]]:
    blobs_url, env = backends.s3_blobs("download")
    payload = work / "download.bin"
    payload.write_bytes(os.urandom(size_mb * MB))
    rows = []
    cpu = {}
    for label, args, extra in [("served from disk", [], {}), ("redirect to S3", ["--blobs", blobs_url], env)]:
        server = launch(work / f"download-{len(cpu)}", catalog=backends.catalog_url(), args=args, env=extra)
        try:
            api = server.api("bench")
            api.create_repo("bench/big")
            api.upload_file(path_or_fileobj=str(payload), path_in_repo="big.bin", repo_id="bench/big")
            cpu[label] = _download_cpu(server, "bench/big", size_mb * MB, times)
        finally:
            server.stop()
        rows.append([f"download CPU: {label}", f"{size_mb} MB x {times}", f"{cpu[label]:.4f} CPU s/GB", "", ""])
    ratio = cpu["redirect to S3"] / max(cpu["served from disk"], 1e-9)
    rows[-1][-1] = f"{ratio:.1%} of serving (target <= 10%)"
    return rows


# -- 3. search p50 -------------------------------------------------------------------------
def bench_search(backends: Backends, work: Path, models: int, requests: int) -> list[list[object]]:
    import httpx

    catalog = backends.catalog_url()
    server = launch(work / "search", catalog=catalog)  # creates the schema
    server.stop()
    filled = fill_catalog(catalog or f"sqlite:///{server.data / 'catalog.sqlite3'}", models, WORDS,
                          namespace="fill")
    server.start()
    try:
        times = []
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for i in range(requests + 10):
                started = time.perf_counter()
                answer = http.get("/api/models", params={"search": WORDS[i % len(WORDS)], "limit": 20})
                elapsed = time.perf_counter() - started
                answer.raise_for_status()
                if i >= 10:  # warm-up
                    times.append(elapsed)
    finally:
        server.stop()
    p50 = statistics.median(times) * 1000
    where = "PostgreSQL" if catalog else "SQLite (the target is for PostgreSQL)"
    return [["search p50", f"{models} models, {where}", f"{p50:.1f} ms",
             f"p95 {sorted(times)[int(len(times) * 0.95)] * 1000:.1f} ms", f"filled in {filled:.0f} s "
             "(target p50 <= 20 ms)"]]


# -- 4. upload straight to the bucket vs boto3 -----------------------------------------------
def bench_upload(backends: Backends, work: Path, size_mb: int) -> list[list[object]]:
    blobs_url, env = backends.s3_blobs("upload")
    payload = work / "upload.bin"
    payload.write_bytes(os.urandom(size_mb * MB))
    client, bucket, prefix = backends.boto3_client()
    started = time.perf_counter()
    client.upload_file(str(payload), bucket, f"{prefix}/{hashlib.sha256(str(time.time()).encode()).hexdigest()}")
    baseline = time.perf_counter() - started
    server = launch(work / "upload", catalog=backends.catalog_url(), args=["--blobs", blobs_url], env=env)
    try:
        api = server.api("bench")
        api.create_repo("bench/upload")
        started = time.perf_counter()
        api.upload_file(path_or_fileobj=str(payload), path_in_repo="big.bin", repo_id="bench/upload")
        pushed = time.perf_counter() - started
    finally:
        server.stop()
    rate = lambda seconds: f"{size_mb / seconds:.0f} MB/s"  # noqa: E731
    return [["upload: boto3 upload_file", f"{size_mb} MB", rate(baseline), "", ""],
            ["upload: huggingface_hub via store", f"{size_mb} MB", rate(pushed), "",
             f"{baseline / pushed:.2f}x of boto3 (target >= 0.8x)"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", default="postgresql", help="postgresql (throw-away local server), sqlite, "
                                                                 "or a postgresql:// URL")
    parser.add_argument("--blobs", default="moto", help="moto (local moto server), none, or s3://BUCKET/PREFIX")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--models", type=int, default=100_000)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--download-mb", type=int, default=256)
    parser.add_argument("--downloads", type=int, default=4)
    parser.add_argument("--upload-mb", type=int, default=256)
    parser.add_argument("--only", default="metadata,download,search,upload")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    work = Path(tempfile.mkdtemp(prefix="gptstore-bench-scale-"))
    backends = Backends(args.catalog, args.blobs, work)
    rows: list[list[object]] = []
    runs = {"metadata": lambda: bench_metadata(backends, work / "metadata", args.clients, args.seconds),
            "download": lambda: bench_download(backends, work / "download", args.download_mb, args.downloads),
            "search": lambda: bench_search(backends, work / "search", args.models, args.searches),
            "upload": lambda: bench_upload(backends, work / "upload", args.upload_mb)}
    try:
        for name in args.only.split(","):
            (work / name).mkdir(parents=True, exist_ok=True)
            try:
                rows += runs[name]()
            except Skipped as exc:
                rows.append([name, "", f"skipped: {exc}", "", ""])
            print(f"{name}: done", file=sys.stderr)
    finally:
        backends.close()
        shutil.rmtree(work, ignore_errors=True)
    print_table(f"gptstore scale-out (catalog {args.catalog}, blobs {args.blobs}, {os.cpu_count()} CPUs)",
                ["measurement", "setup", "result", "", "ratio / target"], rows)


if __name__ == "__main__":
    main()
