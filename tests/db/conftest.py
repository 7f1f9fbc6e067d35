"""Database fixtures: every test body runs on SQLite and on a real PostgreSQL.

One upgraded database per backend per session; each test starts from empty tables (and serials
from 1). Tests that need an empty, unmigrated database use ``empty_url``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from headwater.db import Database
from headwater.db import schema as t
from tests.postgres import fresh_database

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def _session_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Database]]:
    made: dict[str, Database] = {}
    with fresh_database() as pg_url:
        sqlite_url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'session.sqlite3'}"
        for backend, url in (("sqlite", sqlite_url), ("postgresql", pg_url)):
            db = Database.connect(url)
            db.upgrade()
            made[backend] = db
        yield made
        for db in made.values():
            db.close()


def _clear(db: Database) -> None:
    engine = db._engine
    names = [table.name for table in reversed(t.metadata.sorted_tables)]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            quoted = ", ".join(f'"{n}"' for n in names)
            conn.exec_driver_sql(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
        else:
            for name in names:
                conn.execute(sa.delete(t.metadata.tables[name]))
            conn.exec_driver_sql("DELETE FROM sqlite_sequence")


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, _session_databases: dict[str, Database]) -> Database:
    """An upgraded database with empty tables, on each backend."""
    database = _session_databases[request.param]
    _clear(database)
    return database


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database (no schema), on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    else:
        with fresh_database() as url:
            yield url


@pytest.fixture
def alice(db: Database) -> str:
    db.create_user("alice")
    return "alice"
