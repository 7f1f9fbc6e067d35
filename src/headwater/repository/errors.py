"""Errors of remote repositories, converted from the HTTP transport's errors at the edge.

::

    HeadwaterError
    └── UpstreamError                 a request to a remote index failed (after retries)
        ├── UpstreamNotFound          404/410: the project or file is not there
        ├── StaleResponse             the answer is older than the serial the index listed
        ├── IntegrityError            the bytes do not match the hash or size the page promised
        └── FetchRefused              the URL is outside the source's fetch boundary (never sent)
"""

from __future__ import annotations

from headwater.errors import HeadwaterError

__all__ = ["FetchRefused", "IntegrityError", "StaleResponse", "UpstreamError", "UpstreamNotFound"]


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


class FetchRefused(UpstreamError):
    """A URL (from a page, or a redirect) is outside the fetch boundary: another scheme, a host
    the operator did not allow, or an address on a network the operator did not allow. Nothing
    was sent to it; trying again cannot help (``retryable`` is False).

    ``host`` is the host (or ``host:port``) the message names, ``option`` the configuration
    option that would allow it."""

    def __init__(self, message: str, *, url: str, host: str = "", option: str = "") -> None:
        super().__init__(message, url=url, retryable=False)
        self.host = host
        self.option = option
