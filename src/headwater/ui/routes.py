"""The interface's routes, and the glue that gives each handler the :class:`Interface`.

Every route here has an entry in :data:`headwater.server.routes.ROUTES` (``layer="ui"``) naming
the authorization action its handler asks; ``tests/server/test_authz_matrix.py`` holds them to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message

from headwater.server.api_bodies import BodyRejected, read_bytes
from headwater.server.factory import Served
from headwater.ui import account, admin, home, project, search, session, signin, static, status, why
from headwater.ui.interface import Interface
from headwater.ui.security import page_headers

__all__ = ["MAX_FORM_BYTES", "Handler", "page", "ui_routes"]

#: A page handler: the request and the interface, to a response.
Handler = Callable[[Request, Interface], Awaitable[Response]]
_READ = ["GET", "HEAD"]


#: The largest form body any page takes (a sign-in token, a yank reason, a token's limits are a
#: few hundred bytes). Read, and refused past this, before any form parser sees it: the parser's
#: own limits count fields and parts, not bytes, and 30 MB of ``&`` kept a worker busy for
#: half a minute on an unauthenticated sign-in post.
MAX_FORM_BYTES = 64 * 1024

_TOO_LARGE = (
    f"this form is larger than the {MAX_FORM_BYTES // 1024} KiB a form of this interface can be; "
    "nothing was changed. Open the page again and submit its own form"
)


async def _bounded(request: Request) -> Request | BodyRejected:
    """``request`` with its body read into memory (the server's one bounded body reader), or why
    not: 413 when the body (as declared, or as sent) is larger than :data:`MAX_FORM_BYTES`, 400 when
    its Content-Length is not a number or the client stopped sending before the body ended."""
    try:
        body = await read_bytes(request, limit=MAX_FORM_BYTES, too_large=_TOO_LARGE)
    except BodyRejected as exc:
        return exc
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, replay)


def page(path: str, handler: Handler, interface: Interface, methods: list[str]) -> Route:
    """A Starlette route at ``path`` that calls ``handler(request, interface)``; a post's body
    is bounded by :data:`MAX_FORM_BYTES` first (a 413 page otherwise)."""

    async def endpoint(request: Request) -> Response:
        request.scope[session.HTTPS_KEY] = interface.https  # which session cookie counts
        if request.method == "POST":
            bounded = await _bounded(request)
            if isinstance(bounded, BodyRejected):
                return await interface.render(
                    request, "error.html", status=bounded.status, message=str(bounded)
                )
            request = bounded
        response = await handler(request, interface)
        # Every answer of the interface (pages, redirects, JSON, static files, refusals) gets
        # the security headers; what a handler set itself is kept.
        for key, value in page_headers().items():
            response.headers.setdefault(key, value)
        return response

    return Route(path, endpoint, methods=methods)


def ui_routes(served: Served) -> list[BaseRoute]:
    """The interface's routes over ``served`` (what :func:`headwater.ui.build_app` mounts)."""
    ui = Interface(served)
    return [
        page("/", home.home, ui, _READ),
        page("/ui/static/{name}", static.serve, ui, _READ),
        page("/ui/signin", signin.form, ui, _READ),
        page("/ui/signin", signin.sign_in, ui, ["POST"]),
        page("/ui/signout", signin.sign_out, ui, ["POST"]),
        page("/ui/status", status.status, ui, _READ),
        page("/ui/search", search.search_page, ui, _READ),
        page("/ui/suggest", search.suggest, ui, _READ),
        page("/ui/{index}/project/{project}", project.project_page, ui, _READ),
        page("/ui/{index}/project/{project}/why", why.why_page, ui, _READ),
        page("/ui/admin", admin.overview, ui, _READ),
        page("/ui/admin/tokens", admin.token_create, ui, ["POST"]),
        page("/ui/admin/tokens/revoke", admin.token_revoke, ui, ["POST"]),
        page("/ui/admin/project/{index}/{project}", admin.project_page, ui, _READ),
        page("/ui/admin/project/{index}/{project}/{action}", admin.project_action, ui, ["POST"]),
        page("/ui/admin/grants/{index}", admin.namespaces_page, ui, _READ),
        page("/ui/admin/grants/{index}", admin.namespace_change, ui, ["POST"]),
        page("/ui/account", account.page, ui, _READ),
        page("/ui/account/password", account.set_password, ui, ["POST"]),
        page("/ui/admin/users/password-clear", account.clear_password, ui, ["POST"]),
        # Last: any other path below /ui/ (a name with a slash in it, a mistyped page).
        page("/ui/{rest:path}", _not_found, ui, _READ),
    ]


async def _not_found(request: Request, ui: Interface) -> Response:
    return await ui.not_found(request, "there is no such page in the interface")
