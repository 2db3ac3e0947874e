"""Gated and paid access: each repo's ``gated`` setting, users' access requests, and who may read files.

The Hub's model, so stock clients understand it:

- **setting**: ``gated`` is ``False``, ``"auto"`` or ``"manual"`` (``HfApi.update_repo_settings``;
  ``model_info``'s ``gated`` field). A repo with no row in ``repo_gating`` never had a setting;
  the first commit that brings a manifest priced other than free to such a repo gates it
  ``"manual"`` (:func:`gate_paid_by_default`), so a paid model is never downloadable by default.
  Setting ``gated=False`` later is a choice the store keeps.
- **requests**: one per user per repo (``pending`` → ``accepted`` / ``rejected``, and back).
  When a user asks, the plugins' ``decide_access`` hook may decide (e.g. after a payment);
  undecided, ``"auto"`` accepts at once and ``"manual"`` waits for a namespace member.
- **access**: file contents (``resolve``) of a gated repo are for namespace members and users
  whose request was accepted. Others get the Hub's answer, ``X-Error-Code: GatedRepo`` (401
  anonymous, 403 signed in), which ``huggingface_hub`` raises as ``GatedRepoError``. Metadata
  (model info, file lists) stays visible, as on the Hub: a consumer sees what they would buy.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from .accounts import Principal
from .catalog import Repo
from .db import Database
from .http import HubError
from .timeutil import now

Gated = Literal[False, "auto", "manual"]
Status = Literal["pending", "accepted", "rejected"]
STATUSES: tuple[Status, ...] = ("pending", "accepted", "rejected")
#: most fields (and characters per field) a request may carry
MAX_FIELDS = 16
MAX_FIELD_CHARS = 500
#: longest rejection reason kept
MAX_REASON_CHARS = 1000


@dataclass(frozen=True)
class AccessRequest:
    id: str
    repo: int
    user: str
    status: Status
    fields: dict[str, str]
    reason: str | None
    decided_by: str | None
    created_at: str
    updated_at: str

    def hub_json(self, fullname: str | None = None) -> dict[str, Any]:
        """As the Hub lists it (``HfApi.list_*_access_requests`` parse this)."""
        return {"user": {"user": self.user, "fullname": fullname or self.user, "email": None},
                "requestId": self.id, "status": self.status, "timestamp": self.updated_at,
                "fields": self.fields or None}


def _request(row: Any) -> AccessRequest:
    return AccessRequest(row["id"], row["repo"], row["user"], row["status"], json.loads(row["fields"] or "{}"),
                         row["reason"], row["decided_by"], row["created_at"], row["updated_at"])


# -- the setting ---------------------------------------------------------------------------
def gated(db: Database, repo_id: int) -> Gated:
    row = db.one("SELECT mode FROM repo_gating WHERE repo = ?", (repo_id,))
    return False if row is None or row["mode"] == "off" else row["mode"]


def gated_many(db: Database, repo_ids: list[int]) -> dict[int, Gated]:
    """The setting of each of ``repo_ids`` (a listing's page); missing ids are not gated."""
    marks = ",".join("?" * len(repo_ids)) or "NULL"
    rows = db.all(f"SELECT repo, mode FROM repo_gating WHERE repo IN ({marks}) AND mode != 'off'", repo_ids)
    return {row["repo"]: row["mode"] for row in rows}


def set_gated(db: Database, repo_id: int, mode: Gated) -> None:
    db.execute("INSERT INTO repo_gating (repo, mode, updated_at) VALUES (?, ?, ?) "
               "ON CONFLICT (repo) DO UPDATE SET mode = excluded.mode, updated_at = excluded.updated_at",
               (repo_id, mode or "off", now()))


def gate_paid_by_default(db: Database, repo_id: int) -> None:
    """Gate ``"manual"`` a repo whose new manifest is priced, unless it ever had a setting."""
    db.execute("INSERT INTO repo_gating (repo, mode, updated_at) VALUES (?, 'manual', ?) ON CONFLICT DO NOTHING",
               (repo_id, now()))


# -- access ----------------------------------------------------------------------------------
def has_access(db: Database, principal: Principal | None, repo: Repo) -> bool:
    if principal is not None and principal.member_of(repo.namespace):
        return True
    # one query: the setting (no row: never gated) and the signed-in caller's request, if any
    row = db.one("SELECT g.mode, a.status FROM repo_gating g "
                 "LEFT JOIN access_requests a ON a.repo = g.repo AND a.user = ? WHERE g.repo = ?",
                 (principal.user if principal is not None else None, repo.id))
    if row is None or row["mode"] == "off":
        return True
    return principal is not None and row["status"] == "accepted"


def require_access(db: Database, principal: Principal | None, repo: Repo, page_url: str) -> None:
    """Nothing when the caller may read the repo's files; else the Hub's GatedRepo answer."""
    if has_access(db, principal, repo):
        return
    if principal is None:
        raise HubError(401, f"Access to model {repo.repo_id} is restricted. You must have access to it and be "
                            "authenticated to access it. Please log in.", code="GatedRepo")
    raise HubError(403, f"Access to model {repo.repo_id} is restricted and you are not in the authorized list. "
                        f"Visit {page_url} to ask for access.", code="GatedRepo")


# -- requests --------------------------------------------------------------------------------
def user_of_request(db: Database, repo: Repo, request_id: str) -> str | None:
    """Who made the request ``request_id`` on ``repo`` (None when there is no such request)."""
    row = db.one("SELECT user FROM access_requests WHERE repo = ? AND id = ?", (repo.id, request_id))
    return row["user"] if row else None


def request_of(db: Database, repo: Repo, user: str) -> AccessRequest | None:
    row = db.one("SELECT * FROM access_requests WHERE repo = ? AND user = ?", (repo.id, user))
    return _request(row) if row else None


def status_of(db: Database, repo: Repo, user: str) -> Status | None:
    row = db.one("SELECT status FROM access_requests WHERE repo = ? AND user = ?", (repo.id, user))
    return row["status"] if row else None


def requests(db: Database, repo: Repo, status: Status) -> list[AccessRequest]:
    rows = db.all("SELECT * FROM access_requests WHERE repo = ? AND status = ? ORDER BY updated_at, user",
                  (repo.id, status))
    return [_request(row) for row in rows]


def pending_in(db: Database, namespace: str) -> list[tuple[str, AccessRequest]]:
    """(repo name, request) of every pending request on ``namespace``'s repos (the dashboard)."""
    rows = db.all("SELECT r.name AS repo_name, a.* FROM access_requests a JOIN repos r ON r.id = a.repo "
                  "WHERE r.namespace = ? AND a.status = 'pending' ORDER BY a.created_at, a.user", (namespace,))
    return [(row["repo_name"], _request(row)) for row in rows]


def clean_fields(fields: Any) -> dict[str, str]:
    """A request's fields: at most :data:`MAX_FIELDS` string values, each capped (400 otherwise)."""
    if fields is None:
        return {}
    if not isinstance(fields, dict) or len(fields) > MAX_FIELDS:
        raise HubError(400, f"fields must be an object of at most {MAX_FIELDS} text values")
    clean = {}
    for key, value in fields.items():
        if not isinstance(value, (str, int, float, bool)) or len(str(key)) > 100:
            raise HubError(400, "each field must be a short name with a text value")
        clean[str(key)] = str(value)[:MAX_FIELD_CHARS]
    return clean


def ask(db: Database, repo: Repo, user: str, fields: dict[str, str]) -> AccessRequest:
    """Record ``user``'s request for ``repo`` and decide it as far as rules and plugins can.

    A request already accepted stays accepted; a pending or rejected one is asked again (its
    fields replaced). The ``decide_access`` hook runs outside the write transaction."""
    mode = gated(db, repo.id)
    if not mode:
        raise HubError(400, f"{repo.repo_id} is not gated: download it without asking")
    existing = request_of(db, repo, user)
    if existing is not None and existing.status == "accepted":
        return existing
    decision, decided_by = _decide(repo, user, fields, mode)
    if decision is None and mode == "auto":
        decision, decided_by = "accepted", "auto"
    return _upsert(db, repo, user, decision or "pending", decided_by, fields=json.dumps(fields))


def _decide(repo: Repo, user: str, fields: dict[str, str], mode: str) -> tuple[Status | None, str | None]:
    """The first plugin's decision (``decide_access``), or (None, None)."""
    from .. import plugins

    pricing = (repo.summary or {}).get("pricing")
    for name, result in plugins.call_each("decide_access", strict=False, repo_id=repo.repo_id, user=user,
                                          fields=dict(fields), gated=mode, pricing=pricing):
        if result in ("accepted", "rejected"):
            return result, f"plugin:{name}"
        if result is not None:
            plugins.report(name, "decide_access", f"returned {str(result)[:80]!r}, not 'accepted', 'rejected' or None")
    return None, None


def handle(db: Database, repo: Repo, user: str, status: Status, *, by: str, reason: str | None = None) -> AccessRequest:
    """Move ``user``'s request to ``status`` (accept, reject, or cancel back to pending); 404 without one."""
    if status not in STATUSES:
        raise HubError(400, f"status must be one of {', '.join(STATUSES)}")
    if reason is not None and status != "rejected":
        raise HubError(400, "a rejection reason is only taken when rejecting")
    with db.transaction():
        cursor = db.execute("UPDATE access_requests SET status = ?, reason = ?, decided_by = ?, updated_at = ? "
                            "WHERE repo = ? AND user = ?",
                            (status, (reason or "")[:MAX_REASON_CHARS] or None, by, now(), repo.id, user))
    if cursor.rowcount == 0:
        raise HubError(404, f"{user} has no access request for {repo.repo_id}", code="EntryNotFound")
    found = request_of(db, repo, user)
    assert found is not None
    return found


def grant(db: Database, repo: Repo, user: str, *, by: str) -> AccessRequest:
    """Give ``user`` access without a request (400 when they already have it)."""
    if status_of(db, repo, user) == "accepted":
        raise HubError(400, f"{user} already has access to {repo.repo_id}")
    return _upsert(db, repo, user, "accepted", by)


def _upsert(db: Database, repo: Repo, user: str, status: Status, decided_by: str | None, *,
            fields: str | None = None) -> AccessRequest:
    """Write ``user``'s request for ``repo`` (a new one, or theirs updated, its reason cleared)
    and read it back. Without ``fields`` (a grant) a request keeps the fields it was asked with."""
    stamp = now()
    with db.transaction():
        db.execute("INSERT INTO access_requests (id, repo, user, status, fields, reason, decided_by, created_at, "
                   "updated_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?) ON CONFLICT (repo, user) DO UPDATE SET "
                   "status = excluded.status, fields = COALESCE(excluded.fields, access_requests.fields), "
                   "reason = NULL, decided_by = excluded.decided_by, updated_at = excluded.updated_at",
                   (secrets.token_hex(12), repo.id, user, status, fields, decided_by, stamp, stamp))
    found = request_of(db, repo, user)
    assert found is not None
    return found


def withdraw(db: Database, repo: Repo, user: str) -> bool:
    """Delete ``user``'s own request (and with it any access it gave); False when there was none."""
    with db.transaction():
        return db.execute("DELETE FROM access_requests WHERE repo = ? AND user = ?", (repo.id, user)).rowcount > 0
