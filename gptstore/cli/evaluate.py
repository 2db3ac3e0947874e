"""``gptstore eval``: measure a model's perplexity on your data or run lm-evaluation-harness tasks, or
check the claims its manifest makes."""

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
  gptstore eval ./poet --tasks poet_mc,poet_ppl --include-path tasks/ --limit 50   # recorded in gptstore.json
  gptstore eval acme/poet --check --include-path tasks/ --data heldout.txt        # every claim
"""


@click.command("eval", epilog=EVAL_EXAMPLES)
@click.argument("target", metavar="REF|DIR")
@click.option("--data", "data", multiple=True, metavar="FILE", type=click.Path(path_type=Path),
              help='Evaluation data (repeatable): .txt (documents separated by blank lines, or one per '
                   'line), .jsonl ({"text"} or {"prompt","completion"}) or .csv (prompt/completion or text '
                   'columns), read as `gptstore finetune` reads them.')
@click.option("--check", is_flag=True,
              help="Re-measure the perplexity the manifest claims and exit 1 when it is off by more than "
                   "--tolerance. The data must be the claim's own (same sha256). With --include-path (or "
                   "without --data): re-run every claim of the manifest (see docs/evaluation.md).")
@click.option("--tolerance", type=float, default=0.02, show_default=True, metavar="X",
              help="Relative difference --check accepts: 0.02 = the measured perplexity may be 2% above "
                   "or below the claim.")
@click.option("--tasks", metavar="NAME[,NAME…]",
              help="Run these lm-evaluation-harness tasks (local YAML under --include-path, over local data "
                   "files) instead of measuring perplexity; a package DIR records the scores in its gptstore.json.")
@click.option("--include-path", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="Directory of harness task YAML files (for --tasks, and for --check of harness claims). "
                   "With --check it re-checks every claim.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Documents per harness task (default: all).")
@click.option("--num-fewshot", type=click.IntRange(min=0), metavar="K",
              help="Few-shot examples per harness prompt (default: the task's own, else 0).")
@click.option("--seed", type=click.IntRange(min=0), default=1234, show_default=True, metavar="S",
              help="Seed of a harness run (python, numpy, torch and few-shot sampling).")
@device_option
@click.option("--batch-size", type=int, default=8, show_default=True, help="Blocks of context per forward pass.")
@json_option.replace(help="Print the result as JSON.")
def eval_command(target, data, check, tolerance, tasks, include_path, limit, num_fewshot, seed, device, batch_size,
                 as_json):
    """Measure a model's perplexity on data, or --check its claim.

    The model is a library REF or a DIR. A REF is verified in full (integrity, authenticity,
    safety) as `gptstore run` does; a package DIR (your draft, before signing) gets integrity and
    safety checks.

    Perplexity is exp(mean token cross-entropy) over every token of the data, in blocks of the
    model's context. With --check it is compared with the `perplexity` metric of the model's
    manifest (see `gptstore show`), which records the sha256 of the data it was measured on.

    --tasks runs EleutherAI's lm-evaluation-harness tasks through the model's own engine.
    --check with --include-path (or without --data) re-runs every claim: harness tasks from DIR,
    perplexity and loss on --data; a claim whose task version, task hash or data sha256 differs
    from what it names "cannot be re-checked", and fails the check like a wrong value.
    """
    if tasks or include_path or (check and not data):
        return _claims(target, list(data), check, tolerance, tasks, include_path, limit, num_fewshot, seed,
                       device, batch_size, as_json)
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



def _claims(target, data, check, tolerance, tasks, include_path, limit, num_fewshot, seed, device, batch_size,
            as_json):
    """--tasks (measure, and record in a package directory) or --check of every claim."""
    from ..errors import UsageError
    from ..sdk import check_claims, evaluate_tasks

    if check:
        if tasks or limit is not None or num_fewshot is not None:
            raise UsageError("--check re-runs each claim as it was recorded; it takes no --tasks, --limit or "
                             "--num-fewshot", hint="leave them out")
        report = check_claims(target, data, include_path, tolerance=tolerance, device=device, batch_size=batch_size)
        if as_json:
            echo_json(report.to_dict())
        else:
            digest = f" sha256:{short(report.digest)}" if report.digest else ""
            click.echo(f"{report.target}{digest}: {len(report.claims)} claim(s)")
            for claim in report.claims:
                measured = f", measured {claim.measured:.4g} ({claim.deviation:+.2%})" if claim.measured is not None \
                    and claim.deviation is not None else ""
                click.echo(f"  {claim.status:<21} {claim.metric} = {claim.claimed:.4g}{measured}  [{claim.detail}]")
        report.raise_for_claims()
        return
    if not tasks:
        raise UsageError("--include-path needs --tasks (or --check)", hint="e.g. --tasks my_task --include-path DIR")
    if data:
        raise UsageError("--data measures perplexity; it does not go with --tasks", hint="run them separately")
    if include_path is None:
        raise UsageError("--tasks needs --include-path DIR (local task YAML files; no hub access)")
    report = evaluate_tasks(target, tasks, include_path, num_fewshot=num_fewshot, limit=limit, seed=seed,
                            device=device, batch_size=batch_size)
    if as_json:
        echo_json(report.to_dict())
        return
    digest = f" sha256:{short(report.digest)}" if report.digest else ""
    click.echo(f"{report.target}{digest}, {report.device}, {report.seconds:.1f}s")
    for result in report.results:
        scores = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items())
        click.echo(f"  {result.task} v{result.version}, {result.num_fewshot}-shot, {result.documents} documents: "
                   f"{scores}  [task hash {result.task_hash[:12]}…, data sha256 {result.dataset_sha256[:12]}…]")
    click.echo(f"  recorded in {report.recorded}" if report.recorded else
               "  not recorded (a library model is immutable: evaluate its package directory to record)")
