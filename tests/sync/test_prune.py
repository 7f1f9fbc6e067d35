"""Removing the directories deletions left empty, in parallel shares on large trees: every empty
directory goes, every directory still holding a file stays, whichever way the work is split."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from headwater.storage import FileStorage
from headwater.storage.layout import file_key, page_key
from headwater.sync import tree as tree_module
from headwater.sync.tree import empty_directories, prune_empty_directories


@pytest.mark.parametrize("by", ["keys", "walk"])
@pytest.mark.parametrize("share", [1, 10_000], ids=["parallel", "one-thread"])
def test_pruning_removes_exactly_the_empty_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by: str, share: int
) -> None:
    monkeypatch.setattr(tree_module, "_PRUNE_SHARE", share)
    storage = FileStorage(tmp_path)
    # 600 files: many share their first one or two directory levels with another
    keys = [file_key(hashlib.sha256(b"%d" % i).hexdigest(), f"p{i}-1.0.tar.gz") for i in range(600)]
    pages = [page_key(f"p{i}", "json") for i in range(50)]  # type: ignore[arg-type]

    async def scenario() -> None:
        await storage.write_many([(key, b"x") for key in [*keys, *pages]])
        gone = keys[::3] + keys[1::3] + pages[:20]
        assert all(await storage.delete_many(gone))
        removed = await prune_empty_directories(storage, gone if by == "keys" else None)
        assert removed > 0
        assert await empty_directories(storage) == []
        kept = set(keys) - set(gone) | set(pages) - set(gone)
        assert {k async for k in storage.iter_keys("web")} == kept
        for key in gone:  # its directory went, unless a kept file shares it
            directory = (tmp_path / key).parent
            assert directory.exists() == any((tmp_path / k).parent == directory for k in kept)

    asyncio.run(scenario())
