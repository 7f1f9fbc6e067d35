"""The garbage collector of a hosted index's storage: objects no database row refers to.

A hosted index's files become visible when their database row is committed, after their
objects were written (:mod:`headwater.repository.uploads`). An upload whose server died, or whose
database failed, between the two leaves objects that nothing refers to: harmless (nothing links
to them) but they take space. ``headwater gc`` finds and removes them.

Vocabulary (the report uses these words):

=================  ==========================================================================
stored             every object under ``web/packages/`` of the index's storage
referenced         a ``files`` row of the index names its key (a ``.metadata`` object: its
                   file's key)
reserved           an upload in progress reserved its key (``pending_blobs``), less than
                   ``pending_for`` ago: kept
young              unreferenced, but written less than ``grace`` ago: kept
unreferenced       none of the above: deleted by a sweep (``--delete``), listed by a dry run
other              keys outside ``web/packages/`` (none in a hosted index today): never touched
=================  ==========================================================================

Why it is safe against an upload of the same bytes at the same moment (several servers, one
storage): the plan is only a list of *candidates*; each is deleted by
:meth:`headwater.db.Database.delete_unreferenced`, which re-checks the rows of the key while
holding the database's write lock and deletes the object before releasing it, and every upload
reserves its key under that same lock *before* writing the object (see
:mod:`headwater.db.blobs`). An upload that reserved first is seen by the re-check; one that
reserves after finds the object gone and writes it again. This does not depend on clocks.

The ``grace`` period on an object's age is a second line, for writers that do not reserve: a
server of an older headwater still running during a rolling upgrade, an operator copying files
in. ``pending_for`` bounds how long a reservation of an upload that crashed keeps its object.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from headwater.db.blobs import file_key_of
from headwater.storage.base import Storage
from headwater.storage.layout import WEB

__all__ = [
    "GRACE",
    "PENDING_FOR",
    "Collection",
    "Report",
    "Stored",
    "collect",
    "delete_unreferenced",
    "plan_collection",
]

log = logging.getLogger("headwater.gc")

#: Default seconds an unreferenced object is kept after it was written.
GRACE = 3600.0
#: Default seconds an upload's reservation keeps its object (then the upload is presumed dead).
PENDING_FOR = 86400.0
_PACKAGES = f"{WEB}/packages/"


class BlobDatabase(Protocol):
    """What the collector asks :class:`headwater.db.Database` (synchronous calls)."""

    def blob_references(self, index: str) -> tuple[frozenset[str], dict[str, datetime]]: ...
    def delete_unreferenced(
        self,
        index: str,
        keys: Iterable[str],
        delete: Any,
        *,
        own: int | None = None,
        pending_before: datetime | None = None,
    ) -> list[str]: ...
    def forget_abandoned_reservations(self, index: str, before: datetime) -> int: ...


class Stored(msgspec.Struct, frozen=True):
    """One stored object: its key, size in bytes, and modification time (epoch seconds)."""

    key: str
    size: int
    mtime: float


class Collection(msgspec.Struct, frozen=True, kw_only=True):
    """What a collection found (the vocabulary of the module docstring)."""

    stored: int
    stored_bytes: int
    referenced: int
    reserved: tuple[Stored, ...]
    young: tuple[Stored, ...]
    unreferenced: tuple[Stored, ...]
    other: int

    @property
    def unreferenced_bytes(self) -> int:
        return sum(s.size for s in self.unreferenced)


def plan_collection(
    stored: Iterable[Stored],
    referenced: frozenset[str] | set[str],
    reserved: Mapping[str, float],
    *,
    now: float,
    grace: float = GRACE,
    pending_for: float = PENDING_FOR,
) -> Collection:
    """Sort ``stored`` objects into the collection's kinds. Pure: no I/O, no clock.

    ``referenced``: the file keys rows refer to. ``reserved``: reserved file keys with the time
    (epoch seconds) of their newest reservation. A reservation older than ``pending_for`` is
    abandoned and keeps nothing; an object younger than ``grace`` is kept in any case.
    """
    counted = total = refs = other = 0
    kept_reserved: list[Stored] = []
    young: list[Stored] = []
    gone: list[Stored] = []
    for item in stored:
        if not item.key.startswith(_PACKAGES):
            other += 1
            continue
        counted += 1
        total += item.size
        base = file_key_of(item.key)
        if base in referenced:
            refs += 1
        elif base in reserved and now - reserved[base] < pending_for:
            kept_reserved.append(item)
        elif now - item.mtime < grace:
            young.append(item)
        else:
            gone.append(item)
    return Collection(
        stored=counted,
        stored_bytes=total,
        referenced=refs,
        reserved=tuple(sorted(kept_reserved, key=lambda s: s.key)),
        young=tuple(sorted(young, key=lambda s: s.key)),
        unreferenced=tuple(sorted(gone, key=lambda s: s.key)),
        other=other,
    )


async def delete_unreferenced(
    db: BlobDatabase,
    storage: Storage,
    index: str,
    keys: Iterable[str],
    *,
    own: int | None = None,
    pending_before: datetime | None = None,
) -> list[str]:
    """Delete the objects of ``keys`` that no row refers to, each re-checked under the
    database's write lock (:meth:`headwater.db.Database.delete_unreferenced`); returns the keys
    deleted. ``own``: the caller's reservation (released in the same transaction).

    Raises:
        DatabaseUnavailable, StorageError: nothing more is deleted; what was kept is still
            referenced or will be collected by a later run.
    """
    loop = asyncio.get_running_loop()

    def delete(key: str) -> bool:
        # Runs in the database's thread, inside the write transaction; the storage is async.
        return asyncio.run_coroutine_threadsafe(storage.delete(key), loop).result()

    return await asyncio.to_thread(
        db.delete_unreferenced, index, list(keys), delete, own=own, pending_before=pending_before
    )


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """One index's collection: what was found and, unless a dry run, what was deleted."""

    index: str
    found: Collection
    dry_run: bool
    deleted: int = 0
    deleted_bytes: int = 0


