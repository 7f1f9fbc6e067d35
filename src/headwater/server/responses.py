"""Small raw-ASGI response helpers for the hot path (no Request/Response objects per request)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.responses import Response

from headwater.repository.base import SourceUnavailable
from headwater.server.types import Headers, Scope, Send

__all__ = [
    "NO_STORE",
    "header",
    "if_none_match",
    "send_bytes",
    "send_redirect",
    "send_text",
    "unavailable_text",
]

log = logging.getLogger("headwater.serve")

#: For an answer no cache may keep (a refusal, an outage, what a token was needed to read).
NO_STORE = (b"cache-control", b"no-store")


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first request header called ``name`` (lowercase bytes), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def if_none_match(value: bytes | None, etag: str) -> bool:
    """Whether an If-None-Match header matches ``etag`` (weak comparison, as RFC 9110 13.1.2 asks
    for GET and HEAD)."""
    if value is None:
        return False
    text = value.decode("latin-1").strip()
    if text == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == wanted for candidate in text.split(","))


async def send_bytes(
    send: Send, status: int, headers: Headers, body: bytes, *, head: bool = False
) -> None:
    """Send a complete response; for HEAD, the headers of the GET response and no body."""
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_text(
    send: Send, status: int, text: str, *, head: bool = False, extra: Headers | None = None
) -> None:
    """A plain-text response (errors and refusals a person reads in pip's output)."""
    headers: Headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if extra:
        headers.extend(extra)
    await send_bytes(send, status, headers, (text.rstrip("\n") + "\n").encode(), head=head)


async def send_redirect(
    send: Send,
    location: str,
    *,
    status: int = 301,
    head: bool = False,
    extra: Headers | None = None,
) -> None:
    """A redirect to ``location`` (already escaped), with a one-line body for people."""
    await send_text(
        send,
        status,
        f"moved to {location}",
        head=head,
        extra=[(b"location", location.encode("latin-1")), *(extra or [])],
    )


def unavailable_text(index: str, exc: Exception) -> str:
    """The 503 text for a source that cannot serve: its own words (a SourceUnavailable), or, for
    a storage failure (which names endpoints, buckets and keys: the operator's business), a
    plain statement; the details go to the log and to /health/ready."""
    if isinstance(exc, SourceUnavailable):
        return str(exc)
    log.warning("index %r: storage failed: %s", index, exc)
    return (
        f"index {index!r} cannot read its storage right now; nothing was changed. Try again "
        "later (the operator sees why at /health/ready)"
    )


class ApiError(Exception):
    """A management API refusal: its status, message and (for a 401) the Basic realm to ask in."""

    def __init__(self, status: int, message: str, *, challenge: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        #: The Basic auth realm to ask for credentials in (a 401).
        self.challenge = challenge


_ENCODER = msgspec.json.Encoder()


def json_answer(value: Any, status: int = 200, *, challenge: str | None = None) -> Response:
    """A management API answer: ``value`` as JSON, never cached, with a Basic challenge when
    ``challenge`` names a realm."""
    headers = {"cache-control": "no-store"}
    if challenge is not None:
        headers["www-authenticate"] = f'Basic realm="{challenge}"'
    return Response(
        _ENCODER.encode(value) + b"\n",
        status_code=status,
        media_type="application/json",
        headers=headers,
    )
