"""Engines and transactions: the same behaviour on SQLite and PostgreSQL.

- URLs: ``sqlite:///relative/path``, ``sqlite:////absolute/path``, ``postgresql://user:pw@host/db``
  (psycopg 3 is used whatever driver the URL names; ``postgresql+psycopg://`` is accepted too).
  In-memory SQLite is refused: every pooled connection would see its own empty database.
- SQLite files are private: the database (and so its ``-wal`` and ``-shm``) is created 0600.
- SQLite connections: WAL (readers never block the writer, several processes can share the file),
  foreign keys on, a busy timeout, ``synchronous=NORMAL`` (durable across process crashes; WAL
  keeps the file consistent across power loss).
- Every write transaction holds the database's one write lock: ``BEGIN IMMEDIATE`` on SQLite, a
  transaction-scoped advisory lock on PostgreSQL. Writes are short and rare next to reads, and
  serializing them makes serials grow in commit order (a follower reading the journal never misses
  a serial that commits late) and makes check-then-insert (namespace overlap, filename reuse) safe.
- Every write transaction on PostgreSQL notifies ``headwater_changes`` (the change signal of
  :mod:`headwater.db.generation`; SQLite needs nothing: its ``data_version`` sees every commit).
- Reads that take several statements see one snapshot (SQLite WAL; PostgreSQL REPEATABLE READ).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry

from headwater.db.errors import DatabaseError, DatabaseUnavailable, mask_url
from headwater.db.generation import CHANNEL

log = logging.getLogger("headwater.db")

__all__ = ["BUSY_TIMEOUT_MS", "make_engine", "reading", "shown_url", "unavailable", "writing"]

#: How long a SQLite writer waits for another's lock before failing.
BUSY_TIMEOUT_MS = 30_000
# pg_advisory_xact_lock key of the write lock: "headwater" in ASCII, read as a number.
_PG_WRITE_LOCK = 0x68656164776174
_WRITE = "headwater_write"


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Take transactions out of the sqlite3 module's hands: it would BEGIN DEFERRED lazily, and a
    # deferred transaction that later writes can fail with SQLITE_BUSY without waiting.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # The timeout first: switching to WAL needs a moment of exclusive access.
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def _private_sqlite_file(path: str) -> None:
    """Create the SQLite database file 0600 before SQLite does: SQLite makes it 0644 less the
    umask (readable by every local user), and its ``-wal`` and ``-shm`` files copy the database
    file's mode. A file an older headwater made readable by others is tightened (with its -wal
    and -shm). Failures are left to SQLite to report when it connects."""
    try:
        # O_EXCL: an existing database is never opened here. Closing any descriptor of a file
        # drops every POSIX lock this process holds on it, SQLite's included.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:
        return  # a missing folder, or not ours to write: connecting says so
    for name in (Path(path), Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(name.stat().st_mode)
            if mode & 0o077:
                name.chmod(0o600)
                log.warning("%s was mode %s: changed to 0600", name, oct(mode)[2:].zfill(4))
        except OSError:
            continue


def make_engine(url: str) -> Engine:
    """An engine for ``url`` configured as the module docstring says.

    Raises:
        DatabaseError: the URL is malformed, names another kind of database, or in-memory SQLite.
        DatabaseUnavailable: a SQLite file whose directory does not exist.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise DatabaseError(
            f"cannot parse the database URL {mask_url(url)!r}: use sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST/DATABASE"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:") or parsed.database.startswith("file::memory"):
            raise DatabaseError(
                "an in-memory SQLite database cannot be shared between connections: give a file "
                "path (sqlite:///PATH)"
            )
        if not parsed.database.startswith("file:"):
            folder = Path(parsed.database).parent
            if not folder.is_dir():
                # SQLite would say only "unable to open database file".
                raise DatabaseUnavailable(
                    f"database sqlite:///{parsed.database} cannot be opened: {folder} is not a "
                    "directory; give the data directory a server uses (--data-dir) or its "
                    "database (--database); `headwater db upgrade` creates a new one"
                )
            _private_sqlite_file(parsed.database)
        engine = sa.create_engine(
            parsed.set(drivername="sqlite+pysqlite"),
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
            pool_pre_ping=False,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if backend == "postgresql":
        return sa.create_engine(
            parsed.set(drivername="postgresql+psycopg"),
            pool_pre_ping=True,
            connect_args={"connect_timeout": 10},
        )
    raise DatabaseError(
        f"unsupported database {mask_url(url)!r}: headwater speaks SQLite (sqlite:///PATH) and "
        "PostgreSQL (postgresql://...)"
    )


def shown_url(engine: Engine) -> str:
    """The engine's URL as a user wrote it: no driver name, password masked."""
    url = engine.url
    return mask_url(
        url.set(drivername=url.get_backend_name()).render_as_string(hide_password=False)
    )


def unavailable(engine: Engine, exc: BaseException) -> DatabaseUnavailable:
    """The error to raise for a driver failure ``exc`` on ``engine``."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    return DatabaseUnavailable(
        f"database {shown_url(engine)} failed: {first}. Nothing "
        "was changed by this call; check that the database is running and reachable, then retry."
    )


@contextmanager
def writing(engine: Engine, *, quiet: bool = False) -> Iterator[Connection]:
    """A write transaction holding the write lock; commits on success, rolls back on error.

    It moves the change signal (:mod:`headwater.db.generation`) unless ``quiet``: a write to
    tables no cache is derived from (the sign-in counters, new password sessions, the audit log)
    must not make every server process drop its pages, or anyone could slow the Simple API by
    posting wrong passwords. On PostgreSQL a loud write sends the notification; on SQLite it adds
    one to the file's ``user_version``, which the signal compares (``data_version`` moves with
    every commit, quiet or not).

    Raises:
        DatabaseUnavailable: the database could not be reached or failed.
    """
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(**{_WRITE: True})
            with conn.begin():
                postgres = conn.dialect.name == "postgresql"
                if postgres and quiet:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_WRITE_LOCK)))
                elif postgres:
                    # The change signal (headwater.db.generation): delivered to every listener
                    # at commit, dropped on rollback; one round trip with the lock.
                    conn.execute(
                        sa.select(
                            sa.func.pg_advisory_xact_lock(_PG_WRITE_LOCK),
                            sa.func.pg_notify(CHANNEL, ""),
                        )
                    )
                yield conn
                if not quiet and conn.dialect.name == "sqlite":
                    # In the same transaction (the write lock is held: no lost update).
                    version = conn.exec_driver_sql("PRAGMA user_version").scalar() or 0
                    conn.exec_driver_sql(f"PRAGMA user_version = {(int(version) + 1) % 2**31}")
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise unavailable(engine, exc) from exc


@contextmanager
def reading(engine: Engine, *, snapshot: bool = False) -> Iterator[Connection]:
    """A read-only transaction. With ``snapshot``, all its statements see one snapshot (needed
    when a read takes several statements; SQLite transactions always do, PostgreSQL needs
    REPEATABLE READ, which costs two more round trips, so single statements go without).

    Raises:
        DatabaseUnavailable: the database could not be reached or failed.
    """
    try:
        with engine.connect() as conn:
            if snapshot and conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise unavailable(engine, exc) from exc
