"""Commands that talk to a store: search, push, pull, lock, login.

Thin: parse, make one call of the front door (:mod:`gptstore.sdk`: ``search``, ``push``, ``pull``;
:mod:`gptstore.lockfile`; :func:`gptstore.stores.login.login`), print.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._options import allow_unsafe_option, json_option, store_option, token_option
from ._output import echo_json, human_size, short, table

if TYPE_CHECKING:
    from ..pulling import PullResult


@click.command()
@click.argument("query", required=False, default="")
@store_option
@token_option
@click.option("--tag", default=None, help="Only models with this tag.")
@click.option("--sort", type=click.Choice(["downloads", "recent"]), default="downloads", show_default=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
def search(query, store_url, token, tag, sort, limit, as_json):
    """Search a store for models (name, description, provider, tags).

    Every word of QUERY must match; without QUERY, every model is listed.
    """
    from ..sdk import search as search_store

    hits = search_store(query, store=store_url, token=token, tag=tag, sort=sort, limit=limit)
    if as_json:
        echo_json([h.to_dict() for h in hits])
        return
    if not hits:
        click.echo("No models found.")
        return
    table(["REFERENCE", "DESCRIPTION", "PROVIDER", "LICENSE", "PRICE", "DOWNLOADS"],
          [[h.reference, (h.description[:40] + "…") if len(h.description) > 40 else h.description,
            h.provider or "-", h.license or "-", h.price, h.downloads] for h in hits])


@click.command()
@click.argument("reference")
@store_option
@token_option
@click.option("--private", is_flag=True, help="Create the repo as private.")
@json_option
def push(reference, store_url, token, private, as_json):
    """Push a library model to a store, uploading only what it lacks.

    REFERENCE names a model of the local library (see `gptstore list`).
    """
    from ..sdk import push as push_model

    result = push_model(reference, store=store_url, token=token, private=private)
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(f"Pushed {result.reference} (sha256:{short(result.digest)}) to {result.url}")


@click.command()
@click.argument("references", nargs=-1)
@store_option
@token_option
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Pull exactly the models of a lock file (--token goes only to its entries on --store).")
@allow_unsafe_option
@json_option
def pull(references, store_url, token, lock_path, allow_unsafe, as_json):
    """Pull models into the local library, verified and resumable.

    Every file is hashed while it streams in; an interrupted download resumes where it stopped, and
    a file that was damaged in the library is fetched again.
    """
    from ..errors import UsageError
    from ..lockfile import pull_locked, read
    from ..sdk import pull as pull_model

    if bool(references) == bool(lock_path):
        raise UsageError("give REFERENCE(s) or --lock FILE", hint="e.g. gptstore pull acme/poet --store URL")
    show = None if as_json else _progress_bar()
    if lock_path:
        results = pull_locked(read(lock_path), store=store_url, token=token, allow_unsafe=allow_unsafe,
                              progress=show)
    else:
        results = [pull_model(ref, store=store_url, token=token, allow_unsafe=allow_unsafe, progress=show)
                   for ref in references]
    if as_json:
        echo_json([r.to_dict() for r in results])
        return
    for r in results:
        if r.base is not None:
            click.echo(f"Pulled base {_pulled(r.base)}")
        click.echo(f"Pulled {_pulled(r)}")


def _pulled(r: PullResult) -> str:
    """``acme/poet:1.0.0 (sha256:…): 5 files, 589.0 KB fetched, 0 already here; verified``."""
    repaired = f", {r.repaired_files} damaged file{'s' if r.repaired_files != 1 else ''} fetched again" \
        if r.repaired_files else ""
    return (f"{r.model.name} (sha256:{short(r.model.digest)}): {r.fetched_files} files, "
            f"{human_size(r.fetched_bytes)} fetched, {r.reused_files} already here{repaired}; verified")


def _progress_bar():
    """One progress line on stderr for all the files a pull fetches (only on a terminal)."""
    import sys

    if not sys.stderr.isatty():
        return None

    shown = {"percent": -1}

    def show(done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent == shown["percent"]:
            return
        shown["percent"] = percent
        click.echo(f"\r  {human_size(done)} / {human_size(total)} ({percent}%)", err=True,
                   nl=done >= total)

    return show


@click.command()
@click.argument("references", nargs=-1, required=True)
@store_option
@token_option
def lock(references, store_url, token):
    """Print a lock file pinning models to exact digests.

    Each of REFERENCES is resolved on the store to its manifest digest and the store's revision;
    `gptstore pull --lock FILE` then brings exactly those bytes or fails.
    """
    from ..lockfile import dumps, lock as make_lock

    click.echo(dumps(make_lock(list(references), store=store_url, token=token)), nl=False)


@click.command()
@store_option.replace(required=True, help="Store URL to log in to.")
@token_option.replace(prompt=True, hide_input=True, help="Access token (prompted when omitted).")
def login(store_url, token):
    """Check a token against a store and save it (mode 0600).

    Later commands use it for that store URL only.
    """
    from ..stores.login import login as check_and_save

    done = check_and_save(store_url, token)
    click.echo(f"Logged in to {done.url} as {done.user}; token saved in {done.path}")
