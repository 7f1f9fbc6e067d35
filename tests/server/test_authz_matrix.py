"""Every route of the server against every kind of credentials: the status authz predicts, and
the effect (a denied change changes nothing; an allowed one happens).

The app is the real one (``build_app`` over SQLite and a data directory) with a public hosted
index ``pub``, a private hosted index ``priv`` (the default index, so the root aliases are private
too) and a composed index ``comp`` over both. The routes come from
:data:`headwater.server.routes.ROUTES`, and ``test_the_registry_is_every_route_of_the_app`` checks
that table against the routes the app really has, so a route added without an entry fails here.

The expected answers come from :func:`expected`, written here from the vocabulary table of
docs/serve.md ("Who may do what"), not from :func:`headwater.server.authz.decide`: the matrix and
the decision's own truth table (tests/server/test_authz.py) check each other.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.routing import Route

from headwater.assembly import hosted_storage
from headwater.config.settings import HostedSettings, IndexSettings, ServePlan, ServeSettings
from headwater.db import Database, GitHubIdentity
from headwater.db import schema as db_schema
from headwater.server import app as app_module
from headwater.server.app import IndexApp
from headwater.server.routes import ROUTES, RouteSpec, example_path
from headwater.simple.json import parse_project_page_json
from headwater.ui import build_app
from tests.server.asgi import Answer, call
from tests.server.hosting import dists, upload_form

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
#: Which project each index's per-project routes are about, and one the tokens are not limited to.
TARGET = {"pub": "gamma", "priv": "alpha", "comp": "alpha"}
OTHER = {"pub": "delta", "priv": "beta", "comp": "beta"}
HOSTED = ("pub", "priv")
#: Where what a route changes is kept: the composed index's uploads go to its hosted source.
STORE = {"pub": "pub", "priv": "priv", "comp": "priv", "mir": "mir"}
#: A mirror: its publisher guard's routes (held releases, accepting one) are about it.
MIRROR = "mir"
PRIVATE = {"priv", "comp"}

#: The kinds of credentials. Those after INVALID are valid tokens, created per target project.
INVALID = ("none", "malformed", "wrong-secret", "revoked", "expired", "other-user")
VALID = (
    "read",
    "upload",  # user "owner", who owns the target
    "manage-owner",
    "manage-stranger",  # user "stranger", who owns nothing
    "admin",
    "other-index",  # read, upload and manage, limited to an index the route is not on
    "source-index",  # read, limited to the private source of the composed index
    "other-project",  # read, upload and manage, limited to a project the route is not about
    "this-project",  # read, upload and manage, limited to the route's project
    "legacy-admin-this-project",  # admin limited to projects: what older versions created
    "legacy-admin-other-project",
)
KINDS = INVALID + VALID


def expected(kind: str, action: str, index: str, per_project: bool) -> int:
    """The status a request of ``kind`` gets for ``action`` on ``index`` (0: allowed)."""
    private = index in PRIVATE
    if action == "public" or (action in ("list", "read") and not private):
        return 0
    if kind in INVALID:
        return 403 if action == "upload" else 401
    scopes = {
        "read": {"read"},
        "upload": {"upload"},
        "manage-owner": {"manage"},
        "manage-stranger": {"manage"},
        "admin": {"admin"},
        "other-index": {"read", "upload", "manage"},
        "source-index": {"read"},
        "other-project": {"read", "upload", "manage"},
        "this-project": {"read", "upload", "manage"},
        "legacy-admin-this-project": {"admin"},
        "legacy-admin-other-project": {"admin"},
    }[kind]
    if kind == "other-index" or (kind == "source-index" and index not in ("priv", "comp")):
        return 403
    needed = {"list": "read", "read": "read", "upload": "upload", "manage": "manage"}.get(
        action, "admin"
    )
    if needed not in scopes and "admin" not in scopes:
        return 403
    limited = kind in (
        "other-project",
        "this-project",
        "legacy-admin-this-project",
        "legacy-admin-other-project",
    )
    if limited:
        if action == "admin":
            return 403  # index-wide
        if action != "list" and (not per_project or kind.endswith("other-project")):
            return 403
    if action == "manage" and kind == "manage-stranger":
        return 403  # not an owner
    return 0


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _styles(kind: str, secret: str | None) -> list[tuple[str, dict[str, str]]]:
    """The ways to send ``kind``'s credentials: Basic ``__token__`` and Bearer."""
    if kind == "none" or secret is None:
        return [("none", {})]
    if kind == "malformed":
        return [("garbage", {"Authorization": secret}), ("basic", _basic("__token__", ""))]
    if kind == "other-user":
        # A valid admin token, with a user name other than __token__ (PyPI refuses it too).
        return [("basic", _basic("owner", secret))]
    return [
        ("basic", _basic("__token__", secret)),
        ("bearer", {"Authorization": f"Bearer {secret}"}),
    ]


