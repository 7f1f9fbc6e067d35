"""SingleFlight: one computation per key shared by concurrent callers, on a real event loop;
and the composed index and the hosted source through it."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import pytest

from headwater.policy import Rules, SourceKind, SourceSpec
from headwater.repository._flight import SingleFlight
from headwater.repository.base import FileRef, PageFormat, RenderedPage, SourceProject
from headwater.repository.hosted import HostedSource
from headwater.repository.index import ComposedIndex
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import NormalizedName, normalize_name
from headwater.storage.memory import MemoryStorage


class Work:
    """A computation the test releases by hand; counts how often it was started."""

    def __init__(self, result: object = None, error: Exception | None = None) -> None:
        self.result = result
        self.error = error
        self.started = 0
        self.finished = 0
        self.release = asyncio.Event()

    async def __call__(self) -> object:
        self.started += 1
        await self.release.wait()
        self.finished += 1
        if self.error is not None:
            raise self.error
        return self.result


def on_a_loop(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """The test, run on a new event loop."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


async def settle() -> None:
    """Let every ready task run until it blocks."""
    for _ in range(5):
        await asyncio.sleep(0)


@on_a_loop
async def test_concurrent_callers_share_one_computation_per_key() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    a, b = Work(result=object()), Work(result=object())
    callers = [asyncio.create_task(flight.run("a", a)) for _ in range(50)]
    callers.append(asyncio.create_task(flight.run("b", b)))
    await settle()
    assert (a.started, b.started) == (1, 1)  # one each, and both at once
    assert "a" in flight and "b" in flight and len(flight) == 2
    assert not any(c.done() for c in callers)
    a.release.set()
    b.release.set()
    results = await asyncio.gather(*callers)
    assert all(r is a.result for r in results[:50])  # the very same object
    assert results[50] is b.result
    assert a.started == 1


@on_a_loop
async def test_an_exception_reaches_every_waiter_and_is_not_kept() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    failing = Work(error=RuntimeError("upstream down"))
    callers = [asyncio.create_task(flight.run("k", failing)) for _ in range(10)]
    await settle()
    failing.release.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert failing.started == 1
    assert all(isinstance(o, RuntimeError) and str(o) == "upstream down" for o in outcomes)
    assert "k" not in flight
    # The next caller computes again (the error was not cached) and gets the new result.
    working = Work(result="page")
    working.release.set()
    assert await flight.run("k", working) == "page"
    assert working.started == 1


@on_a_loop
async def test_a_cancelled_first_caller_neither_cancels_nor_strands_the_others() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work(result="page")
    first = asyncio.create_task(flight.run("k", work))
    await settle()
    others = [asyncio.create_task(flight.run("k", work)) for _ in range(5)]
    await settle()
    first.cancel()
    await settle()
    assert first.cancelled()
    assert not any(o.done() for o in others)  # still waiting, not cancelled with it
    assert "k" in flight  # the computation goes on
    work.release.set()
    async with asyncio.timeout(5):  # hanging forever would fail here
        assert await asyncio.gather(*others) == ["page"] * 5
    assert (work.started, work.finished) == (1, 1)


@on_a_loop
async def test_the_computation_finishes_when_every_caller_went_away() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work(result="page")
    callers = [asyncio.create_task(flight.run("k", work)) for _ in range(3)]
    await settle()
    for caller in callers:
        caller.cancel()
    await settle()
    assert all(c.cancelled() for c in callers)
    work.release.set()
    await settle()
    assert work.finished == 1  # e.g. a proxy's fetch still lands in its cache
    assert "k" not in flight and len(flight) == 0


@on_a_loop
async def test_the_key_is_free_when_the_waiters_resume() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work(result=1)
    seen: list[bool] = []

    async def caller() -> None:
        await flight.run("k", work)
        seen.append("k" in flight)

    callers = [asyncio.create_task(caller()) for _ in range(3)]
    await settle()
    work.release.set()
    await asyncio.gather(*callers)
    assert seen == [False, False, False]
    again = Work(result=2)
    again.release.set()
    assert await flight.run("k", again) == 2  # a new computation, not the old result
    assert (work.started, again.started) == (1, 1)


