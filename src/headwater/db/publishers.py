"""Trusted publishers: which CI identities may publish which hosted projects.

The methods here are part of :class:`headwater.db.Database`.

A publisher names an index, a project and an :data:`~headwater.db.identities.Identity`. Its
**status** says whether it counts:

========= ======================================================================================
status    meaning
========= ======================================================================================
active    bound to the project as it exists now: tokens it mints may upload to it
pending   the project does not exist yet; a token it mints may create it (PyPI's "pending
          publisher"). The first upload binds it: from then on it is ``active``, and the
          project's owner is the publisher's ``owner`` (or nobody: only admins manage it)
stale     pending, but the project was created by someone else, or it was bound to a project
          that was deleted and created again: it counts for nothing (remove it, or add it again)
========= ======================================================================================

Deleting a project deletes its bound publishers (as on PyPI). Publishers come from four places
(``origin``): the CLI, the management API, the administration pages (``ui``), and the
configuration file (``[[hosted.NAME.publishers]]``, made to match the file at every server start
by :meth:`Publishers.sync_publishers`).

:meth:`Publishers.publishers_for` is the read API for other parts of headwater (the provenance
checks compare an attestation's signing identity with it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from headwater.db import schema as t
from headwater.db._checks import check_index, name_of, now, project_row, require_user
from headwater.db.engine import reading, writing
from headwater.db.errors import Conflict, InvalidArgument, NotFound
from headwater.db.identities import Identity, check_identity, decode_identity
from headwater.simple.names import NormalizedName

__all__ = ["ConfiguredPublisher", "Publisher", "PublisherStatus", "Publishers"]

PublisherStatus = Literal["active", "pending", "stale"]
Origin = Literal["cli", "api", "ui", "config"]


class Publisher(msgspec.Struct, frozen=True, kw_only=True):
    """A trusted publisher of ``project`` in ``index`` (see the module docstring for ``status``)."""

    id: int
    index: str
    project: NormalizedName
    identity: Identity
    status: PublisherStatus
    #: Who owns the project a pending publisher creates (None: nobody but an admin).
    owner: str | None
    origin: str
    added_by: str
    created: datetime


class ConfiguredPublisher(msgspec.Struct, frozen=True, kw_only=True):
    """A publisher as the configuration file states it (see :meth:`Publishers.sync_publishers`)."""

    project: str
    identity: Identity
    owner: str | None = None


def _status(row: Row[Any], current_project_id: int | None) -> PublisherStatus:
    if row.project_id is not None:
        return "active" if row.project_id == current_project_id else "stale"
    if row.pending and current_project_id is None:
        return "pending"
    return "stale"


def _publisher(row: Row[Any], current_project_id: int | None) -> Publisher:
    return Publisher(
        id=row.id,
        index=row._mapping["index"],
        project=row.project,
        identity=decode_identity(row.identity),
        status=_status(row, current_project_id),
        owner=row.owner,
        origin=row.origin,
        added_by=row.added_by,
        created=row.created,
    )


def _identity_json(identity: Identity) -> dict[str, Any]:
    value: dict[str, Any] = msgspec.to_builtins(identity)
    return value


def _with_current(conn: Connection, query: sa.Select[Any]) -> list[Publisher]:
    """Publishers from ``query`` (over ``publishers``), each with its project's current id."""
    joined = query.add_columns(t.projects.c.id.label("current_id")).outerjoin(
        t.projects,
        sa.and_(
            t.projects.c.index == t.publishers.c.index,
            t.projects.c.name == t.publishers.c.project,
        ),
    )
    rows = conn.execute(joined.order_by(t.publishers.c.id)).all()
    return [_publisher(row, row.current_id) for row in rows]


