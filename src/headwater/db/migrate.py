"""Schema migrations: Alembic, configured in code, with its scripts inside the package.

No ``alembic.ini`` and no files outside the installed package: :func:`alembic_config` points
Alembic at :mod:`headwater.db.migrations` and hands it an open connection. :func:`upgrade` runs
inside one write transaction (holding the write lock), so several processes upgrading at once
apply each migration once; on SQLite and PostgreSQL DDL is transactional, so a failed migration
leaves the previous revision intact.

Checking the schema does not import Alembic (150 ms of a server's start, measured with
``python -X importtime``): :func:`check_schema` reads Alembic's ``alembic_version`` table itself
and compares it with :data:`HEAD` (a test checks that ``HEAD`` is Alembic's head).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from headwater.db.engine import reading, shown_url, writing
from headwater.db.errors import SchemaOutOfDate

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HEAD",
    "REVISIONS",
    "alembic_config",
    "check_schema",
    "current_revision",
    "upgrade",
]

#: Every revision in order; the last is the one this headwater needs. Add new ones here too.
REVISIONS = ("0001", "0002", "0004", "0003g", "0006", "0005", "0007")
HEAD = REVISIONS[-1]

_VERSION_TABLE = "alembic_version"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for headwater's migrations, using ``connection`` if given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "headwater.db:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _revision(conn: Connection) -> str | None:
    if not sa.inspect(conn).has_table(_VERSION_TABLE):
        return None
    version = sa.table(_VERSION_TABLE, sa.column("version_num", sa.String))
    rows = conn.execute(sa.select(version.c.version_num)).scalars().all()
    # Alembic keeps one row per branch head; headwater's history is linear.
    return rows[0] if len(rows) == 1 else (None if not rows else ",".join(sorted(rows)))


def current_revision(engine: Engine) -> str | None:
    """The database's revision (None for an empty database).

    Raises:
        DatabaseUnavailable: the database could not be reached.
    """
    with reading(engine) as conn:
        return _revision(conn)


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Apply the migrations up to ``revision``; return (revision before, revision after).

    Idempotent: a database at ``revision`` is left alone. A database at a revision this
    headwater does not know (a newer headwater migrated it) is refused before Alembic runs:
    there is nothing to upgrade, and an older headwater must not serve it.

    Raises:
        DatabaseUnavailable: the database could not be reached or a migration failed.
        SchemaOutOfDate: the database was migrated by a newer headwater.
    """
    from alembic import command

    with writing(engine) as conn:
        before = _revision(conn)
        if before is not None and before not in REVISIONS:
            raise SchemaOutOfDate(_newer(shown_url(engine), before), current=before, needed=HEAD)
        command.upgrade(alembic_config(conn), revision)
        after = _revision(conn)
    assert after is not None
    return before, after


def check_schema(engine: Engine) -> None:
    """Raise unless the database is at :data:`HEAD`.

    Raises:
        SchemaOutOfDate: the database is empty, older, or newer than this headwater.
        DatabaseUnavailable: the database could not be reached.
    """
    current = current_revision(engine)
    if current == HEAD:
        return
    where = shown_url(engine)
    if current is not None and current not in REVISIONS:
        message = _newer(where, current)
    else:
        shown = current or "none (an empty database)"
        message = (
            f"database at {where} is at revision {shown}, headwater needs {HEAD}: run "
            "`headwater db upgrade`"
        )
    raise SchemaOutOfDate(message, current=current, needed=HEAD)


def _newer(where: str, current: str) -> str:
    return (
        f"database at {where} is at revision {current}, which this headwater does not know "
        f"(it needs {HEAD}): a newer headwater migrated it; run that version, never an "
        "older one, on this database"
    )
