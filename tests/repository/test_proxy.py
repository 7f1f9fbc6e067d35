"""The caching proxy source against the real test upstream on loopback (with injected faults), a
relay that holds answers back, a hostile upstream, the real ASGI app, and real pip."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

from headwater.config.settings import ServeSettings
from headwater.repository.base import FileRef, SourceUnavailable
from headwater.repository.errors import IntegrityError
from headwater.repository.http import RetryPolicy
from headwater.repository.proxy import ProxySource
from headwater.server.app import IndexApp
from headwater.simple.html import parse_project_page_html
from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import NormalizedName, normalize_name
from headwater.storage import FileStorage
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.aioserve import aiohttp_serving
from tests.nginx import free_port
from tests.server.asgi import call

FAST = RetryPolicy(attempts=2, backoff=0.001, max_backoff=0.002)
JSON = "application/vnd.pypi.simple.v1+json"


class Clock:
    """Wall-clock time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_proxy(url: str, root: Path, **options: Any) -> ProxySource:
    options.setdefault("retry", FAST)
    options.setdefault("timeout", 5.0)
    return ProxySource("pypi", url, FileStorage(root), **options)


@contextlib.asynccontextmanager
async def opened(url: str, root: Path, **options: Any) -> AsyncIterator[ProxySource]:
    """A proxy of ``url`` cached in ``root`` (see :func:`make_proxy`), closed on the way out."""
    proxy = make_proxy(url, root, **options)
    try:
        yield proxy
    finally:
        await proxy.aclose()


@contextlib.asynccontextmanager
async def proxied(
    corpus: Corpus, root: Path, *, json: bool = True, **options: Any
) -> AsyncIterator[tuple[Upstream, ProxySource]]:
    """The test upstream serving ``corpus`` (``json``: PEP 691 too) and a proxy of it."""
    async with Upstream(corpus, json=json) as up, opened(up.simple_url, root, **options) as proxy:
        yield up, proxy


def first(corpus: Corpus) -> NormalizedName:
    return corpus.project_list().projects[0].normalized


def names_of(corpus: Corpus) -> list[NormalizedName]:
    return [p.normalized for p in corpus.project_list().projects]


def file_requests(up: Upstream) -> int:
    """How many file (not page) requests the upstream answered."""
    return sum(up.requests(p) for p in up.stats if p.startswith("/packages/"))


async def read(ref: FileRef) -> bytes:
    """The whole file a FileRef points at, as the server would send it."""
    if ref.stream is not None:
        try:
            return b"".join([chunk async for chunk in ref.stream])
        finally:
            await ref.stream.aclose()
    if ref.body is not None:
        return ref.body
    return b"".join([chunk async for chunk in ref.storage.open_read(ref.key)])


def packages_path(file: File) -> str:
    return file.url.removeprefix("../../packages/")


async def model(proxy: ProxySource, name: NormalizedName) -> ProjectPage:
    page = await proxy.page(name, "json")
    assert page is not None
    return parse_project_page_json(page.body)


def cached(root: Path, file: File) -> Path:
    return root / "web" / "packages" / packages_path(file)


async def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


# -- pages -------------------------------------------------------------------------------------


def test_pages_are_served_in_served_form_with_tracks(tmp_path: Path) -> None:
    corpus = Corpus.generate(3, releases=2, files=2, seed=11)
    name = first(corpus)

    async def t() -> None:
        async with proxied(corpus, tmp_path) as (up, proxy):
            page = await model(proxy, name)
            html = await proxy.page(name, "html")
            assert html is not None
            from_html = parse_project_page_html(html.body, name=name)
            upstream = corpus.project_page(name, up.url)
            assert upstream is not None
            assert page.tracks == (f"{up.simple_url}{name}/",)
            assert from_html.tracks == page.tracks
            assert [f.filename for f in page.files] == [f.filename for f in upstream.files]
            for served, original in zip(page.files, upstream.files, strict=True):
                sha = original.hashes["sha256"]
                assert (
                    served.url == f"../../packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{served.filename}"
                )
                assert served.hashes == {"sha256": sha}
                assert served.size == original.size
                assert served.upload_time == original.upload_time
            assert [f.url.partition("#")[0] for f in from_html.files] == [f.url for f in page.files]
            # One upstream request for both formats, and none for the second JSON request.
            assert await proxy.page(name, "json") is not None
            assert up.requests(f"/simple/{name}/") == 1
            listing = await proxy.page(None, "json")
            assert listing is not None
            names = {p.normalized for p in parse_project_list_json(listing.body).projects}
            assert names == {p.normalized for p in corpus.project_list().projects}
            assert await proxy.project_names() == names_of(corpus)
            project = await proxy.project(name)
            assert project.url == f"{up.simple_url}{name}/" and project.stale is None
            assert project.page is not None and project.page.files == page.files

    run(t)


