"""``gptstore usage``: calls, tokens and cost per model, from the usage log; ``usage verify``
checks the log's hash chain; ``usage report`` sends the stores their models' usage
(:mod:`gptstore.usage_report`)."""

from __future__ import annotations

import click

from ._commands import SuggestingGroup
from ._options import json_option, store_option, token_option
from ._output import echo_json, short, table


def _money(amount: float, currency: str) -> str:
    return f"{f'{amount:.4f}'.rstrip('0').rstrip('.')} {currency}"


@click.group(cls=SuggestingGroup, invoke_without_command=True)
@click.option("--by", type=click.Choice(["model", "key"]), default="model", show_default=True,
              help="Group by model version, or by API key name (calls served by `gptstore serve --api-keys`) "
                   "and model version.")
@json_option
@click.pass_context
def usage(ctx, by, as_json):
    """Calls, tokens and cost per model, from the usage log.

    Tokens in and out are summed per model version and priced under its manifest's pricing.

    Every generation (gptstore run, Model.generate, Model.stream) is recorded in
    GPTSTORE_HOME/usage.db unless GPTSTORE_NO_USAGE_LOG=1; calls served by `gptstore serve`
    carry the name of the API key that asked (`--by key`; "-" for calls without one).
    The log is hash-chained (`gptstore usage verify`); `gptstore usage report` sends each
    store the usage of the models pulled from it.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .. import config
    from .. import usage as log
    from ..manifest import Pricing

    rows = log.summary(by)
    totals = log.totals(rows)
    if as_json:
        echo_json({"log": str(log.path()), "enabled": config.usage_log_enabled(),
                   "models": [row.to_dict() for row in rows], "totals": totals})
        return
    if not rows:
        note = "" if config.usage_log_enabled() else " (recording is off: GPTSTORE_NO_USAGE_LOG is set)"
        click.echo(f"No usage recorded yet{note}.")
        return
    keyed = by == "key"
    table((["KEY"] if keyed else []) + ["MODEL", "DIGEST", "CALLS", "TOKENS IN", "TOKENS OUT", "PRICING", "COST"],
          [([row.key or "-"] if keyed else [])
           + [row.model, short(row.digest), row.calls, row.prompt_tokens, row.completion_tokens,
              Pricing.unchecked(row.pricing, row.amount, row.currency).label(),
              "-" if row.pricing == "free" else _money(row.cost, row.currency)] for row in rows],
          right={n + keyed for n in (2, 3, 4, 6)})
    if totals:
        click.echo("\nTotal: " + ", ".join(_money(amount, currency) for currency, amount in sorted(totals.items())))


@usage.command("verify")
@json_option
def verify(as_json):
    """Check the usage log's hash chain: no row edited, deleted or inserted.

    Exits 1 with one line naming the first bad row. Rows of a log written before the chain
    existed were chained as found when it was first opened by a newer gptstore.
    """
    from .. import usage as log
    from ..errors import IntegrityError

    found = log.verify()
    if as_json:
        echo_json({"log": str(log.path()), **found.to_dict()})
        if not found.ok:
            raise click.exceptions.Exit(1)
        return
    if not found.ok:
        raise IntegrityError(f"usage log {log.path()}: {found.message}",
                             hint="the log was changed outside gptstore; rows from this one on cannot be trusted")
    upgraded = (f" (rows 1-{found.upgraded_through} chained as found on {found.upgraded_at})"
                if found.upgraded_through else "")
    click.echo(f"OK: {found.message}{upgraded}.")


@usage.command("report")
@store_option.replace(help="The store to report to: only the models pulled from it are reported "
                           "(default: every store a logged model was pulled from).")
@token_option.replace(help="Your token for --store (default: GPTSTORE_TOKEN, then `gptstore login`).")
@click.option("--drop-pending", "drop", metavar="ID",
              help="Give up on a pending report the store refused for good (its error names the ID): its "
                   "usage is never reported, and the reports after it can be sent. Sends nothing.")
@json_option
def report(store_url, token, drop, as_json):
    """Send each store the usage of its models since the last report, once.

    Per model and day: calls, tokens in and out and their cost. A report that was sent but not
    recorded (the command was interrupted) is sent again and counted once by the store.
    Needs your login for the store (`gptstore login --store URL`). A report the store refuses
    for good (e.g. 404: the model was deleted there) blocks the later ones until you drop it
    with --drop-pending ID.
    """
    from ..errors import StoreError
    from ..usage_report import report as send_reports

    if token and not store_url:
        raise click.UsageError("--token needs --store (a token goes to the store it was named for)")
    if drop:
        from ..usage_report import drop_pending

        dropped = drop_pending(drop, store_url)
        if as_json:
            echo_json({"dropped": dropped})
        else:
            cost = ", ".join(_money(a, c) for c, a in sorted(dropped["cost"].items()) if a) or "no cost"
            click.echo(f"Dropped usage report {dropped['id']} to {dropped['store']}: {dropped['calls']} calls, "
                       f"{dropped['tokens']} tokens ({cost}) will never be reported. Run `gptstore usage report` "
                       f"to send the reports after it.")
        return
    results = send_reports(store_url, token=token)
    if as_json:
        echo_json({"reports": [result.to_dict() for result in results]})
    else:
        if not results:
            click.echo("Nothing to report: no logged model was pulled from a store server.")
        for result in results:
            if result.error:
                continue
            if not result.sent and not result.duplicates:
                click.echo(f"{result.store}: nothing new to report.")
                continue
            cost = ", ".join(_money(a, c) for c, a in sorted(result.cost.items()) if a) or "no cost"
            again = f"; {len(result.duplicates)} already taken (not counted again)" if result.duplicates else ""
            click.echo(f"{result.store}: reported {result.calls} calls, {result.tokens} tokens ({cost}) "
                       f"in {len(result.sent)} report(s){again}.")
    failed = [result for result in results if result.error]
    if failed:
        more = f" ({len(failed) - 1} more store(s) failed too; see --json)" if len(failed) > 1 else ""
        raise StoreError(f"usage report to {failed[0].store} failed: {failed[0].error}{more}")
