"""Single-flight: concurrent requests for the same key share one computation.

A cold page (a hosted page rendered from the database, a composed index's decision, a proxy's
upstream fetch) is asked for by many clients at once when it becomes popular or expires. Only
the first should do the work; the others wait for its result. :class:`SingleFlight` gives that
with these rules:

- the first caller for a key starts the computation in a task of its own; every caller for the
  key while it runs awaits that same task (shielded);
- a caller that is cancelled (its client went away) only stops waiting: the computation goes on
  for the others and, if it fills a cache, for the next request. No caller is ever cancelled
  because another one was;
- the result or the exception goes to every caller then waiting; neither is kept: the key is
  free again as soon as the computation ends, so an error is retried by the next request and a
  result is kept only where the computation itself keeps it (its cache).

A proxy's cold *file* downloads are not this pattern (the first caller streams the bytes while
they arrive, the others wait for the stored file): see :mod:`headwater.repository._proxy_files`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """At most one computation per key at a time, shared by every concurrent caller."""

    __slots__ = ("_running",)

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        """How many keys are being computed now."""
        return len(self._running)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is being computed now."""
        return key in self._running

    async def run(self, key: K, make: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """The result of ``make()`` for ``key``: started now if no computation of ``key`` is
        running, else the running one's.

        Raises:
            Whatever the computation raised (to every caller waiting for it);
            CancelledError: this caller was cancelled (the computation carries on), or the
                computation was cancelled by :meth:`aclose`.
        """
        task = self._running.get(key)
        if task is None:
            task = asyncio.create_task(make())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # shield: cancelling this caller must not cancel the task the others are waiting for.
        return await asyncio.shield(task)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        # Runs before the waiters resume (it was the task's first callback), so a caller that
        # arrives after the result was handed out starts a new computation.
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: when every waiter went away, nobody else will

    async def aclose(self) -> None:
        """Cancel every running computation and wait until they have ended."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            # wait, not await: their exceptions are theirs, but a cancellation of this caller
            # must still reach it.
            await asyncio.wait(tasks)