def test_ttl_then_etag_revalidation_and_a_304_only_renews_the_clock(tmp_path: Path) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=12)
    name = first(corpus)
    clock = Clock()

    async def t() -> None:
        async with proxied(corpus, tmp_path, ttl=60, clock=clock) as (up, proxy):
            path = f"/simple/{name}/"
            before = await proxy.page(name, "json")
            clock.advance(59)
            assert await proxy.page(name, "json") is before
            assert up.requests(path) == 1
            clock.advance(2)  # past the TTL: revalidated; unchanged upstream answers 304
            assert await proxy.page(name, "json") is before  # nothing re-rendered
            assert up.requests(path) == 2
            meta = msgspec.json.decode((tmp_path / f"state/pages/{name}/meta.json").read_bytes())
            assert meta["checked"] == clock.now and meta["etag"]
            clock.advance(59)  # the 304 renewed the clock
            assert await proxy.page(name, "json") is before
            assert up.requests(path) == 2
            corpus.add_release(name, "9.0")
            assert await proxy.page(name, "json") is before  # still within the TTL
            clock.advance(2)
            after = await model(proxy, name)
            assert up.requests(path) == 3
            assert "9.0" in (after.versions or ())

    run(t)


def test_worker_processes_share_what_one_of_them_fetched(tmp_path: Path) -> None:
    """Two proxies on one storage (as two worker processes): what one fetched or revalidated,
    the other serves without asking the upstream."""
    corpus = Corpus.generate(2, releases=1, files=1, seed=27)
    name = first(corpus)
    clock = Clock()

    async def t() -> None:
        async with (
            proxied(corpus, tmp_path, ttl=60, clock=clock) as (up, one),
            opened(up.simple_url, tmp_path, ttl=60, clock=clock) as two,
        ):
            path = f"/simple/{name}/"
            page = await one.page(name, "json")
            assert page is not None
            shared = await two.page(name, "json")
            assert shared is not None and shared.body == page.body
            assert up.requests(path) == 1
            clock.advance(61)
            assert await one.page(name, "json") is page  # revalidated: 304
            assert up.requests(path) == 2
            again = await two.page(name, "json")  # sees the renewed clock in storage
            assert again is not None and again.body == page.body
            assert up.requests(path) == 2
            file = (await model(one, name)).files[0]
            ref = await one.file(packages_path(file))
            assert ref is not None
            await read(ref)
            warm = await two.file(packages_path(file))
            assert warm is not None and warm.stream is None
            assert file_requests(up) == 1

    run(t)


def test_absent_project_is_remembered_for_the_ttl(tmp_path: Path) -> None:
    corpus = Corpus.generate(1, seed=13)
    clock = Clock()

    async def t() -> None:
        async with proxied(corpus, tmp_path, ttl=60, clock=clock) as (up, proxy):
            missing = normalize_name("no-such-project")
            assert await proxy.page(missing, "json") is None
            assert await proxy.page(missing, "html") is None
            project = await proxy.project(missing)
            assert project.page is None and not project.claimed
            assert up.requests("/simple/no-such-project/") == 1
            clock.advance(61)
            up.corpus.add_release("no-such-project", "1.0")
            assert await proxy.page(missing, "json") is not None
            assert up.requests("/simple/no-such-project/") == 2

    run(t)


def test_hundred_concurrent_requests_for_an_uncached_page_make_one_upstream_request(
    tmp_path: Path,
) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=14)
    name = first(corpus)

    async def t() -> None:
        async with proxied(corpus, tmp_path) as (up, proxy):
            up.add_fault("delay", f"/simple/{name}/", delay=0.2)
            pages = await asyncio.gather(
                *(proxy.page(name, "json" if i % 2 else "html") for i in range(100))
            )
            assert all(page is not None for page in pages)
            assert len({page.body for page in pages if page is not None}) == 2
            assert up.requests(f"/simple/{name}/") == 1

    run(t)


