"""An aborted write leaves no directory behind, and removing them never costs another writer
its file.

``FileStorage.writer`` makes a key's directories before the first byte (its unnamed file lives
in them). A write that is aborted (an exception in the block, ``writer.abort()``, a failed
publish) removes the directories it made while they are empty, up to the first one that is not
and never the root. An unnamed file of another writer does not keep its directory from being
removed, so that writer's link at publish time must make the directory again."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from headwater.storage import FileStorage


def empty_dirs(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_dir() and p.name != ".headwater-tmp" and not any(p.iterdir())
    )


class Boom(Exception):
    pass


async def abort_by(how: str, storage: FileStorage, key: str) -> None:
    if how == "exception":
        with pytest.raises(Boom):
            async with storage.writer(key) as w:
                await w.write(b"partial" * 1000)
                raise Boom
    elif how == "abort":
        async with storage.writer(key) as w:
            await w.write(b"partial")
            w.abort()
    elif how == "cancel":

        async def slow() -> None:
            async with storage.writer(key) as w:
                await w.write(b"partial")
                await asyncio.sleep(10)

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["exception", "abort", "cancel"])
@pytest.mark.parametrize(
    ("existing", "key", "left"),
    [
        # Nothing there: every directory made for the key goes, the root stays.
        ([], "packages/ab/cd/ef0123/f.whl", []),
        # A sibling key's file keeps its directory (and every parent).
        (["packages/ab/cd/ef0123/other.whl"], "packages/ab/cd/ef0123/f.whl", []),
        # Removal stops at the first directory that is not empty.
        (["packages/ab/x.whl"], "packages/ab/cd/ef0123/f.whl", []),
        # An empty directory that was there before the write is not the write's to remove.
        (
            ["packages/ab/cd/.keep-dir/"],
            "packages/ab/cd/ef0123/f.whl",
            ["packages/ab/cd/.keep-dir"],
        ),
        # A key at the root makes no directory.
        ([], "f.whl", []),
    ],
)
def test_an_aborted_write_leaves_no_empty_directory(
    tmp_path: Path, how: str, existing: list[str], key: str, left: list[str]
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    for path in existing:
        if path.endswith("/"):
            (root / path).mkdir(parents=True)
        else:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(b"kept")
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))

    async def t() -> None:
        storage = FileStorage(root, durability="none")
        await abort_by(how, storage, key)
        assert await storage.stat(key) is None

    asyncio.run(t())
    assert root.is_dir()
    assert empty_dirs(root) == left
    after = sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if ".headwater-tmp" not in p.parts
    )
    assert after == [p for p in before if ".headwater-tmp" not in p]
    for path in existing:
        if not path.endswith("/"):
            assert (root / path).read_bytes() == b"kept"


def test_a_write_survives_the_removal_of_its_directory_by_an_aborted_one(tmp_path: Path) -> None:
    """The exact interleaving: A makes the directory, B opens its file in it, A aborts (the
    directory is empty: B's file has no name yet), B publishes."""

    async def t() -> None:
        storage = FileStorage(tmp_path, durability="none")
        a_cm = storage.writer("packages/ab/cd/ef/a.whl")
        b_cm = storage.writer("packages/ab/cd/ef/b.whl")
        a = await a_cm.__aenter__()  # makes packages/ab/cd/ef
        b = await b_cm.__aenter__()  # opens its (unnamed) file in it
        await a.write(b"partial")
        await b.write(b"B")
        a.abort()
        await a_cm.__aexit__(None, None, None)  # removes the directories A made, now empty
        await b.write(b" content")
        await b_cm.__aexit__(None, None, None)  # B's link must make them again
        assert await storage.read_bytes("packages/ab/cd/ef/b.whl") == b"B content"

    asyncio.run(t())
    assert empty_dirs(tmp_path) == []


@pytest.mark.parametrize("storages", [1, 2])
def test_concurrent_abort_and_publish_into_one_directory_lose_no_write(
    tmp_path: Path, storages: int
) -> None:
    """Two writers in one directory, one aborting and one publishing, over many iterations and
    random interleavings; with two storages on the same root, their worker threads really run
    at once, as two server processes would. Every published file is there with its bytes,
    no write fails, and no empty directory is left."""
    rng = random.Random(10)
    stores = [FileStorage(tmp_path, durability="none") for _ in range(storages)]

    async def aborting(store: FileStorage, key: str, delay: float) -> None:
        async with store.writer(key) as w:
            await w.write(b"x")
            await asyncio.sleep(delay)
            w.abort()

    async def publishing(store: FileStorage, key: str, data: bytes, delay: float) -> None:
        async with store.writer(key) as w:
            await asyncio.sleep(delay)
            await w.write(data)

    async def t() -> list[tuple[str, bytes]]:
        published: list[tuple[str, bytes]] = []
        for i in range(300):
            directory = f"packages/{i % 7:02x}/{i:04x}"
            data = os.urandom(16)
            good = f"{directory}/good-{i}.whl"
            a_store, b_store = rng.choice(stores), rng.choice(stores)
            await asyncio.gather(
                aborting(a_store, f"{directory}/bad-{i}.whl", rng.choice([0, 0, 0.001])),
                publishing(b_store, good, data, rng.choice([0, 0.0005, 0.001, 0.002])),
            )
            published.append((good, data))
        return published

    published = asyncio.run(t())
    for key, data in published:
        assert (tmp_path / key).read_bytes() == data
    assert not list(tmp_path.rglob("bad-*"))
    assert empty_dirs(tmp_path) == []
