"""Users, organisations, members and tokens of a store server.

A namespace is a user or an org; repos live in namespaces. Tokens are ``gst_`` plus 43 random
URL-safe characters; only their sha256 is stored, with a short public ``id`` to revoke them by.
Used by the admin CLI (``gptstore server user add …``) and by the server's auth.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from ..errors import ConflictError, InvalidReference, NotFoundError, UsageError
from ..refs import check_segment
from .db import Database
from .timeutil import now

Scope = Literal["read", "write"]
TOKEN_PREFIX = "gst_"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the token's user, its scope and the orgs the user belongs to."""

    user: str
    scope: Scope
    token_id: str
    token_name: str
    orgs: tuple[str, ...]

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.user, *self.orgs)

    def member_of(self, namespace: str) -> bool:
        return namespace == self.user or namespace in self.orgs


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    scope: Scope
    name: str
    created_at: str
    revoked_at: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


#: first path segments the store itself serves (API, pages, probes): no user or org may take one,
#: so ``/models`` or ``/login`` always mean the store's page and never a namespace's profile
RESERVED_NAMES = ("api", "models", "login", "logout", "healthz", "readyz", "settings", "organizations")


def _check_name(name: str, what: str) -> None:
    try:
        check_segment(name, name, f"{what} name")
    except InvalidReference as exc:
        reason = exc.message.partition(": ")[2]
        raise UsageError(f"invalid {what} name {name!r}: {reason}") from None
    if name.lower() in RESERVED_NAMES:
        raise UsageError(f"invalid {what} name {name!r}: the store serves its own pages and API under /{name.lower()}",
                         hint="pick another name")


#: longest display name (``--fullname``) a user or org may have
MAX_FULLNAME = 100


def _check_fullname(fullname: str | None) -> str | None:
    """``fullname`` stripped (None when empty); UsageError for control characters or a long one."""
    if fullname is None or not fullname.strip():
        return None
    fullname = fullname.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in fullname):
        raise UsageError("invalid full name: control characters are not allowed", hint="use plain text")
    if len(fullname) > MAX_FULLNAME:
        raise UsageError(f"invalid full name: longer than {MAX_FULLNAME} characters", hint="shorten it")
    return fullname


