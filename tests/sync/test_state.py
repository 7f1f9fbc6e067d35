"""Mirror state: snapshot + journal, resumable after a crash at any point."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from headwater.simple.names import normalize_name
from headwater.storage import FileStorage, MemoryStorage
from headwater.sync.state import JOURNAL, SNAPSHOT, MirrorState, ProjectState, StateError

UP = "http://127.0.0.1:1/simple/"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def fresh(storage: MemoryStorage | FileStorage, upstream: str = UP) -> MirrorState:
    state = MirrorState(storage, upstream)
    await state.load()
    return state


def test_empty_state() -> None:
    state = run(fresh(MemoryStorage()))
    assert state.serials == {} and state.serial is None


def test_journal_survives_a_crash_before_commit() -> None:
    storage = MemoryStorage()

    async def go() -> None:
        state = await fresh(storage)
        state.record(normalize_name("a"), ProjectState(5, '"e1"'))
        await state.flush()
        state.record(normalize_name("b"), ProjectState(6))
        await state.flush()
        state.record(normalize_name("c"), ProjectState(7))  # never flushed: lost in the crash
        # crash here: a new process loads the state
        again = await fresh(storage)
        assert again.serials == {"a": 5, "b": 6}
        assert again.etags == {"a": '"e1"'}

    run(go())


def test_commit_folds_the_journal_into_a_snapshot() -> None:
    storage = MemoryStorage()

    async def go() -> None:
        state = await fresh(storage)
        state.record(normalize_name("a"), ProjectState(5))
        state.record(normalize_name("b"), ProjectState(6))
        await state.flush()
        state.forget(normalize_name("b"))
        await state.flush()
        await state.commit(42)
        assert [k async for k in storage.iter_keys(JOURNAL)] == []
        again = await fresh(storage)
        assert again.serials == {"a": 5} and again.serial == 42
        # The journal continues after a commit and is replayed over the snapshot.
        again.record(normalize_name("c"), ProjectState(50))
        await again.flush()
        third = await fresh(storage)
        assert third.serials == {"a": 5, "c": 50}

    run(go())


def test_other_upstream_is_refused() -> None:
    storage = MemoryStorage()

    async def go() -> None:
        state = await fresh(storage)
        await state.commit(1)
        with pytest.raises(
            StateError,
            match=re.escape(f"mirrored from {UP}, but the configuration says https://other/"),
        ):
            await fresh(storage, "https://other/")

    run(go())


def test_corrupt_snapshot_is_a_clear_error(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    run(storage.write_bytes(SNAPSHOT, b"{not json"))
    with pytest.raises(StateError, match="corrupt"):
        run(fresh(storage))


def test_damaged_chunk_is_skipped() -> None:
    storage = MemoryStorage()

    async def go() -> None:
        state = await fresh(storage)
        state.record(normalize_name("a"), ProjectState(1))
        await state.flush()
        await storage.write_bytes(f"{JOURNAL}/00000002.json", b"garbage")
        state2 = await fresh(storage)
        assert state2.serials == {"a": 1}
        state2.record(normalize_name("b"), ProjectState(2))
        await state2.flush()  # does not overwrite the damaged chunk's number
        assert sorted([k async for k in storage.iter_keys(JOURNAL)])[-1].endswith("00000003.json")

    run(go())


def test_held_files_are_loaded_into_the_same_dict(tmp_path: Path) -> None:
    """The engine's reference counting keeps the state's ``held`` dict from before load()."""

    async def go() -> None:
        storage = FileStorage(tmp_path)
        first = MirrorState(storage, "https://example/simple/")
        await first.load()
        first.hold(normalize_name("a"), ["web/packages/aa/bb/" + "c" * 60 + "/a-1.0.tar.gz"])
        await first.commit(None)
        second = MirrorState(storage, "https://example/simple/")
        seen = second.held
        await second.load()
        assert seen is second.held and list(seen) == ["a"]

    asyncio.run(go())
