"""The end-to-end demo (``gptstore demo`` / ``make demo``): offline, on the local library.

A provider builds a tiny GPT base, fine-tunes it on one topic, measures both on held-out topic
text, packages the fine-tune with pricing and its perplexity claim, signs it and publishes it to a
store (a second library directory under the workdir). A consumer pulls it from there into the
local library, verifies it, checks its claim, and generates with greedy, beam and sampling.

Each step prints what it does and how long it took; a summary ends the run. The demo writes to
``GPTSTORE_HOME`` (the models ``demo/tiny-base`` and ``demo/cli-docs``, the signing key
``gptstore-demo``, trust in that key for the ``demo`` namespace) and to ``workdir``, which it
replaces on every run.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import DemoFailed, UsageError

#: the topic the base is fine-tuned on: command-line parsing, from three stdlib modules
TOPIC_MODULES = ("argparse", "optparse", "getopt")
NAMESPACE = "demo"
BASE = f"{NAMESPACE}/tiny-base"
FINETUNED = f"{NAMESPACE}/cli-docs"
VERSION = "1.0.0"
KEY = "gptstore-demo"
#: the fine-tune must reach at most this fraction of the base's held-out perplexity
MAX_RATIO = 0.8
PROMPT = "Return the value of"
STRATEGIES: dict[str, dict[str, Any]] = {
    "greedy": {"strategy": "greedy"},
    "beam": {"strategy": "beam", "num_beams": 4},
    "sample": {"strategy": "sample", "temperature": 0.8, "top_p": 0.95, "seed": 0},
}
#: what the demo writes in its workdir (anything else there makes it refuse to replace the workdir)
_OWN = frozenset({"base", "cli-docs", "store", "checkpoints", "checkpoints.lock", "topic-train.txt",
                  "topic-heldout.txt"})


@dataclass
class DemoRun:
    """What a run did: step timings, facts for the summary, and the measured results."""

    workdir: Path
    echo: Callable[[str], None] = print
    timings: list[tuple[str, float]] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    base_perplexity: float | None = None
    finetuned_perplexity: float | None = None
    claim_ok: bool | None = None
    verified: bool | None = None
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.base_perplexity is None or self.finetuned_perplexity is None:
            return None
        return self.finetuned_perplexity / self.base_perplexity

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.echo(f"==> [{len(self.timings) + 1}] {title}")
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self.timings.append((title, elapsed))
        self.echo(f"    done in {elapsed:.1f}s")

    def say(self, text: str) -> None:
        self.echo(f"    {text}")

    def summary(self) -> str:
        width = max(len(t) for t, _ in self.timings)
        rule = "-" * (width + 14)
        lines = ["", "Summary", rule]
        lines += [f"{i:>2}. {title.ljust(width)}  {secs:6.1f}s" for i, (title, secs) in enumerate(self.timings, 1)]
        lines += [rule, f"    {'total'.ljust(width)}  {sum(s for _, s in self.timings):6.1f}s", ""]
        key_width = max(len(k) for k in self.facts)
        lines += [f"{k.ljust(key_width)}  {v}" for k, v in self.facts.items()]
        return "\n".join(lines)


def _prepare_workdir(workdir: Path) -> None:
    """Replace ``workdir`` if it is empty or holds only what a demo writes; refuse anything else."""
    if workdir.exists():
        foreign = [p.name for p in workdir.iterdir() if p.name not in _OWN] if workdir.is_dir() else [workdir.name]
        if foreign:
            raise UsageError(f"{workdir} holds {', '.join(sorted(foreign)[:3])}, which the demo did not write; "
                             "the demo replaces its workdir", hint="pass --workdir with a new or empty directory")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)


def _write_corpus(workdir: Path) -> tuple[list[str], Path, Path]:
    """(base texts, topic training file, held-out topic file). The base never sees the topic."""
    from .training.tiny import stdlib_docstrings

    topic = stdlib_docstrings(modules=TOPIC_MODULES)
    topic_set = set(topic)
    base_texts = [t for t in stdlib_docstrings() if t not in topic_set]
    heldout = topic[3::5]  # every fifth document, spread over the three modules
    train = [d for i, d in enumerate(topic) if i % 5 != 3]
    train_file, heldout_file = workdir / "topic-train.txt", workdir / "topic-heldout.txt"
    train_file.write_text("\n\n".join(train), encoding="utf-8")
    heldout_file.write_text("\n\n".join(heldout), encoding="utf-8")
    return base_texts, train_file, heldout_file


def _ensure_key(run: DemoRun) -> str:
    """The demo signing key (made if missing), trusted for the demo namespace; returns its key id."""
    from .errors import NotFoundError
    from .signing import export_public_key, generate_key, get_key
    from .trust import TrustStore

    try:
        info = get_key(KEY)
        made = "reusing"
    except NotFoundError:
        info = generate_key(KEY)
        made = "generated"
    with TrustStore.edit() as store:
        _, added = store.add_key(NAMESPACE, export_public_key(KEY), source=f"key {KEY}")
    trusted = "now trusted" if added else "already trusted"
    run.say(f"{made} signing key {KEY} (keyid {info.keyid}), {trusted} for {NAMESPACE}/*")
    return info.keyid


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread: tiny models gain nothing from more, and on a machine whose cores
    are shared (CI) extra threads make each step several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _one_line(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def run_demo(workdir: Path | str, *, echo: Callable[[str], None] = print, base_steps: int = 300,
             finetune_steps: int = 100) -> DemoRun:
    """Run every step (see the module docstring) and return the run record.

    Raises :class:`DemoFailed` when the fine-tune is not clearly better than its base, or the
    pulled model does not verify, or its perplexity claim does not hold.
    """
    workdir = Path(workdir).expanduser().absolute()
    _prepare_workdir(workdir)
    run = DemoRun(workdir, echo)
    with _one_thread():
        _run(run, base_steps=base_steps, finetune_steps=finetune_steps)
    return run


def _run(run: DemoRun, *, base_steps: int, finetune_steps: int) -> None:
    from .library import Library
    from .model import load
    from .packaging import package
    from .pulling import pull
    from .signing import sign_package
    from .evaluation import evaluate_model
    from .training.finetune import FinetuneConfig, finetune
    from .training.tiny import build_tiny_gpt
    from .verification import verify

    workdir, echo = run.workdir, run.echo
    library = Library()
    echo(f"gptstore demo: library {library.root}, workdir {workdir}")

    base_dir, out, store_dir = workdir / "base", workdir / "cli-docs", workdir / "store"
    with run.step(f"build a tiny base GPT ({base_steps} training steps on stdlib docstrings)"):
        base_texts, train_file, heldout_file = _write_corpus(workdir)
        build_tiny_gpt(base_dir, texts=base_texts, train_steps=base_steps, seed=0, n_layer=2, n_embd=96,
                       n_head=4, context_length=128)
        run.say(f"{len(base_texts)} docstrings, none from {', '.join(TOPIC_MODULES)} (the topic)")

    with run.step("package, sign and publish the base to the local library"):
        keyid = _ensure_key(run)
        package(base_dir, name=BASE, version=VERSION, description="A tiny GPT-2 trained briefly on Python docstrings",
                provider={"name": "gptstore demo"}, license="mit", tags=["demo", "base"])
        sign_package(base_dir, key=KEY)
        base = library.publish(base_dir, force=True)
        run.say(f"{base.name} sha256:{base.digest[:12]} -> {library.root}")

    with run.step(f"fine-tune it on the topic ({finetune_steps} steps on {', '.join(TOPIC_MODULES)} docstrings)"):
        config = FinetuneConfig(max_steps=finetune_steps, learning_rate=3e-3, batch_size=8, seed=0,
                                save_steps=10_000, device="cpu")
        result = finetune(f"{BASE}:{VERSION}", [train_file], out, config=config, name=FINETUNED, version=VERSION,
                          resume=False, checkpoint_dir=workdir / "checkpoints", eval_data=[heldout_file])
        run.say(f"{result.global_step} steps, train loss {result.train_loss:.3f}, {result.train_tokens:,} tokens "
                f"of {train_file.name}; held out: {heldout_file.name}")

    with run.step("evaluate base and fine-tune on held-out topic text"):
        before = evaluate_model(f"{BASE}:{VERSION}", heldout_file)
        after = evaluate_model(out, heldout_file)
        run.base_perplexity, run.finetuned_perplexity = before.perplexity, after.perplexity
        run.say(f"{before.tokens:,} tokens in {sum(f['documents'] for f in before.files)} documents never trained on")
        run.say(f"base       perplexity {before.perplexity:8.2f}")
        run.say(f"fine-tuned perplexity {after.perplexity:8.2f}   ratio {run.ratio:.3f}")
        if not run.ratio < MAX_RATIO:
            raise DemoFailed(f"the fine-tune is not clearly better than its base on held-out topic text: perplexity "
                             f"{after.perplexity:.2f} vs {before.perplexity:.2f} (ratio {run.ratio:.3f}, needs < "
                             f"{MAX_RATIO})", hint="training went wrong; rerun with GPTSTORE_DEBUG=1")

    with run.step("package the fine-tune with pricing and its metrics"):
        manifest = package(out, name=FINETUNED, version=VERSION, provider={"name": "gptstore demo"},
                           description="Writes Python command-line parsing docs (tiny demo model).",
                           tags=["demo", "argparse", "cli"], license="mit",
                           pricing={"model": "per_1k_tokens", "amount": 0.02, "currency": "USD"},
                           generation={"max_new_tokens": 24, "repetition_penalty": 1.3})
        for metric in manifest.metrics:
            run.say(f"metric {metric.name} = {metric.value:.4g} on {metric.dataset} "
                    f"(sha256:{(metric.dataset_sha256 or '-')[:12]})")
        run.say(f"price 0.02 USD per 1k tokens; generation defaults max_new_tokens 24, repetition_penalty 1.3; "
                f"{len(manifest.files)} files, digest sha256:{manifest.digest[:12]}")

    with run.step("sign the package"):
        signed = sign_package(out, key=KEY)
        run.say(f"{signed.path.name}: {signed.reference} sha256:{signed.digest[:12]} signed by key {signed.keyid}")

    with run.step("publish it to the store (a second library under the workdir)"):
        store = Library(store_dir)
        pushed = store.publish(out)
        run.say(f"{pushed.name} -> file://{store_dir}")

    with run.step("pull it from the store into the local library (verified while it downloads)"):
        reference = f"{FINETUNED}:{VERSION}"
        if FINETUNED in {e.repo_id for e in library.refs()}:
            library.remove(FINETUNED)
            run.say(f"removed {FINETUNED} left by an earlier demo")
        pulled = pull(reference, store=str(store_dir), library=library)
        run.say(f"{pulled.fetched_files} files fetched ({pulled.fetched_bytes:,} bytes), "
                f"{pulled.reused_files} shared with the base already in the library")

    with run.step("verify it, and check its perplexity claim"):
        report = verify(reference, library=library, full=True, strict=False)
        for check in report.checks:
            run.say(f"{'ok  ' if check.ok and not check.warning else 'WARN' if check.ok else 'FAIL'} "
                    f"{check.name:<13} {check.summary}")
        run.verified = report.ok and not any(c.warning for c in report.checks)
        if not run.verified:
            raise DemoFailed(f"{reference} pulled from the store does not verify cleanly",
                             hint=f"run `gptstore verify {reference}`")
        checked = evaluate_model(reference, heldout_file, check=True)
        claim = checked.claim
        run.claim_ok = claim.ok
        run.say(f"claim: perplexity {claim.claimed:.4g} on {claim.dataset}; measured {claim.measured:.4g} "
                f"({claim.deviation:+.2%}, tolerance ±{claim.tolerance:.0%}) -> {'holds' if claim.ok else 'FAILS'}")
        checked.raise_for_claim()

    with run.step("generate with greedy, beam and sampling"):
        with load(reference) as model:
            run.say(f"prompt: {PROMPT!r}")
            for name, params in STRATEGIES.items():
                completion = model.generate(PROMPT, **params)  # the rest from the manifest's defaults
                run.outputs[name] = completion.text
                run.say(f"{name:<6} -> {_one_line(completion.text)!r}")

    run.facts.update({
        "base": f"{base.name} sha256:{base.digest[:12]}",
        "fine-tuned": f"{reference} sha256:{pulled.model.digest[:12]} (signed by {keyid}, pulled from the store)",
        "held-out perplexity": f"base {run.base_perplexity:.2f} -> fine-tuned {run.finetuned_perplexity:.2f} "
                               f"(ratio {run.ratio:.3f})",
        "claim check": f"{'holds' if run.claim_ok else 'FAILS'} ({claim.deviation:+.2%})",
        "verified": "integrity, authenticity, safety ok" if run.verified else "FAILED",
        "generated": ", ".join(f"{k} {_one_line(v, 24)!r}" for k, v in run.outputs.items()),
    })
