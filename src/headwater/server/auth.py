"""Who is asking: API tokens in HTTP Basic auth, as twine, pip and uv send them.

twine sends ``__token__`` as the user name and the token as the password (PyPI's convention);
pip and uv send whatever credentials their ``--index-url`` or keyring gives them. Any user name is
accepted with a valid token: the token names its user.

Tokens are checked against the database on every upload and management call. For reads of private
indexes (the hot path) a successful check is remembered for ``READ_CACHE_SECONDS``, so revoking a
token stops its reads within that time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from typing import Any, Protocol

from headwater.server.responses import header
from headwater.server.types import Scope

__all__ = ["READ_CACHE_SECONDS", "Authenticator", "basic_credentials", "token_allows"]

READ_CACHE_SECONDS = 30.0


class TokenDatabase(Protocol):
    def authenticate(self, secret: str) -> Any: ...


def basic_credentials(value: bytes | None) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic ...`` header, or None."""
    if value is None:
        return None
    scheme, _, encoded = value.partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def token_allows(token: Any, scope: str, index: str, project: str | None = None) -> bool:
    """Whether ``token`` (a TokenInfo) grants ``scope`` on ``index`` (and ``project``, if given).

    ``admin`` implies every scope. ``None`` for the token's indexes or projects means "all".
    """
    scopes = set(token.scopes)
    if scope not in scopes and "admin" not in scopes:
        return False
    if token.indexes is not None and index not in token.indexes:
        return False
    return project is None or token.projects is None or project in token.projects


class Authenticator:
    """Checks tokens against the database (in a thread), caching successes for reads."""

    def __init__(self, db: TokenDatabase, *, read_cache: float = READ_CACHE_SECONDS) -> None:
        self.db = db
        self.read_cache = read_cache
        self._cache: dict[bytes, tuple[Any, float]] = {}

    async def token(self, scope: Scope, *, cached: bool = False) -> Any | None:
        """The TokenInfo of the request's credentials, or None (no, malformed or bad credentials)."""
        raw = header(scope, b"authorization")
        credentials = basic_credentials(raw)
        if credentials is None:
            return None
        secret = credentials[1]
        key = hashlib.sha256(secret.encode()).digest()
        now = time.monotonic()
        if cached:
            hit = self._cache.get(key)
            if hit is not None and now - hit[1] < self.read_cache:
                return hit[0]
        token = await asyncio.to_thread(self.db.authenticate, secret)
        if token is not None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (token, now)
        else:
            self._cache.pop(key, None)
        return token
