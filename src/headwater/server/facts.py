"""The facts an authorization decision needs that only the database knows (who owns a
project), gathered the same way for the management API and the administration pages, so both
ask :func:`headwater.server.authz.decide` the same question."""

from __future__ import annotations

import asyncio

import msgspec

from headwater.db import Database
from headwater.server.authz import Action, Credentials, Decision, Target, decide

__all__ = ["decide_with_facts", "with_facts"]


async def with_facts(
    db: Database, credentials: Credentials, target: Target, action: Action
) -> Target:
    """``target`` with the ownership fact for ``manage`` (looked up only for a valid token and
    a project: an anonymous request costs no query)."""
    token = credentials.token
    if action == "manage" and token is not None and target.project is not None:
        owners = await asyncio.to_thread(db.owners, target.index, target.project)
        return msgspec.structs.replace(target, owner=token.user in owners)
    return target


async def decide_with_facts(
    db: Database, credentials: Credentials, target: Target, action: Action
) -> Decision:
    """:func:`~headwater.server.authz.decide` with the facts of :func:`with_facts`."""
    return decide(credentials, await with_facts(db, credentials, target, action), action)
