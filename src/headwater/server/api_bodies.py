"""The request bodies of the management API: one type per call, a size limit, total decoding.

A body is read only after the token was checked, and never past :data:`MAX_BODY` bytes: a
declared ``Content-Length`` over it is refused before one byte is read, a body that grows past it
while streaming is refused when it does. It is then decoded straight into the call's type with
msgspec: a value of the wrong type (``{"version": {"a": 1}}``), an unknown key (a typo would
otherwise be ignored silently) or nesting where a string belongs is a 400 that names the field,
what it must be, and an example of the whole body. Typed decoding stops at the first value of the
wrong shape, so a 100,000-level array costs nothing; a ``RecursionError`` is caught all the same.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request

from headwater.errors import InvalidInput

__all__ = [
    "MAX_BODY",
    "BodyRejected",
    "Empty",
    "NewPublisher",
    "Status",
    "Unyank",
    "Urls",
    "Yank",
    "read_body",
    "read_bytes",
]

#: The largest management API body, bytes (the largest real one, a list of URLs, is far smaller).
MAX_BODY = 64 * 1024


class BodyRejected(InvalidInput):
    """A management API body is too large or not the call's JSON object."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Yank(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    example: ClassVar[str] = '{"version": "1.0", "reason": "broken on Windows"}'
    filename: str | None = None
    version: str | None = None
    reason: str = ""


class Unyank(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    example: ClassVar[str] = '{"filename": "acme_tools-1.0-py3-none-any.whl"}'
    filename: str | None = None
    version: str | None = None


class Status(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    example: ClassVar[str] = '{"status": "archived", "reason": "moved to acme-tools2"}'
    status: str
    reason: str = ""


class Urls(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    example: ClassVar[str] = '{"urls": ["https://pypi.org/simple/acme-tools/"]}'
    urls: list[str]


class NewPublisher(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A trusted publisher to add: exactly one of ``github``, ``gitlab``, ``oidc`` (the fields
    of :mod:`headwater.db.identities`); ``pending`` for a project that does not exist yet."""

    example: ClassVar[str] = (
        '{"github": {"repository": "OWNER/REPO", "workflow": "release.yml", '
        '"environment": "pypi"}, "pending": false}'
    )
    github: dict[str, str] | None = None
    gitlab: dict[str, str] | None = None
    oidc: dict[str, str | dict[str, str]] | None = None
    pending: bool = False
    owner: str | None = None


class Empty(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Calls that take no body (an empty body or ``{}``)."""

    example: ClassVar[str] = "no body, or {}"


Body = TypeVar("Body", Yank, Unyank, Status, Urls, NewPublisher, Empty)


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    value = value.strip()
    # Content-Length is 1*DIGIT (RFC 9110 8.6); 19 digits bound int() and any real length.
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise BodyRejected(400, f"Content-Length {value[:40]!r} is not a number of bytes")
    return int(value)


async def read_bytes(request: Request, *, limit: int, too_large: str) -> bytes:
    """The raw body of ``request``, at most ``limit`` bytes (what every JSON endpoint reads).

    Raises:
        BodyRejected: 413 ``too_large`` over ``limit`` bytes (declared or sent); 400 a
            Content-Length that is not a number, or the connection ended before the body.
    """
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise BodyRejected(413, too_large)
    raw = bytearray()
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                raise BodyRejected(413, too_large)
    except ClientDisconnect as exc:
        # The client stopped sending (e.g. fewer bytes than its Content-Length): nobody may be
        # listening, but the answer is still the client's fault, not the server's.
        raise BodyRejected(
            400, "the connection ended before the body did; nothing was changed"
        ) from exc
    return bytes(raw)


async def read_body(request: Request, kind: type[Body], *, limit: int = MAX_BODY) -> Body:
    """The body of ``request`` as a ``kind``; an empty body is ``{}``.

    Raises:
        BodyRejected: 413 over ``limit`` bytes (declared or sent); 400 not JSON, not an object,
            a wrong type or an unknown key (the message names it), nested too deeply, or the
            connection ended before the body.
    """
    raw = await read_bytes(
        request,
        limit=limit,
        too_large=(
            f"the body is larger than {limit // 1024} KiB, the limit of the management API; "
            "nothing was read or changed"
        ),
    )
    data = bytes(raw) if raw.strip() else b"{}"
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        raise BodyRejected(
            400, f"the body does not fit this call: {exc}; give {kind.example}"
        ) from exc
    except msgspec.DecodeError as exc:
        raise BodyRejected(400, f"the body is not JSON ({exc}); give {kind.example}") from exc
    except RecursionError as exc:
        raise BodyRejected(400, f"the body is nested too deeply; give {kind.example}") from exc
