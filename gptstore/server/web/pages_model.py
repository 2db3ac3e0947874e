"""The model page (``/{namespace}/{name}``) and its review form.

Everything the page shows comes from main's commit: the manifest (``gptstore.json``) and model
card (``README.md``) read back from storage (size-capped), the files with their sizes, the
version tags with their dates, the signature's status from the catalogue (verified = signed by
a key registered for the namespace), downloads of the last 30 days and the reviews. A private
model is a 404 page to anyone outside its namespace, exactly as the API answers.

Reviews are written through the page's own form (CSRF-checked, ``web.sessions.form``) with the
API's rules (``api_store``): a write token's session, not a member of the model's namespace,
1–5 stars and up to 2,000 characters. After a write the browser is sent back (303).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import ValidationError
from starlette.responses import Response

from ...errors import GPTStoreError
from ...manifest import OMS_SIGNATURE_FILE, SIGNATURE_FILE, Manifest
from ...refs import parse_reference
from ..api_store import ReviewBody
from ..catalog import MAIN, Repo
from ..catalogue import facets, read_file, read_manifest, refresh
from ..context import Call
from ..http import HubError, bad_request, forbidden, validation_message
from ..keys import MAX_SIGNATURE
from ..reviews import Reviews
from .charts import bar_chart
from .markdown import MAX_CARD_CHARS, render_card
from .pages_access import access_context, model_path, visible_repo
from .pages_store import html_errors, not_found_page, price_text
from .sessions import form, web_principal
from .templating import redirect, render

#: days of downloads the chart shows
CHART_DAYS = 30
#: most files and versions the page lists
MAX_FILES = 500
MAX_VERSIONS = 100
#: reviews the page shows
PAGE_REVIEWS = 50
README = "README.md"


def _repo(call: Call) -> Repo | None:
    """The model the path names, if this visitor may see it."""
    return visible_repo(call, call.params["namespace"], call.params["name"])


def _read(call: Call, commit: str, path: str, limit: int) -> bytes | None:
    return read_file(call.state.db, call.state.storage, commit, path, limit)


def _signature(call: Call, repo: Repo, commit: str, facet: dict[str, Any] | None) -> dict[str, Any]:
    """``{state: verified | unverified | unsigned, keyids}``: whether main carries a signature
    and which registered key (if any) it verifies with."""
    if facet and facet.get("verified"):
        return {"state": "verified", "keyids": [facet["signer"]]}
    data = _read(call, commit, SIGNATURE_FILE, MAX_SIGNATURE)
    if data is None:  # a model.sig names no key id gptstore can read without checking it
        signed = _read(call, commit, OMS_SIGNATURE_FILE, MAX_SIGNATURE) is not None
        return {"state": "unverified" if signed else "unsigned", "keyids": []}
    from ...signing import parse_envelope

    try:
        keyids = [keyid for keyid, _ in parse_envelope(data).signatures if keyid]
    except GPTStoreError:
        keyids = []
    return {"state": "unverified", "keyids": keyids}


def _downloads_chart(call: Call, repo: Repo) -> tuple[str, int]:
    today = datetime.now(timezone.utc).date()
    days = [(today - timedelta(days=CHART_DAYS - 1 - i)).isoformat() for i in range(CHART_DAYS)]
    rows = call.state.db.all("SELECT day, count FROM daily_downloads WHERE repo = ? AND day >= ?",
                             (repo.id, days[0]))
    counts = {row["day"]: row["count"] for row in rows}
    points = [(day, counts.get(day, 0)) for day in days]
    return bar_chart(points, label=f"downloads per day, last {CHART_DAYS} days"), sum(v for _, v in points)


def _versions(call: Call, repo: Repo) -> list[dict[str, str]]:
    rows = call.state.db.all("SELECT r.name, c.created_at, c.id FROM refs r JOIN commits c ON c.id = r.target "
                             "WHERE r.repo = ? AND r.kind = 'tag' ORDER BY c.created_at DESC, r.name LIMIT ?",
                             (repo.id, MAX_VERSIONS))
    return [{"tag": row["name"], "date": row["created_at"][:10], "commit": row["id"][:12]} for row in rows]


def _base(manifest: Manifest | None) -> dict[str, str] | None:
    if manifest is None or manifest.format.base is None:
        return None
    base = manifest.format.base
    try:
        reference = parse_reference(base.reference)
    except GPTStoreError:
        return {"reference": base.reference, "digest": base.digest, "namespace": "", "name": ""}
    return {"reference": base.reference, "digest": base.digest, "namespace": reference.namespace,
            "name": reference.name}


def _snippets(call: Call, repo: Repo, manifest: Manifest | None) -> dict[str, str]:
    reference = f"{repo.repo_id}:{manifest.version}" if manifest else repo.repo_id
    store = call.base_url
    return {"pull": f"gptstore pull --store {store} {reference}",
            "run": f'gptstore run {reference} "Hello"',
            "python": f'import gptstore\n\nmodel = gptstore.load("{reference}", store="{store}")\n'
                      'print(model.generate("Hello").text)'}


def _metrics(manifest: Manifest | None) -> list[dict[str, Any]]:
    """Each metric with whether ``gptstore eval --check`` can re-check it and how (or why not),
    in the words ``gptstore show`` uses (:func:`gptstore.evaluation.claim_status`)."""
    if manifest is None or not manifest.metrics:
        return []
    from ...evaluation import claim_status  # pure; imported here so the server's start stays light

    shown = []
    for metric in manifest.metrics:
        checkable, how = claim_status(metric)
        shown.append({"metric": metric, "measured_on": metric.task or metric.dataset, "checkable": checkable,
                      "recheck": f"{'re-checkable' if checkable else 'cannot be re-checked'}: {how}"})
    return shown


def _review_rights(call: Call, repo: Repo) -> tuple[bool, str | None]:
    """Whether the visitor may review ``repo`` here, and why not."""
    principal = web_principal(call)
    if principal is None:
        return False, "Sign in to rate and review this model."
    if principal.scope != "write":
        return False, "You signed in with a read-only token; reviews need a token with --scope write."
    if principal.member_of(repo.namespace):
        return False, f"You publish this model (as a member of {repo.namespace}), so you cannot review it."
    return True, None


@html_errors
def model_page(call: Call) -> Response:
    repo = _repo(call)
    if repo is None:
        return not_found_page(call, "There is no such model on this store (or it is private).")
    catalog, db = call.state.catalog, call.state.db
    head = catalog.branch_head(repo, MAIN)
    if head is None:
        return not_found_page(call)
    refresh(db, call.state.storage)
    facet = facets(db, [repo.id]).get(repo.id)
    manifest = read_manifest(db, call.state.storage, head)
    readme = _read(call, head, README, 4 * MAX_CARD_CHARS)
    card_html = render_card(readme.decode("utf-8", "replace")) if readme else None
    files = catalog.files(head)
    chart, recent = _downloads_chart(call, repo)
    reviews = Reviews(db)
    principal = web_principal(call)
    may_review, why_not = _review_rights(call, repo)
    return render(
        call, "model.html", repo=repo, manifest=manifest, facet=facet or {}, card_html=card_html,
        price=price_text(manifest.pricing.model_dump()) if manifest else None, metrics=_metrics(manifest),
        signature=_signature(call, repo, head, facet), versions=_versions(call, repo),
        files=files[:MAX_FILES], more_files=max(len(files) - MAX_FILES, 0),
        total_size=sum(row.size for row in files), base=_base(manifest), snippets=_snippets(call, repo, manifest),
        chart=chart, recent_downloads=recent, rating=reviews.summary(repo.id),
        reviews=reviews.list(repo.id, limit=PAGE_REVIEWS),
        own=reviews.get(repo.id, principal.user) if principal else None,
        may_review=may_review, why_not=why_not, head=head, notice=call.request.query_params.get("saved"),
        access=access_context(call, repo))


def _writable_review(call: Call) -> tuple[Repo, str, dict[str, str]]:
    fields = form(call)  # 403 unless the form came from this store's page
    repo = _repo(call)
    if repo is None:
        raise HubError(404, "There is no such model on this store (or it is private).")
    may_review, why_not = _review_rights(call, repo)
    if not may_review:
        raise forbidden(why_not or "you may not review this model")
    principal = web_principal(call)
    assert principal is not None
    return repo, principal.user, fields


@html_errors
def save_review(call: Call) -> Response:
    repo, user, fields = _writable_review(call)
    stars = fields.get("stars", "")
    if not (stars.isdigit() and len(stars) == 1):
        raise bad_request("Pick 1 to 5 stars for your review.")
    text = fields.get("text", "").replace("\r\n", "\n").replace("\r", "\n")
    try:
        body = ReviewBody.model_validate({"stars": int(stars), "text": text})
    except ValidationError as exc:
        raise bad_request(validation_message(exc, "review")) from None
    Reviews(call.state.db).put(repo.id, user, body.stars, body.text)
    return redirect(call, model_path(repo) + "?saved=1#reviews")


@html_errors
def delete_review(call: Call) -> Response:
    repo, user, _ = _writable_review(call)
    Reviews(call.state.db).delete(repo.id, user)
    return redirect(call, model_path(repo) + "#reviews")
