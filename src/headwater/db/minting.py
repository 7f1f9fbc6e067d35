"""Tokens minted for trusted publishers, the OIDC token ids already used, and the publishing log.

The methods here are part of :class:`headwater.db.Database`.

A minted token has the form of every headwater token (``hw_<id>_<secret>``, only its sha256
stored) and is checked by the same :meth:`~headwater.db.access.AccessControl.authenticate`; it
differs in what it may do: upload only, to exactly the (index, project) pairs of its *grants*,
each naming the publisher that allowed it, until it expires (15 minutes by default). Every
upload asks :meth:`Minting.publisher_grant` again, so removing a publisher stops its tokens at
once.

Replay: the OIDC token's ``jti`` (with its issuer) is inserted into ``oidc_jtis`` in the same
transaction as the minted token; the primary key refuses a second insert, on every server that
shares the database. Rows are kept until the OIDC token has expired (a replay after that fails
on ``exp``), then :meth:`Minting.purge_jtis` removes them.

The publishing log: the minted token's row is the record of the mint (when, which issuer and
subject, the claims, which projects and publishers); ``publishing_log`` adds one row per file
uploaded with it. :meth:`Minting.publishing_log` reads both.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, Row

from headwater.db import schema as t
from headwater.db._checks import now
from headwater.db.engine import reading, writing
from headwater.db.errors import Conflict, InvalidArgument
from headwater.db.records import TokenInfo

__all__ = ["Grant", "MintedToken", "Minting", "PublishedFile", "PublishingRecord", "Replayed"]

_PREFIX = "hw_"
#: The claims kept for the audit log: at most this many, each value cut to _CLAIM_CHARS.
_MAX_CLAIMS = 60
_CLAIM_CHARS = 500


# Built once: the mint is the hot write of trusted publishing (bench/bench_mint_token.py), and a
# statement made per call costs SQLAlchemy a cache-key computation each time.
# INSERT ... ON CONFLICT DO NOTHING RETURNING (both databases have it): one statement, where
# catching the IntegrityError would need a savepoint around it on PostgreSQL.
_JTI_INSERT = {
    name: dialect.insert(t.oidc_jtis)
    .on_conflict_do_nothing(index_elements=["key"])
    .returning(t.oidc_jtis.c.key)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_TOKEN_INSERT = sa.insert(t.minted_tokens)


class Replayed(Conflict):
    """The OIDC token (its issuer and ``jti``) was exchanged before."""


class Grant(msgspec.Struct, frozen=True, array_like=True):
    """A minted token may upload to ``project`` of ``index`` because of ``publisher``."""

    index: str
    project: str
    publisher: int


class MintedToken(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    #: The token itself: shown once, never stored.
    token: str
    expires: datetime
    grants: tuple[Grant, ...]


class PublishedFile(msgspec.Struct, frozen=True, kw_only=True):
    time: datetime
    index: str
    project: str
    filename: str | None
    publisher: int | None


class PublishingRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One minted token: who minted it, when, with which claims, for what, and what it uploaded."""

    token_id: str
    created: datetime
    expires: datetime
    issuer: str
    subject: str
    claims: dict[str, Any]
    grants: tuple[Grant, ...]
    single_use: bool
    used: datetime | None
    revoked: datetime | None
    uploads: tuple[PublishedFile, ...]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def jti_key(issuer: str, jti: str) -> str:
    """The ``oidc_jtis`` key of a token id: bounded whatever its length."""
    return hashlib.sha256(f"{issuer}\0{jti}".encode("utf-8", "surrogatepass")).hexdigest()


def _kept_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name in sorted(claims)[:_MAX_CLAIMS]:
        value = claims[name]
        if not isinstance(value, (str, int, float, bool)) or value is None:
            value = msgspec.json.encode(value).decode()
        if isinstance(value, str):
            value = value[:_CLAIM_CHARS]
        kept[str(name)[:100]] = value
    return kept


def _grants(raw: Any) -> tuple[Grant, ...]:
    return tuple(msgspec.convert(raw, list[Grant]))


def _label(subject: str) -> str:
    """The name a minted token's uploads are recorded under (files.uploader, the journal)."""
    return ("trusted-publisher:" + subject)[:100]


