"""Metering: the usage consumers report (``gptstore usage report``), per model, consumer and day.

A report is taken once: its id is kept per reporting user (``usage_reports``) with a digest of its
rows, so a client that sends a report again (it died before recording that the store took it)
gets ``duplicate`` and nothing is counted twice, while the same id with other rows is a conflict.
Its rows are added to ``usage_daily`` (calls, tokens in and out, cost per currency, per repo,
consumer and UTC day) in the same transaction. The rows are rows of their repo: they go with it
when it is deleted and follow it when it is moved.

What a namespace's members read (:func:`usage_of` — ``GET /api/gptstore/usage/{ns}`` and the
provider dashboard's ``usage`` variable): per model and per consumer the calls, tokens and
revenue (cost summed per currency), and the totals. The cost is what the consumer's client
computed from the manifest's pricing it logged with each call; the store checks that the numbers
are sane (``api_metering``), not that they are right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .db import Database
from .timeutil import now


@dataclass(frozen=True)
class DailyUsage:
    """One row of a report, its repo already resolved to the catalog's id."""

    repo: int
    day: str
    currency: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


class ReportConflict(Exception):
    """The same report id was taken before with other rows."""


class Metering:
    def __init__(self, db: Database) -> None:
        self.db = db

    def taken(self, user: str, report_id: str) -> str | None:
        """The digest of ``user``'s report ``report_id`` if the store took it; None if not."""
        row = self.db.one("SELECT digest FROM usage_reports WHERE user = ? AND id = ?", (user, report_id))
        return row["digest"] if row else None

    def take(self, user: str, report_id: str, digest: str, rows: Iterable[DailyUsage]) -> bool:
        """Count ``user``'s report once: True when counted now, False when it was taken before
        (same id and digest); :class:`ReportConflict` for the same id with another digest."""
        rows = list(rows)
        with self.db.transaction():
            seen = self.taken(user, report_id)
            if seen is not None:
                if seen != digest:
                    raise ReportConflict(report_id)
                return False
            self.db.execute("INSERT INTO usage_reports (user, id, digest, rows, received_at) VALUES (?, ?, ?, ?, ?)",
                            (user, report_id, digest, len(rows), now()))
            self.db.executemany(
                "INSERT INTO usage_daily (repo, user, day, currency, calls, prompt_tokens, completion_tokens, cost) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repo, user, day, currency) DO UPDATE SET "
                "calls = usage_daily.calls + excluded.calls, "
                "prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens, "
                "cost = usage_daily.cost + excluded.cost",
                [(r.repo, user, r.day, r.currency, r.calls, r.prompt_tokens, r.completion_tokens, r.cost)
                 for r in rows])
        return True


def _summed(rows: Iterable[Any], key: str) -> list[dict[str, Any]]:
    """Rows of (key, currency, calls, tokens, cost, n) folded into one entry per key, revenue per currency."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = found.setdefault(row[key], {key: row[key], "calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                            "total_tokens": 0, "revenue": {}, "count": set()})
        entry["calls"] += row["calls"]
        entry["prompt_tokens"] += row["prompt_tokens"]
        entry["completion_tokens"] += row["completion_tokens"]
        entry["total_tokens"] += row["prompt_tokens"] + row["completion_tokens"]
        if row["cost"]:
            entry["revenue"][row["currency"]] = round(entry["revenue"].get(row["currency"], 0.0) + row["cost"], 9)
        entry["count"].add(row["other"])
    return sorted(found.values(), key=lambda e: (-e["total_tokens"], e[key]))


def usage_of(db: Database, namespace: str, *, since: str | None = None) -> dict[str, Any]:
    """Reported usage of the models of ``namespace`` (for its members only: the caller checks):

    ``{"namespace", "since", "models": [{"model", "calls", "prompt_tokens", "completion_tokens",
    "total_tokens", "revenue": {currency: amount}, "consumers": n}], "consumers": [{"user", …,
    "models": n}], "totals": {"calls", "total_tokens", "revenue", "reports"}}``, most tokens
    first. ``since`` (``YYYY-MM-DD``) keeps the days from then on. This is the provider
    dashboard's ``usage`` variable too (``templates/_usage.html``)."""
    where, params = "r.namespace = ?", [namespace]
    if since:
        where += " AND u.day >= ?"
        params.append(since)
    rows = db.all(
        "SELECT r.namespace || '/' || r.name AS model, u.user AS user, u.currency AS currency, "
        "SUM(u.calls) AS calls, SUM(u.prompt_tokens) AS prompt_tokens, "
        "SUM(u.completion_tokens) AS completion_tokens, SUM(u.cost) AS cost "
        f"FROM usage_daily u JOIN repos r ON r.id = u.repo WHERE {where} "
        "GROUP BY u.repo, r.namespace, r.name, u.user, u.currency", params)
    models = _summed([dict(row, other=row["user"]) for row in rows], "model")
    consumers = _summed([dict(row, other=row["model"]) for row in rows], "user")
    for entry in models:
        entry["consumers"] = len(entry.pop("count"))
    for entry in consumers:
        entry["models"] = len(entry.pop("count"))
    revenue: dict[str, float] = {}
    for entry in models:
        for currency, amount in entry["revenue"].items():
            revenue[currency] = round(revenue.get(currency, 0.0) + amount, 9)
    totals = {"calls": sum(e["calls"] for e in models), "total_tokens": sum(e["total_tokens"] for e in models),
              "revenue": revenue, "consumers": len(consumers)}
    return {"namespace": namespace, "since": since, "models": models, "consumers": consumers, "totals": totals}


def dashboard_usage(db: Database, namespace: str) -> dict[str, Any]:
    """What the provider dashboard shows under "Usage and revenue" (its template variable
    ``usage``, rendered by ``templates/_usage.html``): :func:`usage_of` over all time."""
    return usage_of(db, namespace)
