"""The garbage collector of hosted storage (headwater.repository.collector) on SQLite and
PostgreSQL: what it keeps and removes (a truth table and a property), and that it never removes
an object a row needs while an upload of the same bytes races it (every interleaving of the
upload's reserve / write / commit with the collector's look / plan / delete, and a stress run)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.db import Database
from headwater.repository.collector import Stored, collect, plan_collection
from headwater.repository.uploads import Accepted, Candidate, UploadRefused, accept_upload
from headwater.simple.names import normalize_name
from headwater.storage.filesystem import FileStorage
from headwater.storage.layout import file_key, metadata_key

HOUR = 3600.0
NOW = 1_800_000_000.0


def _key(char: str, filename: str = "p-1.0.tar.gz") -> str:
    return file_key(char * 64, filename)


# --- the plan: a truth table -------------------------------------------------------------------

# (object, referenced file keys, reservations {key: age}, expected kind)
CASES = [
    (Stored(_key("a"), 10, NOW - 2 * HOUR), {_key("a")}, {}, "referenced"),
    (Stored(_key("a") + ".metadata", 5, NOW - 2 * HOUR), {_key("a")}, {}, "referenced"),
    (Stored(_key("b"), 10, NOW - 2 * HOUR), set(), {}, "unreferenced"),
    (Stored(_key("b") + ".metadata", 5, NOW - 2 * HOUR), set(), {}, "unreferenced"),
    (Stored(_key("c"), 10, NOW - 60), set(), {}, "young"),
    (Stored(_key("d"), 10, NOW - 2 * HOUR), set(), {_key("d"): 60.0}, "reserved"),
    (Stored(_key("d") + ".metadata", 1, NOW - 2 * HOUR), set(), {_key("d"): 60.0}, "reserved"),
    # A reservation older than pending_for (a day) was left by an upload that died.
    (Stored(_key("e"), 10, NOW - 2 * HOUR), set(), {_key("e"): 2 * 86400.0}, "unreferenced"),
    (Stored(_key("e"), 10, NOW - 60), set(), {_key("e"): 2 * 86400.0}, "young"),
    # A reservation of another key keeps nothing here.
    (Stored(_key("f"), 10, NOW - 2 * HOUR), set(), {_key("a"): 1.0}, "unreferenced"),
    (Stored("state/something", 10, NOW - 2 * HOUR), set(), {}, "other"),
    (Stored("web/simple/index.html", 10, NOW - 2 * HOUR), set(), {}, "other"),
]


def _kind_of(item: Stored, found: Any) -> str:
    for kind in ("reserved", "young", "unreferenced"):
        if item in getattr(found, kind):
            return kind
    if found.other:
        return "other"
    return "referenced" if found.referenced else "?"


@pytest.mark.parametrize(("item", "referenced", "ages", "kind"), CASES)
def test_what_the_collector_does_with_each_kind_of_object(
    item: Stored, referenced: set[str], ages: dict[str, float], kind: str
) -> None:
    reserved = {key: NOW - age for key, age in ages.items()}
    found = plan_collection([item], frozenset(referenced), reserved, now=NOW)
    assert _kind_of(item, found) == kind


_keys = st.sampled_from([_key(c) for c in "0123456789ab"]).flatmap(
    lambda k: st.sampled_from([k, k + ".metadata"])
)


@given(
    items=st.lists(
        st.builds(Stored, _keys, st.integers(0, 10**9), st.floats(NOW - 5 * HOUR, NOW)),
        unique_by=lambda s: s.key,
    ),
    referenced=st.sets(st.sampled_from([_key(c) for c in "0123456789ab"])),
    reserved=st.dictionaries(
        st.sampled_from([_key(c) for c in "0123456789ab"]), st.floats(NOW - 3 * 86400, NOW)
    ),
    grace=st.floats(0, 4 * HOUR),
)
def test_the_plan_never_offers_a_referenced_reserved_or_young_object(
    items: list[Stored],
    referenced: set[str],
    reserved: dict[str, float],
    grace: float,
) -> None:
    found = plan_collection(items, frozenset(referenced), reserved, now=NOW, grace=grace)
    kinds = [found.reserved, found.young, found.unreferenced]
    assert found.referenced + sum(len(k) for k in kinds) == found.stored == len(items)
    assert found.stored_bytes == sum(i.size for i in items)
    for item in found.unreferenced:
        base = item.key.removesuffix(".metadata")
        assert base not in referenced
        assert base not in reserved or NOW - reserved[base] >= 86400
        assert NOW - item.mtime >= grace


# --- collecting on a real database and storage -------------------------------------------------


def _candidate(
    tmp_path: Path, user: str, body: bytes, filename: str = "race-1.0.tar.gz"
) -> Candidate:
    path = tmp_path / f"{user}-{hashlib.sha256(body).hexdigest()[:8]}-{filename}"
    path.write_bytes(body)
    return Candidate(
        index="main",
        project=normalize_name("race"),
        display_name="race",
        version=filename.split("-")[1].removesuffix(".tar.gz"),
        filename=filename,
        path=path,
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        metadata=b"Metadata-Version: 2.2\nName: race\n",
        metadata_sha256=hashlib.sha256(b"Metadata-Version: 2.2\nName: race\n").hexdigest(),
        user=user,
    )


async def _orphan(storage: FileStorage, c: Candidate, age: float = 2 * HOUR) -> None:
    """The objects an upload of ``c`` left when its server died before the row: old ones."""
    for key, data in (
        (file_key(c.sha256, c.filename), c.path.read_bytes()),
        (metadata_key(c.sha256, c.filename), c.metadata or b""),
    ):
        await storage.write_bytes(key, data)
        old = time.time() - age
        os.utime(storage.root / key, (old, old))


def _rows_have_their_objects(db: Database, storage: FileStorage) -> None:
    """The invariant: every file row's object is stored, with the row's sha256."""
    for summary in db.projects("main"):
        record = db.project("main", summary.name)
        assert record is not None
        for f in record.files:
            path = storage.root / f.storage_key
            assert path.is_file(), f"{f.filename}: its row points at a missing object"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == f.sha256
            if f.metadata_sha256:
                assert (storage.root / (f.storage_key + ".metadata")).is_file()


def test_a_dry_run_reports_and_a_sweep_removes_only_unreferenced_objects(
    db: Database, tmp_path: Path
) -> None:
    db.create_user("alice")
    storage = FileStorage(tmp_path / "hosted")
    kept = _candidate(tmp_path, "alice", b"kept")
    lost = _candidate(tmp_path, "alice", b"lost", "race-2.0.tar.gz")
    fresh = _candidate(tmp_path, "alice", b"fresh", "race-3.0.tar.gz")

    async def scenario() -> None:
        assert await accept_upload(db, storage, kept) is Accepted.CREATED
        await _orphan(storage, lost)
        await _orphan(storage, fresh, age=60)  # within the grace period
        dry = await collect(db, storage, "main")
        assert dry.dry_run and dry.deleted == 0
        assert [s.key for s in dry.found.unreferenced] == sorted(
            [file_key(lost.sha256, lost.filename), metadata_key(lost.sha256, lost.filename)]
        )
        assert dry.found.referenced == 2 and len(dry.found.young) == 2
        assert (storage.root / file_key(lost.sha256, lost.filename)).exists()  # dry: untouched
        done = await collect(db, storage, "main", dry_run=False)
        assert done.deleted == 2
        assert done.deleted_bytes == dry.found.unreferenced_bytes
        assert not (storage.root / file_key(lost.sha256, lost.filename)).exists()
        assert (storage.root / file_key(fresh.sha256, fresh.filename)).exists()
        again = await collect(db, storage, "main", dry_run=False)
        assert again.deleted == 0 and not again.found.unreferenced

    asyncio.run(scenario())
    _rows_have_their_objects(db, storage)


# --- racing an upload of the same bytes ---------------------------------------------------------


class Hooked:
    """``db`` with a hook run (in the calling thread) before the named methods."""

    def __init__(self, db: Database, hooks: dict[str, Callable[[], None]]) -> None:
        self._db = db
        self._hooks = hooks

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._db, name)
        hook = self._hooks.get(name)
        if hook is None:
            return method

        def hooked(*args: Any, **kwargs: Any) -> Any:
            hook()
            return method(*args, **kwargs)

        return hooked


class SlowDeletes(FileStorage):
    """A storage whose deletes signal, then take ``delay`` seconds (inside the collector's
    write transaction), so another writer can try to reserve meanwhile."""

    def __init__(self, root: Path, deleting: threading.Event, delay: float) -> None:
        super().__init__(root)
        self.deleting = deleting
        self.delay = delay

    async def delete(self, key: str) -> bool:
        self.deleting.set()
        await asyncio.sleep(self.delay)
        return await super().delete(key)


def _wait(event: threading.Event) -> Callable[[], None]:
    def wait() -> None:
        assert event.wait(20), "the other side never got there"

    return wait


@pytest.mark.parametrize(
    "interleaving",
    [
        "upload commits between the collector's look and its delete",
        "upload has written, not committed, when the collector deletes",
        "upload reserves while the collector is deleting",
    ],
)
def test_the_collector_never_removes_what_a_concurrent_identical_upload_needs(
    db: Database, tmp_path: Path, interleaving: str
) -> None:
    """An object an earlier upload left (no row) and a new upload of the same bytes (same key)
    racing ``gc --delete`` (grace 0: only the reservation and the re-check under the write lock
    protect it). Afterwards the row exists and its object is there, whatever the order."""
    db.create_user("alice")
    c = _candidate(tmp_path, "alice", b"the same bytes")
    key = file_key(c.sha256, c.filename)
    planned, written, swept = threading.Event(), threading.Event(), threading.Event()
    deleting = threading.Event()
    storage = SlowDeletes(tmp_path / "hosted", deleting, 0.3)
    if interleaving.startswith("upload commits"):
        gc_db = Hooked(db, {"delete_unreferenced": lambda: (planned.set(), _wait(written)())})
        up_db: Any = Hooked(db, {"reserve_blob": _wait(planned)})
        on_done = written
    elif interleaving.startswith("upload has written"):
        gc_db = Hooked(db, {"delete_unreferenced": lambda: (planned.set(), _wait(written)())})
        up_db = Hooked(
            db,
            {
                "reserve_blob": _wait(planned),
                "add_file": lambda: (written.set(), _wait(swept)()),
            },
        )
        on_done = None
    else:
        gc_db = Hooked(db, {})
        up_db = Hooked(db, {"reserve_blob": _wait(deleting)})
        on_done = None

    async def gc() -> None:
        report = await collect(gc_db, storage, "main", grace=0, dry_run=False)  # type: ignore[arg-type]
        swept.set()
        assert report.found.unreferenced  # it did plan to delete the old copy

    async def upload() -> None:
        assert await accept_upload(up_db, storage, c) is Accepted.CREATED
        if on_done is not None:
            on_done.set()

    async def scenario() -> None:
        await _orphan(storage, c)
        await asyncio.wait_for(asyncio.gather(gc(), upload()), 60)

    asyncio.run(scenario())
    record = db.project("main", "race")
    assert record is not None and [f.storage_key for f in record.files] == [key]
    _rows_have_their_objects(db, storage)
    assert db.blob_references("main")[1] == {}  # no reservation left behind


def test_uploads_and_collectors_racing_many_times_never_lose_an_object(
    db: Database, tmp_path: Path
) -> None:
    """A stress run: each round leaves an orphan of the next upload's bytes, then runs that
    upload and ``gc --delete`` (grace 0) at once, with a different head start each time."""
    db.create_user("alice")
    storage = FileStorage(tmp_path / "hosted")

    async def round_(n: int) -> None:
        c = _candidate(tmp_path, "alice", f"bytes {n}".encode(), f"race-{n}.0.tar.gz")
        await _orphan(storage, c)

        async def later(delay: float, work: Any) -> Any:
            await asyncio.sleep(delay)
            return await work

        head = (n % 7) * 0.002
        gc_first = n % 2 == 0
        await asyncio.gather(
            later(0 if gc_first else head, collect(db, storage, "main", grace=0, dry_run=False)),
            later(head if gc_first else 0, accept_upload(db, storage, c)),
        )

    async def scenario() -> None:
        for n in range(1, 25):
            await round_(n)

    asyncio.run(scenario())
    _rows_have_their_objects(db, storage)
    record = db.project("main", "race")
    assert record is not None and len(record.files) == 24


def test_a_loser_of_an_upload_race_never_removes_the_winners_object(
    db: Database, tmp_path: Path
) -> None:
    """bob (not an owner) and alice (the owner) upload the same bytes; bob's check ran while
    the project was new, alice's row is committed before bob's: bob is refused (403), and the
    object alice's row points at (the same key: same bytes, same filename) must stay."""
    db.create_user("alice")
    db.create_user("bob")
    storage = FileStorage(tmp_path / "hosted")
    alice = _candidate(tmp_path, "alice", b"identical")
    bob = _candidate(tmp_path, "bob", b"identical")
    alice_done = threading.Event()

    class AfterAlice(FileStorage):
        @contextlib.asynccontextmanager
        async def writer(self, key: str) -> AsyncIterator[Any]:
            await asyncio.to_thread(alice_done.wait, 20)
            async with super().writer(key) as out:
                yield out

    async def scenario() -> None:
        # bob's checks pass (the project does not exist yet); he then waits to write.
        bob_task = asyncio.create_task(accept_upload(db, AfterAlice(tmp_path / "hosted"), bob))
        await asyncio.sleep(0.2)
        assert await accept_upload(db, storage, alice) is Accepted.CREATED
        alice_done.set()
        with pytest.raises(UploadRefused, match="not an owner"):
            await bob_task

    asyncio.run(scenario())
    _rows_have_their_objects(db, storage)


