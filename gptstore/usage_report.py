"""Usage reports: send a store what its models were used for here, once (``gptstore usage report``).

A report goes to the store a model came from (:mod:`gptstore.origins`, recorded by the pull) and
holds, per model and UTC day, the calls, tokens in and out and their cost under the pricing logged
with each call (:mod:`gptstore.usage`) — only for the rows of the log since the last report to
that store, and only for models pulled from it. The store server counts it per (model, consumer,
day) for the provider's dashboard (``POST /api/gptstore/usage``, see docs/usage.md).

**Exactly once.** A report covers a range of log rows ``(after, last]`` and its id is
``sha256(store, after, last, hash of row last)`` — the chain hash pins what the range held. The
report is written to the log's ``usage_reports`` table *before* it is sent (``sent_at`` empty:
pending) and marked sent when the store answers. The store keeps every id it took and answers a
repeated one with ``duplicate: true`` without counting it again, so a client killed after the
store took a report but before it wrote that down sends the same report again next time and
nothing is counted twice; a pending report is always sent before a new one is built.

**Refused for good.** A store that refuses a report in a way re-sending cannot change (400, 403,
404 — e.g. the model was deleted on the store —, 409, 413, 422) would block every later report to
it, since the pending one goes first. The error names the report and the way out:
``gptstore usage report --drop-pending ID`` (:func:`drop_pending`) marks it dropped — its rows
are never reported, to that store or again — and the next run sends the reports after it. It is
the user's explicit choice, never automatic: a refusal that the store's operator can fix (a
model made private by mistake) must not silently cost the provider the usage.

**Flat pricing** (``amount`` once per model version) is charged in the first report to a store
that holds the version (``usage_reported_versions``); later reports carry its tokens at cost 0.

A report needs the user's token for that store (``--token`` / ``GPTSTORE_TOKEN`` for a store named
with ``--store``, else the login saved for exactly that URL): the store counts usage per user.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from . import config, usage
from .errors import AuthError, GPTStoreError, ReportRefused, StoreError, UsageError
from .origins import read_origin

#: the most rows (model × day) one report holds; the store refuses more (``gptstore.server.metering``)
MAX_REPORT_ROWS = 500
#: the path of the store's usage endpoint
ENDPOINT = "/api/gptstore/usage"
#: store answers that sending the same report again cannot change (see "Refused for good")
REFUSED_FOR_GOOD = frozenset({400, 403, 404, 409, 413, 422})

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS usage_reports (
        id TEXT PRIMARY KEY,
        store TEXT NOT NULL,
        after_row INTEGER NOT NULL,     -- the report covers log rows (after_row, last_row]
        last_row INTEGER NOT NULL,
        last_hash TEXT NOT NULL,        -- the chain hash of last_row when the report was built
        body TEXT NOT NULL,             -- the JSON sent (re-sent as is while pending)
        created_at TEXT NOT NULL,
        sent_at TEXT,                   -- NULL: pending (not yet acknowledged by the store)
        dropped_at TEXT                 -- set by --drop-pending: refused for good, never sent again
    )""",
    "CREATE INDEX IF NOT EXISTS usage_reports_store ON usage_reports (store, last_row)",
    """CREATE TABLE IF NOT EXISTS usage_reported_versions (  -- flat fees charged once per store and version
        store TEXT NOT NULL,
        digest TEXT NOT NULL,
        report TEXT NOT NULL,
        PRIMARY KEY (store, digest)
    )""",
)


