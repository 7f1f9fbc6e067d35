"""Connecting, migrations and schema checks, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from headwater.db import (
    HEAD,
    Database,
    DatabaseError,
    DatabaseUnavailable,
    SchemaOutOfDate,
    migrate,
)
from headwater.db.errors import mask_url
from headwater.db.schema import metadata
from headwater.errors import HeadwaterError


def test_migrations_from_empty_are_idempotent(empty_url: str) -> None:
    with Database.connect(empty_url) as db:
        with pytest.raises(SchemaOutOfDate, match="revision none"):
            db.check_schema()
        assert db.upgrade() == (None, HEAD)
        assert db.upgrade() == (HEAD, HEAD)
        db.check_schema()
        assert db.last_serial("main") == 0


def test_check_schema_on_an_old_revision_says_what_to_run(empty_url: str) -> None:
    with Database.connect(empty_url) as db:
        migrate.upgrade(db._engine, "0001")
        with pytest.raises(SchemaOutOfDate) as caught:
            db.check_schema()
        assert str(caught.value) == (
            f"database at {mask_url(empty_url)} is at revision 0001, headwater needs {HEAD}: "
            "run `headwater db upgrade`"
        )
        assert (caught.value.current, caught.value.needed) == ("0001", HEAD)
        password = sa.make_url(empty_url).password
        if password:
            assert password not in str(caught.value)
        assert db.upgrade() == ("0001", HEAD)
        db.check_schema()


def test_check_schema_refuses_a_revision_from_a_newer_headwater(empty_url: str) -> None:
    with Database.connect(empty_url) as db:
        db.upgrade()
        with db._engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(
            SchemaOutOfDate, match="revision 9999, which this headwater does not know"
        ):
            db.check_schema()


def test_upgrade_refuses_a_revision_from_a_newer_headwater_and_changes_nothing(
    empty_url: str,
) -> None:
    """``headwater serve`` upgrades at start: an older headwater started on a database a newer
    one migrated (a rolling deployment gone wrong) must say so, not fail inside Alembic."""
    with Database.connect(empty_url) as db:
        db.upgrade()
        with db._engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(
            SchemaOutOfDate, match="revision 9999, which this headwater does not know"
        ) as caught:
            db.upgrade()
        assert caught.value.current == "9999"
        with db._engine.connect() as conn:
            assert (
                conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "9999"
            )


def test_migrations_build_exactly_the_declared_schema(empty_url: str) -> None:
    with Database.connect(empty_url) as db:
        db.upgrade()
        with db._engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []


def test_head_is_alembics_head_and_history_is_linear() -> None:
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert scripts.get_current_head() == HEAD
    assert tuple(reversed([s.revision for s in scripts.walk_revisions()])) == migrate.REVISIONS


def test_concurrent_upgrades_apply_each_migration_once(empty_url: str) -> None:
    dbs = [Database.connect(empty_url) for _ in range(4)]
    barrier = threading.Barrier(len(dbs))
    results: list[tuple[str | None, str]] = []
    errors: list[BaseException] = []

    def run(db: Database) -> None:
        barrier.wait()
        try:
            results.append(db.upgrade())
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(db,)) for db in dbs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for db in dbs:
        db.close()
    assert errors == []
    assert sorted(results, key=lambda r: r[0] or "") == [(None, HEAD)] + [(HEAD, HEAD)] * 3


def test_sqlite_is_wal_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    with (
        Database.connect(f"sqlite:///{tmp_path / 'x.sqlite3'}") as db,
        db._engine.connect() as conn,
    ):
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_foreign_keys_are_enforced(db: Database) -> None:
    from headwater.db import schema as t

    with pytest.raises(sa.exc.IntegrityError), db._engine.begin() as conn:
        conn.execute(sa.insert(t.owners).values(project_id=12345, user="nobody"))


def test_unreachable_postgresql_names_the_url_without_password() -> None:
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/headwater"
    with pytest.raises(DatabaseUnavailable) as caught:
        Database.connect(url)
    message = str(caught.value)
    assert "postgresql://someone:***@127.0.0.1:1/headwater" in message
    assert "s3cret-pw" not in message
    assert isinstance(caught.value, HeadwaterError)


def test_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailable, match="sqlite:///"):
        Database.connect(f"sqlite:///{tmp_path / 'missing-dir' / 'x.sqlite3'}")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("mysql://u:pw@localhost/db", r"unsupported database 'mysql://u:\*\*\*@localhost/db'"),
        ("not a url", "cannot parse"),
    ],
)
def test_bad_urls_are_refused_clearly(url: str, match: str) -> None:
    with pytest.raises(DatabaseError, match=match):
        Database.connect(url)


def test_mask_url() -> None:
    assert mask_url("postgresql://u:pw@h:5/d?x=1") == "postgresql://u:***@h:5/d?x=1"
    assert mask_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert mask_url("sqlite:///a/b") == "sqlite:///a/b"
    assert mask_url("postgresql://h/d?user=u&password=pw") == "postgresql://h/d?user=u&password=***"


def test_wrong_postgresql_password_is_unavailable_and_masked(
    _session_databases: dict[str, Database],
) -> None:
    url = _session_databases["postgresql"]._engine.url.set(
        drivername="postgresql", password="wrong-password-123"
    )
    with pytest.raises(DatabaseUnavailable, match="password authentication failed") as caught:
        Database.connect(url.render_as_string(hide_password=False))
    assert "wrong-password-123" not in str(caught.value)
    assert ":***@127.0.0.1" in str(caught.value)


def test_ping_and_close_then_reuse(db: Database) -> None:
    db.ping()
    db.close()
    db.ping()  # the pool reconnects
    assert "***" in repr(db) or db.url.startswith("sqlite")
