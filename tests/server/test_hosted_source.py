"""HostedSource against a real (SQLite) database: bounds on what it caches."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from headwater.db import Database
from headwater.repository import hosted
from headwater.repository.hosted import HostedSource
from headwater.simple.names import NormalizedName
from headwater.storage import FileStorage


def test_pages_for_made_up_names_do_not_grow_the_cache_without_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hosted, "_MAX_PAGES", 100)  # a small bound keeps the test fast
    db = Database.connect(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    db.upgrade()
    source = HostedSource("main", db, FileStorage(tmp_path / "files"))

    async def go() -> None:
        for i in range(1000):
            assert await source.page(NormalizedName(f"no-such-{i}"), "json") is None

    try:
        asyncio.run(go())
        assert 0 < len(source._pages) <= 100
    finally:
        db.close()
