"""Provider pipeline: build a base, fine-tune it, evaluate, package with pricing, sign, publish, verify, push.

    python examples/provider_pipeline.py                 # in a temporary library
    python examples/provider_pipeline.py --home DIR      # keep the library (and the key) in DIR

Every step is one call of the front door (`gptstore.finetune`, `gptstore.evaluate`, `gptstore.package`,
`gptstore.sign`, `gptstore.verify`, `gptstore.push`, `gptstore.search`); keys and trust come from
`gptstore.signing` and `gptstore.trust`. The same flow on the command line: `gptstore finetune` →
`gptstore eval` → `gptstore package` → `gptstore sign` → `gptstore publish` → `gptstore verify` →
`gptstore push`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

TOPIC = ("argparse", "optparse", "getopt")  # docstrings of these modules are the fine-tuning data


def write_data(workdir: Path) -> tuple[Path, Path]:
    """Training text and held-out evaluation text on one topic (documents separated by blank lines)."""
    from gptstore.training.tiny import stdlib_docstrings

    docs = stdlib_docstrings(modules=TOPIC)
    train, heldout = workdir / "train.txt", workdir / "heldout.txt"
    train.write_text("\n\n".join(d for i, d in enumerate(docs) if i % 5 != 3))
    heldout.write_text("\n\n".join(docs[3::5]))  # never trained on
    return train, heldout


def pipeline(workdir: Path) -> None:
    import gptstore  # the front door: finetune, evaluate, package, sign, verify, push, search, pull
    from gptstore.signing import export_public_key, generate_key, list_keys
    from gptstore.training.tiny import build_tiny_gpt
    from gptstore.trust import TrustStore

    library = gptstore.Library()  # GPTSTORE_HOME

    # 1. a base model in the library (here a tiny GPT trained for a few seconds; yours: `gptstore.pull`)
    base_dir = build_tiny_gpt(workdir / "base", train_steps=100, n_embd=96, n_head=4, seed=0)
    gptstore.package(base_dir, name="example/tiny-base", version="1.0.0", license="mit")
    base = library.publish(base_dir, force=True)
    print(f"base:      {base.name} sha256:{base.digest[:12]}")

    # 2. fine-tune on the topic; the perplexity claim is measured on the held-out file
    train, heldout = write_data(workdir)
    out = workdir / "cli-docs"
    result = gptstore.finetune(base.name, train, out, name="acme/cli-docs", version="1.0.0", eval_data=heldout,
                               max_steps=40, learning_rate=3e-3, seed=0, resume=False)
    print(f"finetune:  {result.global_step} steps in {result.seconds:.1f}s, held-out perplexity "
          f"{result.base_perplexity:.1f} (base) -> {result.perplexity:.1f}")

    # 3. evaluate: re-measure the claim the manifest now holds (what `gptstore eval --check` does)
    report = gptstore.evaluate(out, heldout, check=True)
    report.raise_for_claim()
    print(f"eval:      perplexity {report.perplexity:.2f} on {report.dataset} ({report.tokens} tokens); "
          f"claim {report.claim.claimed:.2f} holds ({report.claim.deviation:+.2%})")

    # 4. package: description, licence, pricing (the metrics and provenance finetune recorded stay)
    manifest = gptstore.package(out, name="acme/cli-docs", version="1.0.0", license="apache-2.0",
                                description="Writes command-line parsing docs.", provider={"name": "Acme"},
                                tags=["cli", "docs"],
                                pricing={"model": "per_1k_tokens", "amount": 0.02, "currency": "USD"})
    print(f"package:   {manifest.repo_id}:{manifest.version} sha256:{manifest.digest[:12]}, "
          f"{len(manifest.files)} files, {manifest.pricing.amount} {manifest.pricing.currency}/1k tokens")

    # 5. sign (a key of your own: `gptstore keys generate acme-release`), and trust it here so that
    #    acme/* models need its signature (consumers do this with `gptstore trust add acme KEY.pub`)
    key = "acme-release"
    if key not in {k.name for k in list_keys()}:  # never replace a key you already have
        generate_key(key)
    with TrustStore.edit() as trust:
        trust.add_key("acme", export_public_key(key))
    signed = gptstore.sign(out, key=key)
    print(f"sign:      {signed.path.name} by key {signed.keyid}")

    # 6. publish to the library, and verify it as a consumer would
    model = library.publish(out, force=True)
    verification = gptstore.verify(model, library=library, full=True)
    print(f"publish:   {model.name} sha256:{model.digest[:12]}")
    for check in verification.checks:
        print(f"verify:    {check.name:<13} {'ok' if check.ok else 'FAILED'}: {check.summary}")

    # 7. push to a store and find it there: here a library directory a team shares; a hub or
    #    `gptstore server` is the same call with store="http://host:port" and token="gst_..."
    team_store = workdir / "team-store"
    team_store.mkdir(exist_ok=True)
    pushed = gptstore.push(model.name, store=str(team_store))
    hits = gptstore.search("command-line", store=str(team_store))
    print(f"push:      {pushed.reference} sha256:{pushed.digest[:12]} to {pushed.store}")
    print(f"search:    {', '.join(f'{h.reference} ({h.price})' for h in hits)}")
    print(f"next:      gptstore push {model.name} --store URL    # share it on a hub or a gptstore server")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="library to use (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gptstore-provider-") as tmp:
        os.environ["GPTSTORE_HOME"] = str(args.home or Path(tmp) / "home")
        pipeline(Path(tmp))


if __name__ == "__main__":
    main()