# -- files -------------------------------------------------------------------------------------


def test_twenty_concurrent_cold_requests_make_one_download(tmp_path: Path) -> None:
    corpus = Corpus.generate(1, releases=1, files=1, seed=15)
    name = first(corpus)

    async def t() -> None:
        async with proxied(corpus, tmp_path) as (up, proxy):
            file = (await model(proxy, name)).files[0]
            up.add_fault("delay", "/packages/*", delay=0.2)

            async def fetch() -> bytes:
                ref = await proxy.file(packages_path(file))
                assert ref is not None
                return await read(ref)

            bodies = await asyncio.gather(*(fetch() for _ in range(20)))
            assert {hashlib.sha256(b).hexdigest() for b in bodies} == {file.hashes["sha256"]}
            assert file_requests(up) == 1
            assert cached(tmp_path, file).read_bytes() == bodies[0]
            # Warm: from the cache, no stream, no upstream request.
            warm = await proxy.file(packages_path(file))
            assert warm is not None and warm.stream is None
            assert file_requests(up) == 1

    run(t)


@contextlib.asynccontextmanager
async def slow_upstream(body: bytes, held: asyncio.Event) -> AsyncIterator[tuple[str, str]]:
    """An upstream (aiohttp) with one project whose one file sends its first 64 KiB, then waits
    for ``held`` before sending the rest."""
    sha = hashlib.sha256(body).hexdigest()
    filename = "slow-1.0.tar.gz"
    page = msgspec.json.encode(
        {
            "meta": {"api-version": "1.1"},
            "name": "slow",
            "files": [
                {
                    "filename": filename,
                    "url": f"../../files/{filename}",
                    "hashes": {"sha256": sha},
                    "size": len(body),
                }
            ],
        }
    )

    async def project(request: web.Request) -> web.Response:
        return web.Response(body=page, headers={"Content-Type": JSON})

    async def file(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(headers={"Content-Length": str(len(body))})
        await answer.prepare(request)
        await answer.write(body[: 64 << 10])
        await held.wait()
        await answer.write(body[64 << 10 :])
        await answer.write_eof()
        return answer

    app = web.Application()
    app.router.add_get("/simple/slow/", project)
    app.router.add_get(f"/files/{filename}", file)
    async with aiohttp_serving(app) as url:
        try:
            yield url, sha
        finally:
            held.set()


def test_a_cold_file_streams_to_the_client_before_the_download_completes(tmp_path: Path) -> None:
    body = os.urandom(3 << 20)

    async def t() -> None:
        held = asyncio.Event()
        async with (
            slow_upstream(body, held) as (url, sha),
            opened(url, tmp_path, verify_first=1 << 20) as proxy,
        ):
            page = await model(proxy, normalize_name("slow"))
            big = page.files[0]
            assert big.hashes["sha256"] == sha
            ref = await proxy.file(packages_path(big))
            assert ref is not None and ref.stream is not None and ref.size == len(body)
            iterator = ref.stream.__aiter__()
            head = await asyncio.wait_for(iterator.__anext__(), 5)
            # The client has bytes while the upstream has sent only 64 KiB of 3 MiB.
            assert 0 < len(head) <= 64 << 10
            assert body.startswith(head)
            assert not cached(tmp_path, big).exists()
            held.set()
            rest = b"".join([chunk async for chunk in iterator])
            await ref.stream.aclose()
            assert head + rest == body
            assert cached(tmp_path, big).read_bytes() == body

    run(t)


def test_wrong_bytes_abort_the_stream_and_nothing_is_cached(tmp_path: Path) -> None:
    corpus = Corpus.generate(1, releases=1, files=1, seed=17)
    name = first(corpus)

    async def t() -> None:
        async with proxied(corpus, tmp_path, verify_first=0) as (up, proxy):
            file = (await model(proxy, name)).files[0]
            up.add_fault("corrupt", "/packages/*")
            ref = await proxy.file(packages_path(file))
            assert ref is not None and ref.stream is not None
            received = b""
            with pytest.raises(IntegrityError, match="sha256"):
                async for chunk in ref.stream:
                    received += chunk
            await ref.stream.aclose()
            assert len(received) < ref.size  # never a complete (wrong) file
            assert not cached(tmp_path, file).exists()
            assert not list((tmp_path / ".headwater-tmp").iterdir())
            # Through the app: the response starts, then is aborted short of its length.
            app = IndexApp(ServeSettings(), {"pypi": proxy}, default="pypi")
            sent: list[dict[str, Any]] = []
            with pytest.raises(IntegrityError):
                await call_raw(app, f"/pypi/packages/{packages_path(file)}", sent)
            start = sent[0]
            assert start["status"] == 200
            length = int(dict(start["headers"])[b"content-length"])
            body = b"".join(m.get("body", b"") for m in sent[1:])
            assert len(body) < length
            assert not any(m.get("more_body") is False for m in sent[1:])
            # The upstream recovers: the next request fetches and caches the right bytes.
            up.faults.clear()
            ref = await proxy.file(packages_path(file))
            assert ref is not None
            good = await read(ref)
            assert hashlib.sha256(good).hexdigest() == file.hashes["sha256"]
            assert cached(tmp_path, file).read_bytes() == good

    run(t)


async def call_raw(app: IndexApp, path: str, sent: list[dict[str, Any]]) -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [],
        "extensions": {},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)


