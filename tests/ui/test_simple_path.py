"""The Simple API does the same work with the interface on and off: every function called while
answering a request is listed (``sys.setprofile``) and compared, in process, load-independent.

Enabling the interface adds routes behind the hot path, templates, a search index built on a
search, and password sign-in; none of it may run for ``/simple/``, ``/packages/`` or ``/pypi/``:
not its routing, its security headers, its cookie parsing or its sessions. A browser's session
cookie on a Simple API request changes nothing either (the hot path never reads cookies)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from headwater.config.settings import HostedSettings, IndexSettings, ServePlan, ServeSettings
from headwater.db import Database, generation
from headwater.server.app import IndexApp
from headwater.ui import build_app
from tests.server.asgi import call
from tests.server.hosting import dists, upload_form

PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1"
#: Code that must never run for a Simple API request.
FORBIDDEN = ("headwater/ui/", "starlette/", "jinja2/", "argon2/", "headwater/db/passwords")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """The one database both applications serve from."""
    tmp = tmp_path_factory.mktemp("simple-path-db")
    database = Database.connect(f"sqlite:///{tmp / 'hw.sqlite3'}")
    database.upgrade()
    yield database
    database.close()


@pytest.fixture(scope="module")
def apps(
    tmp_path_factory: pytest.TempPathFactory, db: Database
) -> Iterator[tuple[IndexApp, IndexApp, str, str]]:
    """(interface on, interface off, an admin token, a password session's secret)."""
    tmp = tmp_path_factory.mktemp("simple-path")
    hosted = {"main": HostedSettings(), "priv": HostedSettings(read="token")}
    indexes = {"comp": IndexSettings(sources=["priv", "main"])}

    def plan(ui: bool) -> ServePlan:
        settings = ServeSettings(data_dir=str(tmp / "data"), ui=ui)
        return ServePlan(settings=settings, hosted=hosted, indexes=indexes, default="main")

    on, off = build_app(plan(True), db=db), build_app(plan(False), db=db)
    db.create_user("root")
    _, admin = db.create_token("root", scopes={"admin"})
    db.set_password("root", "a password long enough for root")
    secret = db.password_sign_in("root", "a password long enough for root", "127.0.0.1").secret
    assert secret is not None
    for index in ("main", "priv"):
        body, kind = upload_form(dists(tmp / index, "demo", "1.0")[0])
        answer = asyncio.run(
            call(on, "POST", f"/{index}/legacy/", headers={"Content-Type": kind,
                 "Authorization": f"Bearer {admin}"}, body=body)
        )  # fmt: skip
        assert answer.status == 200, answer.body
    yield on, off, admin, secret


#: Calls listed but not looked into. The change signal decides by the clock whether a look at the
#: database file is one ``stat()`` or also a ``PRAGMA`` (for :data:`SETTLE_SECONDS` after any
#: write, quiet ones too), so what it calls inside depends on when the test runs, not on the code
#: under test; what it answers is checked where it matters (the generation, and the rendering a
#: new generation would cause).
OPAQUE = {("headwater/db/generation.py", "generation")}


def traced(
    app: IndexApp, path: str, headers: dict[str, str], *, warm: bool = True
) -> list[tuple[str, str]]:
    """The functions called (file below the package root, name), in order, for one request
    answered a second time (the first fills the caches; ``warm=False``: no first request)."""
    path, _, query = path.partition("?")

    async def once() -> int:
        return (await call(app, "GET", path, headers=headers, query=query)).status

    if warm:
        assert asyncio.run(once()) < 500
    seen: list[tuple[str, str]] = []
    inside = [0]  # depth inside the change signal's look (see OPAQUE)

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if inside[0]:
            inside[0] += {"call": 1, "return": -1}.get(event, 0)
            return
        if event != "call":
            return
        name = frame.f_code.co_filename
        for marker in ("site-packages/", "/src/", "/tests/"):
            name = name.split(marker)[-1]
        seen.append((name, frame.f_code.co_name))
        if (name, frame.f_code.co_name) in OPAQUE:
            inside[0] = 1

    async def measured() -> int:
        sys.setprofile(profile)
        try:
            return (await call(app, "GET", path, headers=headers, query=query)).status
        finally:
            sys.setprofile(None)

    assert asyncio.run(measured()) < 500
    return seen


CASES = [
    ("/main/simple/demo/", "none"),
    ("/main/simple/", "none"),
    ("/simple/demo/", "none"),
    ("/main/pypi/demo/json", "none"),
    ("/priv/simple/demo/", "token"),
    ("/comp/simple/", "token"),
    ("/main/simple/demo/", "cookie"),
    ("/priv/simple/demo/", "cookie"),
]


@pytest.mark.parametrize(("path", "who"), CASES, ids=[f"{p} {w}" for p, w in CASES])
def test_the_simple_api_calls_the_same_functions_with_the_interface_on(
    apps: tuple[IndexApp, IndexApp, str, str], path: str, who: str
) -> None:
    on, off, admin, secret = apps
    headers = {"Accept": PIP, "Accept-Encoding": "gzip", "Host": "127.0.0.1:8080"}
    if who == "token":
        headers["Authorization"] = f"Bearer {admin}"
    if who == "cookie":  # a browser signed in with a password asks pip's URL
        headers["Cookie"] = f"headwater_session={secret}"
    with_ui = traced(on, path, headers)
    without = traced(off, path, headers)
    assert with_ui == without
    assert not [f for f in with_ui if f[0].startswith(FORBIDDEN)], with_ui
    if who == "cookie":
        plain = {k: v for k, v in headers.items() if k != "Cookie"}
        assert traced(on, path, plain) == with_ui  # the cookie is not even read


def test_wrong_passwords_do_not_make_the_simple_api_drop_its_pages(
    apps: tuple[IndexApp, IndexApp, str, str], db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone may post wrong passwords; their counters and audit entries are quiet writes, so
    the next Simple API request is still answered from the cache (the same calls as before,
    no database read, no rendering)."""
    on, _, _, _ = apps
    # The cached request's look at the database file is a settled stat() (no write for a while),
    # the one after the sign-ins sees a fresh WAL: the comparison must not depend on that.
    monkeypatch.setattr(generation, "SETTLE_SECONDS", 0.0)
    headers = {"Accept": PIP, "Accept-Encoding": "gzip", "Host": "127.0.0.1:8080"}
    cached = traced(on, "/main/simple/demo/", headers)
    before = db.generation()
    form = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    for n in range(3):
        body = f"user=root&password=wrong+password+{n}".encode()
        answer = asyncio.run(call(on, "POST", "/ui/signin", headers=form, body=body))
        assert answer.status == 401
    time.sleep(0.2)  # on PostgreSQL a notification would travel; SQLite sees it at once
    assert traced(on, "/main/simple/demo/", headers, warm=False) == cached
    assert db.generation() == before
