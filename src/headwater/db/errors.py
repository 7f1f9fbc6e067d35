"""Errors of the database layer.

Outcomes callers branch on (an upload that conflicts, a filename deleted before) are results
(:class:`headwater.db.AddResult`), not exceptions. Exceptions are for what callers report::

    DatabaseError
    ├── DatabaseUnavailable     cannot connect, or the server failed (URL shown with the password masked)
    ├── SchemaOutOfDate         the schema is not at the revision this headwater needs
    ├── NotFound (KeyError)     no such project, file, release, user or token
    └── Conflict                a user exists already, a namespace grant overlaps another

Bad arguments (an invalid project or user name, an unknown scope or status) raise
:class:`headwater.errors.InvalidInput` subclasses.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from headwater.errors import HeadwaterError, InvalidInput

__all__ = [
    "Conflict",
    "DatabaseError",
    "DatabaseUnavailable",
    "InvalidArgument",
    "NotFound",
    "SchemaOutOfDate",
    "mask_url",
]


class DatabaseError(HeadwaterError):
    """Root of the database layer's errors."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached or failed; nothing was changed by the failed call."""


class SchemaOutOfDate(DatabaseError):
    """The database's schema revision is not the one this headwater needs."""

    def __init__(self, message: str, *, current: str | None, needed: str) -> None:
        super().__init__(message)
        self.current = current
        self.needed = needed


class NotFound(DatabaseError, KeyError):
    """The project, file, release, user or token does not exist."""

    def __str__(self) -> str:
        # KeyError's str() quotes its argument; these carry a sentence.
        return str(self.args[0]) if self.args else ""


class Conflict(DatabaseError):
    """The change contradicts what is there (a user that exists, an overlapping namespace)."""


class InvalidArgument(InvalidInput):
    """An argument to the database API is malformed (a user name, a scope, a status)."""


def mask_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` parameter) replaced by
    ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable database URL>"
    has_param = any(k.lower() == "password" for k, _ in parse_qsl(parts.query))
    if password is None and not has_param:
        return url  # unchanged (urlunsplit would drop the empty authority of sqlite:///)
    if password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if parts.query:
        query = [
            (key, "***" if key.lower() == "password" else value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)