def test_a_head_request_still_fills_the_cache(tmp_path: Path) -> None:
    corpus = Corpus.generate(1, releases=1, files=1, seed=18)
    name = first(corpus)

    async def t() -> None:
        async with proxied(corpus, tmp_path) as (_, proxy):
            app = IndexApp(ServeSettings(), {"pypi": proxy}, default="pypi")
            file = (await model(proxy, name)).files[0]
            answer = await call(app, "HEAD", f"/pypi/packages/{packages_path(file)}")
            assert answer.status == 200 and answer.body == b""
            assert answer.headers["content-length"] == str(file.size)
            await wait_for(cached(tmp_path, file).exists)
            data = cached(tmp_path, file).read_bytes()
            assert hashlib.sha256(data).hexdigest() == file.hashes["sha256"]

    run(t)


# -- failures, offline, restart ----------------------------------------------------------------


def test_stale_copy_with_a_reason_when_the_upstream_fails(tmp_path: Path) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=19)
    name = first(corpus)
    clock = Clock()

    async def t() -> None:
        async with proxied(corpus, tmp_path, ttl=60, clock=clock, retry_interval=30) as (up, proxy):
            fresh = await proxy.page(name, "json")
            assert fresh is not None and fresh.stale is None
            await proxy.page(None, "json")
            up.add_fault("status", "*", status=503)
            clock.advance(61)
            stale = await proxy.page(name, "json")
            assert stale is not None and stale.body == fresh.body
            assert stale.stale is not None
            assert f"{up.simple_url}{name}/" in stale.stale and "503" in stale.stale
            assert "\n" not in stale.stale
            project = await proxy.project(name)
            assert project.stale == stale.stale and project.page is not None
            root = await proxy.page(None, "html")
            assert root is not None and root.stale is not None and up.simple_url in root.stale
            assert await proxy.project_names() == names_of(corpus)
            # 2 attempts (one quick retry), then no new attempt within retry_interval.
            assert up.requests(f"/simple/{name}/") == 1 + 2
            await proxy.page(name, "html")
            assert up.requests(f"/simple/{name}/") == 3
            # The upstream comes back: after retry_interval the page is fresh again.
            up.faults.clear()
            clock.advance(31)
            again = await proxy.page(name, "json")
            assert again is not None and again.stale is None

    run(t)


