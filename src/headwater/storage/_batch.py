"""One worker thread per storage lane that runs small blocking file jobs in batches.

:class:`FileStorage <headwater.storage.filesystem.FileStorage>` hands its create, write, link,
rename, stat and delete calls to a :class:`BatchThread` instead of ``asyncio.to_thread``: a
wake-up runs every job queued so far and hands the results back to each event loop once. A
forked child has no copy of the parent's thread: every batch thread forgets its own in the child
and starts a new one on first use (:data:`_AFTER_FORK`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

__all__ = ["BatchThread"]

T = TypeVar("T")
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]
_IDLE_EXIT = 2.0  # seconds a batch thread waits for work before it exits


class BatchThread:
    """Runs small blocking jobs (create, write, link, rename, stat, delete) in one worker thread,
    in the order they were queued, handing results back to the event loop once per batch.

    Why not ``asyncio.to_thread`` per job: on the one core a mirror gets, each hop through the
    default executor (submit, wake a thread, the GIL hand-over, one ``call_soon_threadsafe`` per
    result) cost more CPU than the small write it carried; a py-spy profile of a 2,000-project sync
    put a fifth of the event loop's time in dispatching writes. Here, queueing a job while the
    thread is busy wakes nothing, and a wake-up runs every job queued so far. The thread exits
    after ``_IDLE_EXIT`` seconds without work and is started again on demand.
    """

    def __init__(self) -> None:
        self._reset()
        _AFTER_FORK.add(self)

    def _after_fork(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """A fresh queue and no thread (also in a forked child, which has no copy of the thread)."""
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)``; the returned future (of the running loop) gets its outcome."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, fn, args))
        if not self._running:
            with self._lock:
                if not self._running:
                    self._running = True
                    try:
                        threading.Thread(
                            target=self._main, name="headwater-storage", daemon=True
                        ).start()
                    except BaseException:
                        # No thread (e.g. a process limit): the next call tries again, and
                        # this job, still queued, is skipped by whichever thread runs later.
                        self._running = False
                        future.cancel()
                        raise
        return future

    def _main(self) -> None:
        while True:
            try:
                batch = [self._jobs.get(timeout=_IDLE_EXIT)]
            except queue.Empty:
                # Say "not running" first, then look: a job queued after the look finds
                # _running False and starts a thread; one queued before it is seen here.
                with self._lock:
                    self._running = False
                if self._jobs.empty():
                    return
                with self._lock:
                    if self._running:  # run() started another thread meanwhile: it serves
                        return
                    self._running = True
                continue
            while True:
                try:
                    batch.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            settled: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]]
            settled = {}
            for loop, future, fn, args in batch:
                if future.cancelled():  # its caller got an error before it could run
                    continue
                try:
                    outcome: tuple[asyncio.Future[Any], bool, Any] = (future, True, fn(*args))
                except BaseException as exc:  # handed to the awaiting task, as to_thread does
                    outcome = (future, False, exc)
                settled.setdefault(loop, []).append(outcome)
            for loop, outcomes in settled.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(_settle, outcomes)


class _ForkAware(Protocol):
    def _after_fork(self) -> None: ...


# Objects holding per-process resources (a worker thread) that a forked child does not have:
# each forgets them in the child and starts its own on first use.
_AFTER_FORK: weakref.WeakSet[_ForkAware] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for holder in list(_AFTER_FORK):
        holder._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
