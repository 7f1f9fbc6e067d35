"""A mirror's run history (state/history.json): recorded by every run, bounded, robust."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.storage import FileStorage
from headwater.storage.memory import MemoryStorage
from headwater.sync import history
from headwater.sync.engine import Mirror
from headwater.sync.history import (
    FAILURES,
    HISTORY,
    REASON,
    Run,
    read_history,
    record_run,
    run_of,
    run_recorded,
)
from headwater.sync.summary import Summary
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream

FAST = RetryPolicy(attempts=2, backoff=0.001, max_backoff=0.002)


async def _run(up_url: str, root: Path) -> Summary:
    async with client_session(connections=8) as session:
        repo = HttpRepository(up_url, session, retry=FAST)
        return await run_recorded(Mirror(repo, FileStorage(root), workers=4))


def test_every_run_is_recorded_with_serials_duration_and_failures(tmp_path: Path) -> None:
    corpus = Corpus.generate(4, releases=1, files=1, seed=3)

    async def go() -> None:
        async with Upstream(corpus) as up:
            first = await _run(up.simple_url, tmp_path)
            assert first.ok
            # A no-op run is a run too: it says the mirror is still checking.
            await _run(up.simple_url, tmp_path)
            bad = corpus.project_list().projects[0].normalized
            corpus.add_release(bad, "9.0")
            project = corpus.get(bad)
            assert project is not None
            for file in project.files():
                up.add_fault("corrupt", file.path)
            third = await _run(up.simple_url, tmp_path)
            assert list(third.failed) == [bad]
            up.faults.clear()
        # The upstream is gone: the run fails before it starts, and says so in the history.
        with pytest.raises(Exception, match="cannot read the project list"):
            await _run(up.simple_url, tmp_path)
        got = await read_history(FileStorage(tmp_path))
        assert got is not None and got.upstream == up.simple_url
        runs = got.runs
        assert len(runs) == 4
        assert runs[0].ok and runs[0].synced == 4
        assert runs[0].serial is not None and runs[0].serial == runs[0].upstream_serial
        assert runs[0].files_downloaded >= 4 and runs[0].bytes_downloaded > 0
        assert runs[1].ok and runs[1].synced == 0 and runs[1].serial == runs[0].serial
        assert not runs[2].ok and runs[2].failed == 1 and bad in runs[2].failures
        # The failed project held the serial back: the tree lags its upstream.
        assert runs[2].upstream_serial is not None and runs[2].serial is not None
        assert runs[2].upstream_serial > runs[2].serial
        assert runs[3].error is not None and "cannot read the project list" in runs[3].error
        assert runs[3].serial is None and not runs[3].ok
        assert all(r.seconds >= 0 and r.started > 1.7e9 for r in runs)
        assert [r.started for r in runs] == sorted(r.started for r in runs)

    asyncio.run(go())


def test_history_is_bounded_and_newest_kept() -> None:
    storage = MemoryStorage()

    async def go() -> None:
        for i in range(30):
            await record_run(storage, "https://up/simple/", Run(started=i, seconds=1), keep=7)
        got = await read_history(storage)
        assert got is not None
        assert [r.started for r in got.runs] == [23, 24, 25, 26, 27, 28, 29]

    asyncio.run(go())


def test_another_upstream_starts_a_new_history() -> None:
    storage = MemoryStorage()

    async def go() -> None:
        await record_run(storage, "https://a/simple/", Run(started=1, seconds=1))
        await record_run(storage, "https://a/simple", Run(started=2, seconds=1))  # same, no /
        await record_run(storage, "https://b/simple/", Run(started=3, seconds=1))
        got = await read_history(storage)
        assert got is not None and got.upstream == "https://b/simple/"
        assert [r.started for r in got.runs] == [3]

    asyncio.run(go())


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"[]", b'{"format": 1, "runs": 5}', b'{"format": 99, "runs": []}', b"\xff"]
)
def test_unreadable_history_is_none_and_is_started_afresh(raw: bytes) -> None:
    storage = MemoryStorage()

    async def go() -> None:
        await storage.write_bytes(HISTORY, raw)
        assert await read_history(storage) is None
        await record_run(storage, "https://a/simple/", Run(started=1, seconds=1))
        got = await read_history(storage)
        assert got is not None and len(got.runs) == 1

    asyncio.run(go())


@settings(max_examples=60, deadline=None)
@given(
    failed=st.dictionaries(st.text(max_size=2000), st.text(max_size=5000), max_size=40),
    error=st.one_of(st.none(), st.text(max_size=5000)),
)
def test_a_run_record_is_bounded_whatever_failed(failed: dict[str, str], error: str | None) -> None:
    summary = Summary(failed=failed, serial=5, upstream_serial=9)
    run = run_of(summary, started=1.0, seconds=2.0, error=error)
    assert run.failed == len(failed)
    assert len(run.failures) <= FAILURES
    assert all(len(k) <= REASON and len(v) <= REASON for k, v in run.failures.items())
    assert run.error is None or len(run.error) <= REASON
    # Every run round-trips through the file's encoding.
    assert msgspec.json.decode(msgspec.json.encode(run), type=Run) == run
    assert len(msgspec.json.encode(run)) < 2 * FAILURES * REASON * 6 + 1000
    assert history.KEEP >= 10
