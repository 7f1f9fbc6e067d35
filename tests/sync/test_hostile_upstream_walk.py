"""One table of hostile project pages, walked through both kinds of source that fetch an upstream:
the mirror (``Mirror`` into a tree) and the caching proxy (a real app's proxy index, in process).

tests/sync/test_hostile_upstream.py covers transport faults and hostile names and filenames for
the mirror; tests/repository has the fetch boundary, bounds and memory. This table adds what a page
can get wrong at the level of bytes and types, and asks the same of both consumers: wrong or
missing content types, HTML that ends mid-tag or holds NUL bytes, bodies that are not UTF-8,
JSON of the wrong shape in each field (files a dict, hashes a string, sizes that are words or
negative, URLs that are ``javascript:`` or carry CR LF, filenames with control characters or of
the wrong type, a missing ``meta``, an unknown major API version, ``null``), redirect loops and
redirects off the upstream, an empty body.

The mirror must finish its run, fail (or skip) each hostile project with a one-line printable
reason, keep the good project, and leave a tree whose every page points at files that exist and
nothing of a hostile page in it. The proxy must answer every hostile page, in JSON and in HTML,
without a 500 (502 or 504, the upstream's fault, is honest; 404 is what a page that lists nothing
usable may become), with ``nosniff``, and keep serving the good project.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from headwater.config.settings import ProxySettings, ServePlan, ServeSettings
from headwater.db import Database
from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.simple.negotiation import JSON_V1
from headwater.storage import FileStorage
from headwater.sync.engine import Mirror, Summary
from headwater.ui import build_app
from tests.aioserve import aiohttp_serving
from tests.server.asgi import call
from tests.sync.test_crash import assert_consistent

FAST = RetryPolicy(attempts=2, backoff=0.001, max_backoff=0.002)
GOOD = b"good wheel bytes"
SHA = hashlib.sha256(GOOD).hexdigest()


def _file(**override: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": "x-1.0-py3-none-any.whl",
        "url": f"/files/{SHA}",
        "hashes": {"sha256": SHA},
        "size": len(GOOD),
    }
    entry.update(override)
    return {k: v for k, v in entry.items() if v is not ...}


def _json(name: str, files: Any, **meta: Any) -> bytes:
    page: dict[str, Any] = {"meta": {"api-version": "1.1"}, "name": name, "files": files}
    page.update(meta)
    return json.dumps(page).encode()


def _good_page(name: str) -> bytes:
    return _json(name, [_file(filename=f"{name}-1.0-py3-none-any.whl")], versions=["1.0"])


HTML = "text/html"
#: project -> (status, content type (None: no header), body, extra headers)
RAW: dict[str, tuple[int, str | None, bytes, dict[str, str]]] = {
    "ctype-plain": (200, "text/plain", _good_page("ctype-plain"), {}),
    "ctype-png": (200, "image/png", _good_page("ctype-png"), {}),
    "ctype-missing": (200, None, _good_page("ctype-missing"), {}),
    "ctype-garbage": (200, "a/b;;;=;q", _good_page("ctype-garbage"), {}),
    "html-cut": (200, HTML, b'<html><body><a href="/files/' + SHA.encode() + b"#sha256=", {}),
    "html-nul": (200, HTML, b"<html><body><a href='/f\x00'>x-1.0.tar.gz\x00</a>", {}),
    "html-js": (200, HTML, b"<a href='javascript:alert(1)'>x-1.0.tar.gz</a>", {}),
    "html-traversal": (
        200,
        HTML,
        b"<a href='/files/"
        + SHA.encode()
        + b"#sha256="
        + SHA.encode()
        + b"'>../../x-1.0.tar.gz</a>",
        {},
    ),
    "not-utf8": (
        200,
        JSON_V1,
        b'{"meta": {"api-version": "1.1"}, "name": "\xff\xfe", "files": []}',
        {},
    ),
    "files-dict": (200, JSON_V1, _json("files-dict", {}), {}),
    "files-null": (200, JSON_V1, _json("files-null", None), {}),
    "hashes-str": (200, JSON_V1, _json("hashes-str", [_file(hashes="abc")]), {}),
    "hashes-bad-hex": (
        200,
        JSON_V1,
        _json("hashes-bad-hex", [_file(hashes={"sha256": "zz" * 32})]),
        {},
    ),
    "size-word": (200, JSON_V1, _json("size-word", [_file(size="big")]), {}),
    "size-negative": (200, JSON_V1, _json("size-negative", [_file(size=-1)]), {}),
    "size-huge": (200, JSON_V1, _json("size-huge", [_file(size=10**30)]), {}),
    "url-js": (200, JSON_V1, _json("url-js", [_file(url="javascript:alert(1)")]), {}),
    "url-crlf": (200, JSON_V1, _json("url-crlf", [_file(url="/files/x\r\nX-Injected: 1")]), {}),
    "url-int": (200, JSON_V1, _json("url-int", [_file(url=5)]), {}),
    "filename-ctrl": (
        200,
        JSON_V1,
        _json("filename-ctrl", [_file(filename="x\x1b[2J-1.0-py3-none-any.whl")]),
        {},
    ),
    "filename-int": (200, JSON_V1, _json("filename-int", [_file(filename=5)]), {}),
    "filename-missing": (200, JSON_V1, _json("filename-missing", [_file(filename=...)]), {}),
    "yanked-dict": (200, JSON_V1, _json("yanked-dict", [_file(yanked={"a": 1})]), {}),
    "metadata-int": (
        200,
        JSON_V1,
        _json("metadata-int", [_file(**{"core-metadata": {"sha256": 5}})]),
        {},
    ),
    "requires-python-nul": (
        200,
        JSON_V1,
        _json("requires-python-nul", [_file(**{"requires-python": ">=3\x00"})]),
        {},
    ),
    "provenance-js": (
        200,
        JSON_V1,
        _json("provenance-js", [_file(provenance="javascript:alert(1)")]),
        {},
    ),
    "provenance-ctrl": (
        200,
        JSON_V1,
        _json("provenance-ctrl", [_file(provenance="https://x/\r\n")]),
        {},
    ),
    "meta-missing": (200, JSON_V1, json.dumps({"name": "meta-missing", "files": []}).encode(), {}),
    "api-v9": (200, JSON_V1, _json("api-v9", [], meta={"api-version": "9.0"}), {}),
    "json-null": (200, JSON_V1, b"null", {}),
    "json-list": (200, JSON_V1, b"[1, 2]", {}),
    "json-cut": (200, JSON_V1, _good_page("json-cut")[:40], {}),
    "empty": (200, JSON_V1, b"", {}),
    "redirect-loop": (302, None, b"", {"Location": "/simple/redirect-loop/"}),
    "redirect-offsite": (302, None, b"", {"Location": "http://127.0.0.2:9/simple/x/"}),
    "redirect-garbage": (302, None, b"", {"Location": "http://[::1/x"}),
    "status-418": (418, "text/plain", b"teapot", {}),
}
PROJECTS = ["good", *RAW]


@asynccontextmanager
async def raw_index() -> AsyncIterator[str]:
    async def root(request: web.Request) -> web.Response:
        body = json.dumps(
            {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in PROJECTS]}
        )
        return web.Response(body=body.encode(), content_type=JSON_V1)

    async def project(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "good":
            return web.Response(body=_good_page("good"), content_type=JSON_V1)
        if name not in RAW:
            return web.Response(status=404)
        status, ctype, body, headers = RAW[name]
        response = web.Response(status=status, body=body, headers=headers)
        if ctype is None:
            response.headers.popall("Content-Type", None)
            response.content_type = "application/octet-stream"
            del response.headers["Content-Type"]
        else:
            response.headers["Content-Type"] = ctype
        return response

    async def files(request: web.Request) -> web.Response:
        return web.Response(body=GOOD, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/simple/", root)
    app.router.add_get("/simple/{name}/", project)
    app.router.add_get("/files/{sha}", files)
    async with aiohttp_serving(app) as url:
        yield url


def test_the_mirror_walks_every_hostile_page(tmp_path: Path) -> None:
    async def go() -> Summary:
        async with raw_index() as url, client_session() as session:
            return await Mirror(
                HttpRepository(url, session, retry=FAST), FileStorage(tmp_path)
            ).run()

    summary = asyncio.run(go())
    assert "good" not in summary.failed, summary.failed.get("good")
    reasons = {**summary.failed, **summary.refused}
    for name, reason in reasons.items():
        assert reason and reason.isprintable() and "\n" not in reason, (name, reason)
        assert len(reason) < 1000, (name, reason[:300])
        assert "Traceback" not in reason, (name, reason)
        # It names the upstream page, or the project (with its page's files' reasons).
        assert "127.0.0.1" in reason or name in reason, (name, reason)
    assert_consistent(tmp_path)
    # Nothing a hostile page named reached the tree: only wheels named as the good pages name them.
    for path in (tmp_path / "web").rglob("*"):
        assert path.name.isprintable() and "\x00" not in str(path), path
    print({n: r[:100] for n, r in sorted(reasons.items())})


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database.connect(f"sqlite:///{tmp_path / 'hw.sqlite3'}")
    database.upgrade()
    return database


def test_the_proxy_answers_every_hostile_page(tmp_path: Path, db: Database) -> None:
    async def go() -> list[str]:
        problems: list[str] = []
        async with raw_index() as url:
            plan = ServePlan(
                settings=ServeSettings(data_dir=str(tmp_path / "data")),
                proxies={"px": ProxySettings(url=url, timeout=5)},
                default="px",
            )
            app = build_app(plan, db=db)
            for name in PROJECTS:
                for accept in (JSON_V1, "text/html", "*/*"):
                    answer = await call(
                        app, "GET", f"/px/simple/{name}/", headers={"Accept": accept}
                    )
                    what = f"{name} ({accept}): {answer.status} {answer.body[:200]!r}"
                    if answer.status >= 500 and answer.status not in (502, 503, 504):
                        problems.append(what)
                    if answer.headers.get("x-content-type-options") != "nosniff":
                        problems.append(f"no nosniff: {what}")
                    if name == "good" and answer.status != 200:
                        problems.append(f"the good project is not served: {what}")
                    if b"Traceback" in answer.body:
                        problems.append(f"a traceback: {what}")
                    if answer.status in (502, 504) and b"127.0.0.1" not in answer.body:
                        problems.append(
                            f"a {answer.status} that does not name the upstream: {what}"
                        )
        return problems

    try:
        problems = asyncio.run(go())
    finally:
        db.close()
    assert not problems, "\n".join(problems)
