"""What the two password forms share: signing in (:mod:`headwater.ui.signin`) and changing a
password (:mod:`headwater.ui.account`).

Both read a small form (:data:`FORM_LIMITS`), check a password with
:meth:`headwater.db.Database.password_sign_in` (which counts the attempt per user name and per
client address) under the process's limit on Argon2id checks at once (:func:`check_password`),
answer a locked user name or address with :func:`locked_message` (429; it says neither which)
and a wrong password with :data:`WRONG` (one answer for a wrong password, an unknown user and a
user without one, so the page never tells which names exist).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from headwater.db import Database
from headwater.db.passwords import SignIn
from headwater.ui.audit import origin
from headwater.ui.interface import Interface

__all__ = ["FORM_LIMITS", "WRONG", "check_password", "locked_message"]

#: What ``request.form`` may read of a password form: a few short fields, no files.
FORM_LIMITS: dict[str, Any] = {"max_files": 0, "max_fields": 10, "max_part_size": 4096}

WRONG = (
    "the user name or the password is wrong (a user without a password signs in with a token; "
    "an operator sets one with `headwater user password NAME`)"
)


def locked_message(until: datetime) -> str:
    """The answer while a user name or an address is locked (it says neither which)."""
    minutes = max(1, round((until - datetime.now(UTC)).total_seconds() / 60))
    return (
        "too many failed sign-ins for this user name or from your address: sign-in is paused "
        f"until {until.astimezone(UTC):%H:%M} UTC (about {minutes} minute(s)). Nothing was "
        "checked; try again then, or sign in with a token"
    )


async def check_password(
    ui: Interface,
    db: Database,
    request: Request,
    user: str,
    password: str,
    *,
    start_session: bool = True,
) -> SignIn:
    """``password`` checked for ``user`` from the request's address, counted as a sign-in; a
    session is started only with ``start_session``."""
    async with ui.password_checks:
        return await asyncio.to_thread(
            db.password_sign_in, user, password, origin(request), start_session=start_session
        )
