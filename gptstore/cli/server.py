"""``gptstore server``: run a private, Hub-compatible store; administer its users, tokens and keys."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from .. import config
from ..errors import UsageError
from ._options import json_option
from ._commands import SuggestingGroup
from ._output import table

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


class Size(click.ParamType):
    """A byte count: ``1048576``, ``10MiB``, ``512MB``, ``2GiB``."""

    name = "size"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        found = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(value))
        if not found or found.group(2).lower() not in _UNITS:
            self.fail(f"{value!r} is not a size such as 1048576, 10MiB or 2GiB", param, ctx)
        return int(found.group(1)) * _UNITS[found.group(2).lower()]


SIZE = Size()

EXAMPLES = """\b
Examples:
  gptstore server --data /srv/gptstore --host 0.0.0.0 --public-url https://models.example.com
  gptstore server --data /srv/gptstore user add alice
  gptstore server --data /srv/gptstore org add acme --member alice
  gptstore server --data /srv/gptstore token create alice --scope write
  gptstore server --data /srv/gptstore key add acme acme-release.pub
  gptstore server --data /srv/gptstore --require-signed
  export GPTSTORE_SERVER_DATA=/srv/gptstore; gptstore server token revoke 3f9c0a1b2d4e
"""


def _data(ctx: click.Context) -> Path:
    data = ctx.find_root().meta.get("gptstore.server.data")
    if data is None:
        raise UsageError("no data directory given", hint="pass --data DIR or set GPTSTORE_SERVER_DATA")
    return data


def _catalog(ctx: click.Context):
    from ..server.db import connect
    from ..server.settings import ServerSettings

    url = ctx.find_root().meta.get("gptstore.server.catalog")
    return connect(url or ServerSettings(_data(ctx)).catalog_url)


def _accounts(ctx: click.Context):
    from ..server.accounts import Accounts

    return Accounts(_catalog(ctx))


def _keys(ctx: click.Context):
    from ..server.keys import SigningKeys

    return SigningKeys(_catalog(ctx))


@click.group(cls=SuggestingGroup, invoke_without_command=True, epilog=EXAMPLES)
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data directory (catalog, blobs, signing key). Env: GPTSTORE_SERVER_DATA.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--public-url", default=None,
              help="Base URL clients use, e.g. behind a proxy (default: from the Host header). "
                   "Env: GPTSTORE_SERVER_URL.")
@click.option("--lfs-threshold", type=SIZE, default="10MiB", show_default=True,
              help="Files at least this big upload through LFS (clients need HF_HUB_DISABLE_XET=1).")
@click.option("--multipart-threshold", type=SIZE, default="512MiB", show_default=True,
              help="LFS objects at least this big upload in parts.")
@click.option("--part-size", type=SIZE, default="64MiB", show_default=True, help="Size of one upload part.")
@click.option("--max-object-size", type=SIZE, default="50GiB", show_default=True,
              help="Largest LFS object (one file) accepted; larger ones are refused in the LFS batch.")
@click.option("--max-body", type=SIZE, default="2GiB", show_default=True,
              help="Largest request body (a commit, one LFS PUT); larger ones get 413.")
@click.option("--page-size", type=click.IntRange(1, 10000), default=1000, show_default=True,
              help="Entries per page of model, tree and commit listings.")
@click.option("--limit-concurrency", type=click.IntRange(2), default=512, show_default=True,
              help="Open connections served at once (idle keep-alive ones included); beyond it requests get 503.")
@click.option("--timeout-keep-alive", type=click.IntRange(1), default=30, show_default=True,
              help="Seconds an idle kept-alive connection stays open.")
@click.option("--request-timeout", type=click.FloatRange(0, min_open=True), default=60.0, show_default=True,
              help="Seconds a client may take to send its request headers, or stall while sending a body "
                   "or reading a response, before it is disconnected.")
@click.option("--min-transfer-rate", type=SIZE, default="1KiB", show_default=True,
              help="Bytes per second a client must average sending a body or reading a response, after "
                   "--request-timeout seconds of grace.")
@click.option("--max-header-size", type=SIZE, default="64KiB", show_default=True,
              help="Largest request line and headers; larger ones get 431.")
@click.option("--blobs", metavar="URL", default=None, envvar="GPTSTORE_SERVER_BLOBS",
              help="Where file contents live: s3://BUCKET[/PREFIX] for an S3-compatible bucket (endpoint and "
                   "credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                   "AWS_DEFAULT_REGION; LFS bytes then bypass the server). Default: the data directory. "
                   "Env: GPTSTORE_SERVER_BLOBS.")
@click.option("--blobs-public-url", metavar="URL", default=None, envvar="GPTSTORE_SERVER_BLOBS_PUBLIC_URL",
              help="With --blobs: the bucket's endpoint as clients reach it, http[s]://HOST[:PORT], when it differs "
                   "from AWS_ENDPOINT_URL (the one the server uses); presigned URLs are made and signed for it. "
                   "Env: GPTSTORE_SERVER_BLOBS_PUBLIC_URL.")
@click.option("--catalog", metavar="URL", default=None, envvar="GPTSTORE_SERVER_CATALOG",
              help="The catalog database: postgresql://USER[:PASSWORD]@HOST[:PORT]/DB for a PostgreSQL one shared "
                   "by replicas (its schema is created or upgraded at start; see `migrate`). Default: "
                   "sqlite:///DATA/catalog.sqlite3. Env: GPTSTORE_SERVER_CATALOG.")
@click.option("--require-signed", is_flag=True,
              help="Refuse commits that bring a gptstore.json without a valid gptstore.sig by a key "
                   "registered for its namespace (`key add`). Applies while started with it.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Log lines as text, or as one JSON object per line (access records carry time, request id, "
                   "method, path, status, bytes, duration_ms, client, user).")
@click.option("--shutdown-timeout", type=click.FloatRange(0), default=30.0, show_default=True,
              help="Seconds a SIGTERM waits for requests in flight (uploads, downloads) before cancelling "
                   "them; new connections are refused at once, and the exit status is 0.")
@click.option("--secret", default=None, metavar="TEXT",
              help="Key that signs upload URLs, sessions and CSRF tokens; must be the same on every replica of "
                   "a store (required with a shared catalog). Prefer the env var: GPTSTORE_SERVER_SECRET. "
                   "Default: DATA/secret, generated.")
@click.pass_context
def server(ctx: click.Context, data: Path | None, host: str, port: int, public_url: str | None,
           lfs_threshold: int, multipart_threshold: int, part_size: int, max_object_size: int, max_body: int,
           page_size: int,
           require_signed: bool, log_level: str, limit_concurrency: int, timeout_keep_alive: int,
           request_timeout: float, min_transfer_rate: int, max_header_size: int,
           log_format: str = "text", shutdown_timeout: float = 30.0, secret: str | None = None,
           blobs: str | None = None, blobs_public_url: str | None = None, catalog: str | None = None) -> None:
    """Run a private Hub-compatible store; manage users, orgs, keys.

    Without a subcommand, serves the Hugging Face Hub API subset that huggingface_hub and
    transformers use (see docs/server.md) until interrupted; `user`, `org`, `token` and `key`
    administer it. Every command needs the data directory: --data DIR before the subcommand, or
    GPTSTORE_SERVER_DATA.
    """
    data = data or config.server_data()
    ctx.find_root().meta["gptstore.server.data"] = data
    ctx.find_root().meta["gptstore.server.catalog"] = catalog
    if ctx.invoked_subcommand is not None:
        return
    from ..server.settings import ServerSettings

    try:
        settings = ServerSettings(_data(ctx), host=host, port=port,
                                  public_url=public_url or config.server_public_url(),
                                  lfs_threshold=lfs_threshold, multipart_threshold=multipart_threshold,
                                  part_size=part_size, max_object_size=max_object_size,
                                  max_body=max_body, page_size=page_size,
                                  secret=secret or config.server_secret(), require_signed=require_signed,
                                  log_format=log_format, shutdown_timeout=shutdown_timeout,
                                  limit_concurrency=limit_concurrency, timeout_keep_alive=timeout_keep_alive,
                                  request_timeout=request_timeout, min_transfer_rate=min_transfer_rate,
                                  max_header_size=max_header_size, blobs=blobs,
                                  blobs_public_url=blobs_public_url, catalog=catalog)
        settings.check_shared_secret()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from ..server.app import bind, serve

    if require_signed:
        _check_signing_extra()
    sock = bind(settings)  # a port in use fails here, before anything is announced
    try:
        bound = sock.getsockname()[1]
        click.echo(f"gptstore server: data in {settings.data}, listening on http://{host}:{bound}"
                   + (f", public URL {settings.public_url}" if settings.public_url else ""), err=True)
        if require_signed:
            _announce_signed_only(ctx)
        serve(settings, log_level=log_level, sock=sock)
    finally:
        sock.close()


def _check_signing_extra() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError:  # pragma: no cover - the extra is installed in development
        from ..errors import MissingDependency

        raise MissingDependency("cryptography (needed by --require-signed)", "signing") from None


def _announce_signed_only(ctx: click.Context) -> None:
    """Say how many keys the check will use (the signing extra was checked before binding)."""
    keys = _keys(ctx)
    try:
        registered = keys.list()
    finally:
        keys.db.close()
    if registered:
        namespaces = sorted({k.namespace for k in registered})
        click.echo(f"gptstore server: signed packages only; {len(registered)} key(s) registered for "
                   f"{', '.join(namespaces)}", err=True)
    else:
        click.echo("gptstore server: signed packages only, but no key is registered yet: every commit that "
                   "brings a gptstore.json is refused until you run `gptstore server key add NAMESPACE "
                   "PUBKEY_FILE`", err=True)


@server.command("migrate")
@click.option("--catalog", "url", metavar="URL", default=None,
              help="The catalog to upgrade (default: the server's --catalog, else DATA/catalog.sqlite3).")
@click.option("--from", "source", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Move a store: the data directory (SQLite + disk) to copy from; it is only read, so "
                   "its server may keep running during a first pass.")
@click.option("--to-catalog", metavar="URL", default=None,
              help="With --from: the catalog to copy into (postgresql://… or sqlite:///PATH); its schema is "
                   "created or upgraded first.")
@click.option("--to-blobs", metavar="URL", default=None,
              help="With --from: where the blobs go: s3://BUCKET[/PREFIX] (AWS_* variables as for --blobs), "
                   "or the new data directory.")
@click.option("--verify-all", is_flag=True,
              help="With --from: also re-hash every blob the target holds (default: sizes of all, sha256 of "
                   "what this run copied).")
@json_option.replace(help="With --from: print the summary as JSON.")
@click.pass_context
def migrate(ctx: click.Context, url: str | None, source: Path | None, to_catalog: str | None,
            to_blobs: str | None, verify_all: bool, as_json: bool) -> None:
    """Create or upgrade the catalog's schema to this gptstore's, then exit; or, with --from, move a store.

    The server also upgrades when it starts (concurrent starts take turns), so an explicit run is
    needed only to prepare an empty database before the replicas start, or to upgrade first.

    \b
    Moving a store (re-run it to catch up: only what is new is copied):
      gptstore server migrate --from /srv/gptstore \\
        --to-catalog postgresql://gptstore@db/gptstore --to-blobs s3://models/store
    """
    from ..server.db import SCHEMA_VERSION

    if source is not None or to_catalog or to_blobs:
        if source is None or not to_catalog or not to_blobs:
            raise UsageError("moving a store needs --from, --to-catalog and --to-blobs together",
                             hint="gptstore server migrate --from DATA --to-catalog URL --to-blobs URL")
        from ..server.migrate_store import migrate_store

        report = migrate_store(source, to_catalog, to_blobs, verify_all=verify_all,
                               progress=lambda line: click.echo(line, err=True))
        if as_json:
            click.echo(json.dumps(report.as_dict(), indent=2))
            return
        rows = sum(t.get("rows", 0) for t in report.tables.values())
        new = sum(t.get("new", 0) for t in report.tables.values())
        click.echo(f"moved {source} to {report.catalog} + {report.blobs}: {rows} catalog rows ({new} new), "
                   f"{report.blobs_copied} blobs copied ({report.bytes_copied} bytes), {report.blobs_skipped} "
                   f"already there, {report.blobs_verified} verified")
        return
    if url is not None:
        ctx.find_root().meta["gptstore.server.catalog"] = url
    db = _catalog(ctx)
    try:
        click.echo(f"catalog {db.describe()} is at schema {SCHEMA_VERSION}")
    finally:
        db.close()


# -- users and orgs ------------------------------------------------------------------------
@server.group(cls=SuggestingGroup)
def user() -> None:
    """Add and list users (each user is also a namespace)."""


@user.command("add")
@click.argument("name")
@click.option("--fullname", metavar="TEXT", help="Display name (whoami's fullname; default: NAME).")
@click.pass_context
def user_add(ctx: click.Context, name: str, fullname: str | None) -> None:
    """Add a user NAME."""
    _accounts(ctx).add_user(name, fullname=fullname)
    click.echo(f"added user {name}")


@user.command("list")
@click.pass_context
def user_list(ctx: click.Context) -> None:
    """List users."""
    for name in _accounts(ctx).users():
        click.echo(name)


@server.group(cls=SuggestingGroup)
def org() -> None:
    """Add organisations and their members (members may write to the org's namespace)."""


@org.command("add")
@click.argument("name")
@click.option("--member", "members", multiple=True, metavar="USER", help="A member (repeatable).")
@click.option("--fullname", metavar="TEXT", help="Display name (whoami's fullname; default: NAME).")
@click.pass_context
def org_add(ctx: click.Context, name: str, members: tuple[str, ...], fullname: str | None) -> None:
    """Add an organisation NAME with its members."""
    _accounts(ctx).add_org(name, list(members), fullname=fullname)
    click.echo(f"added org {name}" + (f" with {', '.join(members)}" if members else ""))


@org.command("add-member")
@click.argument("name")
@click.argument("user_name", metavar="USER")
@click.pass_context
def org_add_member(ctx: click.Context, name: str, user_name: str) -> None:
    """Make USER a member of the organisation NAME."""
    _accounts(ctx).add_member(name, user_name)
    click.echo(f"{user_name} is a member of {name}")


@org.command("remove-member")
@click.argument("name")
@click.argument("user_name", metavar="USER")
@click.pass_context
def org_remove_member(ctx: click.Context, name: str, user_name: str) -> None:
    """Remove USER from the organisation NAME."""
    _accounts(ctx).remove_member(name, user_name)
    click.echo(f"{user_name} is no longer a member of {name}")


@org.command("list")
@click.pass_context
def org_list(ctx: click.Context) -> None:
    """List organisations and their members."""
    for name, members in _accounts(ctx).orgs().items():
        click.echo(f"{name}: {', '.join(members) or '(no members)'}")


# -- tokens --------------------------------------------------------------------------------
@server.group(cls=SuggestingGroup)
def token() -> None:
    """Create, list and revoke access tokens (only a hash of each is stored)."""


@token.command("create")
@click.argument("user_name", metavar="USER")
@click.option("--scope", type=click.Choice(["read", "write"]), default="read", show_default=True)
@click.option("--name", default=None, help="A label shown in `token list` (default: USER-SCOPE).")
@json_option.replace(help="Print the token and its id as JSON.")
@click.pass_context
def token_create(ctx: click.Context, user_name: str, scope: str, name: str | None, as_json: bool) -> None:
    """Create a token for USER and print it (it is shown only this once)."""
    secret, info = _accounts(ctx).create_token(user_name, scope, name)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps({"token": secret, "id": info.id, "user": info.user, "scope": info.scope,
                               "name": info.name}))
        return
    click.echo(secret)
    click.echo(f"token {info.id} ({scope}) for {user_name}; it is not shown again", err=True)