@on_a_loop
async def test_aclose_cancels_running_computations_and_their_callers() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work(result="page")
    callers = [asyncio.create_task(flight.run(key, work)) for key in ("a", "b")]
    await settle()
    assert work.started == 2
    await flight.aclose()
    assert len(flight) == 0 and work.finished == 0
    for caller in callers:
        with pytest.raises(asyncio.CancelledError):
            await caller


# -- where it is used: a cancelled first request leaves the others their answer ----------------


class GatedSource:
    """A directory-like source whose answer for a project waits for ``release``."""

    kind = "directory"
    local = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.asked = 0
        self.release = asyncio.Event()

    async def project(self, name: NormalizedName) -> SourceProject:
        self.asked += 1
        await self.release.wait()
        file = File(filename=f"{name}-1.0.tar.gz", url=f"{name}-1.0.tar.gz")
        return SourceProject(ProjectPage(name=name, files=(file,)), version="1")

    async def project_names(self) -> list[NormalizedName]:
        return []

    async def page(self, project: NormalizedName | None, fmt: PageFormat) -> RenderedPage | None:
        return None

    async def file(self, path: str) -> FileRef | None:
        return None

    async def check(self) -> None:
        return None


@on_a_loop
async def test_a_composed_index_decides_once_for_concurrent_requests() -> None:
    source = GatedSource("local")
    rules = Rules(index="main", sources=(SourceSpec(name="local", kind=SourceKind.DIRECTORY),))
    index = ComposedIndex("main", [source], rules, project_url=lambda s, p: f"http://x/{s}/{p}/")
    name = normalize_name("demo")
    first = asyncio.create_task(index.page(name, "json"))
    await settle()
    others = [asyncio.create_task(index.page(name, ("json", "html")[i % 2])) for i in range(20)]
    await settle()
    first.cancel()  # the first client went away while the sources were asked
    await settle()
    source.release.set()
    async with asyncio.timeout(5):
        pages = await asyncio.gather(*others)
    assert source.asked == 1
    assert all(p is not None and b"demo-1.0.tar.gz" in p.body for p in pages)


class GatedDatabase:
    """The part of the database a hosted source reads; ``project`` blocks until ``release``."""

    def __init__(self) -> None:
        self.asked = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def generation(self) -> int:
        return 1

    def last_serial(self, index: str) -> int:
        return 1

    def projects(self, index: str) -> list[Any]:
        return []

    def quarantined_files(self, index: str) -> list[tuple[str, str]]:
        return []

    def project(self, index: str, name: NormalizedName) -> Any:
        self.asked += 1
        self.entered.set()
        self.release.wait(10)
        return SimpleNamespace(
            name=name,
            status="active",
            status_reason=None,
            files=[],
            tracks=[],
            alternate_locations=[],
            last_serial=1,
        )

    def namespace_covering(self, index: str, name: str) -> Any:
        return None


@on_a_loop
async def test_a_hosted_page_is_rendered_once_for_concurrent_requests() -> None:
    db = GatedDatabase()
    hosted = HostedSource("private", db, MemoryStorage())  # type: ignore[arg-type]
    name = normalize_name("demo")
    first = asyncio.create_task(hosted.page(name, "json"))
    assert await asyncio.to_thread(db.entered.wait, 5)
    others = [asyncio.create_task(hosted.page(name, "json")) for _ in range(20)]
    await settle()
    first.cancel()
    await settle()
    db.release.set()
    async with asyncio.timeout(5):
        pages = await asyncio.gather(*others)
    assert db.asked == 1
    assert all(p is not None and p is pages[0] for p in pages)


@on_a_loop
async def test_closing_a_composed_index_ends_its_decisions_and_their_requests() -> None:
    source = GatedSource("local")
    rules = Rules(index="main", sources=(SourceSpec(name="local", kind=SourceKind.DIRECTORY),))
    index = ComposedIndex("main", [source], rules, project_url=lambda s, p: f"http://x/{s}/{p}/")
    requests = [asyncio.create_task(index.page(normalize_name("demo"), "json")) for _ in range(3)]
    await settle()
    assert source.asked == 1
    async with asyncio.timeout(5):  # the source never answers: only aclose ends the wait
        await index.aclose()
        results = await asyncio.gather(*requests, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    # A request after shutdown starts afresh (nothing half-decided was kept).
    source.release.set()
    async with asyncio.timeout(5):
        page = await index.page(normalize_name("demo"), "json")
    assert page is not None and source.asked == 2
