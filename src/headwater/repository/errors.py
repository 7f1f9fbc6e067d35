"""Errors of remote repositories, converted from the HTTP transport's errors at the edge.

::

    HeadwaterError
    └── UpstreamError                 a request to a remote index failed (after retries)
        ├── UpstreamNotFound          404/410: the project or file is not there
        ├── StaleResponse             the answer is older than the serial the index listed
        └── IntegrityError            the bytes do not match the hash or size the page promised
"""

from __future__ import annotations

from headwater.errors import HeadwaterError

__all__ = ["IntegrityError", "StaleResponse", "UpstreamError", "UpstreamNotFound"]


class UpstreamError(HeadwaterError):
    """A request to a remote index failed. ``retryable`` says whether trying again may help."""

    def __init__(
        self, message: str, *, url: str, status: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.retryable = retryable


class UpstreamNotFound(UpstreamError):
    """The remote index answered 404 or 410."""


class StaleResponse(UpstreamError):
    """The answer carries a serial lower than the one the index listed for it (a stale CDN copy)."""


class IntegrityError(UpstreamError):
    """Downloaded bytes do not match the hash or size the project page promised."""
