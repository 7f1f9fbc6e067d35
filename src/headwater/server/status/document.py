"""``/mirrors.json``: this server's mirrors, proxies and peer mirrors with their freshness.

A versioned document another headwater (as a peer), a monitoring system or a script can read;
its schema is documented in docs/web-interface.md ("/mirrors.json"). Version 1::

    {"schema": "headwater.mirrors", "version": 1, "generated": "2026-12-02T17:00:00Z",
     "thresholds": {"behind_after": 3600.0, "stale_after": 86400.0},
     "mirrors": [MirrorEntry, ...], "proxies": [ProxyEntry, ...], "peers": [PeerEntry, ...]}

Times are RFC 3339 UTC strings (``Z``), durations seconds, serials integers, and any number or
time may be ``null`` when unknown. Fields are only ever added within a version; a reader must
ignore fields it does not know. A change that removes or retypes a field is a new version.

The same structs decode a peer's document: there they are hostile input, so every string is
bounded (:data:`TEXT`, :data:`URL`), every list too (:data:`ENTRIES`), every serial is a
serial a client can hold, and the freshness of a peer is re-decided from its numbers by
:mod:`headwater.server.status.freshness` (its words are shown, escaped, never believed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

from headwater.errors import printable
from headwater.server.status.freshness import State

__all__ = [
    "ENTRIES",
    "SCHEMA",
    "TEXT",
    "URL",
    "VERSION",
    "Document",
    "MirrorEntry",
    "PeerEntry",
    "PeerMirror",
    "ProxyEntry",
    "RunEntry",
    "ThresholdsEntry",
    "decode_peer_document",
    "parse_rfc3339",
    "rfc3339",
]

SCHEMA = "headwater.mirrors"
VERSION = 1
#: Longest string kept from a peer (a reason, a name).
TEXT = 500
#: Longest URL kept from a peer.
URL = 2000
#: Most mirrors (or proxies, runs) read from a peer's document.
ENTRIES = 200

Serial = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=1e12)]
Text = Annotated[str, msgspec.Meta(max_length=TEXT)]
Url = Annotated[str, msgspec.Meta(max_length=URL)]
Time = Annotated[str, msgspec.Meta(max_length=40)]


class RunEntry(msgspec.Struct, kw_only=True, omit_defaults=False):
    """One run of ``headwater mirror`` (newest last in ``runs``)."""

    started: Time
    seconds: Seconds
    ok: bool
    serial: Serial | None = None
    upstream_serial: Serial | None = None
    synced: Count = 0
    deleted: Count = 0
    failed: Count = 0
    files_downloaded: Count = 0
    bytes_downloaded: Count = 0
    partial: bool = False
    error: Text | None = None


class MirrorEntry(msgspec.Struct, kw_only=True):
    """A mirror tree this server serves."""

    name: Text
    #: Its simple index on this server.
    url: Url
    #: The index it mirrors (from its history; "" when nothing was recorded).
    upstream: Url = ""
    state: State = "unknown"
    reason: Text = ""
    serial: Serial | None = None
    upstream_serial: Serial | None = None
    lag_serials: Count | None = None
    lag_seconds: Seconds | None = None
    last_complete: Time | None = None
    #: When the upstream's serial was last checked (None: not yet), and what failed then.
    upstream_checked: Time | None = None
    upstream_error: Text | None = None
    #: The files of the tree (under web/packages) and their bytes, measured after each run
    #: (None: not measured yet).
    tree_files: Count | None = None
    tree_bytes: Count | None = None
    runs: Annotated[list[RunEntry], msgspec.Meta(max_length=ENTRIES)] = msgspec.field(
        default_factory=list
    )


class ProxyEntry(msgspec.Struct, kw_only=True):
    """A caching proxy this server serves. Counters are since the server started, over every
    worker process; the cache size is from the last scheduled look."""

    name: Text
    url: Url
    upstream: Url
    state: State = "unknown"
    reason: Text = ""
    offline: bool = False
    page_requests: Count = 0
    page_fetches: Count = 0
    stale_served: Count = 0
    file_requests: Count = 0
    file_fetches: Count = 0
    unavailable: Count = 0
    #: Share of page requests answered without asking the upstream (None: no request yet).
    hit_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    cache_bytes: Count | None = None
    cache_files: Count | None = None
    upstream_checked: Time | None = None
    upstream_error: Text | None = None


class PeerMirror(msgspec.Struct, kw_only=True):
    """One mirror a peer reported, as this server judged it."""

    name: Text
    url: Url = ""
    upstream: Url = ""
    state: State = "unknown"
    reason: Text = ""
    serial: Serial | None = None
    lag_serials: Count | None = None
    lag_seconds: Seconds | None = None
    last_complete: Time | None = None


class PeerEntry(msgspec.Struct, kw_only=True):
    """A peer mirror from ``[status] peers``, as of its last check."""

    url: Url
    state: State = "unknown"
    reason: Text = ""
    checked: Time | None = None
    #: How the peer was read: its /mirrors.json, its /last-modified, or not at all.
    via: Literal["mirrors.json", "last-modified", "none"] = "none"
    mirrors: Annotated[list[PeerMirror], msgspec.Meta(max_length=ENTRIES)] = msgspec.field(
        default_factory=list
    )


class ThresholdsEntry(msgspec.Struct, kw_only=True):
    behind_after: Seconds
    stale_after: Seconds


class Document(msgspec.Struct, kw_only=True):
    schema: str = SCHEMA
    version: int = VERSION
    generated: Time = ""
    thresholds: ThresholdsEntry | None = None
    mirrors: Annotated[list[MirrorEntry], msgspec.Meta(max_length=ENTRIES)] = msgspec.field(
        default_factory=list
    )
    proxies: Annotated[list[ProxyEntry], msgspec.Meta(max_length=ENTRIES)] = msgspec.field(
        default_factory=list
    )
    peers: Annotated[list[PeerEntry], msgspec.Meta(max_length=ENTRIES)] = msgspec.field(
        default_factory=list
    )


_peer_decoder = msgspec.json.Decoder(Document)


def decode_peer_document(body: bytes) -> Document:
    """A peer's ``/mirrors.json``, checked against the schema and its bounds.

    Raises:
        ValueError: not JSON, not this schema, a version this server does not read, or a value
            out of its bounds (the message is ours, with the peer's text escaped and cut).
    """
    try:
        document = _peer_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"not a readable mirrors.json ({_one_line(str(exc))})") from None
    if document.schema != SCHEMA:
        raise ValueError(f"not a mirrors.json document (schema {_one_line(document.schema)!r})")
    if document.version != VERSION:
        raise ValueError(f"mirrors.json version {document.version}; this server reads {VERSION}")
    return document


def _one_line(text: str) -> str:
    return printable(" ".join(text.split()), 200)


def rfc3339(when: float | None) -> str | None:
    """Unix time -> ``2026-12-02T17:00:00Z`` (None stays None)."""
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str | None) -> float | None:
    """An RFC 3339 time (as :func:`rfc3339` writes it, or with an offset) -> Unix time; None
    when absent or not a time."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # a time without a zone says nothing exact
    return moment.timestamp()
