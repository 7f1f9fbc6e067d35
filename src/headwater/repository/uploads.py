"""Accepting a distribution into a hosted index: who may, what is checked, the order of writes.

The HTTP layer (``server/upload.py``) has already streamed the body to a local temp file, checked
the form and the digests, and read the distribution's own metadata. This module decides, with
the database, whether the upload is allowed, and makes it visible atomically:

1. refuse what the project's state forbids (PEP 792: archived and quarantined projects accept no
   uploads), new names in someone else's PEP 752 namespace (409), and filenames that exist with
   other content or were deleted (never reusable, as on PyPI). Who may upload to an existing
   project (its owners, or an admin) is :func:`headwater.server.authz.decide`'s answer, asked
   before this module runs: a non-owner never reaches the "identical file: OK" answer.
   Ownership is checked again here and in the write transaction itself, because a project the
   decision saw as new can be created by another user before this upload is recorded;
2. reserve the file's storage key in the database (:mod:`headwater.db.blobs`), then write the
   file, its ``.metadata`` and its PEP 740 ``.provenance`` to storage (content-addressed keys, atomic writes); the
   reservation keeps the garbage collector (:mod:`headwater.repository.collector`) away from
   objects that have no row *yet*;
3. record the file in the database, which is what makes it visible; the database's uniqueness
   settles two concurrent uploads of one filename. Then the reservation is released.

An upload that does not end with its row (refused, lost a race, failed, cancelled) removes its
objects through :meth:`headwater.db.Database.delete_unreferenced`, which looks again, under the
write lock, whether a row (another upload's of the same bytes, a commit whose answer was lost)
or another upload's reservation now refers to them: an object some row needs is never deleted.
A crash between 2 and 3 leaves an unreferenced object, nothing visible, and a reservation that
``headwater gc`` honours for a day and then collects with the object.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from headwater.db import AddResult, NewFile
from headwater.errors import HeadwaterError
from headwater.repository.collector import delete_unreferenced
from headwater.simple.model import ProjectStatus
from headwater.simple.names import NormalizedName
from headwater.storage.base import Storage
from headwater.storage.layout import file_key, metadata_key, provenance_key

__all__ = ["Accepted", "Candidate", "UploadRefused", "accept_upload"]

log = logging.getLogger("headwater.upload")

_CHUNK = 1 << 20


class UploadRefused(HeadwaterError):
    """The upload is not allowed; ``status`` is the HTTP status, the message its reason phrase."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Accepted(enum.Enum):
    CREATED = "created"
    #: The same filename with the same content was already there: a no-op (twine re-uploads).
    IDENTICAL = "identical"


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """An upload that passed the form, digest and artifact checks."""

    index: str
    project: NormalizedName
    display_name: str
    version: str
    filename: str
    path: Path
    size: int
    sha256: str
    blake2_256: str | None = None
    requires_python: str | None = None
    metadata: bytes | None = None
    metadata_sha256: str | None = None
    #: PEP 740: the verified provenance document, stored beside the file, and the publisher
    #: identities (specs) it proved.
    provenance: bytes | None = None
    publishers: tuple[str, ...] = ()
    user: str
    admin: bool = False
    #: Uploaded with a token minted for this trusted publisher (``user`` is the token's label):
    #: the publisher stands in for ownership and for PEP 752's grantee, as the project's owners
    #: or an admin configured it (headwater.db.publishers).
    publisher: int | None = None


async def _copy_into(storage: Storage, key: str, path: Path) -> None:
    async with storage.writer(key) as writer:
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                await writer.write(chunk)
        finally:
            await asyncio.to_thread(handle.close)


def _not_owner(c: Candidate) -> UploadRefused:
    return UploadRefused(
        403,
        f"user {c.user!r} is not an owner of {c.index}/{c.project} (another user created it "
        "first): ask an owner to add you (`headwater project owner-add INDEX PROJECT USER`) or "
        "choose another name",
    )


def _check_allowed(db: Any, c: Candidate) -> Accepted | None:
    """The refusals that need the database (runs in a thread). IDENTICAL when it is a no-op."""
    record = db.project(c.index, c.project)
    if record is not None:
        if c.publisher is None and not c.admin and c.user not in db.owners(c.index, c.project):
            # The decision saw no such project, and another user has created it since.
            raise _not_owner(c)
        for existing in record.files:
            if existing.filename == c.filename:
                if existing.sha256 == c.sha256:
                    return Accepted.IDENTICAL
                raise UploadRefused(
                    400,
                    f"File already exists ({c.filename!r} with different content). A filename can "
                    "be used once: upload a new version.",
                )
        status = ProjectStatus(record.status)
        if status in (ProjectStatus.ARCHIVED, ProjectStatus.QUARANTINED):
            raise UploadRefused(
                400,
                f"project {c.project!r} is {status.value}: it accepts no uploads (PEP 792). An "
                "admin can set it active again with `headwater project status`.",
            )
        return None
    namespace = db.namespace_covering(c.index, c.project)
    if (
        namespace is not None
        and c.publisher is None
        and not c.admin
        and not namespace.open
        and c.user != namespace.owner
    ):
        # PEP 752: "uploads ... MUST fail with a 409" for names in a namespace the uploader
        # has no grant for.
        raise UploadRefused(
            409,
            f"{c.project!r} is in the namespace {namespace.name!r} reserved by "
            f"{namespace.owner!r} (PEP 752): only its grantee may create projects in it.",
        )
    return None


