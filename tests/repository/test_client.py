"""The lean upstream HTTP client against a raw loopback server that answers with crafted bytes:
body framings, compression, redirects, back-pressure, stale keep-alive connections, timeouts."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from headwater.repository._client import ClientError, ClientTimeout, HttpClient

Answer = Callable[[bytes], bytes | None]  # request head -> raw answer (None: close at once)


@asynccontextmanager
async def raw_server(answer: Answer, *, close_after: bool = False) -> AsyncIterator[str]:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                raw = answer(head)
                if raw is None:
                    break
                writer.write(raw)
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def fetch(url: str, **options: float) -> tuple[int, bytes]:
    client = HttpClient(**options)  # type: ignore[arg-type]
    try:
        async with await client.get(url, {"User-Agent": "test"}) as resp:
            return resp.status, await resp.read()
    finally:
        await client.close()


BIG = bytes(range(256)) * 20_000  # 5 MB: more than the 1 MiB at which reading pauses


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(ok(b"hello"), b"hello", id="content-length"),
        pytest.param(ok(BIG), BIG, id="large-body-read-whole"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"abcde",
            id="chunked",
        ),
        pytest.param(
            ok(gzip.compress(b"zipped page"), "Content-Encoding: gzip\r\n"),
            b"zipped page",
            id="gzip",
        ),
    ],
)
def test_body_framings(raw: bytes, expected: bytes) -> None:
    async def go() -> tuple[int, bytes]:
        async with raw_server(lambda head: raw) as url:
            return await fetch(url + "/x")

    assert asyncio.run(go()) == (200, expected)


def test_body_until_close() -> None:
    async def go() -> tuple[int, bytes]:
        raw = b"HTTP/1.0 200 OK\r\n\r\nuntil the end"
        async with raw_server(lambda head: raw, close_after=True) as url:
            return await fetch(url + "/x")

    assert asyncio.run(go()) == (200, b"until the end")


def test_streamed_large_body_in_chunks() -> None:
    async def go() -> bytes:
        async with raw_server(lambda head: ok(BIG)) as url:
            client = HttpClient()
            try:
                async with await client.get(url + "/big", {}) as resp:
                    return b"".join([chunk async for chunk in resp.iter_chunks()])
            finally:
                await client.close()

    assert asyncio.run(go()) == BIG


def test_truncated_body_is_an_error() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"

    async def go() -> None:
        async with raw_server(lambda head: raw, close_after=True) as url:
            await fetch(url + "/x")

    with pytest.raises(ClientError, match="cut short"):
        asyncio.run(go())


def test_redirects_are_followed_and_the_final_url_kept() -> None:
    def answer(head: bytes) -> bytes:
        if head.startswith(b"GET /old "):
            return b"HTTP/1.1 301 Moved\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n"
        return ok(b"moved here")

    async def go() -> tuple[str, bytes]:
        async with raw_server(answer) as url:
            client = HttpClient()
            try:
                async with await client.get(url + "/old", {}) as resp:
                    return resp.url.removeprefix(url), await resp.read()
            finally:
                await client.close()

    assert asyncio.run(go()) == ("/new", b"moved here")


def test_connections_are_reused_and_a_stale_one_is_replaced() -> None:
    served = 0

    def answer(head: bytes) -> bytes | None:
        nonlocal served
        served += 1
        # The second request on the first connection finds it closed by the server (an idle
        # timeout); the client must resend it on a new connection instead of failing.
        return None if served == 2 else ok(b"n%d" % served)

    async def go() -> list[bytes]:
        async with raw_server(answer) as url:
            client = HttpClient()
            bodies = []
            try:
                for _ in range(3):
                    async with await client.get(url + "/x", {}) as resp:
                        bodies.append(await resp.read())
            finally:
                await client.close()
            return bodies

    assert asyncio.run(go()) == [b"n1", b"n3", b"n4"]


def test_read_timeout() -> None:
    async def go() -> None:
        async with raw_server(
            lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"
        ) as url:
            await fetch(url + "/x", read_timeout=0.2)

    with pytest.raises(ClientTimeout, match="timed out"):
        asyncio.run(go())


def test_invalid_answer() -> None:
    async def go() -> None:
        async with raw_server(lambda head: b"NOT HTTP AT ALL\r\n\r\n") as url:
            await fetch(url + "/x")

    with pytest.raises(ClientError, match="invalid HTTP answer"):
        asyncio.run(go())


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/simple/foo/",
        "HTTP://Example.org/simple/?page=2#frag",
        "https://example.org/packages/a%20b/x.whl?sig=1&t=2",
        "http://[::1]:9000/simple/",
        "http://user:pw@example.org/simple/",
        "http://example.org",
        "http://example.org?x=1",
        "http://example.org/a\r\nX-Injected: 1",
        "http://example.org/a b/",
        "http://example.org/p@q/",
    ],
)
def test_request_target_matches_urlsplit(url: str) -> None:
    """The per-upstream cached parse gives what parsing the whole URL gives, and never lets a
    CR/LF reach the request line."""
    from urllib.parse import urlsplit

    from headwater.repository._client import _request_target

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.netloc.rsplit("@", 1)[-1]
    assert _request_target(url) == ((parts.scheme.lower(), parts.hostname, port), host, target)
    assert "\r" not in _request_target(url)[2] and "\n" not in _request_target(url)[2]


def test_request_target_refuses_other_schemes() -> None:
    from headwater.repository._client import _request_target

    for url in ("ftp://example.org/x", "file:///etc/passwd", "example.org/simple/"):
        with pytest.raises(ValueError, match="not an http or https URL"):
            _request_target(url)
