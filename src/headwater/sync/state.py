"""What a mirror remembers between runs: the upstream serial each project was synced at.

Kept beside ``web/`` (never served) as a snapshot plus a journal of small chunks::

    state/mirror.json             {"format": 1, "upstream": URL, "serial": N, "projects": {...}}
    state/journal/00000001.json   projects completed since the snapshot, in batches

A sync appends a journal chunk after each batch of projects is durable, so a killed sync resumes
where it stopped; a finished sync folds the journal into a new snapshot. Each chunk is small and
written once (no O(n²) todo file rewritten per project), and everything goes through
:class:`~headwater.storage.base.Storage`, so the same scheme works on an object store.
"""

from __future__ import annotations

from typing import cast

import msgspec

from headwater.errors import HeadwaterError
from headwater.simple.names import NormalizedName, is_normalized, normalize_many
from headwater.storage.base import NotFound, Storage
from headwater.storage.layout import STATE_DIR
from headwater.sync.wants import TreeWants

__all__ = ["MirrorState", "ProjectState", "StateError"]

SNAPSHOT = f"{STATE_DIR}/mirror.json"
JOURNAL = f"{STATE_DIR}/journal"
FORMAT = 2


class StateError(HeadwaterError):
    """The mirror's state is unreadable or belongs to another upstream."""


class ProjectState(msgspec.Struct, frozen=True, array_like=True):
    """A synced project: upstream's serial for it (None without serials) and the page's ETag."""

    serial: int | None
    etag: str | None = None


class _Snapshot(msgspec.Struct, kw_only=True):
    format: int = FORMAT
    upstream: str
    serial: int | None = None
    #: Fingerprint of the filters the tree was last fully synced with.
    filters: str | None = None
    #: What the tree was last fully synced to hold (so a repair without the configuration keeps
    #: the filters and the tracks policy); absent in states written before it was recorded.
    wants: TreeWants | None = None
    #: Project -> files downloaded and verified for it while its page could not be written (its
    #: sync failed): kept for the next run to reuse, not orphans.
    held: dict[str, list[str]] = msgspec.field(default_factory=dict)
    # Parallel arrays, not a dict of structs: a PyPI-sized state (700,000 projects) decodes
    # several times faster and smaller, and becomes the serials dict with one C-level zip.
    names: list[str] = msgspec.field(default_factory=list)
    serials: list[int | None] = msgspec.field(default_factory=list)
    etags: dict[str, str] = msgspec.field(default_factory=dict)


class _Chunk(msgspec.Struct, kw_only=True):
    done: dict[str, ProjectState] = msgspec.field(default_factory=dict)
    deleted: list[str] = msgspec.field(default_factory=list)


_encoder = msgspec.json.Encoder()
_snapshot_decoder = msgspec.json.Decoder(_Snapshot)
_chunk_decoder = msgspec.json.Decoder(_Chunk)


