"""Full verification throughput against `openssl dgst -sha256` on the same files.

Usage: python bench/verify.py [--mb 512] [--dir DIR]

Cases (files are generated once and kept in --dir, page cache warmed before timing):
  one large file   a package of one 512 MB file          target >= 0.9x openssl
  many files       16 files of 32 MB, both cores hashing  target >= 1.6x openssl (single process)
  stamp re-verify  unchanged package, stamps valid         target >= 50x faster than a full verify
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _util import median_time, print_table, run_cmd  # noqa: E402

from gptstore.manifest import validate  # noqa: E402
from gptstore.packaging import file_entries  # noqa: E402
from gptstore.integrity import StampCache, check_integrity  # noqa: E402


def make_files(root: Path, sizes_mb: list[int]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(8 * 1024 * 1024)
    for i, size in enumerate(sizes_mb):
        path = root / f"part-{i:02d}.bin"
        if path.exists() and path.stat().st_size == size * 1024 * 1024:
            continue
        with open(path, "wb") as handle:
            for _ in range(size // 8):
                handle.write(chunk)


def manifest_for(root: Path):
    return validate({"namespace": "bench", "name": "verify", "version": "1.0.0",
                     "format": {"adapter": "raw", "architecture": "none", "parameters": 0,
                                "context_length": 1, "dtype": "uint8"},
                     "files": file_entries(root)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("openssl") is None:
        sys.exit("openssl is not installed")
    base = args.dir or Path(tempfile.gettempdir()) / "gptstore-bench-verify"
    one, many = base / "one", base / "many"
    make_files(one, [args.mb])
    make_files(many, [args.mb // 16] * 16)
    rows = []
    for label, root, target in [("one large file", one, 0.9), ("many files", many, 1.6)]:
        manifest = manifest_for(root)
        files = [str(root / f.path) for f in manifest.files]
        ours = median_time(lambda: check_integrity(root, manifest, mode="full"), repeat=args.repeat)
        openssl = median_time(run_cmd(["openssl", "dgst", "-sha256", *files]), repeat=args.repeat)
        mbps = args.mb * 1.048576 / ours
        rows.append([label, f"{ours:.2f} s", f"{mbps:.0f} MB/s", f"{openssl:.2f} s",
                     f"{openssl / ours:.2f}x", f">= {target}x", "met" if openssl / ours >= target else "NOT met"])
    manifest = manifest_for(many)
    stamps = StampCache(base / "stamps.json")
    check_integrity(many, manifest, stamps=stamps)
    full = median_time(lambda: check_integrity(many, manifest, mode="full"), repeat=args.repeat)
    quick = median_time(lambda: check_integrity(many, manifest, stamps=stamps), repeat=args.repeat * 5)
    rows.append(["stamp re-verify", f"{quick * 1000:.2f} ms", "-", f"full {full:.2f} s",
                 f"{full / quick:.0f}x", ">= 50x", "met" if full / quick >= 50 else "NOT met"])
    print_table(f"Verify {args.mb} MB (median of {args.repeat}); ratio = openssl time / gptstore time",
                ["case", "gptstore", "throughput", "openssl", "ratio", "target", "result"], rows)


if __name__ == "__main__":
    main()