@dataclass
class StoreReport:
    """What ``report`` did for one store."""

    store: str
    sent: list[str] = field(default_factory=list)  #: ids of the reports the store counted now
    duplicates: list[str] = field(default_factory=list)  #: ids it already had (sent before, not recorded)
    rows: int = 0  #: model-day rows sent
    calls: int = 0
    tokens: int = 0
    cost: dict[str, float] = field(default_factory=dict)  #: per currency
    error: str | None = None  #: why this store's report failed (the others were still sent)
    refused: str | None = None  #: id of a report the store refused for good (see ``--drop-pending``)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def store_key(url: str) -> str:
    """A store URL as reports and origins compare it; only ``http(s)://`` stores take reports."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{url[:200]} takes no usage reports",
                         hint="usage is reported to a `gptstore server` (--store http(s)://host:port)")
    return url.rstrip("/")


def _tables(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(usage_reports)")}
    if "dropped_at" not in columns:  # a log made before --drop-pending
        conn.execute("ALTER TABLE usage_reports ADD COLUMN dropped_at TEXT")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def origin_stores() -> list[str]:
    """Every ``http(s)`` store a logged model came from (the default targets of ``report``)."""
    stores = set()
    for digest in _digests():
        found = read_origin(config.home(), digest)
        if found and found.startswith(("http://", "https://")):
            stores.add(found.rstrip("/"))
    return sorted(stores)


def _digests() -> list[str]:
    if not usage.path().is_file():
        return []
    with usage.connection() as conn:
        return [row[0] for row in conn.execute("SELECT DISTINCT digest FROM generations")]


def pending(store: str) -> list[dict[str, Any]]:
    """The reports to ``store`` built but not acknowledged, oldest first (``{"id", "body"}``)."""
    with usage.connection() as conn:
        _tables(conn)
        rows = conn.execute("SELECT id, body FROM usage_reports WHERE store = ? AND sent_at IS NULL "
                            "AND dropped_at IS NULL ORDER BY last_row", (store,)).fetchall()
    return [{"id": id_, "body": body} for id_, body in rows]


def prepare(store: str) -> dict[str, Any] | None:
    """Build the next report to ``store`` and record it as pending: the log's rows after the last
    report to it, of models pulled from it, summed per model and UTC day (at most
    :data:`MAX_REPORT_ROWS`; the rest waits for the next report). None when there is nothing new."""
    store = store_key(store)
    origins: dict[str, bool] = {}
    with usage.connection() as conn:
        _tables(conn)
        with usage.immediate(conn):  # two reporters at once build the same report, once
            body = _build(conn, store, origins)
            if body is not None:
                flat = body.pop("_flat")
                conn.execute("INSERT OR IGNORE INTO usage_reports (id, store, after_row, last_row, last_hash, body, "
                             "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (body["id"], store, body["range"]["after"], body["range"]["last"],
                              body["range"]["hash"], json.dumps(body, sort_keys=True), _now()))
                conn.executemany("INSERT OR IGNORE INTO usage_reported_versions (store, digest, report) "
                                 "VALUES (?, ?, ?)", [(store, digest, body["id"]) for digest in flat])
    return body


def _build(conn: sqlite3.Connection, store: str, origins: dict[str, bool]) -> dict[str, Any] | None:
    after = conn.execute("SELECT COALESCE(MAX(last_row), 0) FROM usage_reports WHERE store = ?",
                         (store,)).fetchone()[0]
    charged = {row[0] for row in conn.execute("SELECT digest FROM usage_reported_versions WHERE store = ?", (store,))}
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    flat: set[str] = set()
    last = None
    cursor = conn.execute("SELECT id, hash, at, model, digest, prompt_tokens, completion_tokens, pricing, amount, "
                          "currency FROM generations WHERE id > ? ORDER BY id", (after,))
    for row_id, row_hash, at, model, digest, tokens_in, tokens_out, pricing, amount, currency in cursor:
        if digest not in origins:
            found = read_origin(config.home(), digest)
            origins[digest] = found is not None and found.rstrip("/") == store
        if origins[digest]:
            key = (model.split(":", 1)[0], at[:10], currency)
            if key not in groups and len(groups) >= MAX_REPORT_ROWS:
                break  # the rest goes in the next report
            group = groups.setdefault(key, {"repo": key[0], "day": key[1], "currency": currency, "calls": 0,
                                            "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0})
            group["calls"] += 1
            group["prompt_tokens"] += tokens_in
            group["completion_tokens"] += tokens_out
            if pricing == "flat":
                if digest not in charged and digest not in flat:
                    flat.add(digest)
                    group["cost"] += float(amount)
            else:
                group["cost"] += usage.price(pricing, amount, tokens_in + tokens_out)
        last = (row_id, row_hash)
    if last is None or not groups:
        return None
    report_id = hashlib.sha256(f"{store}\n{after}\n{last[0]}\n{last[1]}".encode()).hexdigest()
    rows = [dict(group, cost=round(group["cost"], 9)) for group in groups.values()]
    return {"id": report_id, "range": {"after": after, "last": last[0], "hash": last[1]}, "rows": rows,
            "_flat": sorted(flat)}


def send(store: str, body: str, token: str) -> dict[str, Any]:
    """POST one recorded report (its JSON, exactly as recorded) to ``store``; the store's answer."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    from .stores.bounded_http import BoundedHTTP, one_line

    if config.offline():
        raise StoreError(f"offline: cannot send a usage report to {store}",
                         hint="unset GPTSTORE_OFFLINE / HF_HUB_OFFLINE; the report waits and is sent next time")
    http = BoundedHTTP(store, token)
    try:
        _status, answer = http.post_json(store + ENDPOINT, body.encode(), what="a usage report")
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        said = one_line(exc.server_message or str(exc).splitlines()[0])
        if status == 401:
            raise AuthError(f"{store} did not accept the token for a usage report ({said})",
                            hint=f"run `gptstore login --store {store}` with a valid token") from None
        if status in REFUSED_FOR_GOOD:
            report_id = json.loads(body)["id"]
            raise ReportRefused(f"{store} refused usage report {report_id} (HTTP {status}): {said}",
                                hint=f"sending it again cannot change that, and it blocks the reports after it; "
                                     f"to give up on its usage, run `gptstore usage report --drop-pending "
                                     f"{report_id}`", report_id=report_id) from None
        raise StoreError(f"{store} refused the usage report (HTTP {status}): {said}",
                         hint="the report stays pending and is sent again by the next `gptstore usage report`"
                         ) from None
    except GPTStoreError:  # already one line (a timeout, a redirect refused, not a Hub API)
        raise
    except (OSError, httpx2.TransportError) as exc:
        raise StoreError(f"cannot reach {store} to send a usage report: {one_line(str(exc) or type(exc).__name__)}",
                         hint="check the URL and that the store is running; the report is sent next time") from None
    if not isinstance(answer, dict) or answer.get("id") != json.loads(body)["id"]:
        raise StoreError(f"{store} answered the usage report with something else than its receipt",
                         hint="is it a gptstore server? the report stays pending")
    return answer


