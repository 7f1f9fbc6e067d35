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
    │   ├── simple.NotAcceptable              content negotiation found nothing the client accepts
    │   ├── storage.InvalidKey                a storage key is not a safe relative path
    │   ├── db.InvalidArgument                an argument to the database API is malformed
    │   ├── repository.artifacts.InvalidDistribution  an uploaded wheel/sdist is malformed, unsafe or mislabelled
    │   ├── server.upload_body.UploadRejected an upload's body or form is refused (carries the HTTP status)
    │   ├── server.params.BadParameter        a path parameter no resource can have (404)
    │   ├── server.api_bodies.BodyRejected    a management API body is too large or of the wrong shape
    │   ├── sync.filters.InvalidFilter        a [mirror.NAME.filters] option or requirements file is malformed
    │   ├── sync.nginx.InvalidNginxConfig     nginx-config options would give a broken or unsafe config
    │   ├── check.InvalidRequirements         a requirements/pyproject/pylock or pip/uv config file is malformed
    │   ├── testing.faults.InvalidFault       a fault description for the test upstream is invalid
    │   └── testing.policy_scenarios.InvalidScenario  a policy scenario file is malformed
    ├── config.ConfigError                    the configuration file is missing or invalid
    ├── policy.PolicyError                    an index's policy rules (routes, namespaces) are invalid
    ├── storage.StorageError                  a storage operation failed
    │   └── storage.NotFound                  the key does not exist (also KeyError)
    ├── repository.UpstreamError              a request to a remote index failed (after retries)
    │   ├── UpstreamNotFound                  404/410
    │   ├── StaleResponse                     older than the serial the index listed
    │   ├── IntegrityError                    bytes differ from the promised hash or size
    │   └── FetchRefused                      a URL outside the source's fetch boundary (never fetched)
    ├── sync.state.StateError                 a mirror's state is unreadable or from another upstream
    ├── sync.engine.MirrorError               a sync could not start or finish
    ├── sync.fetch.FilesFailed                some of a project's files failed (that project fails)
    ├── db.DatabaseError                      the hosted-index database failed or refused a change
    │   ├── DatabaseUnavailable               cannot connect (URL shown, password masked)
    │   ├── SchemaOutOfDate                   not at this headwater's revision: run `headwater db upgrade`
    │   ├── NotFound (also KeyError)          no such project, file, release, user or token
    │   └── Conflict                          the user exists already, or a namespace grant overlaps
    ├── repository.uploads.UploadRefused      an upload is not allowed (owners, namespaces, status, reuse)
    ├── check.CheckError                      `headwater check` cannot run (no index, a pin to an unknown one)
    └── testing.corpus.CorpusError            the test upstream's corpus cannot do what was asked

Third-party exceptions are converted at the edge with ``raise ... from``.
"""

from __future__ import annotations

import re

__all__ = ["HeadwaterError", "InvalidInput", "printable"]

# C0 and C1 control characters, DEL, and the Unicode line and paragraph separators: what would
# end a log line or a header, move a terminal's cursor, or be refused by an HTTP server. Also the
# bidirectional controls (marks, embeddings, overrides, isolates): they reorder what a terminal
# shows, so a hostile name could make "accept evil" read as something else ("Trojan Source").
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


class HeadwaterError(Exception):
    """Root of every error headwater raises on purpose."""


class InvalidInput(HeadwaterError, ValueError):
    """Input given to headwater (a page, a name, a filename, a header) is malformed or unsafe."""


def printable(text: str, limit: int = 300) -> str:
    """``text`` (from an upstream, a client, a file) made safe to put in a message, a log line or
    a header: every control character shown as ``\\xNN`` (``\\uNNNN``), cut to ``limit``
    characters with ``...``. Messages that carry text headwater did not write pass it through
    this, so no upstream can end a log line early or smuggle bytes into a header."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return _CONTROL.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
