"""Every error answer of every route carries its security headers: ``nosniff`` always, and a
Content-Security-Policy whenever it is a page (text/html), with the interface on and off.

The route fuzzer (test_fuzz_routes.py) checks ``nosniff`` on a live server under malformed
requests; this walks ROUTES in process with each method a route has and one it lacks, each under
an Accept a browser sends and one a script sends, for a project and a file that do not exist,
signed out and with a wrong token, so that every kind of refusal (401, 403, 404, 405, 406, 413)
is produced and looked at.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from headwater.config.settings import HostedSettings, ServePlan, ServeSettings
from headwater.db import Database
from headwater.server.routes import ROUTES, example_path
from headwater.ui import build_app
from tests.server.asgi import call

WRONG = "Basic " + base64.b64encode(b"__token__:hw_" + b"0" * 40).decode()


@pytest.mark.parametrize("ui", [True, False], ids=["ui", "no-ui"])
def test_every_error_answer_has_its_security_headers(tmp_path: Path, ui: bool) -> None:
    db = Database.connect(f"sqlite:///{tmp_path / 'hw.sqlite3'}")
    db.upgrade()
    plan = ServePlan(
        settings=ServeSettings(data_dir=str(tmp_path / "data"), ui=ui),
        hosted={"main": HostedSettings(), "priv": HostedSettings(read="token")},
        default="main",
    )
    app = build_app(plan, db=db)

    async def go() -> tuple[list[str], int]:
        wrong: list[str] = []
        errors = 0
        for route in ROUTES:
            for index in ("main", "priv"):
                path = example_path(route, index=index, project="nope")
                for method in [*sorted(route.methods), "PATCH"]:
                    for accept in ("text/html,application/xhtml+xml", "*/*"):
                        for auth in ({}, {"Authorization": WRONG}):
                            headers = {"Accept": accept, **auth}
                            answer = await call(app, method, path, headers=headers)
                            if answer.status < 400:
                                continue
                            errors += 1
                            what = f"{method} {path} ({accept}, {bool(auth)}): {answer.status}"
                            if answer.headers.get("x-content-type-options") != "nosniff":
                                wrong.append(f"no nosniff: {what}")
                            page = answer.headers.get("content-type", "").startswith("text/html")
                            if page and "content-security-policy" not in answer.headers:
                                wrong.append(f"a page without a CSP: {what}")
        return wrong, errors

    try:
        wrong, errors = asyncio.run(go())
    finally:
        db.close()
    assert errors > 100, errors  # the walk produced refusals of every kind
    assert not wrong, "\n".join(wrong[:30])
