"""The upstream client never holds more of a body than its reader has counted: a compressed body
is decoded in bounded pieces, and a reader's ``limit`` is checked against the *decoded* size
before a byte past it is handed over. Table over every content coding the client decodes
(gzip, x-gzip, deflate, none) x framing (Content-Length, chunked) x both
readers (``read`` and ``iter_chunks``): a body just under the limit is read whole and intact, a
body just over it (and a bomb that expands 256-fold past it) raises BodyTooLarge, never more."""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections.abc import Iterable

import pytest

from headwater.repository._client import BodyTooLarge, HttpClient
from tests.repository.rawupstream import answer, chunked, raw_upstream

LIMIT = 1 << 20
PIECE = 256 << 10  # the client's largest decoded piece


@functools.lru_cache(maxsize=16)
def encode(body: bytes, coding: str) -> bytes:
    if coding in ("gzip", "x-gzip"):
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
    elif coding == "deflate":
        c = zlib.compressobj(9, zlib.DEFLATED, 15)
    else:
        return body
    return c.compress(body) + c.flush()


def script_for(wire: bytes, coding: str, framing: str) -> list[tuple[bytes, float]]:
    headers = {"Content-Encoding": coding} if coding else {}
    if framing == "chunked":
        step = 64 << 10
        parts = ((wire[i : i + step], 0.0) for i in range(0, len(wire), step))
        return list(chunked(parts, headers=headers))
    return answer(wire, headers=headers, length=framing == "length")


async def fetch(
    wire: bytes, coding: str, framing: str, reader: str, limit: int | None
) -> tuple[bytes, list[int]]:
    def script(path: str) -> Iterable[tuple[bytes, float]]:
        return script_for(wire, coding, framing)

    async with raw_upstream(script) as up:
        client = HttpClient()
        try:
            async with await client.get(up.url, {"Accept-Encoding": "gzip"}) as resp:
                if reader == "read":
                    body = await resp.read(limit=limit)
                    return body, [len(body)]
                sizes: list[int] = []
                chunks: list[bytes] = []
                async for chunk in resp.iter_chunks(limit=limit):
                    sizes.append(len(chunk))
                    chunks.append(chunk)
                return b"".join(chunks), sizes
        finally:
            await client.close()


@functools.lru_cache(maxsize=4)
def spaces(size: int) -> bytes:
    return b" " * size


CODINGS = ["gzip", "x-gzip", "deflate", ""]
FRAMINGS = ["length", "chunked"]
READERS = ["read", "iter_chunks"]
MATRIX = [
    pytest.param(c, f, r, id=f"{c or 'identity'}-{f}-{r}")
    for c in CODINGS
    for f in FRAMINGS
    for r in READERS
]


@pytest.mark.parametrize(("coding", "framing", "reader"), MATRIX)
def test_a_body_at_the_limit_is_read_whole(coding: str, framing: str, reader: str) -> None:
    body = bytes(range(256)) * (LIMIT // 256)  # exactly LIMIT bytes once decoded
    got, sizes = asyncio.run(fetch(encode(body, coding), coding, framing, reader, LIMIT))
    assert got == body
    if coding and reader == "iter_chunks":
        assert max(sizes) <= PIECE, max(sizes)


@pytest.mark.parametrize(("coding", "framing", "reader"), MATRIX)
@pytest.mark.parametrize("size", [LIMIT + 1, 256 * LIMIT], ids=["one-over", "bomb"])
def test_a_body_past_the_limit_is_refused(
    coding: str, framing: str, reader: str, size: int
) -> None:
    if size > LIMIT + 1 and not coding:
        pytest.skip("a 256 MiB body is only cheap to send compressed")
    body = spaces(size)
    seen: list[int] = []

    async def t() -> None:
        try:
            _, sizes = await fetch(encode(body, coding), coding, framing, reader, LIMIT)
            seen.extend(sizes)
        except BodyTooLarge:
            return
        raise AssertionError(f"read {sum(seen)} bytes past the limit")

    asyncio.run(t())


def test_without_a_limit_a_compressed_body_still_arrives_in_bounded_pieces() -> None:
    body = spaces(256 * LIMIT)
    got, sizes = asyncio.run(fetch(encode(body, "gzip"), "gzip", "length", "iter_chunks", None))
    assert len(got) == len(body)
    assert max(sizes) <= PIECE, max(sizes)


def test_a_corrupt_compressed_body_is_a_client_error() -> None:
    from headwater.repository._client import ClientError

    wire = encode(b"x" * 100_000, "gzip")
    wire = wire[:20] + bytes(b ^ 0xFF for b in wire[20:40]) + wire[40:]
    with pytest.raises(ClientError):
        asyncio.run(fetch(wire, "gzip", "length", "read", None))
