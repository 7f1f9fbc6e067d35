"""The interface's routes, and the glue that gives each handler the :class:`Interface`.

Every route here has an entry in :data:`headwater.server.routes.ROUTES` (``layer="ui"``) naming
the authorization action its handler asks; ``tests/server/test_authz_matrix.py`` holds them to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Message, Receive, Scope, Send

from headwater.errors import InvalidInput, printable
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


#: Every path of the interface matches whatever follows ``/ui/`` (Starlette's own ``path``
#: convertor is ``.*``, which stops at a line break: ``/ui/%0d%0a...`` fell through to the
#: router's plain-text 404, without the interface's page or headers).
class _AnyPath(Convertor[str]):
    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", _AnyPath())


class _Page(Route):
    """A route of the interface: any method it does not take is answered with the interface's
    405 page (its headers, and an ``Allow`` naming every method of the path) instead of
    Starlette's plain-text one."""

    def __init__(
        self, path: str, endpoint: Callable[[Request], Awaitable[Response]], methods: list[str],
        *, allow: str, interface: Interface,
    ) -> None:  # fmt: skip
        super().__init__(path, endpoint, methods=methods)
        self.allow = allow
        self.interface = interface

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            response = await self.refusal(Request(scope, receive))
            await response(scope, receive, send)
            return
        await super().handle(scope, receive, send)

    async def refusal(self, request: Request) -> Response:
        """The 405 page for ``request``, whose method this route does not take."""
        request.scope[session.HTTPS_KEY] = self.interface.https
        response = await self.interface.render(
            request,
            "error.html",
            status=405,
            message=f"{request.method[:20]} is not a method of this page: it takes {self.allow}",
        )
        response.headers["allow"] = self.allow
        return _secured(response)


def page(
    path: str, handler: Handler, interface: Interface, methods: list[str], *, allow: str = ""
) -> Route:
    """A Starlette route at ``path`` that calls ``handler(request, interface)``; a post's body
    is bounded by :data:`MAX_FORM_BYTES` first (a 413 page otherwise). ``allow`` names every
    method of the path (other routes may take the others), for the 405 page."""

    async def endpoint(request: Request) -> Response:
        request.scope[session.HTTPS_KEY] = interface.https  # which session cookie counts
        if request.method == "POST":
            bounded = await _bounded(request)
            if isinstance(bounded, BodyRejected):
                return _secured(
                    await interface.render(
                        request, "error.html", status=bounded.status, message=str(bounded)
                    )
                )
            request = bounded
        try:
            response = await handler(request, interface)
        except InvalidInput as exc:
            if request.method != "POST":
                raise
            # What a form post's handler finds malformed came from the form (a name, a number, a
            # choice): the poster's mistake, answered with the reason, never a 500. Handlers
            # refuse what they foresee themselves (and record it); this is the net under them.
            response = await interface.render(
                request,
                "error.html",
                status=400,
                message=f"the form was refused: {printable(str(exc))}. Correct the form and "
                "submit it again",
            )
        return _secured(response)

    return _Page(path, endpoint, methods, allow=allow or ", ".join(methods), interface=interface)


def _secured(response: Response) -> Response:
    """Every answer of the interface (pages, redirects, JSON, static files, refusals) gets the
    security headers; what a handler set itself is kept."""
    for key, value in page_headers().items():
        response.headers.setdefault(key, value)
    return response


#: The methods an ``Allow`` header names, in this order.
_METHODS = ("GET", "HEAD", "POST")


def ui_routes(served: Served) -> list[BaseRoute]:
    """The interface's routes over ``served`` (what :func:`headwater.ui.build_app` mounts)."""
    ui = Interface(served)
    table: list[tuple[str, Handler, list[str]]] = [
        ("/", home.home, _READ),
        ("/ui/static/{name}", static.serve, _READ),
        ("/ui/signin", signin.form, _READ),
        ("/ui/signin", signin.sign_in, ["POST"]),
        ("/ui/signout", signin.sign_out, ["POST"]),
        ("/ui/status", status.status, _READ),
        ("/ui/search", search.search_page, _READ),
        ("/ui/suggest", search.suggest, _READ),
        ("/ui/{index}/project/{project}", project.project_page, _READ),
        ("/ui/{index}/project/{project}/why", why.why_page, _READ),
        ("/ui/admin", admin.overview, _READ),
        ("/ui/admin/tokens", admin.token_create, ["POST"]),
        ("/ui/admin/tokens/revoke", admin.token_revoke, ["POST"]),
        ("/ui/admin/project/{index}/{project}", admin.project_page, _READ),
        ("/ui/admin/project/{index}/{project}/{action}", admin.project_action, ["POST"]),
        ("/ui/admin/grants/{index}", admin.namespaces_page, _READ),
        ("/ui/admin/grants/{index}", admin.namespace_change, ["POST"]),
        ("/ui/account", account.page, _READ),
        ("/ui/account/password", account.set_password, ["POST"]),
        ("/ui/admin/users/password-clear", account.clear_password, ["POST"]),
    ]
    methods: dict[str, set[str]] = {}
    for path, _, taken in table:
        methods.setdefault(path, set()).update(taken)
    routes = [
        page(path, handler, ui, taken, allow=", ".join(m for m in _METHODS if m in methods[path]))
        for path, handler, taken in table
    ]
    # The paths a GET does not reach: a GET of one is a 405, not the catch-all's 404.
    posted = [route for route in routes if not route.methods or "GET" not in methods[route.path]]

    async def not_found(request: Request, ui: Interface) -> Response:
        for route in posted:
            if route.matches(request.scope)[0] is Match.PARTIAL and isinstance(route, _Page):
                return await route.refusal(request)
        return await ui.not_found(request, "there is no such page in the interface")

    # Last: any other path below /ui/ (a name with a slash in it, a mistyped page).
    return [*routes, page("/ui/{rest:anypath}", not_found, ui, _READ)]