def test_reservations_of_crashed_uploads_expire(db: Database, tmp_path: Path) -> None:
    """An upload that reserved, wrote and died keeps its object for pending_for, then not."""
    storage = FileStorage(tmp_path / "hosted")
    c = _candidate(tmp_path, "alice", b"crashed")
    key = file_key(c.sha256, c.filename)
    reservation = db.reserve_blob("main", key)
    assert reservation > 0

    async def scenario() -> None:
        await _orphan(storage, c)
        kept = await collect(db, storage, "main", grace=0, dry_run=False)
        assert kept.deleted == 0 and len(kept.found.reserved) == 2
        later = time.time() + 2 * 86400
        gone = await collect(db, storage, "main", grace=0, dry_run=False, clock=lambda: later)
        assert gone.deleted == 2

    asyncio.run(scenario())
    assert not (storage.root / key).exists()
    assert db.blob_references("main")[1] == {}  # the reservation went with its object


@pytest.mark.parametrize("sidecar", ["metadata_key", "provenance_key"])
def test_every_sidecar_object_is_referenced_by_its_files_row(sidecar: str) -> None:
    # The objects kept beside a file (PEP 658 .metadata, PEP 740 .provenance) have no row of
    # their own: the collector must count them as their file's, or it deletes a live file's
    # provenance as garbage.
    from headwater.db.blobs import file_key_of
    from headwater.storage import layout

    sha = hashlib.sha256(b"x").hexdigest()
    key = getattr(layout, sidecar)(sha, "demo-1.0-py3-none-any.whl")
    assert file_key_of(key) == file_key(sha, "demo-1.0-py3-none-any.whl")
