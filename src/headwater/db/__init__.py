"""The database of hosted indexes: schema, migrations, and a synchronous access API.

::

    from headwater.db import Database
    db = Database.connect("sqlite:///data/headwater.sqlite3")   # or postgresql://...
    db.upgrade()                                                 # `headwater db upgrade`
    db.check_schema()                                            # at server start
    db.add_file("main", "acme-tools", NewFile(...), uploader="alice")

:class:`Database` is synchronous and thread-safe (call it through ``asyncio.to_thread``); several
processes may share one database. See :mod:`headwater.db.database` for serials, transactions,
reading projects and adding files, :mod:`headwater.db.changes` for yanks, deletions and project
settings, :mod:`headwater.db.access` for users, tokens, owners and namespaces, :mod:`headwater.db.engine` for
SQLite and PostgreSQL specifics, and ``docs/database.md``.
"""

from __future__ import annotations

from headwater.db.access import TOKEN_PREFIX, parse_token
from headwater.db.database import Database
from headwater.db.errors import (
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    InvalidArgument,
    NotFound,
    SchemaOutOfDate,
)
from headwater.db.identities import (
    GITHUB_ISSUER,
    GITLAB_ISSUER,
    GitHubIdentity,
    GitLabIdentity,
    Identity,
    OidcIdentity,
)
from headwater.db.migrate import HEAD
from headwater.db.minting import Grant, MintedToken, PublishingRecord, Replayed
from headwater.db.publishers import ConfiguredPublisher, Publisher
from headwater.db.records import (
    SCOPES,
    AddResult,
    Change,
    FileRecord,
    NamespaceGrant,
    NewFile,
    ProjectRecord,
    ProjectSummary,
    TokenInfo,
    User,
)

__all__ = [
    "GITHUB_ISSUER",
    "GITLAB_ISSUER",
    "HEAD",
    "SCOPES",
    "TOKEN_PREFIX",
    "AddResult",
    "Change",
    "ConfiguredPublisher",
    "Conflict",
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "FileRecord",
    "GitHubIdentity",
    "GitLabIdentity",
    "Grant",
    "Identity",
    "InvalidArgument",
    "MintedToken",
    "NamespaceGrant",
    "NewFile",
    "NotFound",
    "OidcIdentity",
    "ProjectRecord",
    "ProjectSummary",
    "Publisher",
    "PublishingRecord",
    "Replayed",
    "SchemaOutOfDate",
    "TokenInfo",
    "User",
    "parse_token",
]