@token.command("list")
@click.argument("user_name", metavar="[USER]", required=False)
@json_option.replace(help="Print the tokens as JSON (never their secrets).")
@click.pass_context
def token_list(ctx: click.Context, user_name: str | None, as_json: bool) -> None:
    """List tokens (ids, users, scopes; never the secrets)."""
    tokens = _accounts(ctx).tokens(user_name)
    if as_json:
        click.echo(json.dumps([t.__dict__ for t in tokens], indent=2))
        return
    if not tokens:
        click.echo("No tokens. Create one with `gptstore server token create USER`.")
        return
    table(["ID", "USER", "SCOPE", "NAME", "CREATED", "STATE"],
          [(t.id, t.user, t.scope, t.name, t.created_at, f"revoked {t.revoked_at}" if t.revoked_at else "active")
           for t in tokens])


@token.command("revoke")
@click.argument("token_id", metavar="ID_OR_TOKEN")
@click.pass_context
def token_revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke a token by its id (see `token list`) or by the token itself."""
    info = _accounts(ctx).revoke_token(token_id)
    click.echo(f"revoked token {info.id} of {info.user}")


# -- publishers' signing keys --------------------------------------------------------------
@server.group(cls=SuggestingGroup)
def key() -> None:
    """Register publishers' public keys per namespace (checked with --require-signed)."""