@dataclass
class World:
    """The app, its database, and helpers to make projects and tokens."""

    tmp: Path
    db: Database
    app: IndexApp
    admin: str
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    tokens: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def run(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Answer:
        return asyncio.run(call(self.app, method, path, headers=headers, body=body))

    def upload(self, index: str, project: str, version: str, token: str | None = None) -> Answer:
        wheel = dists(self.tmp / f"d{next(self.counter)}", project, version)[0]
        body, content_type = upload_form(wheel)
        headers = {"Content-Type": content_type, **_basic("__token__", token or self.admin)}
        return self.run("POST", f"/{index}/legacy/", headers, body)

    def project(self, index: str, prefix: str = "fresh") -> str:
        """A new project of ``index`` with one wheel, owned by ``owner`` (and ``carol``)."""
        name = f"{prefix}{next(self.counter)}"
        assert self.upload(index, name, "1.0").status == 200
        self.db.add_owner(index, name, "owner")
        self.db.add_owner(index, name, "carol")
        return name

    def token(self, kind: str, index: str, project: str) -> str | None:
        key = (kind, index, project)
        if key not in self.tokens:
            self.tokens[key] = self._make(kind, index, project)
        return self.tokens[key]

    def _make(self, kind: str, index: str, project: str) -> str:
        db = self.db
        rw = {"read", "upload", "manage"}
        other_index = "pub" if index != "pub" else "priv"
        match kind:
            case "malformed":
                return "Token " + "x" * 20
            case "wrong-secret":
                return "hw_0123456789abcdef_" + "A" * 43
            case "revoked":
                token_id, secret = db.create_token("owner", scopes={"admin"})
                db.revoke_token(token_id)
                return secret
            case "expired":
                token_id, secret = db.create_token("owner", scopes={"admin"})
                _set_token(db, token_id, expires=datetime.now(UTC) - timedelta(seconds=1))
                return secret
            case "other-user" | "admin":
                return self.admin
            case "read":
                return db.create_token("owner", scopes={"read"})[1]
            case "upload":
                return db.create_token("owner", scopes={"upload"})[1]
            case "manage-owner":
                return db.create_token("owner", scopes={"manage"})[1]
            case "manage-stranger":
                return db.create_token("stranger", scopes={"manage"})[1]
            case "other-index":
                return db.create_token("owner", scopes=rw, indexes=[other_index])[1]
            case "source-index":
                return db.create_token("owner", scopes={"read"}, indexes=["priv"])[1]
            case "other-project":
                return db.create_token("owner", scopes=rw, projects=["zzz-elsewhere"])[1]
            case "this-project":
                return db.create_token("owner", scopes=rw, projects=[project])[1]
            case "legacy-admin-this-project" | "legacy-admin-other-project":
                # Refused by create_token now: written as an older version wrote it.
                limit = project if kind.endswith("this-project") else "zzz-elsewhere"
                token_id, secret = db.create_token("owner", scopes={"upload"}, projects=[limit])
                _set_token(db, token_id, scopes=["admin"])
                return secret
        raise AssertionError(kind)


def _set_token(db: Database, token_id: str, **values: Any) -> None:
    with db._engine.begin() as conn:  # what a test cannot do through the API, on purpose
        conn.execute(
            sa.update(db_schema.tokens).where(db_schema.tokens.c.id == token_id).values(**values)
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("authz")
    db = Database.connect(f"sqlite:///{tmp / 'hw.sqlite3'}")
    db.upgrade()
    plan = ServePlan(
        settings=ServeSettings(data_dir=str(tmp / "data")),
        hosted={"pub": HostedSettings(), "priv": HostedSettings(read="token")},
        indexes={"comp": IndexSettings(sources=["priv", "pub"], upload="priv")},
        default="priv",
        mirrors={MIRROR: str(tmp / "mirror")},
    )
    # The mirror's tree: synced once, empty (a tree without its root page is not ready).
    root = tmp / "mirror" / "web" / "simple"
    root.mkdir(parents=True)
    (root / "index.v1_json").write_text('{"meta": {"api-version": "1.0"}, "projects": []}')
    app = build_app(plan, db=db)
    for user in ("root", "owner", "stranger", "carol"):
        db.create_user(user)
    _, admin = db.create_token("root", scopes={"admin"})
    world = World(tmp, db, app, admin)
    for index in HOSTED:
        for project in (TARGET[index], OTHER[index]):
            assert world.upload(index, project, "1.0").status == 200
            db.add_owner(index, project, "owner")
        db.grant_namespace(index, TARGET[index], "owner")
        for project in (TARGET[index], OTHER[index]):
            # A PEP 740 provenance document beside each file, as an attested upload leaves it
            # (its routes are read routes like the file's; what it says is not checked here).
            for file in db.project(index, project).files:
                key = file.storage_key + ".provenance"
                asyncio.run(hosted_storage(plan, index).write_bytes(key, b'{"version": 1}'))
    yield world
    db.close()


def _file_path(world: World, index: str, project: str) -> str:
    """The ``aa/bb/rest/filename`` of the project's wheel (as its page links it)."""
    answer = world.run(
        "GET", f"/{index}/simple/{project}/", {**JSON, **_basic("__token__", world.admin)}
    )
    assert answer.status == 200, answer.body
    (file,) = parse_project_page_json(answer.body).files
    return file.url.split("/packages/", 1)[1]


def _fingerprint(world: World, index: str, project: str) -> Any:
    if index == MIRROR:  # what its guard's routes change: the tree's publisher state
        state = world.tmp / "mirror" / "state" / "publishers.json"
        return state.read_bytes() if state.exists() else None
    record = world.db.project(index, project)
    grants = world.db.namespaces(index)  # the administration pages grant namespaces
    publishers = [(p.id, p.identity) for p in world.db.publishers(index, project)]
    return msgspec.to_builtins((record, world.db.owners(index, project), grants, publishers))


def _indexes(route: RouteSpec) -> list[str]:
    if route.action == "public":
        return ["-"]
    if route.path.endswith(("/held", "/accepted/{version}")):
        return [MIRROR]
    if route.default:
        return ["priv"]
    if route.layer == "fast" or "/namespace" in route.path or route.action == "upload":
        # A composed index over hosted ones has PEP 752's endpoints too, and its uploads go to
        # the hosted source it names (STORE).
        return ["pub", "priv", "comp"]
    return list(HOSTED)  # the management API is the hosted indexes'


_OIDC = "/_/oidc/"
#: (method, path) -> the status of trusted publishing's routes, which must not depend on the
#: Authorization header.
_TRUSTED_ANSWERS: dict[tuple[str, str], int] = {}

_BODIES = {
    "/publishers": {"github": {"repository": "acme/tools", "workflow": "release.yml"}},
    "/yank": {"version": "1.0", "reason": "matrix"},
    "/unyank": {"version": "1.0"},
    "/status": {"status": "archived", "reason": "matrix"},
    "/alternate-locations": {"urls": ["https://example.org/simple/x/"]},
    "/tracks": {"urls": ["https://example.org/simple/x/"]},
}


def _cases() -> list[tuple[RouteSpec, str, str]]:
    return [
        (route, method, kind)
        for route in ROUTES
        for method in sorted(route.methods)
        for kind in KINDS
        if not (
            method == "HEAD"
            and route.action != "public"
            and kind not in ("none", "admin", "this-project")
        )
    ]


def _case_id(case: tuple[RouteSpec, str, str]) -> str:
    route, method, kind = case
    return f"{method} {route.path} {kind}"


def _style_count(kind: str) -> int:
    return 1 if kind in ("none", "other-user") else 2


@pytest.mark.parametrize("case", _cases(), ids=_case_id)
def test_route_answers_what_authz_predicts(world: World, case: tuple[RouteSpec, str, str]) -> None:
    route, method, kind = case
    # A read changes nothing (an administration page, the publishers of a project, the
    # publishing log); the forms and calls that change things do.
    destructive = route.action in ("manage", "admin") and method not in ("GET", "HEAD")
    for index in _indexes(route):
        want = expected(kind, route.action, index, route.per_project)
        for which in range(_style_count(kind)):
            project = TARGET.get(index, "alpha")
            if destructive and index == MIRROR:
                project = f"held{next(world.counter)}"  # a release accepted anew changes the state
            elif destructive:
                project = world.project(index)  # its own project: an allowed change happens to it
            values = {"index": index, "project": project, "user": "stranger", "namespace": project}
            if route.path.endswith("/owners/{user}") and method == "DELETE":
                values["user"] = "carol"
            if "{file}" in route.path or "{filename}" in route.path:
                file = _file_path(world, "priv" if index in ("-", "comp") else index, project)
                values["file"] = file
                values["filename"] = file.rsplit("/", 1)[1]
            if "{publisher}" in route.path:
                added = world.db.add_publisher(
                    index,
                    project,
                    GitHubIdentity(repository="acme/tools", workflow=f"w{next(world.counter)}.yml"),
                )
                values["publisher"] = str(added.id)
            if route.path.endswith("/unyank"):
                world.db.yank(index, project, version="1.0", reason="before", actor="test")
            path = example_path(route, **values)
            secret = None if kind == "none" else world.token(kind, index, project)
            style, auth = _styles(kind, secret)[which]
            label = f"{method} {path} as {kind} ({style})"
            headers = {**JSON, **auth}
            if "/integrity/" in route.path:
                headers["Accept"] = "application/vnd.pypi.integrity.v1+json"
            body = b""
            if route.body == "json":
                tail = next((t for t in _BODIES if route.path.endswith(t)), "")
                body = msgspec.json.encode(_BODIES.get(tail, {}))
                headers["Content-Type"] = "application/json"
            version = f"2.{next(world.counter)}"
            if route.body == "form" and destructive:
                # The administration pages' forms (headwater.ui.admin), as a browser sends them.
                form = (
                    f"op=grant&namespace={project}&owner=owner"
                    if "/grants/" in route.path
                    else "version=1.0&reason=matrix"
                )
                body = form.encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            if route.body == "upload":
                wheel = dists(world.tmp / f"u{next(world.counter)}", project, version)[0]
                body, headers["Content-Type"] = upload_form(wheel)
            store = STORE.get(index, "")
            before = _fingerprint(world, store, project) if store else None
            answer = world.run(method, path, headers, body)
            after = _fingerprint(world, store, project) if store else None
            if want:
                assert answer.status == want, (label, answer.status, answer.body[:300])
                if want == 401 and route.layer != "ui":
                    # The interface answers with a sign-in link, not a browser's password dialog.
                    assert answer.headers["www-authenticate"].startswith("Basic realm="), label
                assert before == after, f"{label}: denied, yet the project changed"
                assert b"sha256" not in answer.body and b'"owners"' not in answer.body, label
                continue
            assert answer.status not in (401, 403), (label, answer.status, answer.body[:300])
            if _OIDC in route.path or route.path == "/.well-known/pytp":
                # Trusted publishing: the OIDC token in the body is the credential, so the
                # header changes nothing (the matrix sends no OIDC token: 422, or 400/404 for a
                # discovery without a key or an index without uploads).
                first = _TRUSTED_ANSWERS.setdefault((method, path), answer.status)
                assert answer.status == first, (label, answer.status, first)
                assert answer.status in {200, 400, 404, 422}, (label, answer.status)
                continue
            ok = {200, 301} if route.path == "/{index}/" else {200}
            if route.body == "form":
                ok = {200, 303, 400}  # a form sent empty is answered with the form and a problem
            if route.path.endswith("{rest:anypath}"):
                ok = {404}  # the interface's page for a path it does not have
            if "/held/" in route.path:
                # Nothing is held in this world: the route's own answer, past authorization
                # (tests/cli/test_held_in_installers.py serves held files).
                ok = {404}
                assert method == "HEAD" or b"holds no file" in answer.body, label
            assert answer.status in ok, (label, answer.status, answer.body[:300])
            if destructive:
                assert before != after, f"{label}: allowed, yet nothing changed"
            if route.action == "upload":
                record = world.db.project(store, project)
                assert record is not None
                assert any(f.version == version for f in record.files), label
            if route.action == "list" and "simple" in route.path and method == "GET":
                # A token limited to projects sees only those in a private index's list.
                limited = index in PRIVATE and kind.endswith(("this-project", "other-project"))
                shown = {p for p in (project, OTHER[index]) if p.encode() in answer.body}
                if not limited:
                    assert shown == {project, OTHER[index]}, label
                else:
                    assert shown == ({project} if kind.endswith("this-project") else set()), label


def _undeclared(app: IndexApp) -> tuple[set[Any], set[Any]]:
    """(routes the app has that ROUTES lacks, routes ROUTES has that the app lacks)."""
    rest = app.rest
    assert isinstance(rest, Starlette)
    actual = set()
    for route in rest.routes:
        assert isinstance(route, Route), route
        actual.add((route.path, frozenset(route.methods or ())))
    declared = {(r.path, r.methods) for r in ROUTES if r.layer in ("rest", "ui")}
    return actual - declared, declared - actual


def test_the_registry_is_every_route_of_the_app(world: World) -> None:
    """ROUTES against what the app has: Starlette's routes and the hot path's sections."""
    missing, extra = _undeclared(world.app)
    assert not missing, f"routes of the app that routes.ROUTES lacks: {sorted(missing)}"
    assert not extra, f"routes.ROUTES entries the app does not have: {sorted(extra)}"
    # The hot path answers by section (the first segment after the index, or the root).
    fixed = {"v1+json", "v1+html"}
    sections: set[str] = set()
    default_sections: set[str] = set()
    for r in ROUTES:
        if r.path.startswith("/{index}"):
            first = r.path.split("/")[2]
            sections.add(first)
            if first in fixed:
                sections.add(r.path.split("/")[3])
        elif r.default and r.layer != "rest":
            default_sections.add(r.path.split("/")[1])
    assert sections == app_module._SECTIONS | set(app_module._NAMESPACE_SECTIONS)
    assert default_sections == set(app_module._DEFAULT_SECTIONS), default_sections
    # Every alias of the default index has its /{index} route, with the same action.
    by_path = {(r.path, r.action) for r in ROUTES}
    for r in ROUTES:
        if r.default:
            assert any(p.endswith(r.path) and a == r.action for p, a in by_path if p != r.path), r


def test_a_route_added_without_an_entry_is_caught(world: World) -> None:
    """The check above can fail: a new route, or a new method on an old one, is reported."""
    rest = world.app.rest
    assert isinstance(rest, Starlette)

    async def endpoint(request: Any) -> Any:
        raise AssertionError("never called")

    for added in (
        Route("/api/{index}/projects/{project}/transfer", endpoint, methods=["POST"]),
        Route("/api/{index}/projects/{project}/yank", endpoint, methods=["DELETE"]),
    ):
        rest.routes.append(added)
        try:
            missing, _ = _undeclared(world.app)
        finally:
            rest.routes.remove(added)
        assert missing == {(added.path, frozenset(added.methods or ()))}
    assert _undeclared(world.app) == (set(), set())


def _readable(route: RouteSpec) -> bool:
    return (
        route.action in ("list", "read")
        and "GET" in route.methods
        and route.layer != "ui"
        and "{rest" not in route.path
    )


@pytest.mark.parametrize("route", [r for r in ROUTES if _readable(r)], ids=lambda r: r.path)
def test_what_a_private_index_answers_no_shared_cache_keeps(world: World, route: RouteSpec) -> None:
    """Every read route of a private index, answered to a token, never says ``Cache-Control:
    public``: a CDN or caching proxy in front would keep the answer and give it to anyone (the
    provenance routes once answered ``max-age=600, public`` for a private index)."""
    for index in ["priv"] if route.default else ["priv", "comp"]:
        project = TARGET[index]
        page = world.run(
            "GET", f"/priv/simple/{project}/", {**JSON, **_basic("__token__", world.admin)}
        )
        # The matrix may have uploaded more versions by now: the 1.0 wheel with its provenance.
        (url,) = [f.url for f in parse_project_page_json(page.body).files if "-1.0-" in f.filename]
        file = url.split("/packages/", 1)[1]
        values = {"index": index, "project": project, "namespace": project, "file": file}
        values["filename"] = file.rsplit("/", 1)[1]
        path = example_path(route, **values)
        headers = {**JSON, **_basic("__token__", world.admin)}
        if "/integrity/" in route.path:
            headers["Accept"] = "application/vnd.pypi.integrity.v1+json"
        answer = world.run("GET", path, headers)
        assert answer.status in (200, 301, 404), (path, answer.status, answer.body[:200])
        cache = answer.headers.get("cache-control", "")
        assert "public" not in cache, (path, answer.status, cache)
        if answer.status == 200 and ("provenance" in path or "/packages/" in path):
            assert "private" in cache or "no-store" in cache, (path, cache)
