"""The administration audit log: every change made through the web interface's administration
pages, and every refusal of one, with who, what, when and from where.

Kept apart from the ``journal`` (which records what changed in an index, with serials, for
mirrors): the audit log also records changes that have no serial (tokens, owners, namespace
grants) and attempts that were refused. Read with :func:`admin_actions` (the administration
page and ``headwater audit``). Text is cut to the column's size and control characters are
escaped before it is stored, so a hostile project name or reason cannot forge a line.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from headwater.db import schema as t
from headwater.db._checks import now
from headwater.db.engine import reading, writing
from headwater.errors import printable

__all__ = ["AuditEntry", "admin_actions", "record_admin_action"]


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    time: datetime
    actor: str
    action: str
    index: str | None
    project: str | None
    detail: str
    origin: str
    via: str


def _cut(text: str | None, limit: int) -> str | None:
    """``text`` escaped, then cut to ``limit`` characters (escapes make it longer, and the
    column holds ``limit``)."""
    if text is None:
        return None
    shown = printable(text[: limit * 2], limit * 8)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def record_admin_action(
    engine: Engine,
    *,
    actor: str,
    action: str,
    detail: str,
    origin: str,
    via: str = "ui",
    index: str | None = None,
    project: str | None = None,
) -> int:
    """Append one entry; return its id. A quiet write: no cache is made from the log, and a
    refused sign-in, which anyone can cause, must not make the servers drop their pages."""
    with writing(engine, quiet=True) as conn:
        result = conn.execute(
            sa.insert(t.admin_audit).values(
                time=now(),
                actor=_cut(actor, 100) or "-",
                action=_cut(action, 40) or "-",
                index=_cut(index, 100),
                project=_cut(project, 200),
                detail=_cut(detail, 1000) or "",
                origin=_cut(origin, 100) or "-",
                via=_cut(via, 10) or "-",
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def admin_actions(
    engine: Engine, *, limit: int = 100, index: str | None = None
) -> list[AuditEntry]:
    """The newest ``limit`` entries (of ``index``, or all), newest first."""
    query = sa.select(t.admin_audit).order_by(t.admin_audit.c.id.desc()).limit(limit)
    if index is not None:
        query = query.where(t.admin_audit.c.index == index)
    with reading(engine) as conn:
        rows = conn.execute(query).all()
    return [
        AuditEntry(
            id=row.id,
            time=row.time,
            actor=row.actor,
            action=row.action,
            index=row._mapping["index"],
            project=row.project,
            detail=row.detail,
            origin=row.origin,
            via=row.via,
        )
        for row in rows
    ]
