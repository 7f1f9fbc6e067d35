"""Move an installation to other engines, and prove the copy whole.

An installation is a database and its stores (:mod:`headwater.transfer.objects`). ``headwater
move`` copies both from the installation one configuration describes to the one another describes:
SQLite + a data directory to PostgreSQL + a bucket when a site outgrows one machine, and back again
for a small one. The steps, and why in this order:

1. **Schema.** The source must be at this headwater's newest revision (the rows are read with
   today's tables); the destination is migrated to it, and must hold no rows, so a move never merges
   two installations by accident (``replace`` empties it first, on request).
2. **Rows**, from one snapshot of the source (a running server may keep writing: the copy is of one
   instant), into one transaction of the destination; the source snapshot's fingerprints are taken
   while streaming. Keys travel unchanged, so serials, ids and tokens stay the same.
3. **Objects**, store by store, streamed; an object the destination already has with the same size is
   not copied again, so a move that was interrupted is simply run again with ``replace``.
4. **Check**: every table's fingerprint at the destination equals the source snapshot's; every object
   of every source store is at the destination with the same SHA-256; every file row of the destination
   names an object that is there with the sha256 and size the row promises. A move is reported done
   only when all of this holds.
5. **Quiet source.** If the source's journal moved on during the copy, the copy is of an older
   instant: it is consistent, but not current. The report says so and the move exits non-zero; stop
   writes (or the servers) and run it again with ``replace`` for the final cut-over.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import sqlalchemy as sa

from headwater.assembly import database_url
from headwater.config.settings import ServePlan
from headwater.db import Database
from headwater.db.engine import reading, shown_url, writing
from headwater.db.migrate import HEAD, current_revision
from headwater.db.schema import files, journal
from headwater.errors import HeadwaterError
from headwater.storage.base import NotFound, Storage
from headwater.storage.filesystem import FileStorage
from headwater.storage.layout import metadata_key
from headwater.transfer import rows as rowlib
from headwater.transfer.objects import (
    Store,
    StoreCheck,
    StoreCopy,
    check_store,
    close_stores,
    copy_store,
    stores,
)

__all__ = ["MoveError", "MoveReport", "check_files_present", "move", "same_place"]


class MoveError(HeadwaterError):
    """A move cannot start or cannot finish (the message says what and what to do)."""


class TableCheck(msgspec.Struct, frozen=True):
    """One table on both sides."""

    table: str
    source: rowlib.Fingerprint
    destination: rowlib.Fingerprint

    @property
    def ok(self) -> bool:
        return self.source == self.destination


class MoveReport(msgspec.Struct):
    """What a move (or a check) found; ``ok`` only when every comparison agrees."""

    source: str
    destination: str
    revision: str
    tables: list[TableCheck] = msgspec.field(default_factory=list)
    copies: list[StoreCopy] = msgspec.field(default_factory=list)
    checks: list[StoreCheck] = msgspec.field(default_factory=list)
    #: File rows of the destination whose object is missing or differs ("index/filename: why").
    broken_rows: list[str] = msgspec.field(default_factory=list)
    #: The source's last serial when the copy started and when it ended.
    serial_before: int = 0
    serial_after: int = 0

    @property
    def source_changed(self) -> bool:
        return self.serial_after != self.serial_before

    @property
    def ok(self) -> bool:
        return (
            all(t.ok for t in self.tables)
            and all(not c.failed for c in self.copies)
            and all(c.ok for c in self.checks)
            and not self.broken_rows
        )


def same_place(a: Storage, b: Storage) -> bool:
    """Whether two storages are the same place (then there is nothing to copy)."""
    if isinstance(a, FileStorage) and isinstance(b, FileStorage):
        return a.root == b.root
    where_a, where_b = getattr(a, "location", None), getattr(b, "location", None)
    return where_a is not None and where_a == where_b


def _last_serial(engine: sa.Engine) -> int:
    with reading(engine) as conn:
        value = conn.execute(sa.select(sa.func.max(journal.c.serial)))
        return int(value.scalar_one() or 0)


def _paired_stores(
    source: ServePlan, destination: ServePlan, *, proxies: bool, mirrors: bool
) -> list[tuple[Store, Store]]:
    theirs = {store.name: store for store in stores(destination, proxies=proxies, mirrors=mirrors)}
    pairs = []
    for store in stores(source, proxies=proxies, mirrors=mirrors):
        other = theirs.get(store.name)
        if other is None:
            kind, _, name = store.name.partition("/")
            raise MoveError(
                f"the destination configuration has no [{kind}.{name}]: every hosted index "
                f"{'and proxy ' if proxies else ''}of the source must exist there too (add it, "
                f"or leave proxy caches behind with --no-proxies)"
            )
        pairs.append((store, other))
    return pairs


def _check_source(engine: sa.Engine) -> str:
    revision = current_revision(engine)
    if revision != HEAD:
        raise MoveError(
            f"the source database {shown_url(engine)} is at revision {revision or 'none'}, not "
            f"{HEAD}: run `headwater db upgrade` on it first (with this headwater)"
        )
    return revision


def _prepare_destination(db: Database, *, replace: bool) -> None:
    db.upgrade()
    with reading(db.engine) as conn:
        counts = rowlib.count_rows(conn)
    full = {table: n for table, n in counts.items() if n}
    if not full:
        return
    if not replace:
        shown = ", ".join(f"{table} ({n})" for table, n in sorted(full.items()))
        raise MoveError(
            f"the destination database {shown_url(db.engine)} is not empty: {shown}. Move into an "
            "empty database (a `headwater serve` started on it creates the admin user: don't), or "
            "pass --replace to empty it first (its rows are deleted, its objects are kept)"
        )
    with writing(db.engine) as conn:
        rowlib.delete_all(conn)


def copy_rows(source: sa.Engine, destination: sa.Engine) -> dict[str, rowlib.Fingerprint]:
    """Copy every row of ``source`` (one snapshot) into ``destination`` (one transaction); return
    the fingerprints of what was read."""
    result: dict[str, rowlib.Fingerprint] = {}
    with reading(source, snapshot=True) as read, writing(destination) as write:
        for table in rowlib.tables():
            summer = rowlib.Summer()
            rowlib.insert_rows(write, table.name, summer.tee(rowlib.iter_rows(read, table)))
            result[table.name] = summer.result()
        rowlib.reset_sequences(write)
    return result


async def check_files_present(db: Database, plan: ServePlan) -> list[str]:
    """File rows of ``db`` whose object (or ``.metadata``) is missing from ``plan``'s hosted
    storage, or differs from the sha256 and size the row promises."""
    from headwater.assembly import hosted_storage

    broken: list[str] = []
    with reading(db.engine) as conn:
        result = conn.execution_options(yield_per=rowlib.BATCH).execute(
            sa.select(
                files.c.index,
                files.c.filename,
                files.c.storage_key,
                files.c.sha256,
                files.c.size,
                files.c.metadata_sha256,
            )
        )
        wanted = [tuple(row) for row in result]
    storages: dict[str, Storage] = {}
    for index, filename, key, sha256, size, metadata_sha256 in wanted:
        if index not in plan.hosted:
            broken.append(f"{index}/{filename}: the configuration has no [hosted.{index}]")
            continue
        storage = storages.setdefault(index, hosted_storage(plan, index))
        try:
            have = await storage.digest(key)
        except NotFound:
            broken.append(f"{index}/{filename}: object {key} is missing")
            continue
        if have != (sha256, size):
            broken.append(
                f"{index}/{filename}: object {key} has sha256 {have[0]}, the row {sha256}"
            )
        if metadata_sha256:
            try:
                meta = await storage.digest(metadata_key(sha256, filename))
            except NotFound:
                broken.append(f"{index}/{filename}: its .metadata is missing")
                continue
            if meta[0] != metadata_sha256:
                broken.append(f"{index}/{filename}: its .metadata differs from the row's sha256")
    return broken


def _private_folder(path: Path) -> None:
    """Make the destination's data directory (0700).

    Raises:
        MoveError: it cannot be made (a file is in the way, a folder that may not be written).
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        why = "a file is in the way" if isinstance(exc, FileExistsError) else exc.strerror
        raise MoveError(
            f"cannot make the destination's data directory {path}: {why or exc}; give "
            "--to-data-dir a directory you can write (nothing was moved)"
        ) from exc


