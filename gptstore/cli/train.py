"""``gptstore finetune``: train a model on your text and write a package draft."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import device_option, json_option
from ._output import echo_json, short

FINETUNE_EXAMPLES = """
\b
Examples:
  gptstore finetune --base acme/tiny --data notes.txt --out ./poet --max-steps 500
  gptstore finetune --base ./my-model --data train.jsonl --out ./chat --epochs 2 --lr 1e-4 \\
      --name acme/chat --version 1.0.0
  gptstore finetune --base acme/tiny --data notes.txt --out ./poet --max-steps 1000   # continues
  gptstore finetune --base acme/tiny:1.0.0 --data notes.txt --out ./poet-lora --method lora \\
      --method-option r=8 --method-option target_modules=c_attn,c_proj    # needs gptstore-peft
"""


@click.command(epilog=FINETUNE_EXAMPLES)
@click.option("--base", required=True, metavar="REF|DIR",
              help="Model to start from: a library reference (namespace/name[:tag]) or a directory.")
@click.option("--data", "data", required=True, multiple=True, metavar="FILE",
              type=click.Path(path_type=Path, dir_okay=True),
              help="Training data (repeatable): text (documents separated by blank lines; a file without "
                   'blank lines: one per line), .jsonl ({"text"} or {"prompt","completion"}) or .csv '
                   "(a header with prompt,completion or text columns).")
@click.option("--out", required=True, metavar="DIR", type=click.Path(path_type=Path, file_okay=False),
              help="Package directory to write (new, empty, or an earlier finetune's output to resume).")
@click.option("--name", default=None, metavar="NS/NAME", help="Name of the result (default: <base>-finetuned).")
@click.option("--version", "version", default="0.1.0", show_default=True, metavar="X.Y.Z",
              help="Semantic version of the result.")
@click.option("--method", default=None,
              help="Training method (built in: full; plugins add others, e.g. lora from gptstore-peft).  "
                   "[default: full]")
@click.option("--method-option", "method_options", multiple=True, metavar="KEY=VALUE",
              help="An option of the training method (repeatable), validated by the method's own options; "
                   "an unknown key is refused with the list of the ones it takes (full takes none).")
@click.option("--epochs", type=float, default=None, help="Passes over the data.  [default: 3]")
@click.option("--max-steps", type=int, default=None, help="Stop after N optimizer steps (wins over --epochs).")
@click.option("--lr", "--learning-rate", "learning_rate", type=float, default=None,
              help="Peak learning rate.  [default: the method's: 5e-5 for full, 2e-4 for lora]")
@click.option("--lr-scheduler", type=click.Choice(["linear", "cosine", "constant", "constant_with_warmup"]),
              default=None, help="Learning-rate schedule.  [default: linear]")
@click.option("--batch-size", type=int, default=None, help="Blocks per step.  [default: 8]")
@click.option("--block-size", type=int, default=None,
              help="Tokens per block.  [default: the model's context, at most 1024]")
@click.option("--grad-accum", "gradient_accumulation_steps", type=int, default=None,
              help="Gradient accumulation steps.  [default: 1]")
@click.option("--warmup", type=float, default=None, help="Warm-up: a fraction of the steps (<1) or steps (>=1).")
@click.option("--weight-decay", type=float, default=None, help="AdamW weight decay.  [default: 0]")
@click.option("--eval-split", type=float, default=None,
              help="Fraction of the data held out for loss and perplexity.  [default: 0.1]")
@click.option("--eval-data", "eval_data", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Measure the perplexity claim on these files instead (nothing is held out); repeatable.")
@click.option("--seed", type=int, default=None, help="Random seed.  [default: 42]")
@device_option.replace(type=click.Choice(["auto", "cpu", "cuda", "mps"]),
                       help="Where to train: auto (cuda > mps > cpu), cpu, cuda or mps.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None,
              help="Mixed precision.  [default: auto = bf16 on capable GPUs]")
@click.option("--text-mode", type=click.Choice(["paragraphs", "lines", "file"]), default=None,
              help="Text files: documents separated by blank lines (without any: one per line), one per "
                   "line, or one per file.  [default: paragraphs]")
@click.option("--save-steps", type=int, default=None, help="Checkpoint every N steps.  [default: 200]")
@click.option("--checkpoints", "checkpoint_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where checkpoints go.  [default: under GPTSTORE_HOME/finetune]")
@click.option("--no-resume", is_flag=True, help="Discard checkpoints of an earlier run and start over.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@json_option.replace(help="Print the result as JSON.")
def finetune(base, data, out, name, version, no_resume, checkpoint_dir, quiet, as_json, method_options,
             eval_data, **options):
    """Fine-tune a model on text; write a package draft to --out.

    The draft's manifest records the base's digest, every data file's sha256, the hyper-parameters
    and library versions, and the held-out loss and perplexity. Re-running with the same --out resumes
    from the last checkpoint (Ctrl-C saves one and exits 130); re-running a finished run changes nothing,
    a larger --max-steps continues it. Next: `gptstore
    package DIR --name .. --version .. --description ..` to change the draft, `gptstore publish DIR`.
    """
    from ..sdk import finetune as train

    result = train(base, list(data), out, name=name, version=version, resume=not no_resume,
                   checkpoint_dir=checkpoint_dir, progress=not quiet and not as_json, eval_data=list(eval_data) or None,
                   method_options=parse_method_options(method_options) if method_options else None, **options)
    if as_json:
        echo_json(result.to_dict())
        return
    manifest = result.manifest
    if result.unchanged:
        click.echo(f"{manifest.repo_id}:{manifest.version} in {result.out} is already fine-tuned "
                   f"({result.global_step} steps, digest sha256:{short(manifest.digest)}); nothing to do "
                   "(a larger --max-steps or --epochs continues it)")
        return
    steps = f"{result.steps_run} steps"
    if result.resumed_from_step is not None:
        steps += f" (resumed at step {result.resumed_from_step}, now {result.global_step})"
    loss = f", train loss {result.train_loss:.3f}" if result.train_loss is not None else ""
    click.echo(f"Fine-tuned {manifest.repo_id}:{manifest.version} from {manifest.provenance.base_reference}: "
               f"{steps}{loss} on {result.device}, {result.seconds:.1f}s")
    if result.eval_loss is not None:
        line = f"  held-out loss {result.eval_loss:.3f}, perplexity {result.perplexity:.2f}"
        if result.base_perplexity is not None:
            line += f" (base {result.base_perplexity:.2f})"
        click.echo(line)
        if result.heldout_file:
            click.echo(f"  held-out text in {result.heldout_file} (check the claim: gptstore eval "
                       f"{result.out} --data {result.heldout_file} --check)")
    click.echo(f"  wrote {result.out} ({len(manifest.files)} files, digest sha256:{short(manifest.digest)})")
    click.echo(f"  checkpoints in {result.checkpoint_dir}")
    click.echo(f"  next: gptstore publish {result.out}")


def parse_method_options(pairs: tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` pairs as a dict of strings; the method's options model converts the values."""
    from ..errors import UsageError

    options: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        key = key.strip()
        if not equals or not key:
            raise UsageError(f"--method-option {pair!r} is not KEY=VALUE", hint="write it as KEY=VALUE")
        if key in options:
            raise UsageError(f"--method-option {key} is given twice",
                             hint="give each option once; a list is one comma-separated value")
        options[key] = value
    return options
