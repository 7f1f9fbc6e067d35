"""A proxy's bounds against a scripted hostile upstream: files cut off at their bound, encodings
nobody asked for, drips held to a deadline, made-up names, and refreshes that fail in every way
served stale with headers and log lines free of upstream control bytes."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from headwater.config.settings import ServeSettings
from headwater.repository.base import SourceUnavailable
from headwater.repository.http import RetryPolicy
from headwater.repository.proxy import ProxySource
from headwater.server.app import IndexApp
from headwater.simple.names import normalize_name
from headwater.storage import FileStorage
from headwater.storage.layout import file_url_from_project_page
from tests.repository.rawupstream import answer, chunked, raw_upstream
from tests.server.asgi import call

FAST = RetryPolicy(attempts=2, backoff=0.001, max_backoff=0.002)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
MIB = 1 << 20


def page(files: list[dict[str, Any]], name: str = "victim") -> bytes:
    return msgspec.json.encode({"meta": {"api-version": "1.1"}, "name": name, "files": files})


def dist(body: bytes, *, size: int | None, filename: str = "victim-1.0.tar.gz") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": filename,
        "url": f"/files/{filename}",
        "hashes": {"sha256": hashlib.sha256(body).hexdigest()},
    }
    if size is not None:
        entry["size"] = size
    return entry


def path_of(body: bytes, filename: str = "victim-1.0.tar.gz") -> str:
    sha = hashlib.sha256(body).hexdigest()
    return file_url_from_project_page(sha, filename).removeprefix("../../packages/")


def proxy_of(url: str, root: Path, **options: Any) -> ProxySource:
    options.setdefault("retry", FAST)
    options.setdefault("timeout", 5.0)
    return ProxySource("pub", url, FileStorage(root), **options)


def megabytes(count: int, pause: float = 0.0) -> Iterable[tuple[bytes, float]]:
    block = b"x" * MIB
    return ((block, pause) for _ in range(count))


# -- files: cut off at their bound -----------------------------------------------------------


@pytest.mark.parametrize(
    ("promised", "options", "why"),
    [
        (1000, {}, "larger than the 1000 bytes promised"),
        (None, {"max_file_size": 2 * MIB}, "allowed (max_file_size)"),
        (None, {"max_size": 2 * MIB}, "allowed (max_file_size)"),
        (5 * MIB, {"max_file_size": 2 * MIB}, "over the proxy's limit"),
    ],
    ids=["over-page-size", "no-size-file-cap", "no-size-cache-cap", "page-size-over-cap"],
)
def test_a_file_is_cut_off_at_its_bound_not_read_whole(
    tmp_path: Path, promised: int | None, options: dict[str, Any], why: str
) -> None:
    # The upstream sends 256 MiB (chunked, so no Content-Length gives it away up front).
    body = b"the real file"

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        if path.startswith("/simple/"):
            return answer(page([dist(body, size=promised)]))
        return chunked(megabytes(256))

    async def t() -> None:
        async with raw_upstream(script) as up:
            proxy = proxy_of(up.url, tmp_path, **options)
            try:
                assert await proxy.page(normalize_name("victim"), "json") is not None
                started = time.monotonic()
                with pytest.raises(SourceUnavailable, match=re.escape(why)):
                    ref = await proxy.file(path_of(body))
                    assert ref is not None and ref.stream is not None
                    async for _ in ref.stream:
                        pass
                elapsed = time.monotonic() - started
            finally:
                await proxy.aclose()
            await asyncio.sleep(0.2)
            file_path = next(p for p in up.written if p.startswith("/files/"))
            # Cut off: the upstream got to write little more than the bound and the socket
            # buffers before the proxy closed the connection (it had 256 MiB to send).
            assert up.written[file_path] < 40 * MIB, up.written
            assert elapsed < 10
            assert not list((tmp_path / "web").rglob("victim-1.0.tar.gz"))

    asyncio.run(t())


def test_an_unasked_content_encoding_is_never_decoded(tmp_path: Path) -> None:
    """Files are asked for with Accept-Encoding: identity and read as sent: a gzip "bomb" does
    not expand (it fails its size and hash as sent), and a .tar.gz that a misconfigured server
    labels Content-Encoding: gzip is the bytes the page's hash is of (as pip reads it)."""
    plain = b"A" * (64 * MIB)  # what the bomb expands to
    bomb = gzip.compress(plain, compresslevel=9)
    targz = gzip.compress(b"an sdist's tar stream")

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        if path.startswith("/simple/"):
            return answer(
                page(
                    [
                        # The page describes the expanded bytes: only a decoder could match it.
                        dist(plain, size=len(plain), filename="victim-2.0.tar.gz"),
                        dist(targz, size=len(targz), filename="victim-1.0.tar.gz"),
                    ]
                )
            )
        body = bomb if "victim-2.0" in path else targz
        return answer(body, content_type="application/x-tar", headers={"Content-Encoding": "gzip"})

    async def t() -> None:
        async with raw_upstream(script) as up:
            proxy = proxy_of(up.url, tmp_path)
            try:
                await proxy.page(normalize_name("victim"), "json")
                with pytest.raises(SourceUnavailable, match="its page promised"):
                    await proxy.file(path_of(plain, "victim-2.0.tar.gz"))
                ref = await proxy.file(path_of(targz))
                assert ref is not None
                stored = (tmp_path / "web/packages" / path_of(targz)).read_bytes()
                assert stored == targz
            finally:
                await proxy.aclose()
            assert not list((tmp_path / "web").rglob("victim-2.0.tar.gz"))

    asyncio.run(t())


