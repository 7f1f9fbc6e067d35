"""What the database API takes and returns: frozen structs and result enums.

Times are aware UTC datetimes. Project names are :class:`~headwater.simple.names.NormalizedName`.
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from headwater.simple.model import ProjectStatus
from headwater.simple.names import NormalizedName

__all__ = [
    "SCOPES",
    "AddResult",
    "Change",
    "FileRecord",
    "NamespaceGrant",
    "NewFile",
    "ProjectRecord",
    "ProjectSummary",
    "TokenInfo",
    "User",
]

#: Token scopes. ``read``: private indexes; ``upload``; ``manage``: yank, delete, status and
#: alternate-locations of projects the user owns; ``admin``: everything (tracks, namespaces, users).
SCOPES = frozenset({"read", "upload", "manage", "admin"})


class AddResult(enum.Enum):
    """The outcome of :meth:`headwater.db.Database.add_file`."""

    #: The file is now part of the index (a new serial).
    CREATED = "created"
    #: The same filename with the same sha256 is there already: nothing changed.
    IDENTICAL = "identical"
    #: The filename is there with other content: nothing changed.
    CONFLICT = "conflict"
    #: The filename was deleted before; like PyPI, a filename is never reused.
    PREVIOUSLY_DELETED = "previously deleted"
    #: PEP 792: an archived project accepts no uploads.
    ARCHIVED = "archived"
    #: PEP 792: a quarantined project accepts no uploads.
    QUARANTINED = "quarantined"
    #: ``owners_only``: the project exists and the uploader is not one of its owners.
    NOT_OWNER = "not an owner"


class _FileFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What a file is: the facts an upload establishes and a record keeps."""

    filename: str
    version: str
    sha256: str
    size: int
    upload_time: datetime
    storage_key: str
    blake2_256: str | None = None
    requires_python: str | None = None
    #: PEP 658: sha256 of the ``.metadata`` file served beside the file, if any.
    metadata_sha256: str | None = None
    #: PEP 740: sha256 of the provenance document stored beside the file, if it is attested.
    provenance_sha256: str | None = None
    #: The publisher identities the provenance proved, as specs (``github:OWNER/REPO:WORKFLOW``).
    publishers: tuple[str, ...] = ()


class NewFile(_FileFacts, frozen=True, kw_only=True):
    """A file to add to a project. ``display_name`` names a project the upload creates."""

    display_name: str | None = None


class FileRecord(_FileFacts, frozen=True, kw_only=True):
    """A file of a hosted project. ``yanked`` is False, or the reason (possibly empty) it was yanked."""

    yanked: bool | str = False
    uploader: str | None = None


class ProjectRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A hosted project with everything its page shows. ``files`` are sorted by filename."""

    name: NormalizedName
    display_name: str
    status: ProjectStatus
    status_reason: str
    alternate_locations: tuple[str, ...]
    tracks: tuple[str, ...]
    last_serial: int
    files: tuple[FileRecord, ...]


class ProjectSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One project of an index's project list."""

    name: NormalizedName
    display_name: str
    last_serial: int
    status: ProjectStatus


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One journal entry: the change that got ``serial``.

    ``action`` is one of ``create``, ``add file``, ``yank``, ``unyank``, ``delete file``,
    ``delete release``, ``delete project``, ``status``, ``alternate-locations``, ``tracks``.
    """

    serial: int
    index: str
    project: NormalizedName
    action: str
    version: str | None
    filename: str | None
    actor: str | None
    time: datetime


class User(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    created: datetime
    #: The user has an interface password (headwater.db.passwords); never the hash itself.
    password: bool = False


class NamespaceGrant(msgspec.Struct, frozen=True, kw_only=True):
    """PEP 752: ``name`` and every ``name-*`` project of ``index`` belong to ``owner``.

    ``open``: anyone may create projects in it (PEP 752 "open" namespaces); otherwise only the
    owner (or an admin). ``created`` lets a caller exempt projects older than the grant.
    """

    index: str
    name: NormalizedName
    owner: str
    open: bool
    created: datetime


class TokenInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An API token, never its secret. ``indexes``/``projects`` None means "all"."""

    id: str
    user: str
    scopes: frozenset[str]
    indexes: frozenset[str] | None
    projects: frozenset[NormalizedName] | None
    description: str
    created: datetime
    expires: datetime | None
    revoked: datetime | None
    #: Minted for a trusted publisher (headwater.db.minting): ``user`` is a label, not a user,
    #: and each upload asks which publisher allows it.
    minted: bool = False
    #: A password session of the interface (headwater.db.passwords), not an API token: ``id``
    #: is the session's, ``expires`` its end.
    session: bool = False
