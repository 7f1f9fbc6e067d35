"""Your account: setting or changing your interface password; an admin clearing a user's.

::

    GET  /ui/account                        your password (set or change), and for an unlimited
                                            admin token every user with a clear-password button
    POST /ui/account/password               set or change your password
    POST /ui/admin/users/password-clear     an admin clears a user's password

Who may do what (a pure decision, :func:`may_set_password`):

=================================== =========================================================
signed in with                      may set the password of its own user
=================================== =========================================================
a password session                  yes, with the current password (counted like a sign-in)
a token, the user has a password    yes, with the current password
a token, the user has none          only a token that holds at least what a password session
                                    gives (``manage`` or ``admin``, no index or project
                                    limit): a narrower token must not become a wider password
a minted (trusted publishing) token never
=================================== =========================================================

Clearing another user's password needs an unlimited ``admin`` token (as seeing every user's
tokens does). Setting or clearing a password ends every password session of that user. Every
post is checked by :mod:`headwater.ui.csrf` and recorded in the audit log.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from headwater.db import Database, InvalidArgument
from headwater.db import NotFound as DbNotFound
from headwater.db.passwords import MAX_LENGTH, MIN_LENGTH, SESSION_SCOPES
from headwater.server.authz import Token
from headwater.server.token_grants import sees_every_token
from headwater.ui import csrf
from headwater.ui.audit import audit
from headwater.ui.interface import Interface
from headwater.ui.passwords import FORM_LIMITS, WRONG, check_password, locked_message

__all__ = ["clear_password", "may_set_password", "page", "set_password"]

_DONE = {"cleared": "Password cleared; that user's password sessions have ended."}


def may_set_password(holder: Token, has_password: bool) -> str | None:
    """None when ``holder`` may set its own user's password (with the current one when
    ``has_password``); else why not, with the fix."""
    if getattr(holder, "minted", False):
        return "a trusted publisher's token cannot set a password"
    if has_password or getattr(holder, "session", False):
        return None
    wide = ("admin" in holder.scopes or set(holder.scopes) >= SESSION_SCOPES) and (
        holder.indexes is None and holder.projects is None
    )
    if not wide:
        return (
            "your token is narrower than what a password gives (the manage scope on every "
            "index): sign in with a token with --scope manage and no --index or --project, or "
            "ask an operator to run `headwater user password NAME`"
        )
    return None


def _forget_sessions(ui: Interface) -> None:
    """This process ended sessions: it forgets every credential it remembers now (others do
    when the change signal reaches them)."""
    if ui.served.authenticator is not None:
        ui.served.authenticator.forget()


async def _posted(
    request: Request, ui: Interface
) -> Response | tuple[Database, FormData, Token, str | None]:
    """A post to this page: the database, the form, who sent it and the CSRF check's problem
    (None: it passed); or the answer when there is nobody to refuse yet (no users on this
    server: 404; not signed in: the sign-in page, as the token forms do)."""
    db = ui.served.database
    if db is None:
        return await ui.not_found(request, "this server has no users")
    form = await request.form(**FORM_LIMITS)
    problem = csrf.problem(request, form.get(csrf.FIELD))
    holder = (await ui.credentials(request)).token
    if problem == csrf.NOT_SIGNED_IN or holder is None:
        return RedirectResponse("/ui/signin?next=/ui/account", status_code=303)
    return db, form, holder, problem


async def page(request: Request, ui: Interface, **extra: Any) -> Response:
    """``GET /ui/account``."""
    db = ui.served.database
    credentials = await ui.credentials(request)
    holder = credentials.token
    if db is None or credentials.state != "token" or holder is None:
        # As /ui/admin: a page that says how to sign in (no redirect: a page, not a refusal).
        return await ui.render(request, "account.html", holder=None, problem=None, done=None)
    has = await asyncio.to_thread(db.has_password, holder.user)
    users = None
    if sees_every_token(holder):
        users = await asyncio.to_thread(db.users)
    done = request.query_params.get("done")
    return await ui.render(
        request,
        "account.html",
        status=extra.pop("status_code", 200),
        holder=holder,
        has_password=has,
        refusal=may_set_password(holder, has),
        users=users,
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        csrf_token=csrf.token_for(request),
        problem=extra.pop("problem", None),
        done=_DONE.get(done) if done else None,
    )


async def set_password(request: Request, ui: Interface) -> Response:
    """``POST /ui/account/password``: ``current`` (when the user has a password), ``new`` and
    ``repeat``."""
    posted = await _posted(request, ui)
    if isinstance(posted, Response):
        return posted
    db, form, holder, problem = posted
    if problem is not None:
        await audit(db, request, actor=holder.user, action="refused password-set", detail=problem)
        return await ui.render(request, "error.html", status=403, message=problem)
    new, repeat, current = (
        str(form.get(name) or "")[: MAX_LENGTH + 1] for name in ("new", "repeat", "current")
    )
    has = await asyncio.to_thread(db.has_password, holder.user)
    status = 400
    problem = may_set_password(holder, has)
    if problem is None and new != repeat:
        problem = "the new password and its repetition differ; nothing was changed"
    if problem is None and has:
        checked = await check_password(ui, db, request, holder.user, current, start_session=False)
        if checked.outcome == "locked" and checked.until is not None:
            problem, status = locked_message(checked.until), 429
        elif checked.outcome != "ok":
            problem = f"the current password is wrong; nothing was changed ({WRONG})"
    if problem is None:
        try:
            async with ui.password_checks:
                await asyncio.to_thread(db.set_password, holder.user, new)
        except (InvalidArgument, DbNotFound) as exc:
            problem = f"{exc}; nothing was changed"
    if problem is not None:
        await audit(db, request, actor=holder.user, action="refused password-set", detail=problem)
        return await page(request, ui, problem=problem, status_code=status)
    _forget_sessions(ui)
    await audit(db, request, actor=holder.user, action="password-set", detail="")
    if getattr(holder, "session", False):
        # This session ended with the others: sign in again with the new password.
        return RedirectResponse("/ui/signin?next=/ui/account&done=password", status_code=303)
    return RedirectResponse("/ui/signin?done=password", status_code=303)


async def clear_password(request: Request, ui: Interface) -> Response:
    """``POST /ui/admin/users/password-clear``: ``user``; an unlimited admin token only."""
    posted = await _posted(request, ui)
    if isinstance(posted, Response):
        return posted
    db, form, holder, problem = posted
    target = str(form.get("user") or "").strip()[:100]
    if problem is not None:
        await audit(
            db, request, actor=holder.user, action="refused password-clear",
            detail=f"{target}: {problem}",
        )  # fmt: skip
        return await ui.render(request, "error.html", status=403, message=problem)
    if not sees_every_token(holder):
        # Refused by this page's own rule (as token_grants refuses a token): 400 with the page.
        problem = (
            "clearing a user's password needs an admin token without --index or --project "
            "(sign in with one); nothing was changed"
        )
        await audit(
            db, request, actor=holder.user, action="refused password-clear",
            detail=f"{target}: {problem}",
        )  # fmt: skip
        return await page(request, ui, problem=problem, status_code=400)
    try:
        await asyncio.to_thread(db.clear_password, target)
    except DbNotFound as exc:
        await audit(db, request, actor=holder.user, action="failed password-clear", detail=str(exc))
        return await page(request, ui, problem=f"{exc}; nothing was changed", status_code=400)
    _forget_sessions(ui)
    await audit(db, request, actor=holder.user, action="password-clear", detail=target)
    return RedirectResponse("/ui/account?done=cleared", status_code=303)