@key.command("add")
@click.argument("namespace")
@click.argument("pubkey_file", type=click.File("rb"))
@json_option.replace(help="Print the registered key as JSON.")
@click.pass_context
def key_add(ctx: click.Context, namespace: str, pubkey_file, as_json: bool) -> None:
    """Register the Ed25519 public key in PUBKEY_FILE (`-` for stdin) for NAMESPACE.

    PUBKEY_FILE is what `gptstore keys export NAME` prints. With --require-signed, packages of
    NAMESPACE must then be signed by one of its registered keys.
    """
    source = str(getattr(pubkey_file, "name", "public key"))
    added = _keys(ctx).add(namespace, pubkey_file.read(), source=source)
    if as_json:
        click.echo(json.dumps(added.to_dict(), indent=2))
        return
    click.echo(f"registered key {added.keyid} for {namespace}")


@key.command("list")
@click.argument("namespace", required=False)
@json_option.replace(help="Print the keys as JSON, each with its public key (PEM).")
@click.pass_context
def key_list(ctx: click.Context, namespace: str | None, as_json: bool) -> None:
    """List registered keys (of NAMESPACE, or all)."""
    keys = _keys(ctx).list(namespace)
    if as_json:
        click.echo(json.dumps([k.to_dict() for k in keys], indent=2))
        return
    if not keys:
        click.echo("No keys registered. Add one with `gptstore server key add NAMESPACE PUBKEY_FILE`.")
        return
    table(["NAMESPACE", "KEYID", "ADDED"], [(k.namespace, k.keyid, k.added_at) for k in keys])


@key.command("rm")
@click.argument("namespace")
@click.argument("keyid")
@click.pass_context
def key_rm(ctx: click.Context, namespace: str, keyid: str) -> None:
    """Unregister key KEYID (a unique prefix will do) of NAMESPACE."""
    removed = _keys(ctx).remove(namespace, keyid)
    click.echo(f"removed key {removed.keyid} from {namespace}")
