"""A composed index marks a page stale exactly while a source it came from serves it stale.

A real test upstream on loopback that the test stops (it stops listening) and starts again on the
same port; a caching proxy of it (TTL on a hand-moved clock); a composed index over the proxy,
served by the real ASGI app. Both directions, at the very next request:

- served fresh, then the upstream goes down: the next page carries ``Warning`` and
  ``X-Headwater-Stale`` (it lost them before: the index kept the page it rendered while fresh);
- first served while the upstream was down (from the proxy's storage, as after a restart), then
  the upstream is back: the next page has neither header (it kept them forever before).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from headwater.config.settings import ServeSettings
from headwater.policy import Rules
from headwater.policy.rules import SourceSpec
from headwater.repository.index import ComposedIndex
from headwater.repository.proxy import ProxySource
from headwater.server.app import IndexApp
from headwater.storage import FileStorage
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.repository.test_proxy import FAST, JSON, Clock, first
from tests.server.asgi import call

TTL = 60.0
RETRY = 30.0


@asynccontextmanager
async def composed(
    up: Upstream, root: Path, clock: Clock
) -> AsyncIterator[tuple[IndexApp, ProxySource]]:
    """``main`` = [the proxy ``pub`` of ``up``], served by the app (a new process's view of the
    proxy storage ``root``)."""
    proxy = ProxySource(
        "pub",
        up.simple_url,
        FileStorage(root),
        ttl=TTL,
        retry_interval=RETRY,
        retry=FAST,
        timeout=5.0,
        clock=clock,
    )
    index = ComposedIndex(
        "main",
        [proxy],
        Rules(index="main", sources=(SourceSpec("pub", "proxy"),)),
        project_url=lambda source, name: f"http://testserver/{source}/simple/{name}/",
    )
    app = IndexApp(ServeSettings(), {"pub": proxy, "main": index}, default="main")
    try:
        yield app, proxy
    finally:
        await index.aclose()
        await proxy.aclose()


async def stale_marks(app: IndexApp, path: str) -> tuple[str | None, str | None]:
    """The ``Warning`` and ``X-Headwater-Stale`` headers of a 200 answer for ``path``."""
    answer = await call(app, "GET", path, headers={"Accept": JSON})
    assert answer.status == 200, answer.body
    return answer.headers.get("warning"), answer.headers.get("x-headwater-stale")


def test_fresh_page_is_marked_stale_at_the_next_request_once_the_upstream_is_down(
    tmp_path: Path,
) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=41)
    name = first(corpus)
    clock = Clock()

    async def t() -> None:
        up = Upstream(corpus)
        await up.start()
        try:
            async with composed(up, tmp_path, clock) as (app, _):
                for path in (f"/main/simple/{name}/", f"/pub/simple/{name}/"):
                    assert await stale_marks(app, path) == (None, None)
                await up.close()  # the upstream goes down
                clock.advance(TTL + 1)
                for _ in range(3):
                    warning, why = await stale_marks(app, f"/main/simple/{name}/")
                    assert warning is not None and "110" in warning
                    assert why is not None and up.simple_url in why
                    assert await stale_marks(app, f"/pub/simple/{name}/") == (warning, why)
                await up.start()  # back, on the same port
                clock.advance(RETRY + 1)
                for _ in range(3):
                    assert await stale_marks(app, f"/main/simple/{name}/") == (None, None)
        finally:
            await up.close()

    asyncio.run(t())


def test_page_first_served_stale_loses_the_mark_at_the_next_request_once_the_upstream_is_back(
    tmp_path: Path,
) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=42)
    name = first(corpus)
    clock = Clock()

    async def t() -> None:
        up = Upstream(corpus)
        await up.start()
        try:
            async with composed(up, tmp_path, clock) as (app, _):
                assert await stale_marks(app, f"/main/simple/{name}/") == (None, None)
            await up.close()
            clock.advance(TTL + 1)
            # A new process on the same proxy storage, with the upstream down: first served stale.
            async with composed(up, tmp_path, clock) as (app, _):
                warning, why = await stale_marks(app, f"/main/simple/{name}/")
                assert warning is not None and why is not None
                await up.start()
                clock.advance(RETRY + 1)
                for _ in range(3):
                    assert await stale_marks(app, f"/main/simple/{name}/") == (None, None)
                # And after the index's own revalidation period, still fresh.
                time.sleep(1.1)
                assert await stale_marks(app, f"/main/simple/{name}/") == (None, None)
        finally:
            await up.close()

    asyncio.run(t())