def drop_pending(report_id: str, store: str | None = None) -> dict[str, Any]:
    """Give up on a pending report the store refused for good: it is never sent again, its rows
    are never reported (the next report starts after its range), and a flat fee it carried is
    charged in the next report that uses that version. Returns what was dropped: ``{"id",
    "store", "rows", "calls", "tokens", "cost"}``."""
    if not isinstance(report_id, str) or len(report_id) != 64 or report_id.strip("0123456789abcdef"):
        raise UsageError(f"{report_id[:100]!r} is not a usage report id (64 hex digits)",
                         hint="copy the id from the error of `gptstore usage report`")
    with usage.connection() as conn:
        _tables(conn)
        with usage.immediate(conn):
            row = conn.execute("SELECT store, body, sent_at, dropped_at FROM usage_reports WHERE id = ?",
                               (report_id,)).fetchone()
            if row is None or (store is not None and row[0] != store_key(store)):
                where = f" to {store_key(store)}" if store is not None else ""
                raise UsageError(f"there is no usage report {report_id}{where} in {usage.path()}",
                                 hint="copy the id from the error of `gptstore usage report`")
            if row[2] is not None:
                raise UsageError(f"usage report {report_id} was taken by {row[0]} on {row[2]}: nothing to drop")
            if row[3] is None:
                conn.execute("UPDATE usage_reports SET dropped_at = ? WHERE id = ?", (_now(), report_id))
                conn.execute("DELETE FROM usage_reported_versions WHERE report = ?", (report_id,))
    rows = json.loads(row[1])["rows"]
    cost: dict[str, float] = {}
    for item in rows:
        cost[item["currency"]] = cost.get(item["currency"], 0.0) + item["cost"]
    return {"id": report_id, "store": row[0], "rows": len(rows), "calls": sum(r["calls"] for r in rows),
            "tokens": sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows), "cost": cost}


def mark_sent(report_id: str) -> None:
    with usage.connection() as conn:
        conn.execute("UPDATE usage_reports SET sent_at = ? WHERE id = ? AND sent_at IS NULL", (_now(), report_id))


def _token(store: str, token: str | None, named: bool) -> str:
    from .stores.auth import token_for

    found = (token or config.token()) if named else None
    found = found or token_for(store)
    if not found:
        raise AuthError(f"no token for {store}: a usage report says which user used the models",
                        hint=f"run `gptstore login --store {store}` (or pass --token with --store)")
    return found


def report_to(store: str, *, token: str | None = None, named: bool = True) -> StoreReport:
    """Send ``store`` every pending report, then every new one, until nothing is left."""
    store = store_key(store)
    result = StoreReport(store)
    if not usage.path().is_file():
        return result  # nothing was ever logged (and no empty log is made)
    secret = _token(store, token, named)
    while True:
        waiting = pending(store)
        if not waiting:
            if prepare(store) is None:
                return result
            waiting = pending(store)
            if not waiting:  # a report with this id was sent before: nothing new after all
                return result
        for item in waiting:
            answer = send(store, item["body"], secret)
            mark_sent(item["id"])
            (result.duplicates if answer.get("duplicate") else result.sent).append(item["id"])
            if not answer.get("duplicate"):
                for row in json.loads(item["body"])["rows"]:
                    result.rows += 1
                    result.calls += row["calls"]
                    result.tokens += row["prompt_tokens"] + row["completion_tokens"]
                    result.cost[row["currency"]] = result.cost.get(row["currency"], 0.0) + row["cost"]


def report(store: str | None = None, *, token: str | None = None) -> list[StoreReport]:
    """Report the usage log to ``store`` (only the models pulled from it), or, without one, to
    every store a logged model came from. The chain is verified first (an edited log is not
    reported). With ``store``, an error raises; without, each store's error is in its
    :class:`StoreReport` and the other stores still get theirs."""
    chain = usage.verify()
    if not chain.ok:
        raise UsageError(f"the usage log is damaged: {chain.message}",
                         hint="`gptstore usage verify` names the row; a damaged log is not reported")
    if store is not None:
        return [report_to(store, token=token, named=True)]
    results = []
    for url in origin_stores():
        try:
            results.append(report_to(url, named=False))
        except GPTStoreError as exc:
            results.append(StoreReport(url, error=str(exc),
                                       refused=exc.report_id if isinstance(exc, ReportRefused) else None))
    return results
