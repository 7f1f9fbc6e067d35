"""A real PostgreSQL for tests: one fresh, empty database per call, dropped afterwards.

:func:`server_url` runs ``scripts/postgres`` once per test process: it starts Debian's cluster if it
is down (creating one if the machine has none) and returns a loopback URL for a role that may create
databases. :func:`fresh_database` creates a uniquely named database with it, yields its URL, and drops
it afterwards (also when connections are still open). ``postgres_url`` is the pytest fixture.

If PostgreSQL cannot be started, the test FAILS (never skips) with the script's message: the suite
needs it, and ``scripts/setup-system`` installs it. ``HEADWATER_TEST_POSTGRES_URL`` points the tests
at another server instead (it must be on loopback, or the tests refuse it).
"""

from __future__ import annotations

import functools
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

__all__ = ["fresh_database", "postgres_url", "server_url"]

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postgres"
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@functools.cache
def _server_url_or_error() -> str | RuntimeError:
    # The failure is cached too: every database test would otherwise wait for the same timeout.
    try:
        return _run_script()
    except RuntimeError as exc:
        return exc


def _server_url() -> str:
    outcome = _server_url_or_error()
    if isinstance(outcome, RuntimeError):
        raise outcome
    return outcome


def _run_script() -> str:
    try:
        done = subprocess.run(
            [str(_SCRIPT)], capture_output=True, text=True, timeout=150, check=False
        )
    except subprocess.TimeoutExpired as exc:
        said = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        raise RuntimeError(
            f"scripts/postgres did not finish in {exc.timeout:.0f} s; it said:\n{(said or '').strip()}"
        ) from exc
    except OSError as exc:
        raise RuntimeError(f"scripts/postgres could not run: {exc}") from exc
    if done.returncode != 0:
        raise RuntimeError(f"scripts/postgres exited {done.returncode}:\n{done.stderr.strip()}")
    url = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    host = urlsplit(url).hostname
    if host not in _LOOPBACK:
        raise RuntimeError(f"the test PostgreSQL must be on loopback, not {host!r}")
    return url


def server_url() -> str:
    """A URL for a role that may create databases; fails the calling test if there is none."""
    try:
        return _server_url()
    except RuntimeError as exc:
        pytest.fail(
            f"PostgreSQL is needed by the database tests and could not be started: {exc}\n"
            "Run scripts/setup-system (as root, or with sudo) to install it, then scripts/postgres "
            "to see why it does not start.",
            pytrace=False,
        )


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create an empty database with a unique name; yield its URL; drop it afterwards."""
    admin = server_url()
    name = f"hw_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(admin, name)
    finally:
        _drop(admin, name)


def _drop(admin: str, name: str, *, patience: float = 30.0) -> None:
    """Drop database ``name``, ending its connections: FORCE (PostgreSQL 13+), so a test that
    leaked a connection does not leak the database.

    FORCE may only end backends of our own role. An autovacuum worker that the server started on
    the new database belongs to none, so the drop is refused ("must be a member of the role whose
    process is being terminated"; CI of 2026-12-03) until the worker is done, which takes
    moments: such a refusal is retried until ``patience`` seconds have passed."""
    deadline = time.monotonic() + patience
    while True:
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            return
        except psycopg.errors.InsufficientPrivilege:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    with fresh_database() as url:
        yield url