async def accept_upload(db: Any, storage: Storage, c: Candidate) -> Accepted:
    """Make ``c`` part of its index, or raise :class:`UploadRefused`.

    ``db`` is a :class:`headwater.db.Database` (called in threads); ``storage`` the index's storage.
    """
    early = await asyncio.to_thread(_check_allowed, db, c)
    if early is Accepted.IDENTICAL:
        return early
    key = file_key(c.sha256, c.filename)
    reservation: int = await asyncio.to_thread(db.reserve_blob, c.index, key)
    try:
        await _copy_into(storage, key, c.path)
        if c.metadata is not None:
            await storage.write_bytes(metadata_key(c.sha256, c.filename), c.metadata)
        provenance_sha256 = None
        if c.provenance is not None:
            # Before the row: a file is never visible with a provenance URL not there yet.
            await storage.write_bytes(provenance_key(c.sha256, c.filename), c.provenance)
            provenance_sha256 = hashlib.sha256(c.provenance).hexdigest()
        new = NewFile(
            filename=c.filename,
            version=c.version,
            sha256=c.sha256,
            blake2_256=c.blake2_256,
            size=c.size,
            upload_time=datetime.now(UTC),
            requires_python=c.requires_python,
            metadata_sha256=c.metadata_sha256,
            provenance_sha256=provenance_sha256,
            publishers=c.publishers,
            storage_key=key,
            display_name=c.display_name,
        )
        # Ownership once more, in the write transaction: the project may have been created by
        # another user since the authorization decision saw it as new.
        result = await asyncio.to_thread(
            db.add_file,
            c.index,
            c.project,
            new,
            uploader=c.user,
            owners_only=not c.admin,
            publisher=c.publisher,
        )
    except BaseException:
        await _discard(db, storage, c, key, reservation)
        raise
    if result in (AddResult.CREATED, AddResult.IDENTICAL):
        if not await asyncio.to_thread(db.release_blob, reservation):
            # A collector judged the reservation abandoned (the upload took longer than its
            # pending_for) and may have removed the objects: the row needs them.
            await _restore(storage, c, key)
        return Accepted.CREATED if result is AddResult.CREATED else Accepted.IDENTICAL
    # Refused or lost a race: our objects go, unless a row or another upload needs them now.
    await _discard(db, storage, c, key, reservation)
    if result is AddResult.CONFLICT:
        raise UploadRefused(400, f"File already exists ({c.filename!r} with different content).")
    if result is AddResult.NOT_OWNER:
        raise _not_owner(c)
    if result is AddResult.PREVIOUSLY_DELETED:
        raise UploadRefused(
            400,
            f"This filename has already been used, use a different version: {c.filename!r} was "
            "deleted and a filename is never reused.",
        )
    raise UploadRefused(400, f"project {c.project!r} accepts no uploads ({result.value})")


async def _discard(db: Any, storage: Storage, c: Candidate, key: str, reservation: int) -> None:
    """Remove this upload's objects if nothing refers to them (re-checked under the write
    lock), and its reservation. A failure here (the database is down) leaves them to
    ``headwater gc``: never raised, the upload's own outcome is what the client must hear."""
    try:
        await delete_unreferenced(
            db,
            storage,
            c.index,
            [key, metadata_key(c.sha256, c.filename), provenance_key(c.sha256, c.filename)],
            own=reservation,
        )
    except Exception as exc:
        log.warning(
            "upload of %s to %s: its stored objects stay for `headwater gc` (%s)",
            c.filename,
            c.index,
            exc,
        )


async def _restore(storage: Storage, c: Candidate, key: str) -> None:
    if await storage.stat(key) is None:
        await _copy_into(storage, key, c.path)
    if c.metadata is not None and await storage.stat(metadata_key(c.sha256, c.filename)) is None:
        await storage.write_bytes(metadata_key(c.sha256, c.filename), c.metadata)
    sidecar = provenance_key(c.sha256, c.filename)
    if c.provenance is not None and await storage.stat(sidecar) is None:
        await storage.write_bytes(sidecar, c.provenance)