class Publishers:
    """Trusted publishers of hosted projects (mixed into :class:`headwater.db.Database`)."""

    _engine: Engine

    def add_publisher(
        self,
        index: str,
        project: str,
        identity: Identity,
        *,
        pending: bool = False,
        owner: str | None = None,
        origin: Origin = "cli",
        added_by: str = "cli",
    ) -> Publisher:
        """Let ``identity`` publish ``project`` of ``index``.

        ``pending``: the project does not exist yet and this publisher may create it; ``owner``
        then becomes its owner. Without ``pending`` the project must exist.

        Raises:
            InvalidArgument: a malformed identity, index or project name; ``owner`` without
                ``pending``.
            NotFound: no such project (without ``pending``), or no such ``owner`` user.
            Conflict: the same identity publishes the project already; a pending publisher
                for a project that exists.
        """
        check_index(index)
        name = name_of(project)
        identity = check_identity(identity)
        if owner is not None and not pending:
            raise InvalidArgument(
                "--owner is for pending publishers only (the owner of the project they create); "
                "an existing project keeps its owners"
            )
        with writing(self._engine) as conn:
            return self._add(conn, index, name, identity, pending, owner, origin, added_by)

    def _add(
        self,
        conn: Connection,
        index: str,
        name: NormalizedName,
        identity: Identity,
        pending: bool,
        owner: str | None,
        origin: str,
        added_by: str,
    ) -> Publisher:
        row = project_row(conn, index, name)
        if pending and row is not None:
            raise Conflict(
                f"project {name!r} exists in {index!r}: a pending publisher is for a project "
                "that does not exist yet; add the publisher without --pending"
            )
        if not pending and row is None:
            raise NotFound(
                f"no project {name!r} in {index!r}: to let this publisher create it, add it with "
                "--pending (and --owner USER for who will own it)"
            )
        if owner is not None:
            require_user(conn, owner)
        wanted = _identity_json(identity)
        for existing in _with_current(
            conn,
            sa.select(t.publishers).where(
                t.publishers.c.index == index, t.publishers.c.project == name
            ),
        ):
            if existing.status != "stale" and _identity_json(existing.identity) == wanted:
                raise Conflict(
                    f"{identity.describe()} publishes {index}/{name} already (publisher "
                    f"{existing.id})"
                )
        created = now()
        result = conn.execute(
            sa.insert(t.publishers).values(
                index=index,
                project=name,
                project_id=None if row is None else row.id,
                pending=pending,
                kind=identity.kind,
                issuer=identity.issuer,
                identity=wanted,
                owner=owner,
                origin=origin,
                added_by=added_by,
                created=created,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return Publisher(
            id=int(key[0]),
            index=index,
            project=name,
            identity=identity,
            status="pending" if pending else "active",
            owner=owner,
            origin=origin,
            added_by=added_by,
            created=created,
        )

    def remove_publisher(
        self, publisher_id: int, *, index: str | None = None, project: str | None = None
    ) -> Publisher:
        """Remove a publisher (of ``index`` and ``project``, when given: the API names them).
        Tokens it minted stop uploading at once (every upload checks the publisher is there).

        Raises:
            NotFound: no such publisher (of ``index``/``project``).
        """
        with writing(self._engine) as conn:
            query = sa.select(t.publishers).where(t.publishers.c.id == publisher_id)
            if index is not None:
                query = query.where(t.publishers.c.index == index)
            if project is not None:
                query = query.where(t.publishers.c.project == name_of(project))
            found = _with_current(conn, query)
            if not found:
                where = "/".join(x for x in (index, project) if x is not None)
                raise NotFound(
                    f"no publisher {publisher_id}"
                    + (f" of {where}" if where else "")
                    + " (see `headwater publisher list`)"
                )
            conn.execute(sa.delete(t.publishers).where(t.publishers.c.id == publisher_id))
        return found[0]

    def publishers(self, index: str | None = None, project: str | None = None) -> list[Publisher]:
        """Every publisher (of ``index``, of ``project``), stale ones included, oldest first."""
        query = sa.select(t.publishers)
        if index is not None:
            query = query.where(t.publishers.c.index == index)
        if project is not None:
            query = query.where(t.publishers.c.project == name_of(project))
        with reading(self._engine) as conn:
            return _with_current(conn, query)

    def publishers_for(self, index: str, project: str) -> list[Publisher]:
        """The publishers that may publish ``project`` of ``index`` now: the active ones, or
        the pending ones when the project does not exist yet. Never the stale ones.

        This is what an attestation's signing identity is compared with."""
        return [p for p in self.publishers(index, project) if p.status != "stale"]

    def publishers_of_issuer(self, issuer: str) -> list[Publisher]:
        """The active and pending publishers whose identity names ``issuer`` (minting asks)."""
        with reading(self._engine) as conn:
            found = _with_current(
                conn, sa.select(t.publishers).where(t.publishers.c.issuer == issuer)
            )
        return [p for p in found if p.status != "stale"]

    def issuers(self) -> list[str]:
        """Every issuer some publisher names (the keys the server may need)."""
        with reading(self._engine) as conn:
            rows = conn.execute(
                sa.select(t.publishers.c.issuer).distinct().order_by(t.publishers.c.issuer)
            ).all()
        return [row.issuer for row in rows]

    def sync_publishers(
        self, index: str, configured: Iterable[ConfiguredPublisher]
    ) -> tuple[int, int]:
        """Make the configuration file's publishers of ``index`` exactly ``configured``: add the
        new ones (bound to the project when it exists, else pending), remove those no longer
        listed; the CLI's and API's publishers are left alone. Returns (added, removed).

        Raises:
            InvalidArgument: a malformed identity or project name.
            NotFound: an ``owner`` that is not a user.
        """
        check_index(index)
        wanted: list[tuple[NormalizedName, Identity, str | None]] = [
            (name_of(c.project), check_identity(c.identity), c.owner) for c in configured
        ]
        added = removed = 0
        with writing(self._engine) as conn:
            rows = conn.execute(
                sa.select(t.publishers).where(
                    t.publishers.c.index == index, t.publishers.c.origin == "config"
                )
            ).all()
            have = [(row.project, decode_identity(row.identity), row.owner, row.id) for row in rows]
            keep: set[int] = set()
            for name, identity, owner in wanted:
                same = [
                    pid
                    for (p, i, o, pid) in have
                    if (p, i, o) == (name, identity, owner) and pid not in keep
                ]
                if same:
                    keep.add(same[0])
                    continue
                exists = project_row(conn, index, name) is not None
                publisher = self._add(
                    conn,
                    index,
                    name,
                    identity,
                    not exists,
                    owner,
                    "config",
                    "config",
                )
                keep.add(publisher.id)
                added += 1
            stale = [row.id for row in rows if row.id not in keep]
            if stale:
                conn.execute(sa.delete(t.publishers).where(t.publishers.c.id.in_(stale)))
                removed = len(stale)
        return added, removed

    # -- used by uploads ----------------------------------------------------------------------

    @staticmethod
    def bind_publisher(
        conn: Connection, publisher_id: int, index: str, project: NormalizedName
    ) -> tuple[bool, str | None]:
        """In an upload's write transaction: may publisher ``publisher_id`` add a file to
        ``project`` as it is now? Returns (allowed, the owner of a project it creates).

        Allowed when it is bound to the project's current row, or pending and the project
        does not exist (the caller creates the project, then calls :meth:`bound_to`)."""
        row = conn.execute(
            sa.select(t.publishers).where(
                t.publishers.c.id == publisher_id,
                t.publishers.c.index == index,
                t.publishers.c.project == project,
            )
        ).first()
        if row is None:
            return False, None
        current = project_row(conn, index, project)
        status = _status(row, None if current is None else current.id)
        return status in ("active", "pending"), row.owner

    @staticmethod
    def bound_to(conn: Connection, publisher_id: int, project_id: int) -> None:
        """Bind a pending publisher to the project it has just created."""
        conn.execute(
            sa.update(t.publishers)
            .where(t.publishers.c.id == publisher_id)
            .values(project_id=project_id, pending=False)
        )
