"""The ``[status]`` table: the mirror status pages, ``/mirrors.json`` and peer mirrors.

Example::

    [status]
    peers = ["https://pypi-mirror.example.org/", "https://mirror.example.net/"]
    check_interval = 300
"""

from __future__ import annotations

from urllib.parse import urlsplit

import msgspec

from headwater.errors import printable
from headwater.repository.boundary import check_network_entry

__all__ = ["MAX_PEERS", "StatusSettings", "check_peer_url"]

#: Most peers one server checks.
MAX_PEERS = 50


def check_peer_url(url: str) -> str:
    """``url`` as a peer's base URL (ending in ``/``) if it is an ``https://`` URL without
    credentials, query or fragment; raise otherwise.

    Raises:
        ValueError: naming the URL and the rule.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"peer {printable(url.rpartition('@')[2], 200)!r} is not a URL") from None
    # A password in the URL is never repeated in a message.
    shown = printable(url.replace(parts.netloc, parts.netloc.rpartition("@")[2], 1), 200)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(
            f"peer {shown!r} must be an https:// URL (PEP 449: mirrors are listed explicitly, "
            "over HTTPS)"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"peer {shown!r} must not carry credentials: peers are public mirrors")
    if parts.query or parts.fragment or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(f"peer {shown!r} must be a plain base URL (no query, fragment or spaces)")
    del port
    return url if url.endswith("/") else url + "/"


class StatusSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[status]`` table (docs/web-interface.md, "Mirror status")."""

    #: Other servers' mirrors to check and show: their base URLs (https only); each is read at
    #: ``<url>mirrors.json`` (another headwater) or ``<url>last-modified`` (a bandersnatch tree).
    peers: list[str] = msgspec.field(default_factory=list)
    #: Seconds between two checks of each upstream's serial, each peer, and each proxy's cache
    #: size (done by one server process; page views never trigger a check).
    check_interval: float = 300.0
    #: Seconds one check (one peer, one upstream) may take in all.
    check_deadline: float = 10.0
    #: A mirror last known current longer ago than this is "behind" ...
    behind_after: float = 3600.0
    #: ... and longer than this "stale".
    stale_after: float = 86400.0
    #: Non-public networks that peers and mirror upstreams may resolve to (like a proxy's).
    allowed_networks: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.peers) > MAX_PEERS:
            raise ValueError(f"peers: at most {MAX_PEERS} peers, got {len(self.peers)}")
        self.peers = list(dict.fromkeys(check_peer_url(url) for url in self.peers))
        if not 10 <= self.check_interval <= 86400:
            raise ValueError("check_interval must be between 10 and 86400 seconds")
        if not 0 < self.check_deadline <= 300:
            raise ValueError("check_deadline must be between 0 and 300 seconds")
        if not 0 < self.behind_after < self.stale_after:
            raise ValueError("behind_after must be positive and less than stale_after")
        for entry in self.allowed_networks:
            check_network_entry(entry)
