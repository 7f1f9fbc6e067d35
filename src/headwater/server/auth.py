"""Who is asking: API tokens in an ``Authorization`` header, as twine, pip, uv and API clients
send them.

Two forms are accepted everywhere (uploads, pages of private indexes, the management API):

- ``Basic`` with the user name ``__token__`` and the token as the password, PyPI's convention
  (what twine, ``uv publish --token`` and ``https://__token__:TOKEN@HOST/...`` index URLs send);
- ``Bearer <token>``, as other registries' APIs take it.

A Basic user name other than ``__token__`` is refused with a message naming the fix, as PyPI
refuses it: the token names its user, and a second name that could disagree with it would only
mislead. What the header resolved to is a :class:`~headwater.server.authz.Credentials`; what it
may do is :func:`headwater.server.authz.decide`'s answer.

Tokens are checked against the database on every upload and management call. For reads of private
indexes (the hot path) a successful check is remembered for ``READ_CACHE_SECONDS`` while the
database does not change (its change signal, :meth:`headwater.db.Database.generation`): revoking
a token, by any process, stops its reads at the next request; an expiry is honoured at once (it
is in the remembered token).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from headwater.server.authz import NO_CREDENTIALS, Credentials
from headwater.server.responses import header
from headwater.server.types import Scope

__all__ = ["READ_CACHE_SECONDS", "TOKEN_USER", "Authenticator", "parse_authorization"]

READ_CACHE_SECONDS = 30.0
#: The Basic user name that says "the password is an API token" (PyPI's convention).
TOKEN_USER = "__token__"  # noqa: S105 - a user name, not a secret
_MAX_HEADER = 8192


class TokenDatabase(Protocol):
    def authenticate(self, secret: str) -> Any: ...
    def authenticate_session(self, secret: str) -> Any: ...
    def generation(self) -> int: ...


def parse_authorization(value: bytes | None) -> str | Credentials:
    """The token an ``Authorization`` header carries, or the :class:`Credentials` saying why
    there is none (``none``: no header; ``invalid``: with the problem and its fix)."""
    if value is None:
        return NO_CREDENTIALS
    scheme, _, rest = value.strip().partition(b" ")
    rest = rest.strip()
    if len(value) > _MAX_HEADER or not rest:
        return _invalid("the Authorization header is malformed")
    kind = scheme.lower()
    if kind == b"bearer":
        try:
            return rest.decode("ascii")
        except UnicodeDecodeError:
            return _invalid("the Bearer token is not a headwater token")
    if kind != b"basic":
        return _invalid(
            "the Authorization header is neither Basic (user __token__, password the token) nor "
            "Bearer"
        )
    try:
        decoded = base64.b64decode(rest, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return _invalid("the Basic credentials are not valid base64 of user:password")
    user, sep, password = decoded.partition(":")
    if not sep or not password:
        return _invalid("the Basic credentials have no password: the password is the token")
    if user != TOKEN_USER:
        return _invalid(
            f"the user name must be {TOKEN_USER} when the password is a token (got "
            f"{user[:40]!r}): use -u {TOKEN_USER} (twine), --token (uv publish) or "
            f"https://{TOKEN_USER}:TOKEN@HOST/ (pip, uv)"
        )
    return password


_UNKNOWN_TOKEN = (
    "the token is unknown, revoked or expired: create one with `headwater token create`"  # noqa: S105
)
_ENDED_SESSION = (
    "your session has ended (signed out, expired, or the password changed): sign in again"
)


def _key(kind: bytes, secret: str) -> bytes:
    return hashlib.sha256(kind + b"\0" + secret.encode("utf-8", "surrogateescape")).digest()


def _invalid(problem: str) -> Credentials:
    return Credentials("invalid", problem=problem)


class Authenticator:
    """Checks tokens against the database (in a thread), caching successes for reads."""

    def __init__(self, db: TokenDatabase, *, read_cache: float = READ_CACHE_SECONDS) -> None:
        self.db = db
        self.read_cache = read_cache
        self._cache: dict[bytes, tuple[Any, float, int]] = {}

    async def credentials(self, scope: Scope, *, cached: bool = False) -> Credentials:
        """What the request's ``Authorization`` header resolves to. ``cached``: a token checked
        within ``read_cache`` seconds is not checked again (reads only)."""
        secret = parse_authorization(header(scope, b"authorization"))
        if isinstance(secret, Credentials):
            return secret
        return await self.token(secret, cached=cached)

    async def token(self, secret: str, *, cached: bool = False) -> Credentials:
        """What the token ``secret`` resolves to (a browser session carries one in its cookie;
        see :mod:`headwater.ui.session`). ``cached`` as for :meth:`credentials`."""
        return await self._resolve(secret, b"token", self.db.authenticate, cached, _UNKNOWN_TOKEN)

    async def session(self, secret: str, *, cached: bool = False) -> Credentials:
        """What a password session's secret (:mod:`headwater.db.passwords`) resolves to: only
        the interface asks this; the API, uploads and the Simple API never do, so a password
        never authenticates them. ``cached`` as for :meth:`credentials`."""
        return await self._resolve(
            secret, b"session", self.db.authenticate_session, cached, _ENDED_SESSION
        )

    def forget(self, secret: str | None = None) -> None:
        """Drop what this process remembers of ``secret`` (every secret when None): a session
        this process just ended must not be honoured by it until the change signal arrives
        (on PostgreSQL a notification takes a moment to travel back to its own listener)."""
        if secret is None:
            self._cache.clear()
            return
        for kind in (b"token", b"session"):
            self._cache.pop(_key(kind, secret), None)

    async def _resolve(
        self, secret: str, kind: bytes, lookup: Callable[[str], Any], cached: bool, problem: str
    ) -> Credentials:
        # The kind is part of the key: a password session's secret that the interface resolved
        # must never be found in the cache by a Bearer lookup of the API (a test sends one).
        key = _key(kind, secret)
        now = time.monotonic()
        generation = self.db.generation()  # before the check: a revocation after it shows next time
        if cached:
            hit = self._cache.get(key)
            if hit is not None and now - hit[1] < self.read_cache and hit[2] == generation:
                expires = getattr(hit[0], "expires", None)
                if expires is None or expires > datetime.now(UTC):
                    return Credentials("token", hit[0])
        token = await asyncio.to_thread(lookup, secret)
        if token is None:
            self._cache.pop(key, None)
            return _invalid(problem)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (token, now, generation)
        return Credentials("token", token)