def _copy_admin_token(source: ServePlan, destination: ServePlan) -> None:
    theirs = Path(destination.settings.data_dir) / "admin-token"
    ours = Path(source.settings.data_dir) / "admin-token"
    if ours.is_file() and not theirs.exists():
        theirs.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copyfile(ours, theirs)
        theirs.chmod(0o600)


async def move(
    source: ServePlan,
    destination: ServePlan,
    *,
    replace: bool = False,
    proxies: bool = True,
    mirrors: bool = False,
    check_only: bool = False,
    workers: int = 8,
) -> MoveReport:
    """Copy the installation ``source`` describes to the one ``destination`` describes, then check
    the copy (module docstring); with ``check_only``, only check.

    Raises:
        MoveError: the move cannot start (schema, a non-empty destination, a store missing from
            the destination's configuration).
        DatabaseUnavailable, StorageError: a database or store failed.
    """
    source_url, destination_url = database_url(source), database_url(destination)
    if source_url == destination_url:
        raise MoveError(
            f"the source and the destination are the same database ({source_url}): give the "
            "destination another --to-database or configuration"
        )
    pairs = _paired_stores(source, destination, proxies=proxies, mirrors=mirrors)
    if not check_only:
        _private_folder(Path(destination.settings.data_dir))
    src = Database.connect(source_url)
    dst = Database.connect(destination_url)
    try:
        revision = _check_source(src.engine)
        report = MoveReport(
            source=shown_url(src.engine), destination=shown_url(dst.engine), revision=revision
        )
        report.serial_before = _last_serial(src.engine)
        if check_only:
            with reading(src.engine, snapshot=True) as conn:
                snapshot = rowlib.fingerprints(conn)
        else:
            _prepare_destination(dst, replace=replace)
            snapshot = copy_rows(src.engine, dst.engine)
            for theirs, ours in pairs:
                if same_place(theirs.storage, ours.storage):
                    continue
                report.copies.append(
                    await copy_store(theirs.name, theirs.storage, ours.storage, workers=workers)
                )
            _copy_admin_token(source, destination)
        dst.check_schema()
        with reading(dst.engine, snapshot=True) as conn:
            landed = rowlib.fingerprints(conn)
        report.tables = [
            TableCheck(table=name, source=snapshot[name], destination=landed[name])
            for name in snapshot
        ]
        for theirs, ours in pairs:
            if not same_place(theirs.storage, ours.storage):
                report.checks.append(
                    await check_store(theirs.name, theirs.storage, ours.storage, workers=workers)
                )
        report.broken_rows = await check_files_present(dst, destination)
        report.serial_after = _last_serial(src.engine)
        return report
    finally:
        src.close()
        dst.close()
        await close_stores([store for pair in pairs for store in pair])
