"""``gptstore run``: generate from a model in the library."""

from __future__ import annotations

import sys
import typing

import click

from ..engines.params import GenerationParams
from ._options import allow_unsafe_option, device_option, json_option, store_option, token_option
from ._output import echo_json

RUN_EXAMPLES = """
\b
Examples:
  gptstore run acme/poet "Roses are"
  echo "Roses are" | gptstore run acme/poet --max-new-tokens 40
  gptstore run acme/poet "Roses are" --strategy beam --num-beams 4
  gptstore run acme/poet "Roses are" --temperature 0.8 --top-p 0.9 --seed 1 --stop "\\n"
  gptstore run acme/poet "Roses are" --json
"""


def _metavar(annotation: object) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    inner = args[0] if args else annotation
    if typing.get_origin(inner) is typing.Literal:
        return "[" + "|".join(typing.get_args(inner)) + "]"
    if typing.get_origin(inner) is list:
        return "TEXT"
    return getattr(inner, "__name__", "VALUE").upper()


def param_options(command: typing.Callable) -> typing.Callable:
    """One option per GenerationParams field, its description as the help. Values are checked by
    GenerationParams itself, so a bad one is one line of error before any model is loaded."""
    for name, field in reversed(GenerationParams.model_fields.items()):
        multiple = typing.get_origin([a for a in typing.get_args(field.annotation) if a is not type(None)][0]) is list
        command = click.option(f"--{name.replace('_', '-')}", name, default=None, multiple=multiple,
                               metavar=_metavar(field.annotation), help=field.description)(command)
    return command


@click.command(epilog=RUN_EXAMPLES)
@click.argument("reference")
@click.argument("prompt", required=False)
@param_options
@device_option
@click.option("--dtype", default="auto", show_default=True,
              help="auto (bfloat16 on capable GPUs, float32 on cpu), float32, float16 or bfloat16.")
@click.option("--engine", default=None, help="Inference engine (default: picked by the package format).")
@click.option("--raw", is_flag=True, help="Send the prompt as is, without the model's prompt template.")
@store_option.replace(help="Store to pull the model from when the local library lacks it: hf://, "
                           "http(s)://host:port or a library path (default: GPTSTORE_STORE, else hf://).")
@token_option
@allow_unsafe_option
@json_option.replace(help="Print the completion (text, finish reason, usage, timings) as JSON.")
def run(reference, prompt, device, dtype, engine, raw, store_url, token, allow_unsafe, as_json, **given):
    """Generate text from REFERENCE for PROMPT (default: stdin).

    The text streams as it is produced (printed once finished when a plugin filters output with
    after_generate). Options not given come from the model's manifest, then from the built-in
    defaults.
    """
    from ..engines.base import check_device, check_dtype

    params = GenerationParams(**{k: v for k, v in given.items() if v is not None and v != ()})
    device, dtype = check_device(device), check_dtype(dtype)
    if prompt is None:
        if sys.stdin.isatty():
            raise click.UsageError("give a PROMPT, or pipe one on stdin")
        prompt = sys.stdin.read()
        prompt = prompt[:-1] if prompt.endswith("\n") else prompt

    from ..transformers_logging import quiet_transformers
    from ..model import load

    with quiet_transformers(), load(reference, store=store_url, device=device, dtype=dtype, engine=engine,
                                    allow_unsafe=allow_unsafe, token=token) as model:
        if as_json:
            completion = model.generate(prompt, params, raw=raw)
            echo_json(completion.model_dump(mode="json"))
            return
        if model.output_filtered:  # text an after_generate plugin may change is shown only once final
            click.echo(model.generate(prompt, params, raw=raw).text)
            return
        for piece in model.stream(prompt, params, raw=raw):
            click.echo(piece, nl=False)
            sys.stdout.flush()
        click.echo()
