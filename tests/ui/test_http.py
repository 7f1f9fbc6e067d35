"""The interface over HTTP, in process: every page's security headers, sign-in's refusals, and
the Simple API exactly as it is without the interface."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.config.settings import HostedSettings, IndexSettings, ServePlan, ServeSettings
from headwater.db import Database
from headwater.server.app import IndexApp
from headwater.server.routes import ROUTES, example_path
from headwater.ui import build_app
from headwater.ui.csrf import token_of_secret
from headwater.ui.security import CSP
from tests.server.asgi import Answer, call
from tests.server.hosting import dists, upload_form

UI_ROUTES = [r for r in ROUTES if r.layer == "ui"]


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IndexApp, IndexApp, str]]:
    """(the app with the interface, the same plan without it, an admin token)."""
    tmp = tmp_path_factory.mktemp("ui-http")
    db = Database.connect(f"sqlite:///{tmp / 'hw.sqlite3'}")
    db.upgrade()
    settings = ServeSettings(data_dir=str(tmp / "data"))
    plan = ServePlan(
        settings=settings,
        hosted={"main": HostedSettings(), "priv": HostedSettings(read="token")},
        indexes={"comp": IndexSettings(sources=["priv", "main"])},
        default="main",
    )
    off = ServePlan(
        settings=ServeSettings(data_dir=str(tmp / "data"), ui=False),
        hosted=plan.hosted,
        indexes=plan.indexes,
        default="main",
    )
    with_ui, without = build_app(plan, db=db), build_app(off, db=db)
    db.create_user("root")
    _, admin = db.create_token("root", scopes={"admin"})
    for index, project in (("main", "example"), ("priv", "hidden")):
        body, kind = upload_form(dists(tmp / index, project, "1.0")[0])
        answer = run(with_ui, "POST", f"/{index}/legacy/", {"Content-Type": kind}, body, admin)
        assert answer.status == 200, answer.body
    yield with_ui, without, admin
    db.close()


def run(
    app: IndexApp,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    token: str | None = None,
) -> Answer:
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    path, _, query = path.partition("?")
    return asyncio.run(call(app, method, path, headers=headers, query=query, body=body))


@pytest.mark.parametrize(
    "route", UI_ROUTES, ids=[f"{sorted(r.methods)} {r.path}" for r in UI_ROUTES]
)
def test_every_page_carries_the_security_headers(
    apps: tuple[IndexApp, IndexApp, str], route: object
) -> None:
    with_ui, _, admin = apps
    for method in sorted(route.methods):  # type: ignore[attr-defined]
        path = example_path(route, index="main", project="example")  # type: ignore[arg-type]
        for token in (None, admin):
            answer = run(with_ui, method, path, token=token)
            assert answer.status < 500, (method, path, answer.body[:300])
            headers = answer.headers
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["content-security-policy"] == CSP, (method, path)
            assert headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "same-origin"
            if "/static/" not in path:
                assert "private" in headers["cache-control"], (method, path)
                assert "Cookie" in headers["vary"]


def test_the_policy_forbids_inline_script_and_framing() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CSP and "*" not in CSP and "http" not in CSP


SIMPLE = [
    ("GET", "/simple/", {}),
    ("GET", "/simple/", {"Accept": "application/vnd.pypi.simple.v1+json"}),
    ("GET", "/simple/example/", {}),
    ("GET", "/simple/Example/", {}),
    ("GET", "/main/simple/example/", {"Accept": "application/vnd.pypi.simple.v1+json"}),
    ("HEAD", "/main/simple/example/", {}),
    ("GET", "/main/simple/example/", {"Accept": "text/nonsense"}),
    ("GET", "/main/v1+json/simple/example/", {}),
    ("GET", "/main/pypi/example/json", {}),
    ("GET", "/main/", {}),
    ("GET", "/priv/simple/", {}),
    ("GET", "/priv/simple/hidden/", {}),
    ("GET", "/comp/simple/hidden/", {}),
    ("GET", "/comp/simple/example/", {}),
    ("GET", "/simple/nothing-here/", {}),
    ("POST", "/api/main/projects/example/yank", {}),
    ("GET", "/health/live", {}),
    ("GET", "/namespaces", {}),
]


@pytest.mark.parametrize(
    ("method", "path", "headers"), SIMPLE, ids=[f"{m} {p} {h}" for m, p, h in SIMPLE]
)
def test_the_simple_api_is_the_same_with_and_without_the_interface(
    apps: tuple[IndexApp, IndexApp, str], method: str, path: str, headers: dict[str, str]
) -> None:
    with_ui, without, admin = apps
    for token in (None, admin):
        a = run(with_ui, method, path, headers, token=token)
        b = run(without, method, path, headers, token=token)
        assert (a.status, a.body) == (b.status, b.body), (method, path, token)
        ignore = {"date", "etag"} if path.startswith("/health") else {"date"}
        assert {k: v for k, v in a.headers.items() if k not in ignore} == {
            k: v for k, v in b.headers.items() if k not in ignore
        }
        assert "content-security-policy" not in a.headers


def test_root_is_the_home_page_only_with_the_interface(
    apps: tuple[IndexApp, IndexApp, str],
) -> None:
    with_ui, without, _ = apps
    assert b"Indexes and sources" in run(with_ui, "GET", "/").body
    plain = run(without, "GET", "/")
    assert plain.status == 200 and b"Indexes and sources" not in plain.body
    assert run(without, "GET", "/ui/search").status == 404


def test_sign_in_refuses_a_form_from_another_site(apps: tuple[IndexApp, IndexApp, str]) -> None:
    with_ui, _, admin = apps
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = f"token={admin}".encode()
    for hostile in (
        {"Origin": "https://evil.example", "Host": "127.0.0.1:8080"},
        {"Origin": "null", "Host": "127.0.0.1:8080"},
        {"Sec-Fetch-Site": "cross-site", "Host": "127.0.0.1:8080"},
    ):
        answer = run(with_ui, "POST", "/ui/signin", {**form, **hostile}, body)
        assert answer.status == 403, hostile
        assert "set-cookie" not in answer.headers
    same = {**form, "Origin": "http://127.0.0.1:8080", "Host": "127.0.0.1:8080"}
    answer = run(with_ui, "POST", "/ui/signin", same, body + b"&next=//evil.example/")
    assert answer.status == 303
    assert answer.headers["location"] == "/"  # never another host
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=43200" in cookie
    assert "Secure" not in cookie  # plain http here; https sets it (test_secure_cookie)


def test_secure_cookie_behind_https(tmp_path: Path) -> None:
    db = Database.connect(f"sqlite:///{tmp_path / 'hw.sqlite3'}")
    db.upgrade()
    plan = ServePlan(
        settings=ServeSettings(data_dir=str(tmp_path / "d"), base_url="https://pypi.example.org"),
        hosted={"main": HostedSettings()},
        default="main",
    )
    app = build_app(plan, db=db)
    db.create_user("root")
    _, token = db.create_token("root", scopes={"read"})
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answer = run(app, "POST", "/ui/signin", form, f"token={token}".encode())
    assert answer.status == 303 and "Secure" in answer.headers["set-cookie"]
    # __Host-: only this host may set it (Secure, Path=/, no Domain), so a sibling subdomain
    # cannot plant a session; and only that name is read over https.
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"__Host-headwater_session={token};")
    assert "Path=/" in cookie and "Domain" not in cookie
    _, admin = db.create_token("root", scopes={"admin"})
    signed = run(app, "GET", "/ui/admin", {"Cookie": f"__Host-headwater_session={admin}"})
    planted = run(app, "GET", "/ui/admin", {"Cookie": f"headwater_session={admin}"})
    assert signed.status == 200, signed.body[:300]
    assert b'action="/ui/signout"' in signed.body
    assert b'action="/ui/signout"' not in planted.body  # a cookie a subdomain could set: nobody
    out = run(
        app,
        "POST",
        "/ui/signout",
        {
            "Cookie": f"__Host-headwater_session={admin}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        f"csrf={token_of_secret(admin)}".encode(),
    )
    assert out.headers["set-cookie"].startswith('__Host-headwater_session="";')
    db.close()


@pytest.mark.parametrize(
    ("asked", "went"),
    [
        ("/ui/main/project/example", "/ui/main/project/example"),
        ("/ui/search?q=x&index=main", "/ui/search?q=x&index=main"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("/\t/evil.example/", "/"),
        ("/\n/evil.example/", "/"),
        ("/\r\n/evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
        ("/" + "a" * 600, "/"),
    ],
)
def test_sign_in_returns_only_to_a_path_of_this_server(
    apps: tuple[IndexApp, IndexApp, str], asked: str, went: str
) -> None:
    """Every spelling a browser would read as another host is refused (tabs and line breaks
    are dropped from URLs by browsers, a backslash is read as a slash)."""
    from urllib.parse import quote

    with_ui, _, admin = apps
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = f"token={admin}&next={quote(asked, safe='')}".encode()
    answer = run(with_ui, "POST", "/ui/signin", form, body)
    assert answer.status == 303
    assert answer.headers["location"] == went


def test_metrics_never_name_a_private_index(apps: tuple[IndexApp, IndexApp, str]) -> None:
    """/metrics answers anyone: a private index's uploads and reads are counted under
    index="(private)" (with the composed index over it), never by name."""
    with_ui, _, admin = apps
    for path in ("/priv/simple/hidden/", "/comp/simple/hidden/", "/main/simple/example/"):
        assert run(with_ui, "GET", path, token=admin).status == 200
    text = run(with_ui, "GET", "/metrics").body.decode()
    assert 'index="priv"' not in text and 'index="comp"' not in text
    assert 'headwater_uploads_total{index="(private)",result="created"} 1' in text
    assert 'index="main"' in text  # public indexes keep their names
