"""tests/postgres.py: fresh databases, dropped afterwards; failures fail, never skip."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests import postgres


def _exists(name: str) -> bool:
    with psycopg.connect(postgres.server_url(), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def test_fresh_databases_are_distinct_empty_and_dropped() -> None:
    with postgres.fresh_database() as first, postgres.fresh_database() as second:
        assert first != second
        names = [url.rsplit("/", 1)[1] for url in (first, second)]
        # Left open on purpose: a test that leaks a connection must not leak its database.
        leaked = psycopg.connect(first, autocommit=True)
        tables = leaked.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        assert all(_exists(n) for n in names)
    try:
        assert not any(_exists(n) for n in names)
    finally:
        leaked.close()


def test_a_server_that_cannot_start_fails_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "_SCRIPT", Path("/nonexistent/scripts/postgres"))
    postgres._server_url.cache_clear()
    try:
        with pytest.raises(pytest.fail.Exception, match="PostgreSQL is needed"):
            postgres.server_url()
    finally:
        postgres._server_url.cache_clear()


def test_a_server_off_loopback_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_TEST_POSTGRES_URL", "postgresql://u:pw@db.example.com/x")
    postgres._server_url.cache_clear()
    try:
        with pytest.raises(pytest.fail.Exception, match="must be on loopback"):
            postgres.server_url()
    finally:
        postgres._server_url.cache_clear()
