"""``/ui/signin`` and ``/ui/signout``: a token or a user's password in, a session cookie out.

With a token, the cookie holds the token (see :mod:`.session`). With a user name and password,
:meth:`headwater.db.Database.password_sign_in` counts the attempt per user name and per client
address (:mod:`headwater.db.throttle`), checks the Argon2id hash and starts a password session
whose secret the cookie holds. Every sign-in, refused or not, and every sign-out is recorded in
the audit log (``sign-in``, ``refused sign-in``, ``sign-out``).

One answer for a wrong password, an unknown user name and a user without a password
(:data:`~headwater.ui.passwords.WRONG`), in the same time (a hash is checked in every case): the
page never tells which names exist. A locked name or address gets
:func:`~headwater.ui.passwords.locked_message` (429), which names neither. What this form shares
with the password change form is :mod:`headwater.ui.passwords`.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from headwater.db.passwords import MAX_LENGTH, SignIn, is_session_secret
from headwater.ui import csrf, session
from headwater.ui.audit import audit
from headwater.ui.interface import Interface
from headwater.ui.passwords import FORM_LIMITS, WRONG, check_password, locked_message

__all__ = ["form", "sign_in", "sign_out"]

_CROSS_SITE = (
    "this sign-in form was sent from another site's page; nothing was changed. Open this "
    "server's own sign-in page and sign in there"
)


def _next(request: Request, value: str | None) -> str:
    """Where to go after signing in: a path on this server only (never another host). Browsers
    drop tabs and line breaks from URLs and read ``\\`` as ``/``, so ``/<TAB>/host`` or
    ``/\\host`` would leave the site: a value with any of those is refused whole."""
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and value.isprintable()
        and len(value) <= 500
    ):
        return value
    return "/"


async def form(request: Request, ui: Interface) -> Response:
    done = request.query_params.get("done")
    return await ui.render(
        request,
        "signin.html",
        next=_next(request, request.query_params.get("next")),
        problem=None,
        done=_DONE.get(done) if done else None,
        can_sign_in=ui.served.authenticator is not None,
        typed_user="",
    )


#: Notices shown on the sign-in page (by key: nothing from the request is reflected).
_DONE = {
    "password": "Your password was changed and every password session ended: sign in with the "
    "new one."
}


async def _with_password(
    request: Request, ui: Interface, user: str, password: str
) -> tuple[SignIn | None, str | None]:
    """(the sign-in, None) or (None, why it was not tried)."""
    db = ui.served.database
    if db is None:
        return None, "this server has no hosted index, so no users: there is nothing to sign in to"
    if not user or not password:
        return None, "enter your user name and your password"
    return await check_password(ui, db, request, user, password), None


async def sign_in(request: Request, ui: Interface) -> Response:
    if not session.same_origin(request):
        return await ui.render(request, "error.html", status=403, message=_CROSS_SITE)
    auth = ui.served.authenticator
    form_data = await request.form(**FORM_LIMITS)
    target = _next(request, str(form_data.get("next") or ""))
    typed_user = str(form_data.get("user") or "").strip()[:100]
    if "password" in form_data:
        password = str(form_data.get("password") or "")[: MAX_LENGTH + 1]
        done, problem = await _with_password(request, ui, typed_user, password)
        status = 400
        if done is not None and done.outcome == "ok" and done.secret is not None:
            await audit(
                ui.served.database, request, actor=typed_user, action="sign-in", detail="password"
            )
            response = RedirectResponse(target, status_code=303)
            session.start_session(response, done.secret, secure=ui.https)
            return response
        if done is not None and done.outcome == "locked" and done.until is not None:
            problem, status = locked_message(done.until), 429
            await audit(
                ui.served.database, request, actor=typed_user, action="refused sign-in",
                detail=f"password: locked until {done.until:%Y-%m-%dT%H:%M:%SZ}",
            )  # fmt: skip
        elif done is not None:
            problem, status = WRONG, 401
            await audit(
                ui.served.database, request, actor=typed_user, action="refused sign-in",
                detail="password: wrong user name or password",
            )  # fmt: skip
        return await ui.render(
            request,
            "signin.html",
            status=status,
            next=target,
            problem=problem,
            done=None,
            can_sign_in=auth is not None,
            typed_user=typed_user,
        )
    token = str(form_data.get("token") or "").strip()
    problem = None
    if auth is None:
        problem = "this server has no hosted index, so no tokens: there is nothing to sign in to"
    elif not token:
        problem = "enter a token (create one with `headwater token create`)"
    else:
        credentials = await auth.token(token)
        if credentials.state == "token" and credentials.token is not None:
            await audit(
                ui.served.database, request, actor=credentials.token.user, action="sign-in",
                detail=f"token {credentials.token.id}",
            )  # fmt: skip
            response = RedirectResponse(target, status_code=303)
            session.start_session(response, token, secure=ui.https)
            return response
        problem = credentials.problem
        await audit(
            ui.served.database,
            request,
            actor="-",
            action="refused sign-in",
            detail=f"token: {problem}",
        )
    return await ui.render(
        request,
        "signin.html",
        status=400 if auth is None or not token else 401,
        next=target,
        problem=problem,
        done=None,
        can_sign_in=auth is not None,
        typed_user="",
    )


async def sign_out(request: Request, ui: Interface) -> Response:
    """Signing out is a form like every other that changes something: the session's CSRF token
    and the origin are checked (:mod:`headwater.ui.csrf`), so another site cannot end it."""
    if not session.same_origin(request):
        return await ui.render(request, "error.html", status=403, message=_CROSS_SITE)
    user = await ui.signed_in(request)
    form_data = await request.form(**FORM_LIMITS)
    problem = csrf.problem(request, form_data.get(csrf.FIELD))
    if problem is not None and problem != csrf.NOT_SIGNED_IN:
        await audit(
            ui.served.database, request, actor=user or "-", action="refused sign-out",
            detail=problem,
        )  # fmt: skip
        return await ui.render(request, "error.html", status=403, message=problem)
    secret = session.token_of(request)
    db = ui.served.database
    if db is not None and secret is not None and is_session_secret(secret):
        # A password session ends in the database: on every node, whatever the browser keeps.
        await asyncio.to_thread(db.end_session, secret)
        if ui.served.authenticator is not None:
            ui.served.authenticator.forget(secret)
    if user is not None:
        await audit(ui.served.database, request, actor=user, action="sign-out", detail="")
    response = RedirectResponse("/", status_code=303)
    session.clear_session(response, secure=ui.https)
    return response
