"""Cross-site request forgery defence of every form that changes something.

Two independent checks, both needed for a change to happen:

1. **The synchronizer token.** Every form of the administration pages (and the sign-out button
   on every page) carries a hidden field
   ``csrf``: HMAC-SHA256 keyed by the request's own secret (the token in its session cookie,
   or in its ``Authorization`` header) over a fixed label. It is bound to the session (another
   session, or a signed-out browser, has another or none), the same on every server node
   (no session table, no server secret to share), changes when the token changes, and reveals
   nothing about the token (HMAC is one-way). Another site's page cannot read it (same-origin
   policy), so it cannot put it in a forged form. It is compared in constant time
   (:func:`hmac.compare_digest`).
2. **The origin.** ``Sec-Fetch-Site`` must be ``same-origin`` (or absent: not a browser) and
   ``Origin``, when sent, must be this host (:func:`headwater.ui.session.same_origin`).

The session cookie is ``SameSite=Strict`` besides; each check alone would stop today's
browsers, together they also hold for a browser that lacks one of them. A refused form changes
nothing and gets a page that says so (:data:`CROSS_SITE`, :data:`MISMATCHED`).
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from headwater.server.auth import parse_authorization
from headwater.ui import session

__all__ = [
    "CROSS_SITE",
    "FIELD",
    "MISMATCHED",
    "NOT_SIGNED_IN",
    "problem",
    "token_for",
    "token_of_secret",
]

FIELD = "csrf"
_LABEL = b"headwater csrf v1"
CROSS_SITE = (
    "this form was sent from another site's page, not from this server's own page; nothing was "
    "changed. If you meant to make this change, open the administration page on this server "
    "and submit it there"
)
MISMATCHED = (
    "this form's security token is missing or does not match your session (a page opened "
    "before you signed in again, or a form made elsewhere); nothing was changed. Reload the "
    "page and submit the form again"
)
NOT_SIGNED_IN = "you are not signed in; nothing was changed. Sign in, then submit the form again"


def _secret(request: Request) -> str | None:
    """The token the request is made with: its ``Authorization`` header's, else its session's."""
    header = request.headers.get("authorization")
    if header is not None:
        found = parse_authorization(header.encode("latin-1", "replace"))
        return found if isinstance(found, str) else None
    return session.token_of(request)


def token_for(request: Request) -> str | None:
    """The CSRF token forms of this request's pages carry (None: not signed in)."""
    secret = _secret(request)
    return None if secret is None else token_of_secret(secret)


def token_of_secret(secret: str) -> str:
    """The CSRF token of the session whose secret (a token, or a password session's) is
    ``secret``."""
    return hmac.new(secret.encode("utf-8", "surrogateescape"), _LABEL, hashlib.sha256).hexdigest()


def problem(request: Request, submitted: object) -> str | None:
    """None when a form post may change something; else why not (one of the messages above).

    A request that carries its token in an ``Authorization`` header (a script, curl, the
    authorization matrix) needs no synchronizer token: CSRF rides on credentials a browser adds
    by itself, the session cookie, and the interface never asks a browser for Basic
    credentials (so it has none cached for these pages). The origin check still applies."""
    if not session.same_origin(request):
        return CROSS_SITE
    if request.headers.get("authorization") is not None:
        return None if _secret(request) is not None else NOT_SIGNED_IN
    expected = token_for(request)
    if expected is None:
        return NOT_SIGNED_IN
    if not isinstance(submitted, str) or not hmac.compare_digest(
        expected.encode(), submitted.encode("utf-8", "surrogateescape")
    ):
        return MISMATCHED
    return None