def test_nothing_cached_and_upstream_down_raises_naming_upstream_and_failure(
    tmp_path: Path,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/simple/"  # nothing listens there

    async def t() -> None:
        async with opened(url, tmp_path) as proxy:
            for call_page in (
                lambda: proxy.page(normalize_name("foo"), "json"),
                lambda: proxy.project(normalize_name("foo")),
            ):
                with pytest.raises(SourceUnavailable) as raised:
                    await call_page()
                message = str(raised.value)
                assert f"{url}foo/" in message and "connection" in message.lower()
                assert raised.value.source == "pypi"
            with pytest.raises(SourceUnavailable, match=f"{url}.*nothing is cached|{url}"):
                await proxy.project_names()

    run(t)

    async def five_hundreds() -> None:
        async with proxied(Corpus.generate(1, seed=20), tmp_path / "b") as (up, proxy):
            up.add_fault("status", "*", status=502)
            with pytest.raises(SourceUnavailable, match="HTTP 502"):
                await proxy.page(first(up.corpus), "json")

    run(five_hundreds)


def test_restart_serves_the_cache_with_the_upstream_down_then_offline(tmp_path: Path) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=21)
    name = first(corpus)
    other = corpus.project_list().projects[1].normalized
    clock = Clock()

    async def t() -> None:
        async with proxied(corpus, tmp_path, clock=clock, ttl=60) as (up, proxy):
            url = up.simple_url
            file = (await model(proxy, name)).files[0]
            ref = await proxy.file(packages_path(file))
            assert ref is not None
            expected = await read(ref)
            await proxy.page(None, "json")
        # The upstream is gone. A new process on the same storage:
        async with opened(url, tmp_path, clock=clock, ttl=60) as proxy:
            page = await proxy.page(name, "json")
            assert page is not None and page.stale is None  # within the TTL: fresh
            ref = await proxy.file(packages_path(file))
            assert ref is not None and await read(ref) == expected
            clock.advance(61)
            stale = await proxy.page(name, "json")
            assert stale is not None and stale.stale is not None and url in stale.stale
            with pytest.raises(SourceUnavailable):
                await proxy.page(other, "json")
        async with opened(url, tmp_path, clock=clock, ttl=60, offline=True) as offline:
            page = await offline.page(name, "json")
            assert page is not None and page.stale is None
            assert await offline.page(other, "json") is None  # not cached: absent
            ref = await offline.file(packages_path(file))
            assert ref is not None and await read(ref) == expected
            others = (await model(offline, name)).files
            assert (
                await offline.file(packages_path(others[0]).replace(file.filename, "x.whl")) is None
            )
            assert name in await offline.project_names()

    run(t)


def test_offline_never_contacts_the_upstream(tmp_path: Path) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=22)
    name = first(corpus)

    async def t() -> None:
        async with proxied(corpus, tmp_path, offline=True) as (up, proxy):
            assert await proxy.page(name, "json") is None
            assert await proxy.project_names() == []
            sha = "a" * 64
            assert await proxy.file(f"aa/aa/{sha[4:]}/{name}-1.0-py3-none-any.whl") is None
            assert up.stats == {}

    run(t)


# -- size cap ----------------------------------------------------------------------------------


def test_lru_cap_evicts_the_least_recently_used_files(tmp_path: Path) -> None:
    corpus = Corpus.generate(3, releases=1, files=1, seed=23)
    names = names_of(corpus)

    async def t() -> None:
        async with Upstream(corpus) as up:
            async with opened(up.simple_url, tmp_path / "probe") as probe:
                files = [(await model(probe, n)).files[0] for n in names]
            sizes = [f.size or 0 for f in files]
            cap = int(max(sizes) * 2.5)
            async with opened(
                up.simple_url, tmp_path, max_size=cap, touch_interval=0, verify_first=0
            ) as proxy:
                a, b, c = files
                for f in (a, b):
                    ref = await proxy.file(packages_path(f))
                    assert ref is not None
                    await read(ref)
                    await asyncio.sleep(0.02)  # distinct mtimes
                assert cached(tmp_path, a).exists() and cached(tmp_path, b).exists()
                # a is used again: now b is the least recently used.
                ref = await proxy.file(packages_path(a))
                assert ref is not None and ref.stream is None
                await asyncio.sleep(0.02)
                ref = await proxy.file(packages_path(c))
                assert ref is not None
                await read(ref)
                # Eviction runs in the download's task, after the reader got its last byte.
                await wait_for(lambda: not cached(tmp_path, b).exists())
                assert cached(tmp_path, a).exists()
                assert cached(tmp_path, c).exists()
                total = sum(
                    p.stat().st_size for p in (tmp_path / "web/packages").rglob("*") if p.is_file()
                )
                assert total <= cap
                # An evicted file is fetched again on request.
                ref = await proxy.file(packages_path(b))
                assert ref is not None and ref.stream is not None
                assert hashlib.sha256(await read(ref)).hexdigest() == b.hashes["sha256"]

    run(t)


