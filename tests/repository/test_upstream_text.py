"""Text from an upstream never reaches a page raw: a hostile index (a real HTTP server on loopback)
puts control characters, CR and noncharacters in a yank reason, a requires-python, a project status
reason and a file URL, in JSON and in HTML; what the caching proxy serves and what the mirror
writes is strict HTML5 (html5lib) and JSON whose text equals the neutralised upstream text.

The HTML upstream writes them raw, as a careless index does (its page is then invalid HTML
already: headwater's pages of it must not be).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import html5lib
import pytest
from aiohttp import web

from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.repository.proxy import ProxySource
from headwater.simple.names import NormalizedName
from headwater.simple.negotiation import JSON_V1
from headwater.simple.text import neutralise
from headwater.storage import FileStorage
from headwater.sync.engine import Mirror
from tests.aioserve import aiohttp_serving

FAST = RetryPolicy(attempts=2, backoff=0.001, max_backoff=0.002)
BODY = b"wheel bytes"
SHA = hashlib.sha256(BODY).hexdigest()
REASON = "broken\x01 build\x1b[31m\r\nsee\x85 issue \ufdd0#1"
STATUS_REASON = "moved\x07 to\ttools\x0b2"
REQUIRES = ">=3.8\x00"
FILENAME = "hostile-1.0-py3-none-any.whl"


def _json_page() -> bytes:
    return json.dumps(
        {
            "meta": {"api-version": "1.4"},
            "name": "hostile",
            "versions": ["1.0"],
            "project-status": {"status": "deprecated", "reason": STATUS_REASON},
            "files": [
                {
                    "filename": FILENAME,
                    "url": f"/files/{FILENAME}",
                    "hashes": {"sha256": SHA},
                    "size": len(BODY),
                    "requires-python": REQUIRES,
                    "yanked": REASON,
                }
            ],
        }
    ).encode()


def _html_page() -> bytes:
    # Raw bytes: the way a careless upstream writes them.
    return (
        "<!DOCTYPE html><html><head>"
        '<meta name="pypi:repository-version" content="1.4">'
        '<meta name="pypi:project-status" content="deprecated">'
        f'<meta name="pypi:project-status-reason" content="{STATUS_REASON}">'
        "</head><body>"
        f'<a href="/files/{FILENAME}#sha256={SHA}" data-requires-python="{REQUIRES}"'
        f' data-yanked="{REASON}">{FILENAME}</a>'
        "</body></html>"
    ).encode()


async def _serve(html: bool) -> Any:
    async def project(request: web.Request) -> web.Response:
        if request.match_info["name"] != "hostile":
            return web.Response(status=404)
        if html:
            return web.Response(body=_html_page(), content_type="text/html")
        return web.Response(body=_json_page(), content_type=JSON_V1)

    async def root(request: web.Request) -> web.Response:
        body = json.dumps({"meta": {"api-version": "1.1"}, "projects": [{"name": "hostile"}]})
        return web.Response(body=body.encode(), content_type=JSON_V1)

    async def files(request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/simple/", root)
    app.router.add_get("/simple/{name}/", project)
    app.router.add_get("/files/{filename}", files)
    return aiohttp_serving(app)


def _check(html: bytes, json_body: bytes, *, status: bool = True) -> None:
    html5lib.HTMLParser(strict=True).parse(html.decode())
    doc = json.loads(json_body)
    (file,) = doc["files"]
    assert file["yanked"] == neutralise(REASON)
    assert file["requires-python"] == neutralise(REQUIRES)
    if status:
        assert doc["project-status"]["reason"] == neutralise(STATUS_REASON)
    for raw in ("\x01", "\x1b", "\x85", "\ufdd0", "\x07", "\x0b", "\x00", "\r"):
        assert raw not in html.decode() and raw not in json_body.decode()


@pytest.mark.parametrize("html", [False, True], ids=["json-upstream", "html-upstream"])
def test_the_proxy_serves_upstream_text_neutralised(tmp_path: Path, html: bool) -> None:
    async def go() -> None:
        async with await _serve(html) as url:
            proxy = ProxySource("up", url, FileStorage(tmp_path), retry=FAST, timeout=5.0)
            try:
                name = NormalizedName("hostile")
                html_page = await proxy.page(name, "html")
                # (an HTML upstream gives no size: the JSON page then claims 1.0 and carries no
                # project-status until the file is cached, headwater.simple.versions)
                json_page = await proxy.page(name, "json")
                assert html_page is not None and json_page is not None
                _check(html_page.body, json_page.body, status=not html)
            finally:
                await proxy.aclose()

    asyncio.run(go())


@pytest.mark.parametrize("html", [False, True], ids=["json-upstream", "html-upstream"])
def test_the_mirror_writes_upstream_text_neutralised(tmp_path: Path, html: bool) -> None:
    async def go() -> None:
        async with await _serve(html) as url, client_session() as session:
            summary = await Mirror(
                HttpRepository(url, session, retry=FAST), FileStorage(tmp_path)
            ).run()
            assert summary.ok, summary.failed

    asyncio.run(go())
    pages = tmp_path / "web" / "simple" / "hostile"
    _check((pages / "index.v1_html").read_bytes(), (pages / "index.v1_json").read_bytes())
    _check((pages / "index.html").read_bytes(), (pages / "index.v1_json").read_bytes())
