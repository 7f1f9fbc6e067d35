"""What the check reads from an index beyond its pages: a headwater refusal (409/503 with
``X-Headwater-Refused``), a cooldown's ``X-Headwater-Hidden``, PEP 752 namespaces. Another server's
text reaches the report as one printable line, bounded, whatever it sends."""

from __future__ import annotations

import asyncio

from aiohttp import web

from headwater.check import IndexSpec, http_sources
from headwater.check.sources import HttpSource, Lookup
from headwater.simple.names import normalize_name
from tests.aioserve import aiohttp_serving

_JSON = "application/vnd.pypi.simple.v1+json"
HOSTILE = "index 'x': \x1b[31mheld\x1b[0m\r\nX-Evil: 1\x00 by 'internal'" + "!" * 5000


def _app() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "refused":
            body = f"{HOSTILE}\nTo resolve: publish it\x07 again"
            return web.Response(status=409, text=body, headers={"X-Headwater-Refused": "claimed"})
        if name == "down":
            body = "index 'x': 'down' did not answer\nTo resolve: retry"
            return web.Response(
                status=503, text=body, headers={"X-Headwater-Refused": "unavailable"}
            )
        if name == "plain-409":
            return web.Response(status=409, text="conflict, but not headwater's")
        if name == "cooling":
            headers = {"X-Headwater-Hidden": "cooldown; files=2; until=2030-01-01T00:00:00Z"}
            body = '{"meta": {"api-version": "1.1"}, "name": "cooling", "files": []}'
            return web.Response(body=body, content_type=_JSON, headers=headers)
        return web.Response(status=404)

    async def namespaces(request: web.Request) -> web.Response:
        return web.json_response([{"name": "corp"}, {"name": "Acme_Tools"}, {"bad": 1}][:2])

    app = web.Application()
    app.router.add_get("/simple/{name}/", page)
    app.router.add_get("/namespaces", namespaces)
    return app


async def _lookups(*names: str, public: bool = False) -> dict[str, Lookup]:
    async with aiohttp_serving(_app()) as url:
        spec = IndexSpec(name="x", url=url, origin="t", public=public)
        async with http_sources([spec]) as (source,):
            assert isinstance(source, HttpSource)
            found = [await source.lookup(normalize_name(n)) for n in names]
    return dict(zip(names, found, strict=True))


def test_refusals_hidden_files_and_namespaces_are_read_as_printable_bounded_text() -> None:
    names = ("refused", "down", "plain-409", "cooling", "corp-secret", "acme-tools-x", "other")
    got = asyncio.run(_lookups(*names))
    refused = got["refused"]
    assert refused.state == "refused" and refused.refusal is not None
    assert refused.refusal.kind == "claimed" and refused.refusal.status == 409
    for text in (refused.refusal.message, refused.refusal.fix):
        assert text.isprintable() and "\x1b" not in text and "\n" not in text
    assert refused.refusal.message.startswith("index 'x': [31mheld [0m X-Evil: 1 by 'internal'")
    assert len(refused.refusal.message) <= 2000
    assert refused.refusal.fix == "publish it again"
    down = got["down"]
    assert down.state == "refused" and down.refusal is not None
    assert (down.refusal.kind, down.refusal.status, down.refusal.fix) == (
        "unavailable",
        503,
        "retry",
    )
    # A 409 without the header is an index failing, not a headwater refusal.
    assert got["plain-409"].state == "unavailable" and got["plain-409"].refusal is None
    assert got["cooling"].hidden == "cooldown; files=2; until=2030-01-01T00:00:00Z"
    assert got["corp-secret"].namespace == "corp"
    assert got["acme-tools-x"].namespace == "acme-tools"
    assert got["other"].state == "absent" and got["other"].namespace is None


def test_the_public_index_is_not_asked_for_namespaces() -> None:
    got = asyncio.run(_lookups("corp-secret", public=True))
    assert got["corp-secret"].state == "absent" and got["corp-secret"].namespace is None
