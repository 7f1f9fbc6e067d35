"""What a proxy counts (hit rate, stale pages, cold files, refusals), against the real test
upstream, and the counters summed over worker processes in /metrics."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from headwater.repository._proxy_stats import ProxyStats
from headwater.repository.base import SourceUnavailable
from headwater.server.metrics import Metrics, collect, render
from headwater.simple.names import normalize_name
from headwater.testing.corpus import Corpus
from tests.repository.test_proxy import Clock, first, model, packages_path, proxied, read, run


def test_requests_fetches_stale_and_cold_files_are_counted(tmp_path: Path) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=23)
    name = first(corpus)
    clock = Clock()

    async def t() -> None:
        async with proxied(corpus, tmp_path, ttl=60, clock=clock, retry_interval=30) as (up, proxy):
            page = await model(proxy, name)  # a first fetch
            await proxy.page(name, "html")  # from memory
            await proxy.project(name)  # from memory
            assert (proxy.stats.page_requests, proxy.stats.page_fetches) == (3, 1)
            path = packages_path(page.files[0])
            ref = await proxy.file(path)
            assert ref is not None
            await read(ref)
            ref = await proxy.file(path)  # now cached
            assert ref is not None
            await read(ref)
            assert (proxy.stats.file_requests, proxy.stats.file_fetches) == (2, 1)
            up.add_fault("status", "*", status=503)
            clock.advance(61)
            for _ in range(3):
                stale = await proxy.page(name, "json")
                assert stale is not None and stale.stale is not None
            # One revalidation went upstream (and failed); every answer after it was stale.
            assert proxy.stats.page_fetches == 2
            assert proxy.stats.stale_served == 3
            with pytest.raises(SourceUnavailable):
                await proxy.page(normalize_name("never-cached"), "json")
            assert proxy.stats.unavailable == 1
            assert proxy.stats.page_requests == 7

    run(t)


def test_proxy_counters_are_summed_over_processes_in_metrics(tmp_path: Path) -> None:
    one, two = Metrics(tmp_path), Metrics(tmp_path)
    a, b = ProxyStats(page_requests=5, page_fetches=1), ProxyStats(page_requests=7, stale_served=2)
    one.track_proxy("pypi", a)
    two.track_proxy("pypi", b)
    # The other process's snapshot is written under another pid: fake it by name.
    two._read_proxies()
    (tmp_path / "999999.json").write_bytes(msgspec.json.encode(two.data))
    a.page_requests += 1  # live counters of this process are read at the scrape
    total = collect(one)
    assert total.proxy["pypi|page_requests"] == 13
    assert total.proxy["pypi|stale_served"] == 2
    assert total.proxy["pypi|page_fetches"] == 1
    text = render(total)
    assert 'headwater_proxy_events_total{source="pypi",event="page_requests"} 13' in text
