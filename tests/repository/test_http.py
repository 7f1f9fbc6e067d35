"""The upstream HTTP client against the real test upstream on loopback, with injected faults."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from headwater.repository.errors import (
    IntegrityError,
    StaleResponse,
    UpstreamError,
    UpstreamNotFound,
)
from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.simple.model import InvalidPage
from headwater.simple.names import normalize_name
from headwater.storage import MemoryStorage
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream

FAST = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.002)


def with_repo(
    test: Callable[[HttpRepository, Upstream], Awaitable[Any]],
    corpus: Corpus | None = None,
    **upstream: Any,
) -> Any:
    async def go() -> Any:
        async with (
            Upstream(corpus or Corpus.generate(5, releases=1, files=1, seed=3), **upstream) as up,
            client_session(connections=8) as session,
        ):
            return await test(HttpRepository(up.simple_url, session, retry=FAST), up)

    return asyncio.run(go())


def first(up: Upstream) -> str:
    return up.corpus.project_list().projects[0].normalized


def test_project_list_and_page() -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        listed = await repo.project_list()
        assert listed.project_list is not None and len(listed.project_list.projects) == 5
        assert listed.etag
        name = first(up)
        fetched = await repo.project_page(normalize_name(name))
        assert fetched.page is not None and fetched.page.name == name
        assert fetched.serial == up.corpus.project_serial(name)
        assert up.requests(f"/simple/{name}/") == 1

    with_repo(t)


def test_conditional_requests() -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        name = normalize_name(first(up))
        page = await repo.project_page(name)
        again = await repo.project_page(name, etag=page.etag)
        assert again.not_modified and again.page is None
        root = await repo.project_list()
        assert (await repo.project_list(etag=root.etag)).not_modified

    with_repo(t)


def test_html_only_index() -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        page = await repo.project_page(normalize_name(first(up)))
        assert page.page is not None and page.page.files
        assert page.page.files[0].url.startswith("http://127.0.0.1:")  # resolved absolute

    with_repo(t, json=False)


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("status", {"status": 503}),
        ("status", {"status": 429}),
        ("reset", {}),
        ("truncate", {}),
    ],
)
def test_transient_faults_are_retried(kind: str, options: dict[str, Any]) -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        name = first(up)
        up.add_fault(kind, f"/simple/{name}/", times=2, **options)
        fetched = await repo.project_page(normalize_name(name))
        assert fetched.page is not None
        assert up.requests(f"/simple/{name}/") == 3

    with_repo(t)


def test_persistent_failure_gives_up_with_the_url() -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        name = first(up)
        up.add_fault("status", f"/simple/{name}/", status=502)
        with pytest.raises(
            UpstreamError, match=rf"/simple/{name}/: HTTP 502.*gave up after 3 attempts"
        ):
            await repo.project_page(normalize_name(name))

    with_repo(t)


def test_client_errors_are_not_retried() -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        name = first(up)
        up.add_fault("status", f"/simple/{name}/", status=403)
        with pytest.raises(UpstreamError, match="HTTP 403"):
            await repo.project_page(normalize_name(name))
        assert up.requests(f"/simple/{name}/") == 1

    with_repo(t)


def test_missing_project_is_not_found() -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        with pytest.raises(UpstreamNotFound):
            await repo.project_page(normalize_name("no-such-project"))
        assert up.requests("/simple/no-such-project/") == 1

    with_repo(t)


def test_stale_serial_is_retried_then_refused() -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        name = first(up)
        serial = up.corpus.add_release(name, "99.0")  # the CDN still has the page before this
        up.add_fault("stale", f"/simple/{name}/")
        with pytest.raises(StaleResponse, match="stale"):
            await repo.project_page(normalize_name(name), min_serial=serial)
        assert up.requests(f"/simple/{name}/") == 3

    with_repo(t)


def test_malformed_page_is_an_invalid_page_not_retried() -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        name = first(up)
        up.add_fault("malformed", f"/simple/{name}/")
        with pytest.raises(InvalidPage):
            await repo.project_page(normalize_name(name))
        assert up.requests(f"/simple/{name}/") == 1

    with_repo(t)


def _first_file(up: Upstream) -> Any:
    project = up.corpus.get(first(up))
    assert project is not None
    return next(iter(project.files()))


@pytest.mark.parametrize(
    "known_size", [True, False], ids=["small-read-whole", "unknown-size-streamed"]
)
def test_verified_download(known_size: bool) -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        storage = MemoryStorage()
        dist = _first_file(up)
        n, body = await repo.fetch_verified(
            up.url + dist.path,
            sha256=dist.sha256,
            size=dist.size if known_size else None,
            storage=storage,
            key="f",
        )
        assert n == dist.size
        stored = await storage.read_bytes("f")
        assert hashlib.sha256(stored).hexdigest() == dist.sha256
        assert body == (stored if known_size else None)

    with_repo(t)


@pytest.mark.parametrize("kind", ["corrupt", "truncate", "reset"])
def test_bad_download_publishes_nothing_and_is_retried(kind: str) -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        storage = MemoryStorage()
        dist = _first_file(up)
        up.add_fault(kind, dist.path, times=1)
        await repo.fetch_verified(
            up.url + dist.path, sha256=dist.sha256, size=dist.size, storage=storage, key="f"
        )
        assert up.requests(dist.path) == 2
        assert hashlib.sha256(await storage.read_bytes("f")).hexdigest() == dist.sha256

    with_repo(t)


def test_always_corrupt_download_fails_with_both_hashes() -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        storage = MemoryStorage()
        dist = _first_file(up)
        up.add_fault("corrupt", dist.path)
        with pytest.raises(IntegrityError, match=f"promised {dist.sha256}"):
            await repo.fetch_verified(
                up.url + dist.path,
                sha256=dist.sha256,
                size=dist.size,
                storage=storage,
                key="f",
            )
        assert await storage.stat("f") is None

    with_repo(t)


def test_dead_upstream() -> None:
    async def go() -> None:
        async with client_session() as session:
            repo = HttpRepository("http://127.0.0.1:9/simple/", session, retry=FAST)
            with pytest.raises(UpstreamError, match=r"127\.0\.0\.1:9.*connection failed"):
                await repo.project_list()

    asyncio.run(go())


def test_stale_once_then_fresh_is_used() -> None:
    async def t(repo: HttpRepository, up: Upstream) -> None:
        name = first(up)
        serial = up.corpus.add_release(name, "99.0")
        up.add_fault("stale", f"/simple/{name}/", times=1)
        fetched = await repo.project_page(normalize_name(name), min_serial=serial)
        assert fetched.serial == serial
        assert fetched.page is not None and "99.0" in (fetched.page.versions or ())

    with_repo(t)


def test_item_2_requests_the_normalized_url_without_redirects() -> None:
    corpus = Corpus()
    corpus.add_release("Foo_Bar.baz", "1.0", files=1)

    async def t(repo: HttpRepository, up: Upstream) -> None:
        fetched = await repo.project_page(normalize_name("Foo_Bar.baz"))
        assert fetched.page is not None and fetched.page.name == "foo-bar-baz"
        assert up.stats == {"/simple/foo-bar-baz/": 1}  # no request to the display name, no 301 hop

    with_repo(t, corpus)