class Minting:
    """Minted tokens, used OIDC token ids, the publishing log (mixed into the Database)."""

    _engine: Engine

    def mint_token(
        self,
        *,
        issuer: str,
        subject: str,
        jti: str,
        jti_expires: datetime,
        claims: Mapping[str, Any],
        grants: Iterable[Grant],
        lifetime: timedelta,
        single_use: bool = False,
    ) -> MintedToken:
        """Record that the OIDC token (``issuer``, ``jti``) was used and mint an upload token
        for ``grants``, in one transaction. Show the token once; only its sha256 is kept.

        Raises:
            Replayed: this ``jti`` of ``issuer`` was used before.
            InvalidArgument: no grants, a non-positive lifetime, a naive time.
        """
        grant_list = sorted(set(grants), key=lambda g: (g.index, g.project, g.publisher))
        if not grant_list:
            raise InvalidArgument("a minted token needs at least one grant")
        if lifetime <= timedelta(0) or jti_expires.tzinfo is None:
            raise InvalidArgument("a minted token needs a positive lifetime and aware times")
        token_id = secrets.token_hex(8)
        token = f"{_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        created = now()
        expires = created + lifetime
        with writing(self._engine) as conn:
            inserted = conn.execute(
                _JTI_INSERT[conn.dialect.name],
                {"key": jti_key(issuer, jti), "expires": max(jti_expires, created)},
            ).first()
            if inserted is None:
                raise Replayed(
                    "this OIDC token was exchanged before (its jti is used): ask the CI provider "
                    "for a new one"
                )
            conn.execute(
                _TOKEN_INSERT,
                {
                    "id": token_id,
                    "secret_sha256": _digest(token),
                    "grants": msgspec.to_builtins(grant_list),
                    "issuer": issuer[:500],
                    "subject": subject[:500],
                    "claims": _kept_claims(claims),
                    "single_use": single_use,
                    "created": created,
                    "expires": expires,
                    "used": None,
                    "revoked": None,
                },
            )
        return MintedToken(id=token_id, token=token, expires=expires, grants=tuple(grant_list))

    def _authenticate_minted(self, token_id: str, token: str) -> TokenInfo | None:
        """The TokenInfo of a valid, unexpired, unrevoked (and, single-use, unused) minted token."""
        with reading(self._engine) as conn:
            row = conn.execute(
                sa.select(t.minted_tokens).where(t.minted_tokens.c.id == token_id)
            ).first()
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(token)):
            return None
        if row.revoked is not None or row.expires <= now():
            return None
        if row.single_use and row.used is not None:
            return None
        return self._minted_info(row)

    @staticmethod
    def _minted_info(row: Row[Any]) -> TokenInfo:
        grants = _grants(row.grants)
        return TokenInfo(
            id=row.id,
            user=_label(row.subject),
            scopes=frozenset({"upload"}),
            indexes=frozenset(g.index for g in grants),
            projects=frozenset(g.project for g in grants),  # type: ignore[misc]
            description=f"minted for {row.subject[:200]} ({row.issuer[:200]})",
            created=row.created,
            expires=row.expires,
            revoked=row.revoked,
            minted=True,
        )

    def publisher_grant(self, token_id: str, index: str, project: str) -> int | None:
        """The publisher that lets minted token ``token_id`` upload to ``project`` of ``index``
        now: one of its grants whose publisher still exists and is active or pending. None for
        any other token, pair, or a publisher removed or gone stale since the mint."""
        from headwater.db.publishers import _status

        with reading(self._engine) as conn:
            row = conn.execute(
                sa.select(t.minted_tokens.c.grants).where(t.minted_tokens.c.id == token_id)
            ).first()
            if row is None:
                return None
            wanted = [
                g.publisher for g in _grants(row.grants) if (g.index, g.project) == (index, project)
            ]
            if not wanted:
                return None
            current = conn.execute(
                sa.select(t.projects.c.id).where(
                    t.projects.c.index == index, t.projects.c.name == project
                )
            ).first()
            rows = conn.execute(
                sa.select(t.publishers).where(
                    t.publishers.c.id.in_(wanted),
                    t.publishers.c.index == index,
                    t.publishers.c.project == project,
                )
            ).all()
        for publisher in sorted(rows, key=lambda r: r.id):
            if _status(publisher, None if current is None else current.id) != "stale":
                return int(publisher.id)
        return None

    def use_single_use(self, token_id: str) -> bool:
        """Mark a single-use minted token used; False when it was used already (or is not
        single-use). PEP 807: "Any subsequent upload attempts using the same token MUST be
        rejected"; the update is atomic, so two uploads at once cannot both have it."""
        with writing(self._engine) as conn:
            result = conn.execute(
                sa.update(t.minted_tokens)
                .where(
                    t.minted_tokens.c.id == token_id,
                    t.minted_tokens.c.single_use == sa.true(),
                    t.minted_tokens.c.used.is_(None),
                )
                .values(used=now())
            )
        return bool(result.rowcount)

    def is_single_use(self, token_id: str) -> bool:
        with reading(self._engine) as conn:
            row = conn.execute(
                sa.select(t.minted_tokens.c.single_use).where(t.minted_tokens.c.id == token_id)
            ).first()
        return bool(row is not None and row.single_use)

    def record_publish(
        self, token_id: str, index: str, project: str, filename: str, publisher: int | None
    ) -> None:
        """Add an upload made with minted token ``token_id`` to the publishing log."""
        with writing(self._engine) as conn:
            conn.execute(
                sa.insert(t.publishing_log).values(
                    time=now(),
                    token_id=token_id,
                    action="upload",
                    index=index,
                    project=project,
                    filename=filename,
                    publisher_id=publisher,
                )
            )

    def revoke_minted(self, token_id: str) -> bool:
        """Revoke a minted token; False if there is none, or it was revoked already."""
        with writing(self._engine) as conn:
            result = conn.execute(
                sa.update(t.minted_tokens)
                .where(t.minted_tokens.c.id == token_id, t.minted_tokens.c.revoked.is_(None))
                .values(revoked=now())
            )
        return bool(result.rowcount)

    def publishing_log(
        self,
        *,
        index: str | None = None,
        project: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[PublishingRecord]:
        """Minted tokens, newest first, each with the files uploaded with it (``index`` /
        ``project``: only tokens granted for them; ``since``: minted at or after)."""
        if not 1 <= limit <= 10_000:
            raise InvalidArgument("limit must be 1-10000")
        query = sa.select(t.minted_tokens).order_by(
            t.minted_tokens.c.created.desc(), t.minted_tokens.c.id
        )
        if since is not None:
            query = query.where(t.minted_tokens.c.created >= since)
        records: list[PublishingRecord] = []
        with reading(self._engine) as conn:
            # Filtering on a JSON list is not portable; the grants are few, so filter here.
            for row in conn.execute(query).yield_per(500):
                grants = _grants(row.grants)
                if index is not None and all(g.index != index for g in grants):
                    continue
                if project is not None and all(g.project != project for g in grants):
                    continue
                records.append(self._record(row, grants))
                if len(records) >= limit:
                    break
            uploads: dict[str, list[PublishedFile]] = {}
            ids = [r.token_id for r in records]
            if ids:
                for up in conn.execute(
                    sa.select(t.publishing_log)
                    .where(t.publishing_log.c.token_id.in_(ids))
                    .order_by(t.publishing_log.c.id)
                ):
                    uploads.setdefault(up.token_id, []).append(
                        PublishedFile(
                            time=up.time,
                            index=up._mapping["index"],
                            project=up.project,
                            filename=up.filename,
                            publisher=up.publisher_id,
                        )
                    )
        return [
            msgspec.structs.replace(r, uploads=tuple(uploads.get(r.token_id, ()))) for r in records
        ]

    @staticmethod
    def _record(row: Row[Any], grants: tuple[Grant, ...]) -> PublishingRecord:
        return PublishingRecord(
            token_id=row.id,
            created=row.created,
            expires=row.expires,
            issuer=row.issuer,
            subject=row.subject,
            claims=dict(row.claims),
            grants=grants,
            single_use=bool(row.single_use),
            used=row.used,
            revoked=row.revoked,
            uploads=(),
        )

    def purge_jtis(self) -> int:
        """Forget used OIDC token ids whose tokens have expired (a replay of one fails on its
        ``exp`` anyway). Returns how many were removed."""
        with writing(self._engine) as conn:
            result = conn.execute(sa.delete(t.oidc_jtis).where(t.oidc_jtis.c.expires < now()))
        return int(result.rowcount)
