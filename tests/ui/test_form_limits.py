"""Every form post of the interface (each ``layer="ui"``, ``body="form"`` entry of ROUTES) is
bounded in bytes before a form parser reads it: a large body, declared or not, is a 413 page
that changes nothing, answered at once (30 MB of ``&`` once kept a worker busy for half a
minute on the unauthenticated sign-in form). A form of ordinary size still works."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator

import pytest

from headwater.config.settings import HostedSettings, ServePlan, ServeSettings
from headwater.db import Database
from headwater.server.app import IndexApp
from headwater.server.routes import ROUTES, RouteSpec, example_path
from headwater.ui import build_app
from headwater.ui.routes import MAX_FORM_BYTES
from tests.server.asgi import Answer, call

FORMS = [r for r in ROUTES if r.layer == "ui" and r.body == "form"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IndexApp, Database, str]]:
    tmp = tmp_path_factory.mktemp("forms")
    db = Database.connect(f"sqlite:///{tmp / 'hw.sqlite3'}")
    db.upgrade()
    plan = ServePlan(
        settings=ServeSettings(data_dir=str(tmp / "data")),
        hosted={"main": HostedSettings()},
        default="main",
    )
    db.create_user("root")
    _, admin = db.create_token("root", scopes={"admin"})
    yield build_app(plan, db=db), db, admin
    db.close()


def _post(app: IndexApp, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    return asyncio.run(call(app, "POST", path, headers=headers, body=body))


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "undeclared"])
@pytest.mark.parametrize("route", FORMS, ids=lambda r: r.path)
def test_a_form_larger_than_the_limit_is_refused_unread(
    world: tuple[IndexApp, Database, str], route: RouteSpec, declared: bool
) -> None:
    app, db, admin = world
    body = b"&" * (4 * 1024 * 1024)
    auth = base64.b64encode(f"__token__:{admin}".encode()).decode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": f"Basic {auth}",
    }
    if declared:
        headers["Content-Length"] = str(len(body))
    tokens = len(db.tokens())
    started = time.monotonic()
    answer = _post(app, example_path(route, index="main", project="demo"), body, headers)
    took = time.monotonic() - started
    assert answer.status == 413, (route.path, answer.status, answer.body[:300])
    assert b"nothing was changed" in answer.body
    assert "content-security-policy" in answer.headers
    assert took < 5, f"{route.path}: {took:.1f} s to refuse"
    assert len(db.tokens()) == tokens


def test_a_form_of_ordinary_size_still_signs_in(world: tuple[IndexApp, Database, str]) -> None:
    app, _db, admin = world
    body = f"token={admin}&next=/ui/admin".encode()
    assert len(body) < MAX_FORM_BYTES
    answer = _post(app, "/ui/signin", body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 303, answer.body[:300]
    assert answer.headers["location"] == "/ui/admin"
    assert "headwater_session=" in answer.headers["set-cookie"]
