"""Commands that talk to a store: search, push, pull, lock, login."""

from __future__ import annotations

from pathlib import Path

import click

from ._output import echo_json, human_size, short, table

store_option = click.option("--store", "store_url", metavar="URL", default=None,
                            help="Store URL: hf://, http(s)://host:port or a library path "
                                 "(default: GPTSTORE_STORE, else the local library).")
token_option = click.option("--token", default=None, help="Access token for the store named by --store / "
                                                          "GPTSTORE_STORE (default: GPTSTORE_TOKEN, then "
                                                          "`gptstore login`, then HF_TOKEN for hf://).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.command()
@click.argument("query", required=False, default="")
@store_option
@token_option
@click.option("--tag", default=None, help="Only models with this tag.")
@click.option("--sort", type=click.Choice(["downloads", "recent"]), default="downloads", show_default=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
def search(query, store_url, token, tag, sort, limit, as_json):
    """Search a store for models matching QUERY (name, description, provider, tags)."""
    from ..stores import get_store

    hits = get_store(store_url, token=token).search(query, tag=tag, sort=sort, limit=limit)
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
    """Push a model from the local library to a store: only what the store lacks is uploaded."""
    from ..library import Library
    from ..stores import get_store

    model = Library().get(reference)
    target = get_store(store_url, token=token)
    where = target.push(model, private=private)
    if as_json:
        echo_json({"reference": f"{model.manifest.repo_id}:{model.manifest.version}",
                   "digest": f"sha256:{model.digest}", "url": where})
        return
    click.echo(f"Pushed {model.manifest.repo_id}:{model.manifest.version} (sha256:{short(model.digest)}) to {where}")


@click.command()
@click.argument("references", nargs=-1)
@store_option
@token_option
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Pull exactly the models of a lock file (--token goes only to its entries on --store).")
@click.option("--allow-unsafe", is_flag=True, help="Accept pickle-based weights. Only for sources you trust.")
@json_option
def pull(references, store_url, token, lock_path, allow_unsafe, as_json):
    """Pull models into the local library, verified; resumes interrupted downloads."""
    from ..errors import UsageError
    from ..lockfile import pull_locked, read
    from ..pull import pull as pull_one

    if bool(references) == bool(lock_path):
        raise UsageError("give REFERENCE(s) or --lock FILE", hint="e.g. gptstore pull acme/poet --store URL")
    show = None if as_json else _progress_bar()
    if lock_path:
        results = pull_locked(read(lock_path), store=store_url, token=token, allow_unsafe=allow_unsafe,
                              progress=show)
    else:
        results = [pull_one(ref, store=store_url, token=token, allow_unsafe=allow_unsafe, progress=show)
                   for ref in references]
    if as_json:
        echo_json([{"reference": r.model.name, "digest": f"sha256:{r.model.digest}",
                    "fetched_files": r.fetched_files, "fetched_bytes": r.fetched_bytes,
                    "reused_files": r.reused_files} for r in results])
        return
    for r in results:
        if r.base is not None:
            b = r.base
            click.echo(f"Pulled base {b.model.name} (sha256:{short(b.model.digest)}): {b.fetched_files} files, "
                       f"{human_size(b.fetched_bytes)} fetched; verified")
        click.echo(f"Pulled {r.model.name} (sha256:{short(r.model.digest)}): {r.fetched_files} files, "
                   f"{human_size(r.fetched_bytes)} fetched, {r.reused_files} already here; verified")


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
    """Print a lock file pinning REFERENCES to their digest and store revision."""
    from ..lockfile import dumps, lock as make_lock

    click.echo(dumps(make_lock(list(references), store=store_url, token=token)), nl=False)


@click.command()
@click.option("--store", "store_url", metavar="URL", required=True, help="Store URL to log in to.")
@click.option("--token", prompt=True, hide_input=True, help="Access token (prompted when omitted).")
def login(store_url, token):
    """Check a token against a store and keep it for later commands (mode 0600)."""
    from ..errors import AuthError
    from ..stores.auth import save_login
    from ..stores.hub import HubStore

    store = HubStore(store_url, token=token)
    try:
        who = store.api.whoami()
    except Exception as exc:
        raise AuthError(f"{store_url} did not accept the token ({type(exc).__name__})",
                        hint="check the token, or create one on the store") from exc
    path = save_login(store_url, token)
    click.echo(f"Logged in to {store_url} as {who.get('name')}; token saved in {path}")
