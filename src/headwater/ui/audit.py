"""Recording what an interface page did in the audit log, with the client's address.

Every sign-in and sign-out (:mod:`headwater.ui.signin`), password change (:mod:`headwater.ui.account`)
and admin post (:mod:`headwater.ui.admin`), refused or not, is one row of
:func:`headwater.db.audit.record_admin_action`; this is the one way the pages write it.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from headwater.db import Database
from headwater.db.audit import record_admin_action

__all__ = ["audit", "origin"]


def origin(request: Request) -> str:
    """The client address as the server saw it (behind a proxy: the proxy's)."""
    return request.client.host if request.client is not None else "-"


async def audit(
    db: Database | None,
    request: Request,
    *,
    actor: str,
    action: str,
    detail: str,
    index: str | None = None,
    project: str | None = None,
) -> None:
    """Record ``action`` by ``actor`` from ``request``'s address; nothing without a database."""
    if db is None:
        return
    await asyncio.to_thread(
        record_admin_action,
        db.engine,
        actor=actor,
        action=action,
        detail=detail,
        origin=origin(request),
        index=index,
        project=project,
    )
