"""Every kind of request `HttpRepository` (the mirror's and verify's upstream client) sends is
bounded as the proxy's are (docs/proxy.md "Bounds"), checked as a table over the kinds:

- an overall deadline per request: the project list, a project page, a small file (read whole)
  and a streamed file, each dripped a byte at a time faster than the per-read timeout, are cut
  off after about ``deadline`` seconds, not held for the whole drip;
- pages (project list and project page) x every content coding (gzip, deflate, none): a page
  past ``max_page_size`` once decoded is refused, not retried, never held whole; one at the limit
  is read;
- a file whose page gives no size is not read past ``max_file_size``."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest

from headwater.repository.errors import IntegrityError, UpstreamError
from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.simple.names import normalize_name
from headwater.storage import MemoryStorage
from tests.repository.rawupstream import answer, chunked, raw_upstream

JSON = "application/vnd.pypi.simple.v1+json"
ONCE = RetryPolicy(attempts=1)
MIB = 1 << 20


def project_list() -> bytes:
    return json.dumps({"meta": {"api-version": "1.1"}, "projects": [{"name": "p"}]}).encode()


def project_page(padding: int = 0) -> bytes:
    head = json.dumps({"meta": {"api-version": "1.1"}, "name": "p", "files": []}).encode()
    return b" " * padding + head  # leading whitespace: still a valid page, of any size


async def with_repo(
    script: Callable[[str], Iterable[tuple[bytes, float]]],
    test: Callable[[HttpRepository], Awaitable[Any]],
    **bounds: Any,
) -> Any:
    async with raw_upstream(script) as up, client_session(read_timeout=1.0) as session:
        return await test(HttpRepository(up.url, session, retry=ONCE, **bounds))


def drip(head: bytes, count: int) -> list[tuple[bytes, float]]:
    return [(head, 0.0)] + [(b" ", 0.25)] * count


KINDS: dict[str, Callable[[HttpRepository], Awaitable[Any]]] = {
    "project-list": lambda repo: repo.project_list(),
    "project-page": lambda repo: repo.project_page(normalize_name("p")),
    "small-file": lambda repo: repo.fetch_verified(
        repo.base_url + "f", sha256=None, size=100, storage=MemoryStorage(), key="k"
    ),
    "streamed-file": lambda repo: repo.fetch_verified(
        repo.base_url + "f", sha256=None, size=None, storage=MemoryStorage(), key="k"
    ),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_request_has_an_overall_deadline(kind: str) -> None:
    def script(path: str) -> Iterable[tuple[bytes, float]]:
        if path.endswith("/f"):
            head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {JSON}\r\n\r\n".encode()
        return drip(head, 100)  # 25 s of a byte every 0.25 s: never a 1 s silence

    started = time.monotonic()
    with pytest.raises(UpstreamError, match="deadline"):
        asyncio.run(with_repo(script, KINDS[kind], deadline=1.0))
    assert time.monotonic() - started < 5


def encode(body: bytes, coding: str) -> bytes:
    if not coding:
        return body
    c = zlib.compressobj(9, zlib.DEFLATED, 31 if coding == "gzip" else 15)
    return c.compress(body) + c.flush()


def padded_list(padding: int) -> bytes:
    return b" " * padding + project_list()


PAGES: dict[str, tuple[Callable[[int], bytes], Callable[[HttpRepository], Awaitable[Any]]]] = {
    "project-list": (padded_list, KINDS["project-list"]),
    "project-page": (project_page, KINDS["project-page"]),
}


@pytest.mark.parametrize("coding", ["gzip", "deflate", ""])
@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("over", [False, True])
def test_a_page_is_bounded_at_its_decoded_size(page: str, coding: str, over: bool) -> None:
    limit = 2 * MIB
    make, fetch = PAGES[page]
    base = len(make(0))
    body = make(limit - base + (1 if over else 0))
    wire = encode(body, coding)

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        headers = {"Content-Encoding": coding} if coding else {}
        return answer(wire, headers=headers)

    if not over:
        assert asyncio.run(with_repo(script, fetch, max_page_size=limit)) is not None
        return
    with pytest.raises(UpstreamError, match="max_page_size") as caught:
        asyncio.run(with_repo(script, fetch, max_page_size=limit))
    assert not caught.value.retryable


def test_a_file_without_size_is_not_read_past_max_file_size() -> None:
    sent: dict[str, int] = {}

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        return chunked((b"x" * MIB, 0.0) for _ in range(64))

    async def t(repo: HttpRepository) -> None:
        await KINDS["streamed-file"](repo)

    async def go() -> None:
        async with raw_upstream(script) as up, client_session(read_timeout=5.0) as session:
            repo = HttpRepository(up.url, session, retry=ONCE, max_file_size=MIB)
            try:
                await t(repo)
            finally:
                await asyncio.sleep(0.1)
                sent.update(up.written)

    with pytest.raises(IntegrityError, match="max_file_size") as caught:
        asyncio.run(go())
    assert not caught.value.retryable
    assert sum(sent.values()) < 16 * MIB, sent
