"""Startup time: `gptstore --help` and `import gptstore` against `python -c pass`, `hf --help`, `llm --help`.

Usage: python bench/startup.py [--repeat N]
Target: `gptstore --help` median <= 0.25 s with the plugins of plugins/ installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _util import median_time, print_table, run_cmd  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    bindir = os.path.dirname(sys.executable)
    candidates = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import gptstore'": [sys.executable, "-c", "import gptstore"],
        "gptstore --help": [os.path.join(bindir, "gptstore"), "--help"],
        "hf --help": [shutil.which("hf", path=bindir + os.pathsep + os.environ.get("PATH", "")) or "hf", "--help"],
        "llm --help": [shutil.which("llm") or "llm", "--help"],
    }
    results = {}
    for label, cmd in candidates.items():
        if not os.path.exists(cmd[0]) and shutil.which(cmd[0]) is None:
            results[label] = None
            continue
        results[label] = median_time(run_cmd(cmd), repeat=args.repeat, warmup=2)
    ours = results["gptstore --help"]
    rows = []
    for label, seconds in results.items():
        if seconds is None:
            rows.append([label, "not installed", "-"])
        else:
            rows.append([label, f"{seconds * 1000:.0f} ms", f"{seconds / ours:.2f}x"])
    print_table(f"Startup, median of {args.repeat} runs (ratio to gptstore --help)", ["command", "median", "ratio"], rows)
    print(f"\ntarget: gptstore --help <= 250 ms -> {'met' if ours <= 0.25 else 'NOT met'} ({ours * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
