"""Every route of the server, in one table, with the authorization action it asks for.

:data:`ROUTES` is the list a request can reach: the raw-ASGI hot path of
:class:`~headwater.server.app.IndexApp` (pages, files, ``.metadata``, ``/pypi/<p>/json``, the
landing page) and the Starlette routes behind it (uploads, the management API, PEP 752's namespace
endpoints, health, metrics). Each entry names the :mod:`headwater.server.authz` action its handler
asks :func:`~headwater.server.authz.decide` about, and whether the decision is about one project
(named in the path, or by a file's name). ``tests/server/test_authz_matrix.py`` walks every entry
with every kind of token and compares the table with the routes the application really has, so a
route added without an entry here fails that test.

Paths are templates: ``{index}``, ``{project}``, ``{file}`` (``aa/bb/rest/filename``),
``{filename}``, ``{version}``, ``{user}``, ``{namespace}``, ``{name}`` (a static file),
``{action}`` (an administration action). :func:`example_path` fills them with
:data:`EXAMPLE_VALUES` (or values you give), so a fuzzer or a test can instantiate every route::

    for route in ROUTES:
        for method in route.methods:
            send(method, example_path(route, index="main", project="demo"))

Routes without ``{index}`` and marked ``default`` are the default index's aliases (``/simple/``
is ``/<default>/simple/``).
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from headwater.server.authz import Action

__all__ = ["EXAMPLE_VALUES", "ROUTES", "RouteSpec", "example_path"]

#: Where a route is answered: ``fast`` by IndexApp's raw ASGI hot path; ``rest`` by a Starlette
#: route with exactly this path; ``alias`` by the Starlette route of the ``/{index}`` form, after
#: IndexApp rewrote the path to the default index's; ``ui`` by a Starlette route of the browser
#: interface (:mod:`headwater.ui`, mounted unless ``[serve] ui = false``), which answers a refusal
#: with a page and no Basic challenge (a browser signs in with a form instead).
Layer = Literal["fast", "rest", "alias", "ui"]
#: What the request body is: none, JSON (management API), a multipart upload, or an HTML form.
Body = Literal["none", "json", "upload", "form"]


class RouteSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One route: its methods, path template, authorization action, and how it is served."""

    methods: frozenset[str]
    path: str
    action: Action
    #: The decision is about the project in the path (``{project}``, or a file's project).
    per_project: bool
    layer: Layer
    #: An alias of the default index (no ``{index}`` in the path).
    default: bool = False
    body: Body = "none"
    #: What it is, for people reading the table (and the docs).
    what: str = ""


#: Values that make every template a concrete path (a wheel of project ``example``).
EXAMPLE_VALUES: dict[str, str] = {
    "index": "main",
    "project": "example",
    "file": "ab/cd/0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab/"
    "example-1.0-py3-none-any.whl",
    "filename": "example-1.0-py3-none-any.whl",
    "version": "1.0",
    "user": "alice",
    "namespace": "example",
    "name": "style.css",
    "rest": "no/such/page",
    "action": "yank",
    "publisher": "1",
}


def example_path(route: RouteSpec, **values: str) -> str:
    """``route.path`` with its placeholders filled from ``values``, else :data:`EXAMPLE_VALUES`
    (a Starlette convertor, ``{rest:anypath}``, is filled like ``{rest}``)."""
    template = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
    return template.format(**{**EXAMPLE_VALUES, **values})


_READ = frozenset({"GET", "HEAD"})


def _index_and_default(
    path: str, action: Action, per_project: bool, layer: Layer, what: str
) -> list[RouteSpec]:
    """The route at ``/{index}...`` and its default-index alias at ``...``."""
    alias_layer: Layer = "alias" if layer == "rest" else layer
    return [
        RouteSpec(
            methods=_READ, path=path, action=action, per_project=per_project, layer=layer, what=what
        ),
        RouteSpec(
            methods=_READ,
            path=path.removeprefix("/{index}"),
            action=action,
            per_project=per_project,
            layer=alias_layer,
            default=True,
            what=what + " (default index)",
        ),
    ]


def _pages() -> list[RouteSpec]:
    routes: list[RouteSpec] = []
    for fixed in ("", "/v1+json", "/v1+html"):
        how = f" in the fixed format {fixed[1:]}" if fixed else ""
        routes += _index_and_default(
            "/{index}" + fixed + "/simple/", "list", False, "fast", "the project list" + how
        )
        routes += _index_and_default(
            "/{index}" + fixed + "/simple/{project}/", "read", True, "fast", "a project page" + how
        )
    return routes


