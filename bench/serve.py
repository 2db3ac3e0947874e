"""``gptstore serve`` under load, through the official ``openai`` client.

Usage: python bench/serve.py [--device cpu|cuda|auto] [--requests 1000] [--repeat 5] [--threads N] [--dir DIR]

A GPT-2-shaped model (4 layers, 256 wide, 512 context, as in bench/generate.py) is built once into
--dir (default .bench/serve) and published to a library there; a real ``gptstore serve`` process
serves it (default batching: --max-batch 8, --batch-window-ms 5). The server gives torch one
thread fewer than the cores (a core stays for its event loop and workers); ``--threads N`` sets
torch's CPU threads (OMP_NUM_THREADS) for both the server and the in-process baseline.
Cases:

  8 concurrent streams   8 client threads stream one request each (32 new tokens, greedy) at once,
                         against the same 8 requests streamed one after another; aggregate
                         generated tokens/s                                 target >= 3x
  time to first token    one streamed request, request sent -> first text chunk received,
                         against in-process Model.stream -> first piece     target <= +30 ms
  memory                 RSS of the server process after a warm-up and after --requests more
                         requests (8 client threads, whole and streamed, 8
                         new tokens each)                                   target: flat
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _util import print_table, publish_bench_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["Return the", "A long prompt about many things in the standard library, such as", "x",
           "The value of the object", "Raise an error if", "import os and then", "If the file", "Open a"]
NEW_TOKENS = 32


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    import httpx

    from gptstore.testing import free_port

    port = free_port()
    env = os.environ | ({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}) | {"GPTSTORE_LOAD_PLUGINS": "", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.Popen([sys.executable, "-c", "from gptstore.cli.main import main; main()", "serve", "bench/gpt",
                             "--port", str(port), "--device", args.device, "--log-level", "warning",
                             "--max-queue", "64"], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gptstore serve did not start")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmRSS (this benchmark reads /proc: Linux only)")


def stream_one(client, prompt: str, max_tokens: int = NEW_TOKENS) -> tuple[int, float | None]:
    """(completion tokens, seconds to the first text chunk) of one streamed request."""
    start = time.perf_counter()
    first = None
    tokens = 0
    for chunk in client.completions.create(model="bench/gpt", prompt=prompt, max_tokens=max_tokens, temperature=0,
                                           stream=True, stream_options={"include_usage": True}):
        if first is None and chunk.choices and chunk.choices[0].text:
            first = time.perf_counter() - start
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return tokens, first


def concurrent(client) -> tuple[int, float]:
    barrier = threading.Barrier(len(PROMPTS))

    def one(prompt: str) -> int:
        barrier.wait()
        return stream_one(client, prompt)[0]

    start = time.perf_counter()
    with ThreadPoolExecutor(len(PROMPTS)) as threads:
        tokens = sum(threads.map(one, PROMPTS))
    return tokens, time.perf_counter() - start


def sequential(client) -> tuple[int, float]:
    start = time.perf_counter()
    tokens = sum(stream_one(client, prompt)[0] for prompt in PROMPTS)
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ttft-repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--dir", type=Path, default=ROOT / ".bench" / "serve")
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["GPTSTORE_HOME"] = str(args.dir / "home")
    os.environ.pop("GPTSTORE_STORE", None)
    logging.getLogger("gptstore.trust").setLevel(logging.ERROR)  # the bench model is unsigned
    logging.getLogger("gptstore.verification").setLevel(logging.ERROR)
    publish_bench_model(args.dir)
    from openai import OpenAI

    proc, url = start_server(args)
    try:
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        stream_one(client, PROMPTS[0])  # warm: the first call, and the first batch of each shape
        concurrent(client)
        together_runs, one_by_one_runs = [], []
        for _ in range(args.repeat):  # in turns, so drift hits both alike
            tokens, seconds = concurrent(client)
            together_runs.append(tokens / seconds)
            tokens, seconds = sequential(client)
            one_by_one_runs.append(tokens / seconds)
        together_rate, one_by_one_rate = statistics.median(together_runs), statistics.median(one_by_one_runs)

        import torch

        import gptstore
        from gptstore.serving.app import leave_a_core

        leave_a_core()  # the same torch threads as the server: a like-for-like baseline
        torch_threads = torch.get_num_threads()
        model = gptstore.load("bench/gpt", device=args.device)

        def local_ttft() -> float:
            start = time.perf_counter()
            with model.stream(PROMPTS[0], raw=True, max_new_tokens=NEW_TOKENS, strategy="greedy") as pieces:
                for piece in pieces:
                    if piece:
                        return time.perf_counter() - start
            return time.perf_counter() - start

        local_ttft()
        api_times, local_times = [], []
        for _ in range(args.ttft_repeat):  # in turns, so drift hits both alike
            api_times.append(stream_one(client, PROMPTS[0])[1])
            local_times.append(local_ttft())
        api_ttft, in_process_ttft = statistics.median(api_times), statistics.median(local_times)
        model.close()

        def ask(i: int) -> None:
            if i % 2:
                stream_one(client, PROMPTS[i % len(PROMPTS)], 8)
            else:
                client.completions.create(model="bench/gpt", prompt=PROMPTS[i % len(PROMPTS)], max_tokens=8,
                                          temperature=0)

        with ThreadPoolExecutor(8) as threads:
            list(threads.map(ask, range(100)))  # warm-up: allocator pools, caches
        rss_start = rss_mib(proc.pid)
        began = time.perf_counter()
        with ThreadPoolExecutor(8) as threads:
            list(threads.map(ask, range(args.requests)))
        load_s = time.perf_counter() - began
        rss_end = rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


    speedup = together_rate / one_by_one_rate
    extra_ms = (api_ttft - in_process_ttft) * 1000
    growth = rss_end - rss_start
    rows = [
        ["8 concurrent streams", f"{together_rate:.0f} tok/s", f"one after another {one_by_one_rate:.0f} tok/s",
         f"{speedup:.2f}x", ">= 3x", "met" if speedup >= 3 else "NOT met"],
        ["time to first token", f"{api_ttft * 1000:.1f} ms", f"in-process stream {in_process_ttft * 1000:.1f} ms",
         f"+{extra_ms:.1f} ms", "<= +30 ms", "met" if extra_ms <= 30 else "NOT met"],
        [f"RSS over {args.requests} requests", f"{rss_start:.0f} -> {rss_end:.0f} MiB", f"{load_s:.0f} s of load",
         f"{growth:+.1f} MiB", "flat", "met" if growth <= max(10.0, 0.05 * rss_start) else "NOT met"],
    ]
    print_table(f"gptstore serve on {args.device}, {NEW_TOKENS} new tokens, greedy; medians of {args.repeat} "
                f"(time to first token: {args.ttft_repeat}); torch threads: {torch_threads}",
                ["case", "gptstore serve", "against", "ratio", "target", "result"], rows)
    print(json.dumps({"concurrency_speedup": round(speedup, 3), "ttft_extra_ms": round(extra_ms, 1),
                      "rss_start_mib": round(rss_start, 1), "rss_end_mib": round(rss_end, 1)}))


if __name__ == "__main__":
    main()
