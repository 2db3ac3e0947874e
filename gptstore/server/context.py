"""What every handler gets: the server's state and one call (request, path parameters, caller).

A handler is either a plain ``def`` or an ``async def``. Its route (``routing.RawPathRoute``)
runs a plain handler in Starlette's threadpool after reading its (JSON-sized) body into
:attr:`Call.body`, so catalog queries, hashing and big listings never stall the event loop. Only
handlers that stream a body (commits, LFS uploads) or do no blocking work at all are ``async``;
they must pass every blocking step to :meth:`Call.blocking`. A handler answers with a Starlette
response or raises (``HubError``, or a ``GPTStoreError`` that the app maps to a status).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar, Union

import anyio
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from .accounts import Accounts, Principal
from .auth import UrlSigner, principal_from_header, require_read, require_repo_write
from .catalog import Catalog, Repo
from .commits import Committer
from .db import Database
from .http import bad_request, revision_not_found, validation_message
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
    #: the request body, read before a plain (threaded) handler runs; empty for async handlers
    body: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        self._principal: Principal | None = None
        self._authenticated = False

    async def blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a worker thread, so the event loop keeps serving others."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    def model(self, model: type[M], *, what: str = "request body") -> M:
        """:attr:`body` as JSON validated by ``model`` (400 naming the field when it does not fit)."""
        try:
            return model.model_validate_json(self.body or b"{}")
        except ValidationError as exc:
            raise bad_request(validation_message(exc, what)) from None

    @property
    def principal(self) -> Principal | None:
        """The caller (None = anonymous); 401 for an invalid token."""
        if not self._authenticated:
            self._principal = principal_from_header(self.state.accounts, self.request.headers.get("authorization"))
            self._authenticated = True
            self.request.scope["gptstore.user"] = self._principal.user if self._principal else None  # access log
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


T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
#: a plain handler runs in a worker thread, an async one on the event loop (see the module doc)
Handler = Union[Callable[[Call], Response], Callable[[Call], Awaitable[Response]]]
