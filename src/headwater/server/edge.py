"""The ASGI edge: what every HTTP response of the server gets, and the last resort for errors.

:func:`guarded` wraps the whole application once (``IndexApp.__call__``), so nothing below it can
forget:

- **Security headers on every response**: ``X-Content-Type-Options: nosniff`` (a browser must not
  guess that an uploaded file, a ``.metadata`` file or an error text is HTML or script), and
  ``Strict-Transport-Security`` when the server terminates TLS. Pages, files, refusals, redirects,
  404s, health, metrics, the management API and this module's own 500 all pass through it.
- **A last resort**: bad input is answered by the code that reads it (a 4xx naming the input);
  an exception that still escapes a handler is a bug. It is logged as one line (the exception's
  type, where it was raised, the request's method and path; no traceback spam, no request data
  beyond the path) and answered with a plain 500 that names nothing internal. An exception after
  the response has started but before it ended (a proxied file failing its hash check part-way)
  is re-raised, so the ASGI server drops the connection and the client never sees a complete
  wrong body.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from headwater.server.types import ASGIApp, Headers, Message, Receive, Scope, Send

__all__ = ["NOSNIFF", "describe_failure", "guarded"]

log = logging.getLogger("headwater.server")

NOSNIFF = (b"x-content-type-options", b"nosniff")
_HSTS = (b"strict-transport-security", b"max-age=31536000")
_PACKAGE = str(Path(__file__).resolve().parents[1])  # .../headwater
_INTERNAL_ERROR = (
    b"internal error: the server could not answer this request. Nothing was changed by it; "
    b"the server's log says why (search it for 'headwater: 500').\n"
)


def describe_failure(exc: BaseException) -> str:
    """``TypeName: message at headwater/module.py:LINE in function`` (the innermost frame of
    headwater's own code below this module; the innermost frame at all when there is none). One
    line, at most 300 characters of the message."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    ours = [f for f in frames if f.filename.startswith(_PACKAGE)]
    where = ""
    if ours or frames:
        frame = (ours or frames)[-1]
        name = frame.filename
        if name.startswith(_PACKAGE):
            name = "headwater" + name[len(_PACKAGE) :]
        where = f" at {name}:{frame.lineno} in {frame.name}"
    # The message may carry text from a client or an upstream: one line, control characters
    # shown as escapes, so nothing raw reaches the log.
    message = "".join(
        c if c.isprintable() else f"\\x{ord(c):02x}" for c in " ".join(str(exc).split())[:300]
    )
    return f"{type(exc).__name__}: {message}{where}"


async def guarded(app: ASGIApp, scope: Scope, receive: Receive, send: Send, *, hsts: bool) -> None:
    """Run ``app`` for one HTTP request with the security headers and the last resort."""
    extra: Headers = [NOSNIFF, _HSTS] if hsts else [NOSNIFF]
    started = False
    finished = False

    async def with_headers(message: Message) -> None:
        nonlocal started, finished
        kind = message["type"]
        if kind == "http.response.start":
            started = True
            message["headers"] = [*message.get("headers", []), *extra]
        elif kind == "http.response.pathsend" or (
            kind == "http.response.body" and not message.get("more_body", False)
        ):
            finished = True
        await send(message)

    try:
        await app(scope, receive, with_headers)
    except Exception as exc:
        path = str(scope.get("path", ""))[:200]
        log.error("headwater: 500 for %s %r: %s", scope.get("method"), path, describe_failure(exc))
        if started and not finished:
            raise  # the ASGI server drops the connection: a half-sent body is never complete
        if not started:
            headers: Headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(_INTERNAL_ERROR)).encode()),
                (b"cache-control", b"no-store"),
            ]
            await with_headers({"type": "http.response.start", "status": 500, "headers": headers})
            body = b"" if scope.get("method") == "HEAD" else _INTERNAL_ERROR
            await with_headers({"type": "http.response.body", "body": body})
