"""``gptstore login``: check a token against the store that will receive it, then keep it.

Above both :mod:`~gptstore.stores.hub` (which asks the store) and :mod:`~gptstore.stores.auth`
(which keeps tokens per store URL), so neither imports the other back. The CLI calls
:func:`login` and prints; it never touches a store's HTTP client itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import config
from ..errors import AuthError, StoreError, UsageError
from .auth import remove_login, save_login
from .hub import HubStore


@dataclass(frozen=True)
class Login:
    """A token that a store accepted, and where it is kept."""

    url: str  # the store, as logins are keyed
    user: str  # who the store says the token belongs to
    path: Path  # the credentials file (mode 0600)


def login(url: str, token: str) -> Login:
    """Ask the store at ``url`` (``hf://`` or ``http(s)://``) who ``token`` belongs to; if it
    answers, keep the token for exactly that URL (:func:`save_login`).

    The question is the Hub API's ``whoami-v2``, asked through the store's bounded client (its
    answer is size-capped and time-limited, the token goes to that origin only). Raises
    :class:`AuthError` when the store refuses the token, :class:`StoreError` when it cannot be
    reached or answers nonsense; nothing is saved then.
    """
    if not token or not token.strip():
        raise UsageError("no token given", hint="pass --token, or create a token on the store")
    store = HubStore(url, token=token)  # makes no request
    store._check_online("checking a token")
    return Login(store.url, _user(store), save_login(store.url, token))


def whoami(url: str | None = None, token: str | None = None) -> Login:
    """Who the store at ``url`` (default ``GPTSTORE_STORE``, else ``hf://``) says the token belongs
    to, without saving anything. The token is the one a command would send there: ``token``, else
    ``GPTSTORE_TOKEN``, else the login saved for that URL (``HF_TOKEN`` for ``hf://``);
    :class:`AuthError` when there is none or the store refuses it."""
    url = url or config.effective_store()  # what every other command would use
    store = HubStore(url, token=token or config.token())  # makes no request
    store._check_online("asking who the token is for")
    if not store.token:
        raise AuthError(f"no token for {store.url}",
                        hint=f"pass --token, set GPTSTORE_TOKEN, or run `gptstore login --store {store.url}`")
    from .auth import credentials_file

    return Login(store.url, _user(store), credentials_file())


def logout(url: str | None = None) -> str:
    """Forget the login saved for ``url`` (default ``GPTSTORE_STORE``, else ``hf://``); returns
    the URL as logins are keyed. :class:`UsageError` when there is none."""
    url = url or config.effective_store()
    key = HubStore(url).url if "://" in url else url
    if not remove_login(key):
        raise UsageError(f"not logged in to {key}", hint=f"nothing to remove; `gptstore login --store {key}` saves one")
    return key


def _user(store: HubStore) -> str:
    """The user name the store's ``whoami-v2`` gives for the store's token (one printable line)."""
    from .bounded_http import one_line

    who = _whoami(store)
    name = who.get("name") if isinstance(who, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise StoreError(f"{store.url} answered the token check without a user name",
                         hint="is it a Hub-compatible store? check the URL")
    return one_line(name, 100)


def _whoami(store: HubStore) -> object:
    """The store's ``whoami-v2`` answer (parsed JSON), errors turned into one-line gptstore errors."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    from .bounded_http import one_line

    try:
        who, _links = store.http.get_json(f"{store.endpoint}/api/whoami-v2", what="the token check")
        return who
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise AuthError(f"{store.url} did not accept the token (HTTP {status})",
                            hint="check the token, or create one on the store") from None
        raise StoreError(f"{store.url} refused the token check (HTTP {status})",
                         hint="is it a Hub-compatible store? check the URL") from None
    except (OSError, httpx2.TransportError) as exc:
        raise StoreError(f"cannot reach {store.url} to check the token: {one_line(str(exc) or type(exc).__name__)}",
                         hint="check the URL and that the store is running") from None
