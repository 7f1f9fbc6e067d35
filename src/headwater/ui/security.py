"""The headers every page of the interface carries.

The content security policy is the second line of defence behind escaping: even if text from
an upload or an upstream reached a page as markup, a browser would run no script from it and
load nothing from elsewhere.

- ``script-src 'self'``: only the interface's own files under ``/ui/static/``; no inline script,
  no ``eval``, no ``'unsafe-inline'``. Event handlers in markup (``onerror=``) are inline script
  and so never run.
- ``style-src 'self'``: only the vendored stylesheet (``style=`` attributes are ignored).
- ``img-src 'self' data:``: a README's images from other hosts are not loaded (reading a page
  must not tell a third party who read it); their alternative text shows instead.
- ``connect-src 'self'``, ``form-action 'self'``, ``base-uri 'none'``, ``object-src 'none'``,
  ``frame-ancestors 'none'`` (no framing: clickjacking), ``default-src 'none'`` for the rest.

Also: ``Referrer-Policy: same-origin`` (an index's project names never leave in a Referer),
``X-Frame-Options: DENY`` for browsers without CSP 2, ``Cross-Origin-Opener-Policy``, and
``Cache-Control: private, no-cache`` with ``Vary: Cookie, Authorization``: a page can depend on
who is signed in, so no shared cache may keep it. ``nosniff`` (and HSTS with TLS) is added to
every response of the server by :mod:`headwater.server.edge`.
"""

from __future__ import annotations

__all__ = ["CSP", "STATIC_CACHE", "page_headers", "static_headers"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors 'none'"
)
_COMMON = {
    "content-security-policy": CSP,
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
#: Static files change only with headwater's version; an hour keeps an upgrade visible soon.
STATIC_CACHE = "public, max-age=3600"


def page_headers() -> dict[str, str]:
    """The headers of a rendered page (a fresh dict: a handler may add to it)."""
    return {**_COMMON, "cache-control": "private, no-cache", "vary": "Cookie, Authorization"}


def static_headers() -> dict[str, str]:
    """The headers of a vendored static file."""
    return {**_COMMON, "cache-control": STATIC_CACHE}
