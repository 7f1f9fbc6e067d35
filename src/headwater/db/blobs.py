"""Which stored objects the database still needs: the references a garbage collector asks about.

The methods here are part of :class:`headwater.db.Database`. A hosted index's objects live in
storage under content-addressed keys (``web/packages/<aa>/<bb>/<rest>/<filename>`` and the same
with ``.metadata``); an object is *referenced* while a ``files`` row of its index names its key
(a ``.metadata`` or ``.provenance`` object is referenced by its file's key), or while an upload that is writing it
has a ``pending_blobs`` row for it.

The protocol that makes deleting an unreferenced object safe against an upload of the same bytes
at the same moment (several servers, one storage):

- an upload calls :meth:`BlobReferences.reserve_blob` (a write transaction) **before** it writes
  the object, and :meth:`BlobReferences.release_blob` once its ``files`` row is committed (or it
  gave up and removed what it wrote);
- deleting goes through :meth:`BlobReferences.delete_unreferenced`, which, holding the
  database's one write lock, looks again at the ``files`` and ``pending_blobs`` rows of each key
  and deletes the object (the caller's ``delete``) only if neither refers to it, before the lock
  is released.

Both take the write lock, so they are ordered: if the reservation came first, the re-check sees
it and keeps the object; if the deletion came first, the object is gone before the upload starts
writing it, and the upload writes it again. No timing assumption is needed. A reservation left
by an upload that crashed is honoured for ``pending_for`` (the collector's option, a day by
default) and then treated as abandoned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from headwater.db import schema as t
from headwater.db._checks import check_index, now
from headwater.db.engine import reading, writing

__all__ = ["METADATA_SUFFIX", "BlobReferences", "file_key_of"]

#: A file's PEP 658 metadata object is its key plus this (headwater.storage.layout.metadata_key).
METADATA_SUFFIX = ".metadata"
#: A file's PEP 740 provenance object (headwater.storage.layout.provenance_key): referenced by
#: its file's row like the ``.metadata``.
PROVENANCE_SUFFIX = ".provenance"
#: Keys re-checked per write transaction (the lock is held while their objects are deleted).
_BATCH = 200


def file_key_of(key: str) -> str:
    """The file key whose row references the object ``key`` (itself, or its file's)."""
    return key.removesuffix(METADATA_SUFFIX).removesuffix(PROVENANCE_SUFFIX)


class BlobReferences:
    """Reservations and reference checks of stored objects (mixed into ``Database``)."""

    _engine: Engine

    def reserve_blob(self, index: str, key: str) -> int:
        """Record that an upload is about to write ``key`` (and its ``.metadata``) into
        ``index``'s storage; returns the reservation's id for :meth:`release_blob`. Call it
        before writing the object, never after."""
        check_index(index)
        with writing(self._engine) as conn:
            inserted = conn.execute(
                sa.insert(t.pending_blobs)
                .values(index=index, storage_key=key, created=now())
                .returning(t.pending_blobs.c.id)
            ).scalar_one()
        return int(inserted)

    def release_blob(self, reservation: int) -> bool:
        """Drop a reservation (the upload's row is committed, or it gave up); False when it
        was gone already (a collector judged it abandoned: the upload must check its object)."""
        with writing(self._engine) as conn:
            done = conn.execute(
                sa.delete(t.pending_blobs).where(t.pending_blobs.c.id == reservation)
            )
        return bool(done.rowcount)

    def blob_references(self, index: str) -> tuple[frozenset[str], dict[str, datetime]]:
        """The file keys the ``files`` rows of ``index`` refer to, and the reserved keys with
        their newest reservation's time (one snapshot)."""
        check_index(index)
        with reading(self._engine, snapshot=True) as conn:
            files = conn.execute(
                sa.select(t.files.c.storage_key).where(t.files.c.index == index)
            ).scalars()
            referenced = frozenset(files)
            pending: dict[str, datetime] = {}
            for key, created in conn.execute(
                sa.select(t.pending_blobs.c.storage_key, t.pending_blobs.c.created).where(
                    t.pending_blobs.c.index == index
                )
            ).all():
                if key not in pending or created > pending[key]:
                    pending[key] = created
        return referenced, pending

    def delete_unreferenced(
        self,
        index: str,
        keys: Iterable[str],
        delete: Callable[[str], bool],
        *,
        own: int | None = None,
        pending_before: datetime | None = None,
    ) -> list[str]:
        """Delete each object of ``keys`` that nothing refers to, holding the write lock from
        the look until it is deleted (see the module docstring); return the keys deleted.

        ``delete(key)`` deletes the object and says whether it existed; it runs inside the
        write transaction. ``own``: the caller's reservation, which does not count as a
        reference and is released in the same transaction. ``pending_before``: reservations
        made before this time are abandoned (an upload that crashed): they do not count and are
        removed when their object is.

        Raises:
            DatabaseUnavailable: the database failed (nothing of the failed batch was
                released; objects it deleted were unreferenced).
            Whatever ``delete`` raises (the batch's transaction is rolled back).
        """
        check_index(index)
        wanted = list(dict.fromkeys(keys))
        deleted: list[str] = []
        if not wanted:
            if own is not None:
                self.release_blob(own)
            return deleted
        for start in range(0, len(wanted), _BATCH):
            batch = wanted[start : start + _BATCH]
            bases = sorted({file_key_of(k) for k in batch})
            with writing(self._engine) as conn:
                referenced = set(
                    conn.execute(
                        sa.select(t.files.c.storage_key).where(
                            t.files.c.index == index, t.files.c.storage_key.in_(bases)
                        )
                    ).scalars()
                )
                live = sa.select(t.pending_blobs.c.storage_key).where(
                    t.pending_blobs.c.index == index, t.pending_blobs.c.storage_key.in_(bases)
                )
                if own is not None:
                    live = live.where(t.pending_blobs.c.id != own)
                if pending_before is not None:
                    live = live.where(t.pending_blobs.c.created >= pending_before)
                referenced.update(conn.execute(live).scalars())
                gone = [k for k in batch if file_key_of(k) not in referenced]
                for key in gone:
                    if delete(key):
                        deleted.append(key)
                if pending_before is not None:
                    dead = sorted({file_key_of(k) for k in gone})
                    conn.execute(
                        sa.delete(t.pending_blobs).where(
                            t.pending_blobs.c.index == index,
                            t.pending_blobs.c.storage_key.in_(dead),
                            t.pending_blobs.c.created < pending_before,
                        )
                    )
                if own is not None and start + _BATCH >= len(wanted):
                    conn.execute(sa.delete(t.pending_blobs).where(t.pending_blobs.c.id == own))
        return deleted

    def forget_abandoned_reservations(self, index: str, before: datetime) -> int:
        """Remove reservations of ``index`` made before ``before`` whose key a file row
        refers to (the upload committed, then died before releasing); returns how many."""
        check_index(index)
        with writing(self._engine) as conn:
            done = conn.execute(
                sa.delete(t.pending_blobs).where(
                    t.pending_blobs.c.index == index,
                    t.pending_blobs.c.created < before,
                    t.pending_blobs.c.storage_key.in_(
                        sa.select(t.files.c.storage_key).where(t.files.c.index == index)
                    ),
                )
            )
        return int(done.rowcount or 0)
