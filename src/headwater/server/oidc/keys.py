"""The signing keys of OIDC issuers: fetched from their discovery document and JWKS, cached.

For an issuer ``https://token.actions.githubusercontent.com`` the cache GETs
``<issuer>/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0, section 4), checks
that its ``issuer`` is exactly the issuer asked about (section 4.3: otherwise another site's
document could stand in), then GETs its ``jwks_uri`` and keeps the keys
(:func:`~headwater.server.oidc.tokens.parse_jwks`).

- **Bounded**: every fetch goes through headwater's upstream client with a
  :class:`~headwater.repository.boundary.FetchBoundary` for the issuer's origin (so ``jwks_uri``
  and every redirect must stay on it, and addresses are checked), a deadline of
  :data:`FETCH_DEADLINE` seconds and at most :data:`MAX_DOCUMENT` bytes per document.
- **Cached**: keys are used for ``ttl`` seconds (default :data:`KEYS_TTL`), then fetched again;
  concurrent requests for one issuer share one fetch.
- **Rotated**: a token whose ``kid`` is not among the cached keys makes the cache fetch again
  (the issuer may have rotated); such fetches happen at most once per ``refetch_interval``
  seconds per issuer, so a stream of tokens with made-up ``kid`` s cannot turn the server into a
  load on the issuer. A fetch replaces the key set: removed keys stop verifying.
- **Issuer down**: when a fetch fails and keys fetched within ``max_stale`` seconds are at hand,
  they are used (the issuer's keys rarely change); otherwise :class:`IssuerUnavailable`, which
  the mint endpoint answers with a 503 naming the issuer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from headwater.errors import HeadwaterError, printable
from headwater.server.oidc.tokens import Key, parse_jwks

__all__ = [
    "FETCH_DEADLINE",
    "KEYS_TTL",
    "MAX_DOCUMENT",
    "IssuerUnavailable",
    "KeyCache",
    "http_fetcher",
]

KEYS_TTL = 3600.0
REFETCH_INTERVAL = 60.0
MAX_STALE = 24 * 3600.0
FETCH_DEADLINE = 10.0
MAX_DOCUMENT = 256 * 1024
#: Issuers whose keys are kept at once (each is a few KiB).
MAX_ISSUERS = 1000

#: ``fetch(url, issuer) -> body``: one bounded GET inside the issuer's origin.
Fetcher = Callable[[str, str], Awaitable[bytes]]
_DOCUMENT = msgspec.json.Decoder(dict[str, Any])


class IssuerUnavailable(HeadwaterError):
    """The issuer's keys cannot be fetched (and none are cached): nothing was minted."""

    def __init__(self, issuer: str, why: str) -> None:
        super().__init__(
            f"cannot fetch the signing keys of the OIDC issuer {printable(issuer, 200)}: "
            f"{printable(why, 300)}; nothing was minted. Try again later (if the issuer is "
            "reachable, the operator sees why in the server log)"
        )
        self.issuer = issuer


class _Entry:
    __slots__ = ("fetched", "keys", "lock", "tried")

    def __init__(self) -> None:
        self.keys: dict[str, Key] = {}
        self.fetched = -1e18  # monotonic time of the last successful fetch
        self.tried = -1e18  # monotonic time of the last fetch an unknown kid caused
        self.lock = asyncio.Lock()


