"""``gptstore eval``: measure a model's perplexity on your data, or check the one its manifest claims."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import device_option, json_option
from ._output import echo_json, short

EVAL_EXAMPLES = """
\b
Examples:
  gptstore eval acme/poet --data heldout.txt
  gptstore eval ./poet --data heldout.jsonl --json
  gptstore eval acme/poet --data heldout.txt --check                  # does the claim hold?
  gptstore eval acme/poet --data heldout.txt --check --tolerance 0.05
"""


@click.command("eval", epilog=EVAL_EXAMPLES)
@click.argument("target", metavar="REF|DIR")
@click.option("--data", "data", multiple=True, metavar="FILE", type=click.Path(path_type=Path),
              help='Evaluation data (repeatable): .txt (documents separated by blank lines, or one per '
                   'line), .jsonl ({"text"} or {"prompt","completion"}) or .csv (prompt/completion or text '
                   'columns), read as `gptstore finetune` reads them.')
@click.option("--check", is_flag=True,
              help="Re-measure the perplexity the manifest claims and exit 1 when it is off by more than "
                   "--tolerance. The data must be the claim's own (same sha256).")
@click.option("--tolerance", type=float, default=0.02, show_default=True, metavar="X",
              help="Relative difference --check accepts: 0.02 = the measured perplexity may be 2% above "
                   "or below the claim.")
@device_option
@click.option("--batch-size", type=int, default=8, show_default=True, help="Blocks of context per forward pass.")
@json_option.replace(help="Print the result as JSON.")
def eval_command(target, data, check, tolerance, device, batch_size, as_json):
    """Measure a model's perplexity on data, or --check its claim.

    The model is a library REF or a DIR. A REF is verified in full (integrity, authenticity,
    safety) as `gptstore run` does; a package DIR (your draft, before signing) gets integrity and
    safety checks.

    Perplexity is exp(mean token cross-entropy) over every token of the data, in blocks of the
    model's context. With --check it is compared with the `perplexity` metric of the model's
    manifest (see `gptstore show`), which records the sha256 of the data it was measured on.
    """
    from ..sdk import evaluate

    report = evaluate(target, list(data), check=check, tolerance=tolerance, device=device, batch_size=batch_size)
    if as_json:
        echo_json(report.to_dict())
    elif report.claim is None or report.claim.ok:  # a failed check is one line: the error below
        digest = f" sha256:{short(report.digest)}" if report.digest else ""
        documents = sum(f["documents"] for f in report.files)
        tokens = f", {report.tokens:,} tokens" if report.tokens is not None else ""
        click.echo(f"{report.target}{digest} on {report.dataset} ({documents} documents{tokens})")
        click.echo(f"  perplexity {report.perplexity:.4g} (loss {report.loss:.4f}), {report.device}, "
                   f"{report.seconds:.1f}s")
        claim = report.claim
        if claim is not None:
            click.echo(f"  claim      {claim.claimed:.4g} on {claim.dataset} holds: measured {claim.deviation:+.2%} "
                       f"(tolerance ±{claim.tolerance:.0%})")
    report.raise_for_claim()

