"""The token exchange: an OIDC token in, a short-lived upload token out (or why not).

:meth:`Exchange.mint` runs, in this order (each step refuses with PyPI's error codes, see
:class:`~headwater.server.oidc.tokens.Refused`):

1. the body: a JSON object with a string ``token`` (and, PEP 807, an optional ``features``
   list) -- else ``invalid-payload``;
2. :func:`~headwater.server.oidc.tokens.inspect` -- the token's form, ``alg`` and ``iss``;
3. the publishers that name this issuer (in the index asked, or in every hosted index at the
   root endpoint; kept in memory for :data:`PUBLISHERS_TTL` seconds). None:
   ``invalid-publisher``, and *nothing is fetched* -- only issuers an operator configured are
   ever contacted;
4. the issuer's keys (:class:`~headwater.server.oidc.keys.KeyCache`; a 503 when they cannot be
   had), then :func:`~headwater.server.oidc.tokens.verify`;
5. :func:`~headwater.server.oidc.claims.matching`: the publishers whose identity the claims
   match. None: ``invalid-publisher``, with the token's own identifying claims in the
   description (never the configured publishers: anyone can get a valid GitHub token, and the
   answer must not tell them which repositories an organisation publishes from);
6. :meth:`headwater.db.Database.mint_token`: the ``jti`` recorded and the token minted in one
   transaction (a replay: ``invalid-token``), with one grant per matched publisher.

The answer is PyPI's: ``{"success": true, "token": ..., "expires": <unix time>}`` or 422
``{"message": "Token request failed", "errors": [{"code", "description"}]}``. Errors also carry
the RFC 9457 members (``type``, ``title``, ``status``, ``detail``) PEP 807 asks for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from headwater.db import Database, DatabaseUnavailable, Grant, Publisher, Replayed
from headwater.errors import printable
from headwater.server.oidc.claims import matching
from headwater.server.oidc.keys import IssuerUnavailable, KeyCache
from headwater.server.oidc.tokens import Refused, inspect, verify

__all__ = ["FEATURES", "Exchange", "Outcome"]

#: PEP 807 features this server supports.
FEATURES = ("single-use-token", "multi-use-token")
DEFAULT_FEATURES = ("multi-use-token",)
#: Claims shown back when no publisher matches (they say who the token is, not who we trust).
_SHOWN_CLAIMS = (
    "sub",
    "repository",
    "repository_id",
    "repository_owner_id",
    "job_workflow_ref",
    "environment",
    "ref",
    "project_path",
    "project_id",
    "ci_config_ref_uri",
)
_PURGE_EVERY = 300.0
#: Seconds the publishers of an issuer are kept in memory (see Exchange._publishers).
PUBLISHERS_TTL = 2.0
_LOG = logging.getLogger("headwater.trusted_publishing")


class _Body(msgspec.Struct, forbid_unknown_fields=False):
    token: str
    features: list[str] | None = None


_BODY = msgspec.json.Decoder(_Body)


class Outcome(msgspec.Struct, frozen=True):
    """An HTTP answer: status and JSON body."""

    status: int
    body: dict[str, Any]


def refusal(status: int, code: str, description: str) -> Outcome:
    """PyPI's error shape, with RFC 9457's members (PEP 807)."""
    description = printable(description, 1000)
    return Outcome(
        status,
        {
            "type": "about:blank",
            "title": "Token request failed",
            "status": status,
            "detail": description,
            "message": "Token request failed",
            "errors": [{"code": code, "description": description}],
        },
    )


def _claims_shown(claims: Mapping[str, Any]) -> str:
    shown = [
        f"{name}={printable(str(claims[name]), 200)}" for name in _SHOWN_CLAIMS if name in claims
    ]
    return ", ".join(shown) or "no identifying claims"


class Exchange:
    """Mints upload tokens for trusted publishers (see the module docstring).

    ``hosted``: the hosted indexes (the root endpoint grants across all of them); ``clock``:
    Unix seconds (tests move it)."""

    def __init__(
        self,
        db: Database,
        keys: KeyCache,
        *,
        audience: str,
        lifetime: int,
        hosted: Collection[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.keys = keys
        self.audience = audience
        self.lifetime = timedelta(seconds=lifetime)
        self.hosted = frozenset(hosted)
        self._clock = clock
        self._purged = 0.0
        self._cache: dict[str, tuple[float, list[Publisher]]] = {}

    async def mint(self, payload: bytes, index: str | None = None) -> Outcome:
        """Exchange the OIDC token in ``payload`` for an upload token (``index``: only that
        hosted index's publishers; None: every hosted index's)."""
        try:
            body = _BODY.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return refusal(
                422,
                "invalid-payload",
                f'the body must be a JSON object {{"token": "<OIDC token>"}}: {exc}',
            )
        features = body.features if body.features is not None else list(DEFAULT_FEATURES)
        unknown = sorted(set(features) - set(FEATURES))
        if unknown or {"single-use-token", "multi-use-token"} <= set(features):
            return refusal(
                422,
                "invalid-payload",
                f"features {features!r}: ask for one of {', '.join(FEATURES)}",
            )
        unverified = inspect(body.token)
        if isinstance(unverified, Refused):
            return refusal(422, unverified.code, unverified.description)
        try:
            publishers = await self._publishers(unverified.issuer)
        except DatabaseUnavailable:
            return refusal(503, "unavailable", "the index cannot reach its database; try again")
        publishers = [
            p for p in publishers if p.index in self.hosted and (index is None or p.index == index)
        ]
        where = f"index {index!r}" if index is not None else "this server"
        if not publishers:
            return refusal(
                422,
                "invalid-publisher",
                f"valid token format, but no trusted publisher of {where} uses the issuer "
                f"{printable(unverified.issuer, 200)}",
            )
        try:
            keys = await self.keys.keys(unverified.issuer, unverified.kid)
        except IssuerUnavailable as exc:
            _LOG.warning("trusted publishing: %s", exc)
            return refusal(503, "issuer-unavailable", str(exc))
        now = self._clock()
        claims = verify(body.token, unverified, keys, audience=self.audience, now=now)
        if isinstance(claims, Refused):
            return refusal(422, claims.code, claims.description)
        matched, _ = matching(publishers, _identity, claims)
        if not matched:
            return refusal(
                422,
                "invalid-publisher",
                f"valid token, but no trusted publisher of {where} matches it "
                f"({_claims_shown(claims)}): the publisher's repository, workflow, environment "
                "and ref must match these claims exactly",
            )
        grants = [Grant(p.index, p.project, p.id) for p in matched]
        subject = claims.get("sub")
        try:
            minted = await asyncio.to_thread(
                self.db.mint_token,
                issuer=unverified.issuer,
                subject=subject if isinstance(subject, str) else "",
                jti=str(claims["jti"]),
                jti_expires=datetime.fromtimestamp(float(claims["exp"]) + 60, UTC),
                claims=claims,
                grants=grants,
                lifetime=self.lifetime,
                single_use=features == ["single-use-token"],
            )
        except Replayed as exc:
            return refusal(422, "invalid-token", str(exc))
        except DatabaseUnavailable:
            return refusal(503, "unavailable", "the index cannot reach its database; try again")
        if now - self._purged > _PURGE_EVERY:
            self._purged = now
            await asyncio.to_thread(self._purge)
        return Outcome(
            200,
            {
                "success": True,
                "token": minted.token,
                "expires": int(minted.expires.timestamp()),
            },
        )

    async def _publishers(self, issuer: str) -> list[Publisher]:
        """The publishers of ``issuer``, read at most every PUBLISHERS_TTL seconds per issuer.

        A publisher added is seen within that time; one removed may still match for as long,
        which gives nothing: every upload asks the database whether the token's publisher may
        still publish (Database.publisher_grant)."""
        now = self._clock()
        hit = self._cache.get(issuer)
        if hit is not None and now - hit[0] < PUBLISHERS_TTL:
            return hit[1]
        found = await asyncio.to_thread(self.db.publishers_of_issuer, issuer)
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[issuer] = (now, found)
        return found

    def _purge(self) -> None:
        with contextlib.suppress(DatabaseUnavailable):  # the next purge will do it
            self.db.purge_jtis()


def _identity(publisher: Publisher) -> Any:
    return publisher.identity
