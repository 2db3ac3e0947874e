"""Consumer quickstart: load a model by reference, generate (greedy, beam, sampling, a batch),
stream, and read the usage log.

    python examples/sdk_quickstart.py                  # builds a tiny model in a temporary library first
    python examples/sdk_quickstart.py demo/cli-docs    # a model already in your library (GPTSTORE_HOME),
                                                       # e.g. after `make demo` or `gptstore pull`
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def publish_tiny_model(workdir: Path) -> str:
    """Stand-in for `gptstore pull`: a publisher builds, packages and signs a tiny GPT, and we
    trust their key and publish it to our library."""
    import gptstore
    from gptstore.signing import export_public_key, generate_key
    from gptstore.training.tiny import build_tiny_gpt
    from gptstore.trust import TrustStore

    model_dir = build_tiny_gpt(workdir / "tiny", train_steps=150, n_embd=96, n_head=4, seed=0)  # seconds on a CPU
    gptstore.package(model_dir, name="example/tiny", version="1.0.0", description="A tiny GPT for the quickstart",
            license="mit", pricing={"model": "per_1k_tokens", "amount": 0.01, "currency": "USD"},
            generation={"repetition_penalty": 1.3, "stop": ["\n\n"]})  # defaults a call can override
    generate_key("example-publisher")
    gptstore.sign(model_dir, key="example-publisher")
    with TrustStore.edit() as trust:  # `gptstore trust add example PUBKEY_FILE`
        trust.add_key("example", export_public_key("example-publisher"))
    return gptstore.Library().publish(model_dir).name


def quickstart(reference: str) -> None:
    import gptstore
    from gptstore import usage

    with gptstore.load(reference) as model:  # resolved in the library, verified, then loaded
        print(f"loaded {model!r} in {model.load_s:.2f}s (context {model.context_length} tokens)")
        prompt = "Return the value of"

        for params in ({"strategy": "greedy"},
                       {"strategy": "beam", "num_beams": 4},
                       {"strategy": "sample", "temperature": 0.8, "top_p": 0.95, "seed": 1}):
            completion = model.generate(prompt, max_new_tokens=20, **params)
            print(f"{params['strategy']:>6}: {completion.text!r} ({completion.finish_reason}, "
                  f"{completion.usage.completion_tokens} tokens, {completion.timings.tokens_per_s:.0f} tokens/s)")

        batch = model.generate(["Create a new", "If the file"], max_new_tokens=12)  # one batched call
        print("batch:", [c.text for c in batch])

        stream = model.stream("The default is", max_new_tokens=20, strategy="sample", seed=2)
        print("stream: ", end="")
        for piece in stream:
            print(piece, end="", flush=True)
        print(f"\n        ({stream.completion.finish_reason}, {stream.completion.usage.total_tokens} tokens in all)")

    for row in usage.summary():  # every call above was recorded in GPTSTORE_HOME/usage.db
        cost = f"{row.cost:.5f} {row.currency}" if row.pricing != "free" else "free"
        print(f"usage: {row.model} {row.calls} calls, {row.prompt_tokens} tokens in, "
              f"{row.completion_tokens} out, cost {cost}")


def main(argv: list[str]) -> None:
    if argv:  # a model in your own library
        quickstart(argv[0])
        return
    with tempfile.TemporaryDirectory(prefix="gptstore-quickstart-") as tmp:
        os.environ["GPTSTORE_HOME"] = str(Path(tmp) / "home")  # a throw-away library
        quickstart(publish_tiny_model(Path(tmp)))


if __name__ == "__main__":
    main(sys.argv[1:])