_API = "/api/{index}/projects/{project}"


def _api(method: str, tail: str, action: Action, what: str, *, body: Body = "none") -> RouteSpec:
    return RouteSpec(
        methods=frozenset({method, "HEAD"} if method == "GET" else {method}),
        path=_API + tail,
        action=action,
        per_project=True,
        layer="rest",
        body=body,
        what=what,
    )


def _uploads() -> list[RouteSpec]:
    return [
        RouteSpec(
            methods=frozenset({"POST"}),
            path=path,
            action="upload",
            # The project comes from the uploaded file: decided once the body is read.
            per_project=True,
            layer="rest",
            default="{index}" not in path,
            body="upload",
            what="uploads (twine's legacy API)",
        )
        for path in ("/{index}/legacy/", "/{index}/legacy", "/legacy/", "/legacy")
    ]


def _public(path: str, methods: frozenset[str], what: str, layer: Layer = "rest") -> RouteSpec:
    return RouteSpec(
        methods=methods, path=path, action="public", per_project=False, layer=layer, what=what
    )


def _interface() -> list[RouteSpec]:
    """The browser interface's pages (docs/web-interface.md)."""
    post = frozenset({"POST"})
    return [
        _public("/", _READ, "the interface's home (the plain landing page with ui = false)", "ui"),
        _public("/ui/static/{name}", _READ, "the interface's stylesheet and script", "ui"),
        _public("/ui/signin", _READ, "the sign-in form", "ui"),
        RouteSpec(
            methods=post,
            path="/ui/signin",
            action="public",
            per_project=False,
            layer="ui",
            body="form",
            what="sign in: a token or a user's password becomes a session cookie",
        ),
        RouteSpec(
            methods=post,
            path="/ui/signout",
            action="public",
            per_project=False,
            layer="ui",
            body="form",
            what="sign out",
        ),
        # Searches only the indexes the request may list (each asked of authz as "list").
        _public("/ui/search", _READ, "search an index's project names", "ui"),
        _public("/ui/suggest", _READ, "search suggestions as JSON (search as you type)", "ui"),
        RouteSpec(
            methods=_READ,
            path="/ui/{index}/project/{project}",
            action="read",
            per_project=True,
            layer="ui",
            what="a project's page for people",
        ),
        RouteSpec(
            methods=_READ,
            path="/ui/{index}/project/{project}/why",
            action="read",
            per_project=True,
            layer="ui",
            what="why a composed index serves a project from where it does",
        ),
        # Last: any other path below /ui/ is the interface's own 404 page.
        _public("/ui/{rest:anypath}", _READ, "not found, as a page of the interface", "ui"),
    ]


def _administration() -> list[RouteSpec]:
    """The interface's administration pages (headwater.ui.admin). Tokens are not an index's:
    who may create, see and revoke them is :mod:`headwater.server.token_grants`' decision, so
    their routes ask authz for nothing more than ``public``."""
    post = frozenset({"POST"})

    def form(path: str, action: Action, per_project: bool, what: str) -> RouteSpec:
        return RouteSpec(
            methods=post,
            path=path,
            action=action,
            per_project=per_project,
            layer="ui",
            body="form",
            what=what,
        )

    def shown(path: str, action: Action, per_project: bool, what: str) -> RouteSpec:
        return RouteSpec(
            methods=_READ, path=path, action=action, per_project=per_project, layer="ui", what=what
        )

    project = "/ui/admin/project/{index}/{project}"
    return [
        _public("/ui/admin", _READ, "administration: tokens, audit log, project lookup", "ui"),
        form(
            "/ui/admin/tokens",
            "public",
            False,
            "create a token (token_grants decides; for a password session, session_grants)",
        ),
        form("/ui/admin/tokens/revoke", "public", False, "revoke a token (token_grants decides)"),
        shown(project, "manage", True, "a project's administration page"),
        form(project + "/{action}", "manage", True, "yank, unyank, status, owners of a project"),
        shown("/ui/admin/grants/{index}", "admin", False, "an index's namespace grants"),
        form("/ui/admin/grants/{index}", "admin", False, "grant or revoke a namespace"),
        # Passwords (headwater.ui.account decides who may set or clear one, as token_grants
        # does for tokens): not an index's, so "public" to authz.
        _public("/ui/account", _READ, "your account: set or change your password", "ui"),
        form("/ui/account/password", "public", False, "set or change your password"),
        form(
            "/ui/admin/users/password-clear",
            "public",
            False,
            "an unlimited admin token clears a user's password",
        ),
    ]


