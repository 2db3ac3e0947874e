"""``/{ns}/-/dashboard``: the provider's view of a namespace, for its members only.

Downloads per model per day (a chart per model and a table of the days with downloads),
ratings (average and count per model), pending access requests with approve / reject forms
(posted to ``pages_access.decide``), and a slot for reported usage and revenue
(``_usage.html``, filled by the usage reports; it gets ``namespace`` and ``usage``).

Anyone who is not a member sees the same 404 page as for an unknown page (the dashboard of a
namespace is not even confirmed to exist); a visitor who is not signed in is sent to sign in
and brought back.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from .. import gating
from ..context import Call
from ..metering import dashboard_usage
from ..reviews import Reviews
from .charts import bar_chart
from .pages_store import html_errors, not_found_page
from .sessions import web_principal
from .templating import redirect, render

#: days of downloads the dashboard shows
DASHBOARD_DAYS = 30
#: most models one dashboard lists
MAX_MODELS = 200


def _days() -> list[str]:
    today = datetime.now(timezone.utc).date()
    return [(today - timedelta(days=DASHBOARD_DAYS - 1 - i)).isoformat() for i in range(DASHBOARD_DAYS)]


def _models(call: Call, namespace: str) -> list[dict[str, Any]]:
    """Each model of ``namespace``: downloads per day (chart + non-zero days), rating, gating."""
    db = call.state.db
    days = _days()
    repos = call.state.catalog.repos_of(namespace, limit=MAX_MODELS)
    counts: dict[int, dict[str, int]] = {repo.id: {} for repo in repos}
    marks = ",".join("?" * len(repos)) or "NULL"
    for row in db.all(f"SELECT repo, day, count FROM daily_downloads WHERE repo IN ({marks}) AND day >= ?",
                      [*(repo.id for repo in repos), days[0]]):
        counts[row["repo"]][row["day"]] = row["count"]
    ratings = Reviews(db).summaries([repo.id for repo in repos])
    gates = gating.gated_many(db, [repo.id for repo in repos])
    models = []
    for repo in repos:
        points = [(day, counts[repo.id].get(day, 0)) for day in days]
        models.append({
            "repo": repo, "downloads": repo.downloads, "recent": sum(v for _, v in points),
            "chart": bar_chart(points, width=360, height=60, label=f"{repo.name}: downloads per day"),
            "days": [(day, count) for day, count in reversed(points) if count],
            "rating": ratings[repo.id], "gated": gates.get(repo.id, False),
        })
    return models


@html_errors
def dashboard(call: Call) -> Response:
    principal = web_principal(call)
    requested = call.params["namespace"]
    if principal is None:
        return redirect(call, "/login?next=" + quote(f"/{quote(requested, safe='')}/-/dashboard", safe=""))
    namespace = call.state.catalog.namespace(requested) or requested
    if not principal.member_of(namespace):
        return not_found_page(call, "There is no such page on this store.")
    models = _models(call, namespace)
    pending = [{"model": name, "request": request}
               for name, request in gating.pending_in(call.state.db, namespace)]
    return render(call, "dashboard.html", namespace=namespace, models=models, pending=pending,
                  days=DASHBOARD_DAYS, may_decide=principal.scope == "write",
                  total_downloads=sum(m["downloads"] for m in models),
                  usage=dashboard_usage(call.state.db, namespace))  # reported usage, for `_usage.html`
