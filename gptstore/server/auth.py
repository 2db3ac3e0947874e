"""Who may do what, and signed LFS upload URLs.

- No ``Authorization`` header: anonymous, may read public repos.
- ``Authorization: Bearer <token>`` with an unknown or revoked token: 401 with
  ``X-Error-Message: Invalid credentials in Authorization header`` (what the Hub answers).
- A private repo is a 404 ``RepoNotFound`` to anyone who is not its namespace's user or a member
  of its org. Writes need a *write* token of that user or member.
- LFS upload PUTs carry no auth header (the Hub client never sends one there), so their URLs are
  signed: HMAC-SHA256 over (action, repo, oid, size, expiry) with the server's key.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from .accounts import Accounts, Principal
from .catalog import Repo
from .http import HubError, forbidden, repo_not_found, unauthorized

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


def principal_from_header(accounts: Accounts, header: str | None) -> Principal | None:
    """The request's principal; None for anonymous; 401 for a bad token."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HubError(401, INVALID_CREDENTIALS)
    principal = accounts.principal(token)
    if principal is None:
        raise HubError(401, INVALID_CREDENTIALS)
    return principal


def can_read(principal: Principal | None, repo: Repo) -> bool:
    return not repo.private or (principal is not None and principal.member_of(repo.namespace))


def require_read(principal: Principal | None, repo: Repo | None) -> Repo:
    """The repo, or 404 RepoNotFound when it does not exist or the caller may not see it."""
    if repo is None or not can_read(principal, repo):
        raise repo_not_found()
    return repo


def require_write(principal: Principal | None, namespace: str) -> Principal:
    """A principal with a write token that may write to ``namespace`` (else 401/403)."""
    if principal is None:
        raise unauthorized("authentication required: pass a write token (Authorization: Bearer …)")
    if principal.scope != "write":
        raise forbidden(f"the token {principal.token_name!r} is read-only; create one with --scope write")
    if not principal.member_of(namespace):
        raise forbidden(f"{principal.user} may not write to the namespace {namespace!r}")
    return principal


def require_repo_write(principal: Principal | None, repo: Repo | None) -> tuple[Repo, Principal]:
    repo = require_read(principal, repo)
    return repo, require_write(principal, repo.namespace)


class UrlSigner:
    """Sign and check the query string of LFS upload URLs."""

    def __init__(self, key: bytes, ttl: int) -> None:
        self.key = key
        self.ttl = ttl

    def _mac(self, action: str, repo_id: str, oid: str, size: int, expires: int) -> str:
        message = f"{action}\n{repo_id}\n{oid}\n{size}\n{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def sign(self, action: str, repo_id: str, oid: str, size: int) -> str:
        expires = int(time.time()) + self.ttl
        return f"size={size}&expires={expires}&sig={self._mac(action, repo_id, oid, size, expires)}"

    def check(self, action: str, repo_id: str, oid: str, query: dict[str, str]) -> int:
        """The signed size; 403 when the signature is missing, wrong or expired."""
        try:
            size, expires, sig = int(query["size"]), int(query["expires"]), query["sig"]
        except (KeyError, ValueError):
            raise forbidden("this upload URL is not signed; ask the LFS batch endpoint for one") from None
        if not hmac.compare_digest(sig, self._mac(action, repo_id, oid, size, expires)):
            raise forbidden("the upload URL's signature does not match")
        if expires < time.time():
            raise forbidden("the upload URL has expired; ask the LFS batch endpoint for a new one")
        return size