ROUTES: tuple[RouteSpec, ...] = (
    *_pages(),
    *_index_and_default("/{index}/packages/{file}", "read", True, "fast", "a file"),
    *_index_and_default(
        "/{index}/packages/{file}.metadata", "read", True, "fast", "a file's core metadata"
    ),
    *_index_and_default(
        "/{index}/packages/{file}.provenance", "read", True, "fast", "a file's PEP 740 provenance"
    ),
    *_index_and_default(
        "/{index}/integrity/{project}/{version}/{filename}/provenance",
        "read",
        True,
        "fast",
        "PEP 740 provenance (PyPI's integrity API)",
    ),
    *_index_and_default(
        "/{index}/held/{project}/{filename}",
        "read",
        True,
        "fast",
        "a file the publisher guard holds: its refusal, never the file",
    ),
    *_index_and_default(
        "/{index}/pypi/{project}/json", "read", True, "fast", "PyPI's legacy JSON API"
    ),
    RouteSpec(
        methods=_READ,
        path="/{index}/",
        action="list",
        per_project=False,
        layer="fast",
        what="a redirect to the project list",
    ),
    *_index_and_default(
        "/{index}/namespaces", "read", False, "rest", "PEP 752: the namespaces of an index"
    ),
    *_index_and_default(
        "/{index}/namespace/{namespace}", "read", False, "rest", "PEP 752: one namespace"
    ),
    *_uploads(),
    _api("GET", "", "read", "a project's record, files and owners"),
    _api("DELETE", "", "manage", "delete a project"),
    _api("POST", "/yank", "manage", "yank files", body="json"),
    _api("POST", "/unyank", "manage", "unyank files", body="json"),
    _api("DELETE", "/files/{filename}", "manage", "delete a file"),
    _api("DELETE", "/releases/{version}", "manage", "delete a release"),
    _api("PUT", "/status", "manage", "set the project status (PEP 792)", body="json"),
    _api("PUT", "/alternate-locations", "manage", "set alternate-locations (PEP 708)", body="json"),
    _api("PUT", "/tracks", "admin", "set tracks (PEP 708)", body="json"),
    _api("PUT", "/owners/{user}", "manage", "add an owner"),
    _api("DELETE", "/owners/{user}", "manage", "remove an owner"),
    _api("GET", "/publishers", "manage", "the project's trusted publishers"),
    _api("POST", "/publishers", "manage", "add a trusted publisher", body="json"),
    _api("DELETE", "/publishers/{publisher}", "manage", "remove a trusted publisher"),
    RouteSpec(
        methods=frozenset({"GET", "HEAD"}),
        path="/api/{index}/held",
        action="admin",
        per_project=False,
        layer="rest",
        what="a mirror's releases held by its publisher guard (PEP 740)",
    ),
    _api("PUT", "/accepted/{version}", "admin", "accept a release a mirror's guard holds"),
    RouteSpec(
        methods=_READ,
        path="/api/{index}/publishing-log",
        action="admin",
        per_project=False,
        layer="rest",
        what="trusted publishing's log: minted tokens and their uploads",
    ),
    # Trusted publishing: the OIDC token in the body is the credential (server/oidc/).
    _public("/_/oidc/audience", _READ, "trusted publishing: the OIDC audience"),
    RouteSpec(
        methods=frozenset({"POST"}),
        path="/_/oidc/mint-token",
        action="public",
        per_project=False,
        layer="rest",
        body="json",
        what="trusted publishing: an OIDC token for an upload token (every hosted index)",
    ),
    _public("/{index}/_/oidc/audience", _READ, "trusted publishing: the OIDC audience"),
    RouteSpec(
        methods=frozenset({"POST"}),
        path="/{index}/_/oidc/mint-token",
        action="public",
        per_project=False,
        layer="rest",
        body="json",
        what="trusted publishing: an upload token for this index",
    ),
    _public("/.well-known/pytp", _READ, "PEP 807: trusted publishing discovery"),
    _public("/health", _READ, "readiness"),
    _public("/health/ready", _READ, "readiness"),
    _public("/health/live", _READ, "liveness"),
    _public("/metrics", frozenset({"GET", "HEAD"}), "Prometheus metrics"),
    _public("/mirrors.json", _READ, "mirrors, proxies and peers with their freshness"),
    *_interface(),
    _public("/ui/status", _READ, "mirror, proxy and peer status, with charts", "ui"),
    *_administration(),
)