# -- deadlines -------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["page", "file"])
def test_an_upstream_dripping_a_byte_a_second_is_cut_off_at_the_deadline(
    tmp_path: Path, what: str
) -> None:
    body = b"file bytes " * 1000

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        if what == "page" and path.startswith("/simple/"):
            return chunked(((b" ", 0.5) for _ in range(600)), content_type="application/json")
        if path.startswith("/simple/"):
            return answer(page([dist(body, size=len(body))]))
        return chunked((body[i : i + 1], 0.5) for i in range(len(body)))

    async def t() -> float:
        async with raw_upstream(script) as up:
            # timeout 2 s (each drip arrives well within it); deadline default: twice that.
            proxy = proxy_of(up.url, tmp_path, timeout=2.0)
            try:
                if what == "file":
                    await proxy.page(normalize_name("victim"), "json")
                started = time.monotonic()
                with pytest.raises(SourceUnavailable, match="deadline"):
                    if what == "page":
                        await proxy.page(normalize_name("victim"), "json")
                    else:
                        await proxy.file(path_of(body))
                return time.monotonic() - started
            finally:
                await proxy.aclose()

    elapsed = asyncio.run(t())
    # The deadline (4 s), not the minutes the drip would take (the upper bound leaves room for a
    # loaded machine: one drip late is 4.5 s, the whole drip 300 s).
    assert 3.5 < elapsed < 15.0, elapsed


# -- names the upstream does not have ----------------------------------------------------------


def test_two_hundred_made_up_names_leave_nothing_on_disk(tmp_path: Path) -> None:
    real = page([], name="real")

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        if path == "/simple/real/":
            return answer(real)
        return answer(b"", status="404 Not Found", content_type="text/plain")

    async def t() -> None:
        async with raw_upstream(script) as up:
            proxy = proxy_of(up.url, tmp_path)
            try:
                for i in range(200):
                    assert await proxy.page(normalize_name(f"made-up-{i}"), "json") is None
                assert await proxy.page(normalize_name("real"), "json") is not None
            finally:
                await proxy.aclose()

    asyncio.run(t())
    pages = tmp_path / "state/pages"
    assert sorted(p.name for p in pages.iterdir()) == ["real"]


def test_a_project_that_disappears_upstream_is_remembered_as_absent_by_other_workers(
    tmp_path: Path,
) -> None:
    gone = {"yes": False}

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        if gone["yes"]:
            return answer(b"", status="404 Not Found", content_type="text/plain")
        return answer(page([]))

    async def t() -> None:
        async with raw_upstream(script) as up:
            one = proxy_of(up.url, tmp_path, ttl=0)
            two = proxy_of(up.url, tmp_path, ttl=60)
            try:
                assert await one.page(normalize_name("victim"), "json") is not None
                gone["yes"] = True
                assert await one.page(normalize_name("victim"), "json") is None
                hits = len(up.hits)
                # The other worker reads the absence from storage, without asking.
                assert await two.page(normalize_name("victim"), "json") is None
                assert len(up.hits) == hits
            finally:
                await one.aclose()
                await two.aclose()

    asyncio.run(t())