class KeyCache:
    """Keys per issuer (see the module docstring). ``clock`` is monotonic seconds."""

    def __init__(
        self,
        fetch: Fetcher,
        *,
        ttl: float = KEYS_TTL,
        refetch_interval: float = REFETCH_INTERVAL,
        max_stale: float = MAX_STALE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self.refetch_interval = refetch_interval
        self.max_stale = max_stale
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        #: Fetches made (discovery + JWKS count as one), for tests and metrics.
        self.fetches = 0

    async def keys(self, issuer: str, kid: str | None = None) -> dict[str, Key]:
        """The keys of ``issuer``, fetched when missing or older than ``ttl``, or when ``kid``
        is not among them (rate-limited).

        Raises:
            IssuerUnavailable: no usable keys (none cached within ``max_stale``) and the fetch
                failed.
        """
        entry = self._entries.get(issuer)
        if entry is None:
            if len(self._entries) >= MAX_ISSUERS:
                self._entries.clear()
            entry = self._entries[issuer] = _Entry()
        if self._fresh(entry, kid):
            return entry.keys
        async with entry.lock:
            if self._fresh(entry, kid):  # another request fetched while we waited
                return entry.keys
            now = self._clock()
            expired = now - entry.fetched >= self.ttl
            if not expired:
                # An unknown kid: fetch again, unless an unknown kid made us do so moments ago.
                if now - entry.tried < self.refetch_interval:
                    return entry.keys
                entry.tried = now
            try:
                entry.keys = await self._load(issuer)
                entry.fetched = self._clock()
                self.fetches += 1
            except IssuerUnavailable:
                if entry.keys and now - entry.fetched < self.max_stale:
                    return entry.keys
                raise
        return entry.keys

    def _fresh(self, entry: _Entry, kid: str | None) -> bool:
        if self._clock() - entry.fetched >= self.ttl:
            return False
        return kid is None or kid in entry.keys

    async def _load(self, issuer: str) -> dict[str, Key]:
        discovery_url = issuer + "/.well-known/openid-configuration"
        document = await self._json(discovery_url, issuer, "discovery document")
        if document.get("issuer", "").rstrip("/") != issuer:
            raise IssuerUnavailable(
                issuer,
                f"its discovery document names the issuer {str(document.get('issuer'))[:200]!r}"
                " (OpenID Connect Discovery 4.3: it must be the same)",
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise IssuerUnavailable(issuer, "its discovery document has no jwks_uri")
        try:
            raw = await self._fetch(jwks_uri, issuer)
            keys = parse_jwks(raw)
        except IssuerUnavailable:
            raise
        except ValueError as exc:
            raise IssuerUnavailable(issuer, f"its JWKS at {jwks_uri[:200]}: {exc}") from None
        if not keys:
            raise IssuerUnavailable(issuer, f"its JWKS at {jwks_uri[:200]} has no usable key")
        return keys

    async def _json(self, url: str, issuer: str, what: str) -> dict[str, Any]:
        raw = await self._fetch(url, issuer)
        try:
            return _DOCUMENT.decode(raw)
        except msgspec.DecodeError:
            raise IssuerUnavailable(
                issuer, f"its {what} at {url[:200]} is not a JSON object"
            ) from None


def http_fetcher(client: Any, *, deadline: float = FETCH_DEADLINE) -> Fetcher:
    """A :data:`Fetcher` over headwater's upstream client (:class:`headwater.repository._client.
    HttpClient`): each GET bounded to the issuer's origin, ``deadline`` seconds and
    :data:`MAX_DOCUMENT` bytes."""
    from headwater.repository._client import ClientError, Deadline
    from headwater.repository.boundary import FetchBoundary
    from headwater.repository.errors import FetchRefused

    boundaries: dict[str, FetchBoundary] = {}

    async def fetch(url: str, issuer: str) -> bytes:
        boundary = boundaries.get(issuer)
        if boundary is None:
            try:
                boundary = FetchBoundary.for_upstream(
                    issuer + "/", where=f"the OIDC issuer {printable(issuer, 200)}"
                )
            except ValueError as exc:
                raise IssuerUnavailable(issuer, str(exc)) from None
            boundaries[issuer] = boundary
        try:
            response = await client.get(
                url,
                {"accept": "application/json", "user-agent": "headwater-trusted-publishing"},
                boundary=boundary,
                deadline=Deadline(deadline),
            )
            async with response:
                if response.status != 200:
                    raise IssuerUnavailable(issuer, f"{url[:200]} answered {response.status}")
                body: bytes = await response.read(limit=MAX_DOCUMENT)
                return body
        except IssuerUnavailable:
            raise
        except FetchRefused as exc:
            raise IssuerUnavailable(issuer, str(exc)) from None
        except (ClientError, OSError, TimeoutError) as exc:
            raise IssuerUnavailable(issuer, f"{url[:200]}: {exc}") from None

    return fetch
