"""Sign-in with a store token into a session cookie, and CSRF tokens for every form.

**Sessions.** Signing in checks a store token (the same tokens as the API: ``gptstore server
token create``) and sets ``gptstore_session`` = ``<token id>.<expiry>.<HMAC>``, keyed with the
server's secret. The cookie never holds the token itself; each request looks the token id up, so
revoking the token ends every session made with it. The cookie is ``HttpOnly``, ``SameSite=Lax``
and ``Secure`` whenever the store is reached over https.

**CSRF.** A double-submit token bound to the server's secret: every page sets a random
``gptstore_csrf`` cookie (``SameSite=Strict``) once, and every form carries
HMAC(secret, cookie). A POST is accepted only when the field matches the cookie it came with, and
when its ``Origin`` (if the browser sent one) is this store's. Another site can neither read the
cookie nor compute the field.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import parse_qs, urlsplit

from starlette.responses import Response

from ..accounts import Principal
from ..context import Call
from ..http import HubError, forbidden

SESSION_COOKIE = "gptstore_session"
CSRF_COOKIE = "gptstore_csrf"
#: how long a sign-in lasts
SESSION_SECONDS = 14 * 24 * 3600
#: most fields one form may post
MAX_FORM_FIELDS = 32


def _mac(call: Call, purpose: str, *parts: str) -> str:
    message = "\n".join((purpose, *parts)).encode()
    return hmac.new(call.state.signer.key, message, hashlib.sha256).hexdigest()


def _secure(call: Call) -> bool:
    return call.base_url.startswith("https://")


def _cookie_path(call: Call) -> str:
    return call.state.settings.prefix or "/"


# -- sessions ------------------------------------------------------------------------------
def web_principal(call: Call) -> Principal | None:
    """Who is browsing: the API's ``Authorization`` header if sent, else a valid session cookie."""
    state = call.request.state
    if hasattr(state, "gptstore_web_principal"):
        return state.gptstore_web_principal
    principal = call.principal if call.request.headers.get("authorization") else _session_principal(call)
    state.gptstore_web_principal = principal
    return principal


def _session_principal(call: Call) -> Principal | None:
    cookie = call.request.cookies.get(SESSION_COOKIE, "")
    token_id, _, rest = cookie.partition(".")
    expires, _, mac = rest.partition(".")
    if not (token_id and expires.isdigit() and len(mac) == 64):
        return None
    if not hmac.compare_digest(mac, _mac(call, "session", token_id, expires)) or int(expires) < time.time():
        return None
    return call.state.accounts.principal_by_token_id(token_id)


def sign_in(call: Call, response: Response, principal: Principal) -> None:
    """Set the session cookie for ``principal``'s token on ``response``."""
    expires = str(int(time.time()) + SESSION_SECONDS)
    value = f"{principal.token_id}.{expires}.{_mac(call, 'session', principal.token_id, expires)}"
    response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_SECONDS, path=_cookie_path(call),
                        httponly=True, samesite="lax", secure=_secure(call))


def sign_out(call: Call, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=_cookie_path(call), httponly=True, samesite="lax",
                           secure=_secure(call))


# -- CSRF ------------------------------------------------------------------------------------
def _csrf_cookie(call: Call) -> str:
    state = call.request.state
    if not hasattr(state, "gptstore_csrf_cookie"):
        sent = call.request.cookies.get(CSRF_COOKIE, "")
        state.gptstore_csrf_new = not (len(sent) == 32 and all(c in "0123456789abcdef" for c in sent))
        state.gptstore_csrf_cookie = secrets.token_hex(16) if state.gptstore_csrf_new else sent
    return state.gptstore_csrf_cookie


def csrf_token(call: Call) -> str:
    """The value every form of this page posts as ``csrf``."""
    return _mac(call, "csrf", _csrf_cookie(call))


def remember_csrf(call: Call, response: Response) -> None:
    """Set the CSRF cookie when this request made a new one (a page with forms was rendered)."""
    if getattr(call.request.state, "gptstore_csrf_new", False):
        response.set_cookie(CSRF_COOKIE, _csrf_cookie(call), path=_cookie_path(call), httponly=True,
                            samesite="strict", secure=_secure(call))


def form(call: Call) -> dict[str, str]:
    """The posted form's fields, once the request is proven to come from this store's own page
    (403 otherwise). Repeated fields keep their last value."""
    origin = call.request.headers.get("origin")
    if origin is not None and origin != "null":
        mine = urlsplit(call.base_url)
        theirs = urlsplit(origin)
        if (theirs.scheme, theirs.netloc) != (mine.scheme, mine.netloc):
            raise forbidden("this form was posted from another site")
    kind = call.request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HubError(415, "post this form as application/x-www-form-urlencoded")
    try:
        fields = parse_qs(call.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise HubError(400, f"the form is not valid UTF-8 or has more than {MAX_FORM_FIELDS} fields") from None
    values = {key: found[-1] for key, found in fields.items()}
    sent = call.request.cookies.get(CSRF_COOKIE, "")
    token = values.pop("csrf", "")
    if not sent or not hmac.compare_digest(token, _mac(call, "csrf", sent)):
        raise forbidden("this form has expired or did not come from this store: reload the page and try again")
    return values