# -- other upstreams ---------------------------------------------------------------------------


def test_html_only_upstream(tmp_path: Path) -> None:
    corpus = Corpus.generate(2, releases=1, files=2, seed=24)
    name = first(corpus)

    async def t() -> None:
        async with proxied(corpus, tmp_path, json=False) as (up, proxy):
            page = await model(proxy, name)
            assert page.files and all(f.url.startswith("../../packages/") for f in page.files)
            # (The JSON page claims 1.0 until the sizes are known, so it carries no tracks yet;
            # the model an index decides on does.)
            said = (await proxy.project(name)).page
            assert said is not None and said.tracks == (f"{up.simple_url}{name}/",)
            ref = await proxy.file(packages_path(page.files[0]))
            assert ref is not None
            data = await read(ref)
            assert hashlib.sha256(data).hexdigest() == page.files[0].hashes["sha256"]
            assert await proxy.project_names() == names_of(corpus)

    run(t)


def test_html_only_upstream_sizes_are_filled_once_cached(tmp_path: Path) -> None:
    # PEP 700: size is mandatory from 1.1. An HTML upstream gives none: a page listing a file
    # not cached yet claims 1.0; once every file is cached it has every size and claims 1.4.
    corpus = Corpus.generate(1, releases=1, files=2, seed=25)
    name = first(corpus)
    clock = Clock()

    async def t() -> None:
        async with proxied(corpus, tmp_path, json=False, clock=clock) as (_, proxy):
            page = await proxy.page(name, "json")
            assert page is not None
            doc = msgspec.json.decode(page.body)
            assert doc["meta"]["api-version"] == "1.0"
            assert all("size" not in f for f in doc["files"])
            versions = [(await proxy.project(name)).version]
            for file in parse_project_page_json(page.body).files:
                ref = await proxy.file(packages_path(file))
                assert ref is not None
                await read(ref)
            clock.advance(10)
            page = await proxy.page(name, "json")
            assert page is not None
            doc = msgspec.json.decode(page.body)
            assert doc["meta"]["api-version"] == "1.4"
            sizes = {f["filename"]: f["size"] for f in doc["files"]}
            assert sizes == {
                f.filename: cached(tmp_path, f).stat().st_size
                for f in parse_project_page_json(page.body).files
            }
            # A composed index sees the change (its cache is keyed on the version).
            versions.append((await proxy.project(name)).version)
            assert versions[0] != versions[1]

    run(t)


@contextlib.asynccontextmanager
async def hostile(pages: dict[str, tuple[bytes, str]]) -> AsyncIterator[str]:
    """An aiohttp server answering fixed bodies (with content types) per path."""

    async def handler(request: web.Request) -> web.Response:
        found = pages.get(request.path)
        if found is None:
            return web.Response(status=404)
        body, ctype = found
        return web.Response(body=body, headers={"Content-Type": ctype})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    async with aiohttp_serving(app) as url:
        yield url


