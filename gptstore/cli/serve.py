"""``gptstore serve``: an OpenAI-compatible API (``/v1/models``, ``/v1/completions``,
``/v1/chat/completions``, ``/metrics``) over the verified models of the local library."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import device_option, store_option, token_option

EXAMPLES = """\b
Examples:
  gptstore serve acme/poet:1.0.0
  gptstore serve --pull --max-models 3
  gptstore serve --host 0.0.0.0 --api-keys keys.txt
  printf %s "$KEY" | gptstore serve --hash-key    # a line for --api-keys: NAME: <this>
\b
Then, e.g. with the openai package:
  OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused").chat.completions.create(
      model="acme/poet:1.0.0", messages=[{"role": "user", "content": "Hi"}])
"""


@click.command(epilog=EXAMPLES)
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; other than loopback it needs --api-keys (or --insecure).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0 picks a free one).")
@click.option("--max-models", default=2, show_default=True, type=click.IntRange(1),
              help="Models loaded at once; the least recently used is unloaded first.")
@device_option
@click.option("--api-keys", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File of `name: sha256-hex-of-key` lines; requests must send one of the keys.")
@click.option("--pull", is_flag=True, help="Pull (and verify) a requested model the library does not have.")
@store_option.replace(help="Store --pull pulls from (default: GPTSTORE_STORE, else hf://).")
@token_option
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without --api-keys.")
@click.option("--keep-alive", type=float, default=-1, show_default=True,
              help="Seconds an idle model stays loaded (negative: until evicted); requests may override "
                   "it with keep_alive.")
@click.option("--max-queue", type=click.IntRange(1), default=16, show_default=True,
              help="Requests queued or running per model; beyond it requests get 503.")
@click.option("--max-batch", type=click.IntRange(1), default=8, show_default=True,
              help="Rows (prompts × n) concurrent requests to one model may share in one batch; 1: no batching.")
@click.option("--batch-window-ms", type=click.FloatRange(0, 1000), default=5, show_default=True,
              help="Milliseconds a model waits for more requests to batch with the first.")
@click.option("--max-memory", default=None, metavar="SIZE",
              help="Bytes the loaded models' weights may take (e.g. 8GiB); least recently used unloaded first.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True)
@click.option("--hash-key", is_flag=True, help="Read a key on stdin, print its hash for --api-keys, and exit.")
def serve(refs, host, port, max_models, device, api_keys, pull, store_url, token, insecure, keep_alive, max_queue,
          max_batch, batch_window_ms, max_memory, log_level, hash_key):
    """Serve library models over an OpenAI-compatible API.

    Models are addressed by reference ("model": "acme/poet:1.0.0"), verified before their first
    load as gptstore.load does; plugins' generate hooks apply. REFs are loaded at start. See
    docs/serve.md for endpoints, parameters and errors.
    """
    from ..serving.settings import ServeSettings, hash_key as digest_of

    if hash_key:
        import sys

        key = sys.stdin.readline(4096).strip() if not sys.stdin.isatty() else click.prompt("API key", hide_input=True)
        if not key:
            raise click.UsageError("no key on stdin; pipe one in: printf %s \"$KEY\" | gptstore serve --hash-key")
        click.echo(digest_of(key))
        return
    from ..serving.app import run_server

    settings = ServeSettings(refs=list(refs), host=host, port=port, max_models=max_models, device=device,
                             api_keys=api_keys, pull=pull, store=store_url, token=token, insecure=insecure,
                             keep_alive=None if keep_alive < 0 else keep_alive, max_queue=max_queue,
                             max_batch=max_batch, batch_window_ms=batch_window_ms, max_memory=max_memory)
    run_server(settings, log_level=log_level, announce=lambda line: click.echo(line, err=True))
