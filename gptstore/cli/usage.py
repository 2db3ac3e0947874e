"""``gptstore usage``: calls, tokens and cost per model, from the usage log."""

from __future__ import annotations

import click

from ._options import json_option
from ._output import echo_json, short, table


def _money(amount: float, currency: str) -> str:
    return f"{f'{amount:.4f}'.rstrip('0').rstrip('.')} {currency}"


@click.command()
@click.option("--by", type=click.Choice(["model", "key"]), default="model", show_default=True,
              help="Group by model version, or by API key name (calls served by `gptstore serve --api-keys`) "
                   "and model version.")
@json_option
def usage(by, as_json):
    """Calls, tokens and cost per model, from the usage log.

    Tokens in and out are summed per model version and priced under its manifest's pricing.

    Every generation (gptstore run, Model.generate, Model.stream) is recorded in
    GPTSTORE_HOME/usage.db unless GPTSTORE_NO_USAGE_LOG=1; calls served by `gptstore serve`
    carry the name of the API key that asked (`--by key`; "-" for calls without one).
    """
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
