"""``/ui/signin`` and ``/ui/signout``: a token in, a session cookie out (see :mod:`.session`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from headwater.ui import session
from headwater.ui.interface import Interface

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
    return await ui.render(
        request,
        "signin.html",
        next=_next(request, request.query_params.get("next")),
        problem=None,
        can_sign_in=ui.served.authenticator is not None,
    )


async def sign_in(request: Request, ui: Interface) -> Response:
    if not session.same_origin(request):
        return await ui.render(request, "error.html", status=403, message=_CROSS_SITE)
    auth = ui.served.authenticator
    form_data = await request.form(max_files=0, max_fields=10, max_part_size=4096)
    token = str(form_data.get("token") or "").strip()
    target = _next(request, str(form_data.get("next") or ""))
    problem = None
    if auth is None:
        problem = "this server has no hosted index, so no tokens: there is nothing to sign in to"
    elif not token:
        problem = "enter a token (create one with `headwater token create`)"
    else:
        credentials = await auth.token(token)
        if credentials.state == "token":
            response = RedirectResponse(target, status_code=303)
            session.start_session(response, token, secure=ui.https)
            return response
        problem = credentials.problem
    return await ui.render(
        request,
        "signin.html",
        status=400 if auth is None or not token else 401,
        next=target,
        problem=problem,
        can_sign_in=auth is not None,
    )


async def sign_out(request: Request, ui: Interface) -> Response:
    if not session.same_origin(request):
        return await ui.render(request, "error.html", status=403, message=_CROSS_SITE)
    response = RedirectResponse("/", status_code=303)
    session.clear_session(response, secure=ui.https)
    return response
