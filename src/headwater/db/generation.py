"""The change signal: a number that changes whenever anything in the database may have changed.

Every cache derived from the database (hosted pages and models, a composed index's namespace rules
and decisions) keys on :meth:`ChangeSignal.generation`. It is asked on every request, so it must
cost microseconds and never a round trip to a database server; it may change without a real change
(the caches are then rebuilt once, which is correct), but it must never stay the same across a
committed change (a cache would then serve a decision an admin already changed).

- **SQLite**: ``PRAGMA data_version`` on a connection of our own that never writes. SQLite defines
  it to differ between two calls on one connection whenever another connection (of this process or
  any other) committed in between. Every write that may change what a cache holds also adds one to
  the file's ``user_version`` (:func:`headwater.db.engine.writing`; quiet writes, to tables no
  cache is made from, do not), so when ``data_version`` moved, ``user_version`` says whether the
  generation does. It costs a statement (about 4 µs from Python), so it is asked
  only when a ``stat()`` of the WAL shows a change, or when the WAL was modified in the last
  :data:`SETTLE_SECONDS` (an unchanged mtime proves nothing then: it has the kernel's clock-tick
  granularity, and a reused WAL keeps its size). A warm look is one ``stat()`` (about 1 µs). The connection has no busy timeout: if SQLite cannot answer at once (a WAL being
  recovered), the generation changes, and the next call asks again.
- **PostgreSQL**: every write transaction but quiet ones sends ``NOTIFY headwater_changes`` (see
  :func:`headwater.db.engine.writing`; delivered at commit, dropped on rollback), and a listener
  thread of each process counts the notifications it receives. While the listener is not
  connected (at start, or after its connection failed) the generation changes on *every* call, so
  no cache is trusted; when it connects again, it changes once more (changes made while nobody
  listened are not lost). The listener checks its connection every ``poll`` seconds (2 s), with
  TCP keepalives: a connection that dies silently is noticed within that bound, and until then a
  change may go unseen by this process.

One signal per process: it is made on first use and made again after a fork (a worker must not
share its parent's SQLite connection or listener).
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa

__all__ = ["CHANNEL", "LISTENER", "ChangeSignal", "PostgresSignal", "SqliteSignal", "signal_for"]

log = logging.getLogger("headwater.db")

#: The PostgreSQL notification channel every write transaction notifies.
CHANNEL = "headwater_changes"
#: The listener connection's application_name (in ``pg_stat_activity``).
LISTENER = "headwater-change-listener"


class ChangeSignal(Protocol):
    """Tells caches whether the database may have changed since they last looked."""

    def generation(self) -> int:
        """A number that differs from every earlier answer whenever a change may have been
        committed since (by any process). Cheap: no network round trip, no thread hop."""
        ...

    def close(self) -> None:
        """Release the connection or listener (the signal may not be used again)."""
        ...


#: Seconds after the WAL's last modification during which its unchanged ``stat()`` proves nothing
#: (mtimes have clock-tick granularity; a commit's write lands a moment before it is visible).
SETTLE_SECONDS = 5.0


class SqliteSignal:
    """The change signal of the SQLite database file at ``path`` (see the module docstring).

    One ``stat()`` of the WAL decides whether SQLite must be asked at all. headwater opens every
    database in WAL mode, which stays on while any connection (this signal's own) has it open, so
    every commit writes the WAL and sets its mtime. When the WAL is unchanged (inode, size,
    mtime) since the last look and was last modified more than :data:`SETTLE_SECONDS` before it,
    no commit can have happened since: a later write would carry a later mtime, even at the
    kernel's clock-tick granularity. Otherwise (changed, recent, or no WAL at all) ``PRAGMA
    data_version`` is asked, which is exact.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._wal = path + "-wal"
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._seen: int | None = None
        #: ``user_version`` at the last look (loud writes add one to it).
        self._version: int | None = None
        # Unique across reopenings: a failed read must never give back an earlier number.
        self._counter = itertools.count(1)
        #: (the WAL's (inode, size, mtime) at the last look if it had settled then, else None;
        #: the generation): one tuple, replaced whole, so a reader never pairs one look's file
        #: state with another look's answer.
        self._last: tuple[tuple[int, int, int] | None, int] = (None, next(self._counter))

    def generation(self) -> int:
        now = time.time()  # before the stat: "settled" must hold for any write after it
        try:
            st = os.stat(self._wal)  # noqa: PTH116 (the hot path: no Path object per call)
            state: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            state = None
        last = self._last
        if state is not None and state == last[0]:
            return last[1]
        with self._lock:
            generation = self._ask(self._last[1])
            settled = state is not None and now - state[2] / 1e9 > SETTLE_SECONDS
            self._last = (state if settled else None, generation)
            return generation

    def _ask(self, generation: int) -> int:
        """The generation after asking SQLite's ``data_version`` (a new one if it moved)."""
        try:
            if self._conn is None:
                # Without a busy timeout: this runs on the event loop. (It only reads; not
                # opened read-only, which fails while the WAL's shared memory is missing.)
                self._conn = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False, timeout=0
                )
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._seen:
                return generation
            # Something was committed; a loud write moved user_version with it (read after
            # data_version: a commit between the two reads is seen now or at the next call).
            loud = self._conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error:
            # Busy or unreadable: say "changed", and look again next time.
            self._drop()
            return next(self._counter)
        self._seen = version
        if loud != self._version:
            self._version = loud
            return next(self._counter)
        return generation

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._seen = None
        self._version = None

    def close(self) -> None:
        with self._lock:
            self._drop()


class PostgresSignal:
    """The change signal of a PostgreSQL database (see the module docstring): a listener thread
    counts ``NOTIFY headwater_changes``; while it is not listening, every call is a change."""

    def __init__(self, conninfo: str, *, poll: float = 2.0) -> None:
        self._conninfo = conninfo
        self.poll = poll
        self._counter = itertools.count(1)
        self._generation = next(self._counter)
        self._listening = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._listen, name="headwater-db-signal", daemon=True
        )
        self._thread.start()

    def generation(self) -> int:
        if not self._listening:
            # Nobody is listening: nothing can be trusted to be unchanged.
            self._generation = next(self._counter)
        return self._generation

    @property
    def listening(self) -> bool:
        """Whether notifications are being received (False at start and after a failure)."""
        return self._listening

    def _listen(self) -> None:
        import psycopg  # only PostgreSQL deployments need the driver loaded

        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name=LISTENER,
                    connect_timeout=10,
                    keepalives=1,
                    keepalives_idle=max(1, int(self.poll)),
                    keepalives_interval=1,
                    keepalives_count=3,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening = True
                    # Changes committed while nobody listened must not be missed.
                    self._generation = next(self._counter)
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=self.poll):
                            self._generation = next(self._counter)
                        conn.execute("SELECT 1")  # the connection is alive
            except Exception as exc:  # any failure: stop trusting caches, connect again
                if self._listening:
                    log.warning("database change listener lost its connection: %s", exc)
                self._listening = False
                self._generation = next(self._counter)
                self._stop.wait(1.0)
        self._listening = False

    def close(self) -> None:
        self._stop.set()


def signal_for(engine: sa.Engine) -> ChangeSignal:
    """The change signal for ``engine``'s database.

    Raises:
        ValueError: neither SQLite nor PostgreSQL.
    """
    url = engine.url
    backend = url.get_backend_name()
    if backend == "sqlite":
        return SqliteSignal(str(Path(url.database or "").resolve()))
    if backend == "postgresql":
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresSignal(conninfo)
    raise ValueError(f"no change signal for a {backend} database")
