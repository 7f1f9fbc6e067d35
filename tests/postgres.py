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
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            # FORCE (PostgreSQL 13+): a test that leaked a connection must not leak the database.
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    with fresh_database() as url:
        yield url
