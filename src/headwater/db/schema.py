"""The tables of a headwater database (SQLAlchemy Core), at the newest migration.

The migrations in :mod:`headwater.db.migrations` build exactly this schema; a test compares them.
Every table has an ``index`` column (the hosted index's name): one database serves many indexes.
Project names are stored normalized (``name``) beside the name the first upload gave
(``display_name``).

- ``journal``: one row per change to an index; its ``serial`` is the change's serial (PyPI's
  changelog). Serials grow with commit order because every write holds the write lock.
- ``projects``, ``files``: what a hosted index serves. A filename is unique per index.
- ``deleted_files``: filenames that were deleted; like PyPI, they can never be uploaded again.
- ``users``, ``tokens``, ``owners``, ``namespaces``: who may do what.
- ``publishers``, ``minted_tokens``, ``oidc_jtis``, ``publishing_log``: trusted publishing (the
  CI identities that may publish a project, the short-lived tokens minted for them, the OIDC
  token ids already used, and the audit log of mints and uploads); see
  :mod:`headwater.db.publishers`.
- ``pending_blobs``: storage keys an upload is writing right now (before its file row exists),
  which the garbage collector must not delete (:mod:`headwater.db.blobs`).
- ``ui_sessions``, ``sign_in_throttle``: the interface's password sessions and the counters of
  failed sign-ins per user and per client address (:mod:`headwater.db.passwords`).
- ``admin_audit``: every change made through the administration pages (who, what, when, from
  where); see :mod:`headwater.db.audit`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "UTCDateTime",
    "admin_audit",
    "deleted_files",
    "files",
    "journal",
    "metadata",
    "minted_tokens",
    "namespaces",
    "oidc_jtis",
    "owners",
    "pending_blobs",
    "projects",
    "publishers",
    "publishing_log",
    "sign_in_throttle",
    "tokens",
    "ui_sessions",
    "users",
]


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime on every database (SQLite stores naive text; we store UTC there)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: headwater stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Stable constraint names, so migrations can refer to them on every database.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_NAME = 200  # headwater.simple.names.MAX_NAME_LENGTH
_PASSWORD_HASH = 200
_INDEX = 100
_FILENAME = 255
_SHA = 64

journal = sa.Table(
    "journal",
    metadata,
    sa.Column("serial", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("index", sa.String(_INDEX), nullable=False),
    sa.Column("project", sa.String(_NAME), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("version", sa.String(200), nullable=True),
    sa.Column("filename", sa.String(_FILENAME), nullable=True),
    sa.Column("actor", sa.String(100), nullable=True),
    sa.Column("time", UTCDateTime, nullable=False),
    sa.Index(None, "index", "serial"),
    sa.Index(None, "index", "project", "serial"),
    # SQLite: AUTOINCREMENT, so a serial is never handed out twice even after rows are deleted.
    sqlite_autoincrement=True,
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("index", sa.String(_INDEX), nullable=False),
    sa.Column("name", sa.String(_NAME), nullable=False),
    sa.Column("display_name", sa.String(_NAME), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="active"),
    sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("alternate_locations", sa.JSON, nullable=False),
    sa.Column("tracks", sa.JSON, nullable=False),
    sa.Column("last_serial", sa.Integer, nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.UniqueConstraint("index", "name"),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "project_id",
        sa.Integer,
        sa.ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("index", sa.String(_INDEX), nullable=False),
    sa.Column("filename", sa.String(_FILENAME), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("sha256", sa.String(_SHA), nullable=False),
    sa.Column("blake2_256", sa.String(_SHA), nullable=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("upload_time", UTCDateTime, nullable=False),
    sa.Column("requires_python", sa.Text, nullable=True),
    sa.Column("metadata_sha256", sa.String(_SHA), nullable=True),
    sa.Column("yanked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("yanked_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("storage_key", sa.String(1000), nullable=False),
    sa.Column("uploader", sa.String(100), nullable=True),
    # PEP 740: sha256 of the provenance document stored beside the file (``<file>.provenance``)
    # and the publisher identities it proved (specs, headwater.policy.publishers), if attested.
    sa.Column("provenance_sha256", sa.String(_SHA), nullable=True),
    sa.Column("publishers", sa.JSON, nullable=True),
    # The database settles two uploads of one filename: exactly one insert wins.
    sa.UniqueConstraint("index", "filename"),
    # The garbage collector's re-check: does any file of the index refer to this key?
    sa.Index(None, "index", "storage_key"),
)

deleted_files = sa.Table(
    "deleted_files",
    metadata,
    sa.Column("index", sa.String(_INDEX), primary_key=True),
    sa.Column("filename", sa.String(_FILENAME), primary_key=True),
    sa.Column("project", sa.String(_NAME), nullable=False),
    sa.Column("sha256", sa.String(_SHA), nullable=False),
    sa.Column("serial", sa.Integer, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("created", UTCDateTime, nullable=False),
    # The interface password's Argon2id hash (PHC string: parameters, salt, hash); never the
    # password. NULL: the user has no password (tokens only). See headwater.db.passwords.
    sa.Column("password_hash", sa.String(_PASSWORD_HASH), nullable=True),
    sa.Column("password_changed", UTCDateTime, nullable=True),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "user",
        sa.String(100),
        sa.ForeignKey("users.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("secret_sha256", sa.String(_SHA), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("indexes", sa.JSON, nullable=True),
    sa.Column("projects", sa.JSON, nullable=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("expires", UTCDateTime, nullable=True),
    sa.Column("revoked", UTCDateTime, nullable=True),
)

owners = sa.Table(
    "owners",
    metadata,
    sa.Column(
        "project_id",
        sa.Integer,
        sa.ForeignKey("projects.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "user",
        sa.String(100),
        sa.ForeignKey("users.name", ondelete="CASCADE"),
        primary_key=True,
    ),
)

namespaces = sa.Table(
    "namespaces",
    metadata,
    sa.Column("index", sa.String(_INDEX), primary_key=True),
    sa.Column("name", sa.String(_NAME), primary_key=True),
    sa.Column(
        "owner", sa.String(100), sa.ForeignKey("users.name", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("open", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created", UTCDateTime, nullable=False),
)

_ISSUER = 500

publishers = sa.Table(
    "publishers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("index", sa.String(_INDEX), nullable=False),
    sa.Column("project", sa.String(_NAME), nullable=False),
    # Set once the publisher is bound to the project (it existed, or this publisher created it).
    # Deleting the project deletes its publishers, as on PyPI.
    sa.Column(
        "project_id",
        sa.Integer,
        sa.ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    # A pending publisher may create the project; once it has, it is an ordinary one.
    sa.Column("pending", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("issuer", sa.String(_ISSUER), nullable=False),
    sa.Column("identity", sa.JSON, nullable=False),
    # The user who owns a project this (pending) publisher creates; None: nobody but an admin.
    sa.Column(
        "owner", sa.String(100), sa.ForeignKey("users.name", ondelete="SET NULL"), nullable=True
    ),
    sa.Column("origin", sa.String(20), nullable=False),
    sa.Column("added_by", sa.String(100), nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Index(None, "index", "project"),
)

minted_tokens = sa.Table(
    "minted_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("secret_sha256", sa.String(_SHA), nullable=False),
    # [[index, project, publisher id], ...]: exactly what the token may upload, and why.
    sa.Column("grants", sa.JSON, nullable=False),
    sa.Column("issuer", sa.String(_ISSUER), nullable=False),
    sa.Column("subject", sa.String(_ISSUER), nullable=False),
    # The OIDC token's claims (bounded), for the audit log.
    sa.Column("claims", sa.JSON, nullable=False),
    sa.Column("single_use", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("expires", UTCDateTime, nullable=False),
    sa.Column("used", UTCDateTime, nullable=True),
    sa.Column("revoked", UTCDateTime, nullable=True),
    sa.Index(None, "created"),
)

oidc_jtis = sa.Table(
    "oidc_jtis",
    metadata,
    # sha256 of issuer NUL jti: bounded whatever the issuer sends.
    sa.Column("key", sa.String(_SHA), primary_key=True),
    sa.Column("expires", UTCDateTime, nullable=False, index=True),
)

publishing_log = sa.Table(
    "publishing_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", UTCDateTime, nullable=False),
    sa.Column("token_id", sa.String(32), nullable=False, index=True),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("index", sa.String(_INDEX), nullable=False),
    sa.Column("project", sa.String(_NAME), nullable=False),
    sa.Column("filename", sa.String(_FILENAME), nullable=True),
    sa.Column("publisher_id", sa.Integer, nullable=True),
    sqlite_autoincrement=True,
)

pending_blobs = sa.Table(
    "pending_blobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("index", sa.String(_INDEX), nullable=False),
    sa.Column("storage_key", sa.String(1000), nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Index(None, "index", "storage_key"),
)

admin_audit = sa.Table(
    "admin_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", UTCDateTime, nullable=False, index=True),
    # The token's user, or "-" for a change refused before anyone was known.
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("index", sa.String(_INDEX), nullable=True),
    sa.Column("project", sa.String(_NAME), nullable=True),
    sa.Column("detail", sa.String(1000), nullable=False),
    # The client's address as the server saw it (behind a proxy: the proxy's).
    sa.Column("origin", sa.String(100), nullable=False),
    sa.Column("via", sa.String(10), nullable=False),
    sqlite_autoincrement=True,
)

ui_sessions = sa.Table(
    "ui_sessions",
    metadata,
    # The session's id; the browser holds hws_<id>_<secret>, the database only its sha256.
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "user",
        sa.String(100),
        sa.ForeignKey("users.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("secret_sha256", sa.String(_SHA), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("expires", UTCDateTime, nullable=False, index=True),
)

sign_in_throttle = sa.Table(
    "sign_in_throttle",
    metadata,
    # sha256 of "user NUL name" or "address NUL client": bounded whatever was typed.
    sa.Column("key", sa.String(_SHA), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("since", UTCDateTime, nullable=False, index=True),
    sa.Column("locked_until", UTCDateTime, nullable=True),
)