async def _stored(storage: Storage) -> list[Stored]:
    # Sizes and dates from the listing itself (one S3 HEAD per object would cost more than the
    # collection); each deletion re-checks its object under the write lock anyway.
    return [
        Stored(key, stat.size, stat.mtime)
        async for key, stat in storage.iter_stats(_PACKAGES.rstrip("/"))
    ]


async def collect(
    db: BlobDatabase,
    storage: Storage,
    index: str,
    *,
    grace: float = GRACE,
    pending_for: float = PENDING_FOR,
    dry_run: bool = True,
    clock: Any = time.time,
) -> Report:
    """Collect ``index``'s unreferenced objects in ``storage``: list them (``dry_run``) or
    delete them, each re-checked under the write lock (see the module docstring).

    The references are read *before* the objects are listed, so an object whose row is
    committed during the listing shows as unreferenced here and is then kept by the re-check.

    Raises:
        DatabaseUnavailable, StorageError: the run stops; nothing referenced was deleted.
    """
    referenced, reservations = await asyncio.to_thread(db.blob_references, index)
    stored = await _stored(storage)
    now = clock()
    reserved = {key: when.timestamp() for key, when in reservations.items()}
    found = plan_collection(
        stored, referenced, reserved, now=now, grace=grace, pending_for=pending_for
    )
    if dry_run or not found.unreferenced:
        return Report(index=index, found=found, dry_run=dry_run)
    before = datetime.fromtimestamp(now - pending_for, UTC)
    sizes = {s.key: s.size for s in found.unreferenced}
    deleted = await delete_unreferenced(db, storage, index, list(sizes), pending_before=before)
    await asyncio.to_thread(db.forget_abandoned_reservations, index, before)
    log.info("gc %s: deleted %d unreferenced objects", index, len(deleted))
    return Report(
        index=index,
        found=found,
        dry_run=False,
        deleted=len(deleted),
        deleted_bytes=sum(sizes[k] for k in deleted),
    )
