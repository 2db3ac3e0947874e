"""What every handler gets: the server's state and one call (request, path parameters, caller)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from .accounts import Accounts, Principal
from .auth import UrlSigner, principal_from_header, require_read, require_repo_write
from .catalog import Catalog, Repo
from .commits import Committer
from .db import Database
from .http import revision_not_found
from .settings import ServerSettings
from .storage import Storage


@dataclass
class State:
    settings: ServerSettings
    db: Database
    accounts: Accounts
    catalog: Catalog
    storage: Storage
    signer: UrlSigner
    committer: Committer


@dataclass
class Call:
    state: State
    request: Request
    params: dict[str, str]
    #: the raw request path without the public URL's prefix (what routes match on)
    route_path: str

    def __post_init__(self) -> None:
        self._principal: Principal | None = None
        self._authenticated = False

    @property
    def principal(self) -> Principal | None:
        """The caller (None = anonymous); 401 for an invalid token."""
        if not self._authenticated:
            self._principal = principal_from_header(self.state.accounts, self.request.headers.get("authorization"))
            self._authenticated = True
        return self._principal

    @property
    def base_url(self) -> str:
        """Absolute base URL clients use: ``--public-url`` or scheme://Host of this request."""
        if self.state.settings.public_url:
            return self.state.settings.public_url
        host = self.request.headers.get("host") or f"{self.state.settings.host}:{self.state.settings.port}"
        return f"{self.request.url.scheme}://{host}"

    @property
    def repo_id(self) -> str:
        return f"{self.params['namespace']}/{self.params['name']}"

    def repo(self) -> Repo:
        """The repo named in the path, if the caller may see it (else 404 RepoNotFound)."""
        found = self.state.catalog.repo(self.params["namespace"], self.params["name"])
        return require_read(self.principal, found)

    def writable_repo(self) -> tuple[Repo, Principal]:
        """The repo named in the path and the caller, if the caller may write to it (else 404/401/403)."""
        found = self.state.catalog.repo(self.params["namespace"], self.params["name"])
        return require_repo_write(self.principal, found)

    def revision(self, repo: Repo, revision: str | None = None) -> str:
        """The commit the path's revision names (404 RevisionNotFound)."""
        revision = revision if revision is not None else self.params["revision"]
        commit = self.state.catalog.resolve(repo, revision)
        if commit is None:
            raise revision_not_found(revision)
        return commit


Handler = Callable[[Call], Awaitable[Response]]