def test_hostile_upstream_pages(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = "a" * 64

    def page(name: str, *files: dict[str, Any]) -> tuple[bytes, str]:
        body = {"meta": {"api-version": "1.1"}, "name": name, "files": list(files)}
        return msgspec.json.encode(body), JSON

    def dist(filename: str, url: str = "/x", **hashes: str) -> dict[str, Any]:
        return {"filename": filename, "url": url, "hashes": hashes or {"sha256": good}}

    pages = {
        "/simple/evil/": page(
            "evil",
            dist("evil-2.0.tar.gz", md5="0" * 32),  # nothing to check it with
            dist("evil-3.0.tar.gz", url="file:///etc/passwd"),
            dist("evil-4.0.tar.gz", sha256=good.upper()),  # hex in capitals is still hex
            dist("evil-5.0.tar.gz", url="/files/evil-5.0.tar.gz"),
        ),
        "/simple/broken/": (b'{"meta": {"api-version": "1.0"}, "name": "bro', JSON),
        "/simple/other/": page("evil", dist("evil-1.0.tar.gz")),  # another project's page
        "/simple/huge/": (b" " * (2 << 20), JSON),
        "/simple/plain/": (b"not a page", "text/plain"),
        "/simple/traversal/": page("traversal", dist("../../../etc/passwd")),
        "/simple/slash/": page("slash", dist("slash/slash-1.0.tar.gz")),
        "/simple/dot/": page("dot", dist(".slash-1.0.tar.gz")),
        "/simple/nul/": page("nul", dist("nul-1.0.tar.gz\x00")),
    }

    async def t() -> None:
        async with hostile(pages) as url, opened(url, tmp_path, max_page_size=1 << 20) as proxy:
            with caplog.at_level("WARNING", logger="headwater.proxy"):
                served = await model(proxy, normalize_name("evil"))
            assert [f.filename for f in served.files] == ["evil-4.0.tar.gz", "evil-5.0.tar.gz"]
            assert served.files[0].hashes == {"sha256": good}
            assert "no sha256" in caplog.text and "evil-2.0.tar.gz" in caplog.text
            assert "file:///etc/passwd" in caplog.text
            for name, why in [
                ("broken", "malformed|invalid|JSON"),
                ("other", "evil"),
                ("huge", "over the proxy's limit"),
                ("plain", "text/plain"),
                ("traversal", "unsafe distribution filename"),
                ("slash", "unsafe distribution filename"),
                ("dot", "may not start with"),
                ("nul", "unsafe distribution filename"),
            ]:
                with pytest.raises(SourceUnavailable, match=why):
                    await proxy.page(normalize_name(name), "json")
                assert not (tmp_path / f"state/pages/{name}").exists()
            assert not list((tmp_path / ".headwater-tmp").glob("*"))

    run(t)


# -- through the server ------------------------------------------------------------------------


def test_served_through_the_asgi_app(tmp_path: Path) -> None:
    corpus = Corpus.generate(2, releases=1, files=2, seed=25)
    name = first(corpus)

    async def t() -> None:
        async with proxied(corpus, tmp_path) as (_, proxy):
            app = IndexApp(ServeSettings(), {"pypi": proxy}, default="pypi")
            answer = await call(app, "GET", f"/pypi/simple/{name}/", headers={"Accept": JSON})
            assert answer.status == 200 and answer.headers["content-type"] == JSON
            page = parse_project_page_json(answer.body)
            root = await call(app, "GET", "/pypi/simple/", headers={"Accept": "text/html"})
            assert root.status == 200 and f'href="{name}/"'.encode() in root.body
            for file in page.files:
                url = f"/pypi/simple/{name}/{file.url}"
                path = os.path.normpath(url)
                cold = await call(app, "GET", path)
                assert cold.status == 200
                assert hashlib.sha256(cold.body).hexdigest() == file.hashes["sha256"]
                assert cold.headers["content-length"] == str(len(cold.body))
                warm = await call(app, "GET", path, headers={"Range": "bytes=0-9"})
                assert warm.status == 206 and warm.body == cold.body[:10]
            missing = await call(app, "GET", f"/pypi/simple/{'nope' * 3}/")
            assert missing.status == 404

    run(t)


@contextlib.contextmanager
def uvicorn_serving(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a loopback port from a thread."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.mark.slow
def test_pip_installs_through_the_proxy(tmp_path: Path) -> None:
    from packaging.version import Version

    from tests.clients import installed_version, pip_install

    corpus = Corpus.generate(2, releases=2, files=2, seed=26)
    name = first(corpus)
    project = corpus.get(name)
    assert project is not None
    version = str(max(Version(v) for v in project.releases))
    with Upstream(corpus).running() as up:
        proxy = make_proxy(up.simple_url, tmp_path / "cache")
        app = IndexApp(ServeSettings(), {"pypi": proxy}, default="pypi", on_shutdown=[proxy.aclose])
        with uvicorn_serving(app) as url:
            python = pip_install(f"{url}/pypi/simple/", name, tmp_path / "home")
        assert installed_version(python, name.replace("-", "_")) == version
        assert any(p.startswith("/packages/") for p in up.stats)
        assert list((tmp_path / "cache/web/packages").rglob("*.whl"))