class Accounts:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- namespaces ------------------------------------------------------------------------
    def kind(self, namespace: str) -> str | None:
        row = self.db.one("SELECT kind FROM namespaces WHERE name = ?", (namespace,))
        return row["kind"] if row else None

    def _add_namespace(self, name: str, kind: str, fullname: str | None) -> None:
        _check_name(name, kind)
        fullname = _check_fullname(fullname)
        with self.db.transaction():
            existing = self.kind(name)
            if existing:
                raise ConflictError(f"the name {name!r} is already taken by a {existing}",
                                    hint="pick another name")
            self.db.execute("INSERT INTO namespaces (name, kind, created_at, fullname) VALUES (?, ?, ?, ?)",
                            (name, kind, now(), fullname))

    def add_user(self, name: str, *, fullname: str | None = None) -> None:
        self._add_namespace(name, "user", fullname)

    def add_org(self, name: str, members: list[str] = (), *, fullname: str | None = None) -> None:
        with self.db.transaction():
            self._add_namespace(name, "org", fullname)
            for user in members:
                self.add_member(name, user)

    def add_member(self, org: str, user: str) -> None:
        with self.db.transaction():
            if self.kind(org) != "org":
                raise NotFoundError(f"no organisation {org!r}", hint="create it with `gptstore server org add`")
            self._require_user(user)
            self.db.execute("INSERT INTO members (org, user) VALUES (?, ?) ON CONFLICT DO NOTHING", (org, user))

    def remove_member(self, org: str, user: str) -> None:
        if not self.db.execute("DELETE FROM members WHERE org = ? AND user = ?", (org, user)).rowcount:
            raise NotFoundError(f"{user!r} is not a member of {org!r}")

    def fullnames(self, names: tuple[str, ...]) -> dict[str, str]:
        """The display name of each of ``names`` (the name itself where none was given)."""
        marks = ",".join("?" * len(names)) or "NULL"
        rows = self.db.all(f"SELECT name, fullname FROM namespaces WHERE name IN ({marks})", names)
        given = {row["name"]: row["fullname"] for row in rows}
        return {name: given.get(name) or name for name in names}

    def _require_user(self, user: str) -> None:
        if self.kind(user) != "user":
            raise NotFoundError(f"no user {user!r}", hint="create it with `gptstore server user add`")

    def users(self) -> list[str]:
        return [r["name"] for r in self.db.all("SELECT name FROM namespaces WHERE kind = 'user' ORDER BY name")]

    def orgs(self) -> dict[str, list[str]]:
        rows = self.db.all("SELECT n.name, m.user FROM namespaces n LEFT JOIN members m ON m.org = n.name "
                           "WHERE n.kind = 'org' ORDER BY n.name, m.user")
        result: dict[str, list[str]] = {}
        for row in rows:
            result.setdefault(row["name"], [])
            if row["user"]:
                result[row["name"]].append(row["user"])
        return result

    def orgs_of(self, user: str) -> tuple[str, ...]:
        rows = self.db.all("SELECT org FROM members WHERE user = ? ORDER BY org", (user,))
        return tuple(r["org"] for r in rows)

    # -- tokens ----------------------------------------------------------------------------
    def create_token(self, user: str, scope: Scope, name: str | None = None) -> tuple[str, TokenInfo]:
        """Make a token; returns (the secret token, shown only now, and its info)."""
        if scope not in ("read", "write"):
            raise UsageError(f"unknown scope {scope!r}", hint="use read or write")
        self._require_user(user)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = secrets.token_hex(6)
        created = now()
        name = name or f"{user}-{scope}"
        self.db.execute("INSERT INTO tokens (id, hash, user, scope, name, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (token_id, hash_token(token), user, scope, name, created))
        return token, TokenInfo(token_id, user, scope, name, created, None)

    def revoke_token(self, token_or_id: str) -> TokenInfo:
        """Revoke by id or by the token itself."""
        key = hash_token(token_or_id) if token_or_id.startswith(TOKEN_PREFIX) else None
        row = self.db.one("SELECT * FROM tokens WHERE id = ? OR hash = ?", (token_or_id, key))
        if row is None:
            raise NotFoundError(f"no token {token_or_id!r}", hint="see `gptstore server token list`")
        self.db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now(), row["id"]))
        return self._token_info(self.db.one("SELECT * FROM tokens WHERE id = ?", (row["id"],)))

    def tokens(self, user: str | None = None) -> list[TokenInfo]:
        rows = self.db.all("SELECT * FROM tokens WHERE ? IS NULL OR user = ? ORDER BY created_at, id", (user, user))
        return [self._token_info(r) for r in rows]

    @staticmethod
    def _token_info(row) -> TokenInfo:
        return TokenInfo(row["id"], row["user"], row["scope"], row["name"], row["created_at"], row["revoked_at"])

    def principal(self, token: str) -> Principal | None:
        """The principal a token acts as, or None when it is unknown or revoked."""
        row = self.db.one("SELECT id, user, scope, name FROM tokens WHERE hash = ? AND revoked_at IS NULL",
                          (hash_token(token),))
        if row is None:
            return None
        return Principal(row["user"], row["scope"], row["id"], row["name"], self.orgs_of(row["user"]))

    def principal_by_token_id(self, token_id: str) -> Principal | None:
        """The principal of the token with id ``token_id`` (a web session), or None when it is
        unknown or revoked: revoking a token ends the sessions signed in with it."""
        row = self.db.one("SELECT id, user, scope, name FROM tokens WHERE id = ? AND revoked_at IS NULL", (token_id,))
        if row is None:
            return None
        return Principal(row["user"], row["scope"], row["id"], row["name"], self.orgs_of(row["user"]))
