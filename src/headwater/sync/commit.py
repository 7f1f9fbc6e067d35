"""How the engine publishes projects: a group durability barrier, and one committer task that
takes every project ready so far as one batch (one barrier for its files, its pages in one storage
call, then the journal). See :mod:`headwater.sync.engine` for the order of writes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec

from headwater.simple.model import File, ProjectPage
from headwater.storage.base import Storage

__all__ = ["Barrier", "Committer", "Ready"]

# Projects waiting for the committer before workers wait for it: bounds memory (a parsed page
# each) while leaving the committer batches large enough that one syncfs serves many projects.
_MAX_READY = 64


class Barrier:
    """Group fsync: a caller returns once a storage sync that *started after it arrived* is done,
    so concurrent callers share batches and nobody returns before its own writes are durable."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._lock = asyncio.Lock()
        self._started = 0
        self._completed = 0

    async def sync(self) -> None:
        target = self._started + 1
        async with self._lock:
            if self._completed >= target:
                return
            self._started += 1
            number = self._started
            await self._storage.sync()
            self._completed = number


class Ready(msgspec.Struct):
    """A project whose files are on disk (not yet durable) and whose page is ready to write."""

    page: ProjectPage
    known: bool
    etag: str | None
    pins: list[str] = msgspec.field(default_factory=list)
    #: Files downloaded and then left out (the filters judged them by a size only known after
    #: the download); released like files a page stopped listing.
    dropped: tuple[File, ...] = ()


class Committer:
    """Publishes ready projects in batches: one barrier for the batch's files, then its pages in
    one storage call, then the journal. Runs as one task; :meth:`add` waits only when
    ``_MAX_READY`` projects are already queued."""

    def __init__(self, publish: Callable[[list[Ready]], Awaitable[None]]) -> None:
        self._publish = publish
        self._ready: list[Ready] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closing = False

    async def add(self, item: Ready) -> None:
        while len(self._ready) >= _MAX_READY:
            self._room.clear()
            await self._room.wait()
        self._ready.append(item)
        self._wake.set()

    def close(self) -> None:
        """No more projects: the committer publishes what is queued and returns."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            if not self._ready:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch, self._ready = self._ready, []
            self._room.set()
            await self._publish(batch)
