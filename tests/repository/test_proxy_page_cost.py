"""What an upstream page may cost: charged to the page memory budget by the files it lists (not
only its bytes), capped by ``max_page_files``, and what is kept of it between requests bounded
by bytes (``kept_memory``), not only by the number of pages.

The memory these bounds stand for is measured in a separate process by
tests/repository/test_proxy_memory_dense.py; here the decisions are checked over every kind of
page: JSON written plainly, JSON whose keys are spelt with escapes (the byte count cannot see its
entries: counted again after parsing), HTML."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from pathlib import Path

import pytest

from headwater.repository._proxy_upstream import ENTRY_COST, MemoryBudget, count_entries
from headwater.repository.base import SourceUnavailable
from headwater.simple.names import normalize_name
from tests.repository.rawupstream import answer, raw_upstream
from tests.repository.test_proxy_bounds import proxy_of

JSON = "application/vnd.pypi.simple.v1+json"


def files(count: int, project: str = "victim") -> list[tuple[str, str]]:
    return [
        (f"{project}-1.{i}.tar.gz", hashlib.sha256(str(i).encode()).hexdigest())
        for i in range(count)
    ]


def json_page(count: int, *, escaped: bool = False, project: str = "victim") -> bytes:
    key = '"\\u0066ilename"' if escaped else '"filename"'
    entries = ",".join(
        f'{{{key}: "{f}", "url": "/f/{f}", "hashes": {{"sha256": "{h}"}}}}'
        for f, h in files(count, project)
    )
    return (
        f'{{"meta": {{"api-version": "1.1"}}, "name": "{project}", "files": [{entries}]}}'
    ).encode()


def html_page(count: int, project: str = "victim") -> bytes:
    links = "\n".join(f'<a href="/f/{f}#sha256={h}">{f}</a>' for f, h in files(count, project))
    return f"<!DOCTYPE html><html><body>{links}</body></html>".encode()


PAGES = {
    "json": lambda n: (json_page(n), JSON),
    "json-escaped-keys": lambda n: (json_page(n, escaped=True), JSON),
    "html": lambda n: (html_page(n), "text/html"),
}


def serve(kind: str, count: int) -> tuple[bytes, str]:
    return PAGES[kind](count)


@pytest.mark.parametrize("kind", list(PAGES))
def test_count_entries_never_undercounts_a_plain_page(kind: str) -> None:
    body, _ = serve(kind, 123)
    counted = count_entries(body)
    if kind == "json-escaped-keys":
        assert counted == 0  # why the proxy counts again after parsing
    else:
        assert counted >= 123


async def fetch(tmp_path: Path, body: bytes, ctype: str, **options: object) -> object:
    def script(path: str) -> Iterable[tuple[bytes, float]]:
        return answer(body, content_type=ctype)

    async with raw_upstream(script) as up:
        proxy = proxy_of(up.url, tmp_path, **options)
        try:
            return await proxy.page(normalize_name("victim"), "json")
        finally:
            await proxy.aclose()


@pytest.mark.parametrize("kind", list(PAGES))
@pytest.mark.parametrize(
    ("count", "budget_entries", "served"),
    [
        (200, 400, True),  # room for its files
        (200, 100, False),  # its bytes fit easily; its files do not
    ],
)
def test_the_budget_is_charged_by_the_files_a_page_lists(
    tmp_path: Path, kind: str, count: int, budget_entries: int, served: bool
) -> None:
    body, ctype = serve(kind, count)
    # Room for the page's bytes three times over, plus ``budget_entries`` files.
    budget = MemoryBudget(3 * len(body) + budget_entries * ENTRY_COST)

    async def t() -> None:
        if served:
            assert await fetch(tmp_path, body, ctype, page_budget=budget) is not None
        else:
            with pytest.raises(SourceUnavailable, match=f"lists {count} files"):
                await fetch(tmp_path, body, ctype, page_budget=budget)
        assert budget.used == 0  # every lease given back

    asyncio.run(t())


@pytest.mark.parametrize("kind", list(PAGES))
def test_a_page_listing_more_than_max_page_files_is_refused_naming_the_option(
    tmp_path: Path, kind: str
) -> None:
    body, ctype = serve(kind, 50)

    async def t() -> None:
        assert await fetch(tmp_path / "ok", body, ctype, max_page_files=50) is not None
        with pytest.raises(SourceUnavailable, match="max_page_files") as refused:
            await fetch(tmp_path / "no", body, ctype, max_page_files=49)
        assert "lists 50 files" in str(refused.value)

    asyncio.run(t())


def test_kept_pages_are_bounded_by_bytes(tmp_path: Path) -> None:
    """Pages kept between requests: within ``kept_memory`` (oldest dropped first); a page larger
    than it alone is served from the disk cache each time, not kept."""
    sizes = {"small-a": 10, "small-b": 10, "small-c": 10, "big": 400}

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        name = path.strip("/").split("/")[-1]
        return answer(json_page(sizes[name], project=name), content_type=JSON)

    async def t() -> None:
        async with raw_upstream(script) as up:
            # Room for two small pages (10 files each), not three; never for the big one.
            proxy = proxy_of(up.url, tmp_path, kept_memory=2 * (1024 + 10 * 2048) + 100)
            try:
                for name in sizes:
                    assert await proxy.page(normalize_name(name), "json") is not None
                    assert proxy._entries.used <= proxy.kept_memory
                assert sorted(proxy._entries) == ["small-b", "small-c"]
                # The big page is still served (from the disk cache), just not kept.
                assert await proxy.page(normalize_name("big"), "json") is not None
                assert "big" not in proxy._entries
            finally:
                await proxy.aclose()

    asyncio.run(t())
