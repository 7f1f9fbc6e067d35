"""The one exception tree of headwater.

Every error headwater raises on purpose derives from :class:`HeadwaterError`, so callers (the CLI,
the server) can catch one type and show the message, which always says what happened, what was kept
safe, and what to do::

    HeadwaterError
    ├── InvalidInput (also ValueError)        something given to headwater is malformed
    │   ├── simple.InvalidName                a project name fails the name-format spec
    │   ├── simple.InvalidFilename            a wheel/sdist filename cannot be parsed
    │   ├── simple.InvalidPage                a Simple API page (JSON or HTML) is malformed or unsafe
    │   │   └── simple.UnsupportedAPIVersion  the page declares a major api-version we do not speak
    │   └── simple.NotAcceptable              content negotiation found nothing the client accepts
    └── testing.CorpusError                   the test upstream's corpus cannot do what was asked

Third-party exceptions are converted at the edge with ``raise ... from``.
"""

from __future__ import annotations

__all__ = ["HeadwaterError", "InvalidInput"]


class HeadwaterError(Exception):
    """Root of every error headwater raises on purpose."""


class InvalidInput(HeadwaterError, ValueError):
    """Input given to headwater (a page, a name, a filename, a header) is malformed or unsafe."""
