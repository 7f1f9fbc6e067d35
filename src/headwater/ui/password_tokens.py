"""Creating a token while signed in with a password (``POST /ui/admin/tokens`` from a password
session): the form's fields, the password typed again, the ownership facts, then
:func:`headwater.server.session_grants.decide` and the database call.

The password re-check is :func:`headwater.ui.passwords.check_password` without a session: it
counts like a sign-in (per user name and per address, :mod:`headwater.db.throttle`), takes one
of the interface's two hashing slots, and a wrong one is a failed sign-in. It runs before any
ownership is looked up, so a stolen session cookie learns nothing about projects. The
administration page (:func:`headwater.ui.admin.token_create`) records the outcome in the audit
log and shows the token once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from starlette.datastructures import FormData
from starlette.requests import Request

from headwater.db import Database, InvalidArgument
from headwater.db import NotFound as DbNotFound
from headwater.server.authz import Token
from headwater.server.session_grants import Ask, Grant, Recheck, Refusal, decide, pairs
from headwater.ui.interface import Interface
from headwater.ui.passwords import check_password

__all__ = ["ask_of", "create", "password_again"]


def _text(form: FormData, name: str, limit: int) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _names(text: str) -> tuple[str, ...]:
    return tuple(p for p in text.replace(",", " ").split() if p)[:100]


def ask_of(form: FormData) -> Ask:
    """The form's request, as typed (bounded)."""
    return Ask(
        scopes=frozenset(s for s in form.getlist("scope") if isinstance(s, str) and len(s) < 20),
        indexes=_names(_text(form, "indexes", 500)),
        projects=_names(_text(form, "projects", 2000)),
        days=_text(form, "days", 5),
        description=_text(form, "description", 200),
    )


async def password_again(
    request: Request, ui: Interface, db: Database, form: FormData, holder: Token
) -> Recheck:
    """The form's ``password`` field checked for the session's user, counted as a sign-in."""
    password = form.get("password")
    typed = password[:300] if isinstance(password, str) else ""
    checked = await check_password(ui, db, request, holder.user, typed, start_session=False)
    return Recheck(checked.outcome, checked.until)


async def create(
    request: Request, ui: Interface, db: Database, form: FormData, holder: Token
) -> tuple[Ask, Grant | Refusal, tuple[str, str] | None]:
    """Decide and, when granted, create the token: (what was asked, the decision, (token id,
    token) or None)."""
    ask = ask_of(form)
    recheck = await password_again(request, ui, db, form, holder)
    hosted = frozenset(ui.served.sources.hosted)
    owned: set[tuple[str, str]] = set()
    if recheck.outcome == "ok":
        for index, project in pairs(ask, hosted):
            owners = await asyncio.to_thread(db.owners, index, project)
            if holder.user in owners:
                owned.add((index, project))
    decision = decide(holder, ask, recheck, hosted=hosted, owned=owned)
    if isinstance(decision, Refusal):
        return ask, decision, None
    try:
        made = await asyncio.to_thread(
            db.create_token,
            holder.user,
            indexes=sorted(decision.indexes),
            projects=sorted(decision.projects),
            scopes=sorted(decision.scopes),
            description=ask.description,
            expires=datetime.now(UTC) + timedelta(days=decision.days),
        )
    except (InvalidArgument, DbNotFound) as exc:
        # The database's own checks (a description with control characters, a user removed
        # meanwhile): the same words as for every other way of creating a token.
        return ask, Refusal("stored", 400, f"{exc}; no token was created"), None
    return ask, decision, made
