"""Signing a browser in: a token, or a password session's secret, becomes a session cookie.

A browser cannot send pip's ``https://__token__:TOKEN@HOST/`` credentials on every request, so
the sign-in form (``/ui/signin``) takes a token, checks it (:class:`headwater.server.auth.
Authenticator`, the same check as every API call), and stores it in a cookie that the browser
sends back and scripts cannot read:

- ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page, link or form
  makes the browser send it), ``Secure`` when the server is reached over https, ``Path=/``,
  and a lifetime of :data:`SESSION_SECONDS`.
- Over https the cookie is named ``__Host-headwater_session`` and only that name is read: a
  browser accepts a ``__Host-`` cookie only from this very host (Secure, no Domain, Path=/), so a
  sibling subdomain cannot plant a session of its own choosing (signing a visitor in as the
  attacker, to catch what they then upload). Plain http has no such protection to offer.
- The cookie holds the token itself, so a session is exactly as strong as the token and ends
  when the token is revoked or expires (the check runs on every request, with the same short
  cache as Simple API reads), on every server node, with no session table to share.
- Signed in with a password (:mod:`headwater.ui.signin`), the cookie holds a password
  session's secret instead (``hws_...``, :mod:`headwater.db.passwords`): a row in the database,
  so signing out, changing the password or an admin clearing it ends the session on every node
  at its next request. Only the interface accepts it.
- Sign-in and sign-out are POSTs that must come from this server's own pages
  (:func:`same_origin`): another site cannot sign a visitor in as someone else.

Forms that change something (the administration pages) add a CSRF token on top; see
docs/web-interface.md.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "COOKIE",
    "HTTPS_KEY",
    "SECURE_COOKIE",
    "SESSION_SECONDS",
    "clear_session",
    "cookie_name",
    "same_origin",
    "start_session",
    "token_of",
]

COOKIE = "headwater_session"
#: The cookie's name over https: the ``__Host-`` prefix binds it to this host.
SECURE_COOKIE = "__Host-headwater_session"
#: Where :func:`headwater.ui.routes.page` notes, per request, whether the interface is on https.
HTTPS_KEY = "headwater.ui.https"


def cookie_name(*, secure: bool) -> str:
    """The session cookie's name on an https (``secure``) or plain http interface."""
    return SECURE_COOKIE if secure else COOKIE


#: Twelve hours: a working day, after which the browser forgets the token.
SESSION_SECONDS = 12 * 3600
_MAX_TOKEN = 512


def token_of(request: Request) -> str | None:
    """The token in the request's session cookie, or None (over https, only the ``__Host-``
    cookie counts)."""
    value = request.cookies.get(cookie_name(secure=bool(request.scope.get(HTTPS_KEY))))
    if not value or len(value) > _MAX_TOKEN or not value.isascii():
        return None
    return value


def start_session(response: Response, token: str, *, secure: bool) -> None:
    """Set the session cookie holding ``token`` (or a password session's secret) on
    ``response``."""
    response.set_cookie(
        cookie_name(secure=secure),
        token,
        max_age=SESSION_SECONDS,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def clear_session(response: Response, *, secure: bool) -> None:
    """Make the browser forget the session cookie."""
    response.delete_cookie(
        cookie_name(secure=secure), path="/", secure=secure, httponly=True, samesite="strict"
    )


def same_origin(request: Request) -> bool:
    """False when a browser says the request comes from another site's page.

    Browsers send ``Origin`` with every POST (and ``Sec-Fetch-Site``); a request without
    either is not a browser's, so not a cross-site forgery. The origin must be the host the
    request was sent to.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    host = request.headers.get("host", "")
    try:
        return urlsplit(origin).netloc.lower() == host.lower()
    except ValueError:
        return False