# -- refreshes that fail in every way -------------------------------------------------------------

GOOD_PAGE = page([])
REFRESH_FAILURES: dict[str, Any] = {
    "malformed-json": answer(b'{"meta": {"api-version": "1.1"}, "name": "vic'),
    "deep-nesting-json": answer(b"[" * 100_000 + b"]" * 100_000),
    "deep-nesting-inside-a-page": answer(
        b'{"meta": {"api-version": "1.1"}, "name": "victim", "files": ['
        + b"[" * 300_000
        + b"]" * 300_000
        + b"]}"
    ),
    "control-bytes-in-reason": answer(
        b"", status="503 Down\x01\x1b[31m\x7f now", content_type="text/plain"
    ),
    "control-bytes-in-content-type": answer(
        b"not a page", content_type="text/evil\x01\x1b[2J\x7f; charset=x"
    ),
    "non-utf8-json": answer(b'{"name": "\xff\xfe"}'),
    "wrong-type-json": answer(b'{"meta": {"api-version": "1.1"}, "name": 5, "files": {}}'),
    "status-500": answer(b"", status="500 Internal \x00Error", content_type="text/plain"),
    "cut-short": [
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 999\r\n\r\n{", 0)
    ],
    "garbage-status-line": [(b"HTTP/1.1 2\x0100 OK\r\n\r\n", 0.0)],
}


@pytest.mark.parametrize("failure", list(REFRESH_FAILURES))
def test_a_refresh_that_fails_in_any_way_serves_the_stale_copy(
    tmp_path: Path, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = {"failing": False}

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        if state["failing"]:
            return REFRESH_FAILURES[failure]
        return answer(GOOD_PAGE)

    async def t() -> None:
        async with raw_upstream(script) as up:
            proxy = proxy_of(up.url, tmp_path, ttl=0)
            try:
                app = IndexApp(ServeSettings(), {"pub": proxy}, default="pub")
                fresh = await call(app, "GET", "/pub/simple/victim/")
                assert fresh.status == 200 and "x-headwater-stale" not in fresh.headers
                state["failing"] = True
                with caplog.at_level(logging.DEBUG):
                    stale = await call(app, "GET", "/pub/simple/victim/")
                    # Nothing cached for another name: a 503 refusal, for pip too, never a 500.
                    refused = await call(
                        app, "GET", "/pub/simple/other/", headers={"User-Agent": "pip/25.0"}
                    )
                    plain = await call(
                        app, "GET", "/pub/simple/other/", query="headwater-refused=x"
                    )
                assert stale.status == 200, (stale.status, stale.body[:300])
                assert stale.body == fresh.body
                assert stale.headers["warning"].startswith("110")
                assert "pub" in stale.headers["x-headwater-stale"]
                assert (
                    refused.status == 200 and "headwater-refused" in refused.headers["content-type"]
                )
                assert plain.status == 503, (plain.status, plain.body[:300])
                for answer_ in (stale, refused, plain):
                    for name, value in answer_.headers.items():
                        assert not CONTROL.search(value), (name, value)
                records = [r.getMessage() for r in caplog.records]
                assert any("failed" in text for text in records), records
                for text in records:
                    assert not CONTROL.search(text), text
            finally:
                await proxy.aclose()

    asyncio.run(t())


@pytest.mark.parametrize("failure", ["malformed-json", "control-bytes-in-reason", "status-500"])
def test_a_project_list_refresh_that_fails_serves_the_stale_list(
    tmp_path: Path, failure: str
) -> None:
    state = {"failing": False}
    listing = msgspec.json.encode({"meta": {"api-version": "1.1"}, "projects": [{"name": "a"}]})

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        return REFRESH_FAILURES[failure] if state["failing"] else answer(listing)

    async def t() -> None:
        async with raw_upstream(script) as up:
            proxy = proxy_of(up.url, tmp_path, ttl=0)
            try:
                app = IndexApp(ServeSettings(), {"pub": proxy}, default="pub")
                assert (await call(app, "GET", "/pub/simple/")).status == 200
                state["failing"] = True
                stale = await call(app, "GET", "/pub/simple/")
                assert stale.status == 200
                assert not CONTROL.search(stale.headers["x-headwater-stale"])
            finally:
                await proxy.aclose()

    asyncio.run(t())
