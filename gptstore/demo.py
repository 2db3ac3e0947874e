"""The end-to-end demo (``gptstore demo`` / ``make demo``): offline, on the local library.

Each step prints what it does and how long it took; a summary table ends the run.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator


@dataclass
class DemoRun:
    workdir: Path
    echo: Callable[[str], None] = print
    timings: list[tuple[str, float]] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.echo(f"==> {title}")
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self.timings.append((title, elapsed))
        self.echo(f"    done in {elapsed:.1f}s")

    def summary(self) -> str:
        width = max(len(t) for t, _ in self.timings)
        lines = ["", "Summary", "-" * (width + 10)]
        lines += [f"{title.ljust(width)}  {secs:6.1f}s" for title, secs in self.timings]
        lines.append(f"{'total'.ljust(width)}  {sum(s for _, s in self.timings):6.1f}s")
        if self.facts:
            lines.append("")
            lines += [f"{k}: {v}" for k, v in self.facts.items()]
        return "\n".join(lines)


def run_demo(workdir: Path | str, *, echo: Callable[[str], None] = print, base_steps: int = 150) -> DemoRun:
    """Build a tiny GPT, package, publish, list, show and verify it. Returns the run record."""
    from .library import Library
    from .packaging import package
    from .training.tiny import build_tiny_gpt, stdlib_docstrings
    from .verify import verify_model

    workdir = Path(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    run = DemoRun(workdir, echo)
    library = Library()
    base_dir = workdir / "base"
    with run.step(f"build a tiny base GPT ({base_steps} training steps on stdlib docstrings)"):
        build_tiny_gpt(base_dir, texts=stdlib_docstrings(), train_steps=base_steps, seed=0,
                       n_layer=2, n_embd=96, n_head=4, context_length=128)
    with run.step("package it (manifest pins every file by sha256)"):
        manifest = package(base_dir, name="demo/tiny-base", version="1.0.0",
                           description="A tiny GPT-2 trained briefly on Python docstrings",
                           provider={"name": "gptstore demo"}, license="mit", tags=["demo", "base"])
        echo(f"    {manifest.format.architecture}, {manifest.format.parameters:,} parameters, "
             f"{len(manifest.files)} files, digest sha256:{manifest.digest[:12]}")
    with run.step("publish to the local library"):
        model = library.publish(base_dir, force=True)
        echo(f"    {model.name} -> {library.root}")
    with run.step("list the library"):
        for entry, m in library.iter_models():
            echo(f"    {entry.repo_id}:{entry.tag:<8} {m.version:<8} sha256:{entry.digest[:12]}")
    with run.step("show the manifest"):
        shown = library.get("demo/tiny-base")
        echo(f"    {shown.manifest.repo_id}:{shown.manifest.version} — {shown.manifest.description}")
    with run.step("verify (integrity, authenticity, safety)"):
        report = verify_model(shown, library, full=True)
        for check in report.checks:
            echo(f"    {check.name:<13} {check.summary}")
    run.facts["base model"] = f"{model.name} sha256:{model.digest[:12]}"
    return run
