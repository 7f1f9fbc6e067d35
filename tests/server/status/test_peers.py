"""Peer mirrors and upstream serial checks against real loopback servers that answer well,
badly, slowly and with hostile content: every answer becomes a PeerEntry, never an exception,
and a peer can never make itself look fresher than its numbers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.repository._client import HttpClient
from headwater.repository.boundary import FetchBoundary
from headwater.server.status.document import (
    ENTRIES,
    TEXT,
    Document,
    MirrorEntry,
    PeerEntry,
    PeerMirror,
    decode_peer_document,
    rfc3339,
)
from headwater.server.status.freshness import ORDER, Thresholds
from headwater.server.status.peers import (
    check_peer,
    check_upstream_serial,
    judge_peer_mirror,
    parse_serial,
)
from tests.aioserve import aiohttp_serving

NOW = time.time()
TH = Thresholds()
XSS = '<script>alert(1)</script>"\x1b[31m\r\nSet-Cookie: x=1'


def doc(*mirrors: dict[str, Any], **top: Any) -> bytes:
    return msgspec.json.encode(
        {"schema": "headwater.mirrors", "version": 1, "mirrors": list(mirrors), **top}
    )


def mirror(ago: float | None, **kw: Any) -> dict[str, Any]:
    return {
        "name": "pypi",
        "url": "https://peer.example/pypi/simple/",
        "last_complete": rfc3339(NOW - ago) if ago is not None else None,
        **kw,
    }


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answer(body: bytes, status: int = 200, **headers: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=status, headers=headers)

    return handle


async def slow(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(5)
    return web.Response(body=doc())


async def huge(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(40):
        await response.write(b" " * (64 << 10))
    return response


LAST_MODIFIED_OK = answer(time.strftime("%Y%m%dT%H:%M:%S\n", time.gmtime(NOW - 120)).encode())
NOT_FOUND = answer(b"nope", 404)

# name -> (mirrors.json handler, last-modified handler, expected state, words in reason)
CASES: dict[str, tuple[Handler, Handler, str, str]] = {
    "fresh headwater peer": (answer(doc(mirror(300))), NOT_FOUND, "fresh", "1 of 1"),
    "behind": (answer(doc(mirror(2 * 3600))), NOT_FOUND, "behind", "0 of 1"),
    "stale": (answer(doc(mirror(5 * 86400))), NOT_FOUND, "stale", "0 of 1"),
    "claims fresh but numbers are old": (
        answer(doc(mirror(5 * 86400, state="fresh", reason="all good, trust me"))),
        NOT_FOUND,
        "stale",
        "",
    ),
    "says it is failing": (
        answer(doc(mirror(60, state="failing", reason="upstream down"))),
        NOT_FOUND,
        "failing",
        "",
    ),
    "sync in the future": (answer(doc(mirror(-86400 * 365))), NOT_FOUND, "unknown", ""),
    "no complete sync": (answer(doc(mirror(None))), NOT_FOUND, "unknown", ""),
    "lists no mirror": (answer(doc()), NOT_FOUND, "unknown", "lists no mirror"),
    "hostile text": (
        answer(doc(mirror(60, name=XSS, reason=XSS, state=XSS[:10]))),
        NOT_FOUND,
        "unknown",
        "not a readable mirrors.json",
    ),
    "hostile names, valid state": (
        answer(doc(mirror(60, name=XSS * 3, reason=XSS))),
        NOT_FOUND,
        "fresh",
        "",
    ),
    "negative serial": (
        answer(doc(mirror(60, serial=-5))),
        NOT_FOUND,
        "unknown",
        "not a readable mirrors.json",
    ),
    "serial too large": (
        answer(doc(mirror(60, serial=2**70))),
        NOT_FOUND,
        "unknown",
        "not a readable",
    ),
    "too many mirrors": (
        answer(doc(*[mirror(60)] * (ENTRIES + 1))),
        NOT_FOUND,
        "unknown",
        "not a readable",
    ),
    "a string too long": (
        answer(doc(mirror(60, reason="x" * (TEXT + 1)))),
        NOT_FOUND,
        "unknown",
        "not a readable",
    ),
    "another schema": (answer(b'{"schema": "x", "version": 1}'), NOT_FOUND, "unknown", "schema"),
    "a later version": (
        answer(b'{"schema": "headwater.mirrors", "version": 2}'),
        NOT_FOUND,
        "unknown",
        "version 2",
    ),
    "html instead of json": (answer(XSS.encode()), NOT_FOUND, "unknown", "not a readable"),
    "deeply nested": (answer(b"[" * 100_000), NOT_FOUND, "unknown", "not a readable"),
    "bandersnatch tree": (NOT_FOUND, LAST_MODIFIED_OK, "fresh", "2 min ago"),
    "bad last-modified": (NOT_FOUND, answer(XSS.encode()), "unknown", "is not a time"),
    "500 both": (answer(b"", 500), answer(b"", 500), "unknown", "HTTP 500"),
    "too large": (huge, NOT_FOUND, "unreachable", "more than"),
    "too slow": (slow, NOT_FOUND, "unreachable", "deadline"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_peer_answer_becomes_an_entry(case: str) -> None:
    mirrors_json, last_modified, state, words = CASES[case]

    async def go() -> PeerEntry:
        app = web.Application()
        app.router.add_get("/mirrors.json", mirrors_json)
        app.router.add_get("/last-modified", last_modified)
        async with aiohttp_serving(app) as simple:
            base = simple.removesuffix("simple/")
            client = HttpClient(connect_timeout=2, read_timeout=2)
            try:
                return await check_peer(
                    client,
                    base,
                    NOW,
                    TH,
                    deadline=1.0,
                    boundary=FetchBoundary.for_upstream(base, allowed_networks=["127.0.0.0/8"]),
                )
            finally:
                await client.close()

    entry = asyncio.run(go())
    assert entry.state == state, entry.reason
    assert words in entry.reason
    # Whatever the peer sent, the entry is within the schema's bounds and round-trips.
    assert decode_peer_document(msgspec.json.encode(Document(peers=[entry]))).peers == [entry]
    assert "\n" not in entry.reason and "\r" not in entry.reason and "\x1b" not in entry.reason
    for m in entry.mirrors:
        assert len(m.name) <= 200 and "\n" not in m.name and "\x1b" not in m.name


def test_a_peer_nobody_answers_for_is_unreachable() -> None:
    async def go() -> PeerEntry:
        client = HttpClient(connect_timeout=1, read_timeout=1)
        try:
            url = "http://127.0.0.1:9/"  # discard: nothing listens
            fence = FetchBoundary.for_upstream(url, allowed_networks=["127.0.0.0/8"])
            return await check_peer(client, url, NOW, TH, deadline=1, boundary=fence)
        finally:
            await client.close()

    entry = asyncio.run(go())
    assert entry.state == "unreachable" and "127.0.0.1:9" in entry.reason


def test_a_peer_on_a_private_address_is_refused_without_allowed_networks() -> None:
    async def go() -> PeerEntry:
        app = web.Application()
        app.router.add_get("/mirrors.json", answer(doc(mirror(1))))

        async def resolve(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]  # a public-looking name that resolves to loopback

        async with aiohttp_serving(app) as simple:
            port = simple.split(":")[2].split("/")[0]
            client = HttpClient(resolver=resolve)
            try:
                return await check_peer(client, f"http://peer.example:{port}/", NOW, TH)
            finally:
                await client.close()

    entry = asyncio.run(go())
    assert entry.state == "unreachable" and "refused" in entry.reason.lower(), entry.reason


@pytest.mark.parametrize(
    ("header", "serial", "error"),
    [("12345", 12345, None), ("x", None, None), ("-3", None, None), ("9" * 40, None, None)],
)
def test_upstream_serial_from_the_header_without_reading_the_body(
    header: str, serial: int | None, error: str | None
) -> None:
    async def go() -> Any:
        app = web.Application()
        app.router.add_get("/simple/", answer(b"x" * (4 << 20), **{"X-PyPI-Last-Serial": header}))
        async with aiohttp_serving(app) as simple:
            client = HttpClient()
            try:
                fence = FetchBoundary.for_upstream(simple, allowed_networks=["127.0.0.0/8"])
                return await check_upstream_serial(client, simple, NOW, boundary=fence)
            finally:
                await client.close()

    check = asyncio.run(go())
    assert check.serial == serial and check.error == error


def test_upstream_check_failures_are_said() -> None:
    async def go() -> Any:
        app = web.Application()
        app.router.add_get("/simple/", answer(b"", 503))
        async with aiohttp_serving(app) as simple:
            client = HttpClient()
            try:
                fence = FetchBoundary.for_upstream(simple, allowed_networks=["127.0.0.0/8"])
                down = await check_upstream_serial(client, simple, NOW, boundary=fence)
                refused = await check_upstream_serial(client, simple, NOW)
                return down, refused
            finally:
                await client.close()

    down, refused = asyncio.run(go())
    assert down.serial is None and "503" in (down.error or "")
    assert refused.serial is None and refused.error


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        (" 7 ", 7),
        (str(2**63 - 1), 2**63 - 1),
        (str(2**63), None),
        ("", None),
        ("1e3", None),
        ("٣", None),
        (None, None),
    ],
)
def test_parse_serial(value: str | None, expected: int | None) -> None:
    assert parse_serial(value) == expected


@settings(max_examples=200, deadline=None)
@given(
    ago=st.one_of(st.none(), st.floats(-1e8, 1e9)),
    claimed=st.sampled_from([*ORDER, "bogus"]),
    serial=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
    lag=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
)
def test_a_peer_cannot_look_fresher_than_its_age(
    ago: float | None, claimed: str, serial: int | None, lag: int | None
) -> None:
    reported = MirrorEntry(
        name="m",
        url="",
        state=claimed,  # type: ignore[arg-type]
        serial=serial,
        lag_serials=lag,
        last_complete=rfc3339(NOW - ago) if ago is not None else None,
    )
    judged = judge_peer_mirror(reported, NOW, TH)
    assert isinstance(judged, PeerMirror)
    if judged.state == "fresh":
        assert ago is not None and -300 <= ago < TH.behind_after + 1
    if claimed in ("failing", "stale") and judged.state != "unknown":
        assert ORDER.index(judged.state) >= ORDER.index(claimed)  # type: ignore[arg-type]


def test_a_peer_with_our_upstream_is_judged_by_our_serial() -> None:
    reported = MirrorEntry(
        name="m",
        url="",
        upstream="https://pypi.org/simple/",
        serial=90,
        last_complete=rfc3339(NOW - 10),
    )
    known = {"https://pypi.org/simple": 100}
    judged = judge_peer_mirror(reported, NOW, TH, known)
    assert judged.lag_serials == 10 and judged.state == "fresh"
    caught_up = judge_peer_mirror(
        msgspec.structs.replace(reported, serial=100, last_complete=None), NOW, TH, known
    )
    assert caught_up.state == "fresh" and caught_up.lag_seconds == 0
