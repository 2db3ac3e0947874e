"""Commands that talk to a store: search, push, pull, lock, login.

Thin: parse, make one call of the front door (:mod:`gptstore.sdk`: ``search``, ``push``, ``pull``;
:mod:`gptstore.lockfile`; :func:`gptstore.stores.login.login`), print.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..manifest import CATEGORIES
from ..sdk import SORTS
from ._options import allow_unsafe_option, json_option, store_option, token_option
from ._output import echo_json, human_size, json_digest, json_price, short, table

if TYPE_CHECKING:
    from ..pulling import PullResult


@click.command()
@click.argument("query", required=False, default="")
@store_option
@token_option
@click.option("--tag", default=None, help="Only models with this tag.")
@click.option("--category", "categories", type=click.Choice(CATEGORIES), multiple=True,
              help="Only models of this category (repeatable: any of them).")
@click.option("--license", "license_", default=None, metavar="SPDX", help="Only models under this license.")
@click.option("--min-price", type=click.FloatRange(0), default=None, help="Lowest price amount.")
@click.option("--max-price", type=click.FloatRange(0), default=None, help="Highest price amount (0: free only).")
@click.option("--min-params", type=click.IntRange(0), default=None, help="Fewest parameters.")
@click.option("--max-params", type=click.IntRange(0), default=None, help="Most parameters.")
@click.option("--format", "format_", type=click.Choice(["full", "adapter"]), default=None,
              help="Full models or adapters over a base model.")
@click.option("--verified", is_flag=True, help="Only models signed by a key the store registered for their namespace.")
@click.option("--language", default=None, metavar="CODE", help="Only models listing this language.")
@click.option("--sort", type=click.Choice(SORTS), default="downloads", show_default=True,
              help="trending (downloads of the last 7 days), rating, newest and price (cheapest first) need "
                   "a store, not the local library; rating and price a gptstore server.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
def search(query, store_url, token, tag, categories, license_, min_price, max_price, min_params, max_params,
           format_, verified, language, sort, limit, as_json):
    """Search a store for models (name, description, provider, tags, use cases).

    Every word of QUERY must match; without QUERY, every model is listed.
    """
    from ..sdk import search as search_store

    hits = search_store(query, store=store_url, token=token, tag=tag, sort=sort, limit=limit,
                        category=categories, license=license_, min_price=min_price, max_price=max_price,
                        min_parameters=min_params, max_parameters=max_params, format=format_,
                        verified=verified, language=language)
    if as_json:
        echo_json([{k: v for k, v in h.to_dict().items() if k != "pricing"}
                   | {"digest": json_digest(h.digest), "price": json_price(h.pricing)} for h in hits])
        return
    if not hits:
        click.echo("No models found.")
        return
    table(["REFERENCE", "DESCRIPTION", "CATEGORY", "PROVIDER", "LICENSE", "PRICE", "RATING", "DOWNLOADS"],
          [[h.reference, (h.description[:40] + "…") if len(h.description) > 40 else h.description,
            h.category or "-", (h.provider or "-") + (" (verified)" if h.verified else ""), h.license or "-", h.price,
            f"{h.rating:.1f} ({h.reviews})" if h.rating is not None else "-", h.downloads] for h in hits])


@click.command()
@click.argument("reference")
@store_option
@token_option
@click.option("--private", is_flag=True, help="Create the repo as private.")
@click.option("--with-base", is_flag=True,
              help="For an adapter: push its base model first when the store lacks it (else a warning).")
@json_option
def push(reference, store_url, token, private, with_base, as_json):
    """Push a library model to a store, uploading only what it lacks.

    REFERENCE names a model of the local library (see `gptstore list`).
    """
    from ..sdk import push as push_model

    result = push_model(reference, store=store_url, token=token, private=private, with_base=with_base)
    if as_json:
        echo_json(result.to_dict())
        return
    if result.base is not None:
        click.echo(f"Pushed base {result.base.reference} (sha256:{short(result.base.digest)}) to {result.base.url}")
    click.echo(f"Pushed {result.reference} (sha256:{short(result.digest)}) to {result.url}: "
               f"uploaded {result.uploaded_files} file{'s' if result.uploaded_files != 1 else ''} "
               f"({human_size(result.uploaded_bytes)}), reused {result.reused_files}")


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
    """One progress line on stderr for all the files a pull fetches, with rate and ETA (only on
    a terminal; :class:`~gptstore.cli._output.TransferProgress`)."""
    import sys

    from ._output import TransferProgress

    if not sys.stderr.isatty():
        return None
    return TransferProgress(lambda text, last: click.echo(text, err=True, nl=last))


@click.command()
@click.argument("references", nargs=-1, required=True)
@store_option
@token_option
def lock(references, store_url, token):
    """Print a lock file pinning models to exact digests.

    Each of REFERENCES is resolved on the store to its manifest digest and the store's revision;
    `gptstore pull --lock FILE` then brings exactly those bytes or fails. Without --store, a
    pulled model is pinned on the store it was pulled from.
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


@click.command()
@store_option.replace(help="Store URL to ask (default: GPTSTORE_STORE, else hf://).")
@token_option
@json_option
def whoami(store_url, token, as_json):
    """Show who the token a command would send to a store belongs to.

    The token is --token, else GPTSTORE_TOKEN, else the login saved for that store.
    """
    from ..stores.login import whoami as ask

    who = ask(store_url, token)
    if as_json:
        echo_json({"store": who.url, "user": who.user})
        return
    click.echo(f"{who.user} on {who.url}")


@click.command()
@store_option.replace(help="Store URL to log out of (default: GPTSTORE_STORE, else hf://).")
def logout(store_url):
    """Remove the login saved for a store by `gptstore login`."""
    from ..stores.login import logout as forget

    click.echo(f"Logged out of {forget(store_url)}; its token is no longer saved")