class MirrorState:
    """Load, update and commit a mirror's state in ``storage``.

    Call :meth:`load` first. :meth:`record` and :meth:`forget` buffer changes in memory;
    :meth:`flush` writes them as one journal chunk (the caller makes the pages they describe durable
    first); :meth:`commit` writes a new snapshot and removes the journal.
    """

    def __init__(self, storage: Storage, upstream: str) -> None:
        self.storage = storage
        self.upstream = upstream
        #: Project -> the upstream serial it was synced at (None without serials): the tree's
        #: projects, in the shape :func:`headwater.sync.plan.plan_sync` takes.
        self.serials: dict[NormalizedName, int | None] = {}
        #: Project -> the ETag of its page, for conditional requests to indexes without serials.
        self.etags: dict[NormalizedName, str] = {}
        self.serial: int | None = None
        self.filters: str | None = None
        #: What the last full sync wanted in the tree (None: not recorded).
        self.wants: TreeWants | None = None
        #: Project -> files kept for its next sync (see ``_Snapshot.held``).
        self.held: dict[NormalizedName, list[str]] = {}
        self._pending = _Chunk()
        self._chunks: list[str] = []
        self._next_chunk = 1

    async def load(self) -> None:
        """Read the snapshot and replay the journal.

        Raises:
            StateError: the state is corrupt, from a newer headwater, or from another upstream.
        """
        try:
            raw = await self.storage.read_bytes(SNAPSHOT)
        except NotFound:
            snapshot = _Snapshot(upstream=self.upstream)
        else:
            try:
                snapshot = _snapshot_decoder.decode(raw)
            except msgspec.DecodeError as exc:
                raise StateError(
                    f"{SNAPSHOT} is corrupt ({exc}); run `headwater verify --repair` to rebuild the "
                    "state from the tree, or remove state/ to resync everything"
                ) from exc
            if snapshot.format > FORMAT:
                raise StateError(
                    f"{SNAPSHOT} was written by a newer headwater (format {snapshot.format})"
                )
            if snapshot.upstream.rstrip("/") != self.upstream.rstrip("/"):
                raise StateError(
                    f"this tree was mirrored from {snapshot.upstream}, but the configuration says "
                    f"{self.upstream}; mirror into a new target, or remove state/ to start over"
                )
        self.serial = snapshot.serial
        self.filters = snapshot.filters
        self.wants = snapshot.wants
        # In place: the engine's reference counting holds this dict.
        self.held.clear()
        self.held.update(
            {NormalizedName(k): v for k, v in snapshot.held.items() if is_normalized(k)}
        )
        # Names become paths: keep only keys that are valid and normalized (checked in bulk, since
        # a PyPI-sized state has 700,000 of them).
        names = snapshot.names
        if len(snapshot.serials) != len(names):
            raise StateError(
                f"{SNAPSHOT} is corrupt (names and serials differ in length); remove state/ to resync"
            )
        normalized = normalize_many(names)
        if normalized == names:  # the normal case, compared in C
            self.serials = dict(
                zip(cast("list[NormalizedName]", names), snapshot.serials, strict=True)
            )
        else:
            self.serials = {
                NormalizedName(name): serial
                for name, normal, serial in zip(names, normalized, snapshot.serials, strict=True)
                if normal == name
            }
        self.etags = {NormalizedName(k): v for k, v in snapshot.etags.items() if k in self.serials}
        self._chunks = sorted([key async for key in self.storage.iter_keys(JOURNAL)])
        for key in self._chunks:
            try:
                chunk = _chunk_decoder.decode(await self.storage.read_bytes(key))
            except msgspec.DecodeError:
                # A chunk is written atomically, so a bad one is damage, not a torn write; the
                # projects it named are simply synced again.
                continue
            self._apply(chunk)
        if self._chunks:
            last = self._chunks[-1].rsplit("/", 1)[1].split(".", 1)[0]
            self._next_chunk = int(last) + 1 if last.isdigit() else len(self._chunks) + 1

    def _apply(self, chunk: _Chunk) -> None:
        for name, state in chunk.done.items():
            if is_normalized(name):
                self._set(NormalizedName(name), state)
        for name in chunk.deleted:
            self.serials.pop(NormalizedName(name), None)
            self.etags.pop(NormalizedName(name), None)

    def _set(self, name: NormalizedName, state: ProjectState) -> None:
        self.serials[name] = state.serial
        if state.etag is None:
            self.etags.pop(name, None)
        else:
            self.etags[name] = state.etag

    def record(self, name: NormalizedName, state: ProjectState) -> None:
        """Note that ``name`` is synced at ``state`` (durable at the next :meth:`flush`)."""
        self._set(name, state)
        self._pending.done[name] = state
        if name in self._pending.deleted:
            self._pending.deleted.remove(name)

    def forget(self, name: NormalizedName) -> None:
        """Note that ``name`` was removed from the tree."""
        self.serials.pop(name, None)
        self.etags.pop(name, None)
        self._pending.done.pop(name, None)
        self._pending.deleted.append(name)

    def hold(self, name: NormalizedName, keys: list[str]) -> None:
        """Keep ``keys`` (files downloaded for ``name``, whose page was not written) for its next
        sync; recorded at the next :meth:`commit`."""
        if keys:
            self.held[name] = sorted({*self.held.get(name, ()), *keys})

    def held_keys(self) -> set[str]:
        """Every held file, with its ``.metadata``."""
        return {k for keys in self.held.values() for key in keys for k in (key, key + ".metadata")}

    @property
    def pending(self) -> int:
        """How many changes :meth:`flush` would write."""
        return len(self._pending.done) + len(self._pending.deleted)

    async def flush(self) -> None:
        """Write buffered changes as one journal chunk (nothing if there are none)."""
        if not self.pending:
            return
        key = f"{JOURNAL}/{self._next_chunk:08d}.json"
        await self.storage.write_bytes(key, _encoder.encode(self._pending))
        self._chunks.append(key)
        self._next_chunk += 1
        self._pending = _Chunk()

    async def commit(
        self, serial: int | None, *, filters: str | None = None, wants: TreeWants | None = None
    ) -> None:
        """Write a snapshot of everything (with the upstream ``serial`` reached, and the
        fingerprint of the ``filters`` and the ``wants`` every project now reflects) and drop the
        journal. The snapshot is made durable before the journal is removed."""
        self.serial = serial
        self.filters = filters
        self.wants = wants
        names = sorted(self.serials)
        snapshot = _Snapshot(
            upstream=self.upstream,
            serial=serial,
            filters=filters,
            wants=wants,
            held={str(k): v for k, v in sorted(self.held.items())},
            names=list(names),
            serials=[self.serials[n] for n in names],
            etags={str(k): v for k, v in self.etags.items()},
        )
        await self.storage.write_bytes(SNAPSHOT, _encoder.encode(snapshot))
        await self.storage.sync()
        for key in self._chunks:
            await self.storage.delete(key)
        self._chunks = []
        self._next_chunk = 1
        self._pending = _Chunk()
