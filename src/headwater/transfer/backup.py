"""Backups of an installation: create, verify, restore.

A backup is one tar file (:mod:`headwater.transfer.archive`) holding, under ``headwater-backup/``:

============================  =====================================================================
member                        what it holds
============================  =====================================================================
``header.json``               format, headwater version, schema revision, the source database (no
                              password), the last serial, every table's fingerprint, the stores
``tables/NAME.jsonl``         every row of table NAME, one JSON object a line (portable: a backup of
                              SQLite restores into PostgreSQL and back)
``objects/NNNNNN``            with ``--objects`` only: the bytes of each stored object
``objects.jsonl``             the object manifest: store, key, sha256, size (and member) of every
                              object of every store backed up
``SHA256SUMS``                the sha256 of every member above (``sha256sum -c`` format)
============================  =====================================================================

Without ``--objects`` a backup is the database plus the manifest: the objects stay where they are
(a bucket with versioning, or the data directory under the site's file backups), and the manifest
lets ``backup verify --config`` prove they are all still there, byte for byte, before a restore
relies on them. With ``--objects`` the backup is self-contained.

**Consistency.** Rows come from one snapshot of the database; the manifest is made afterwards. Stored
objects are never rewritten in place (a key names its content), so every row's object is in the
manifest unless it was deleted meanwhile: creation checks that every file row's object is in the
manifest with the sha256 the row promises, and fails otherwise (run it again).

**Restore** verifies the whole backup first (every member's sha256, every table's fingerprint, every
row decodes, and without ``--objects`` every object present in the installation's stores), and only
then changes anything: objects first (each write atomic), then every row in one transaction, so a
restore that fails leaves the database as it was and can be run again.

A backup restores into this headwater's schema. One from an older headwater restores when the
migrations since then only added tables, or columns that are optional or have defaults (so far, all
of them); otherwise restore it with the headwater that made it, then upgrade.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import sqlalchemy as sa

from headwater import __version__
from headwater.assembly import database_url
from headwater.config.settings import ServePlan
from headwater.db import Database
from headwater.db.engine import reading, shown_url, writing
from headwater.db.migrate import HEAD, REVISIONS, current_revision
from headwater.db.schema import files, journal
from headwater.errors import HeadwaterError
from headwater.storage.base import NotFound, StorageError
from headwater.transfer import rows as rowlib
from headwater.transfer.archive import SUMS, ArchiveError, TarReader, TarWriter
from headwater.transfer.objects import Store, close_stores, stores

__all__ = [
    "BackupError",
    "BackupReport",
    "Header",
    "create_backup",
    "restore_backup",
    "verify_backup",
]

FORMAT = 1
ROOT = "headwater-backup"
_HEADER = "header.json"
_MANIFEST = "objects.jsonl"
_MAX_SMALL = 256 << 20  # header, manifest and SHA256SUMS are read whole; bounded


class BackupError(HeadwaterError):
    """A backup cannot be made, is damaged, or cannot be restored here."""


class Header(msgspec.Struct, frozen=True):
    format: int
    headwater: str
    created: str
    revision: str
    source: str
    serial: int
    tables: dict[str, rowlib.Fingerprint]
    stores: list[str]
    objects_included: bool


class ObjectEntry(msgspec.Struct, frozen=True):
    store: str
    key: str
    sha256: str
    size: int
    member: str | None = None


class BackupReport(msgspec.Struct):
    """What creating, verifying or restoring a backup found."""

    path: str
    header: Header | None = None
    objects: int = 0
    object_bytes: int = 0
    problems: list[str] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.header is not None and not self.problems


def _store_map(plan: ServePlan, names: list[str]) -> dict[str, Store]:
    have = {s.name: s for s in stores(plan, proxies=True, mirrors=True)}
    missing = [name for name in names if name not in have]
    if missing:
        shown = ", ".join(f"[{n.partition('/')[0]}.{n.partition('/')[2]}]" for n in missing)
        raise BackupError(
            f"the configuration has no {shown}: the backup has objects for it; add it to the "
            "configuration (a storage for each) and run again"
        )
    return {name: have[name] for name in names}


async def create_backup(
    plan: ServePlan,
    path: Path,
    *,
    objects: bool = False,
    proxies: bool = False,
    mirrors: bool = False,
    progress: Callable[[str], None] | None = None,
) -> BackupReport:
    """Write a backup of the installation ``plan`` describes to ``path`` (via ``path.partial``,
    renamed when complete: a failed backup leaves no file that looks whole).

    Raises:
        BackupError: the database is not at this headwater's revision, or an object a row needs
            was deleted during the backup.
    """
    say = progress or (lambda _message: None)
    db = Database.connect(database_url(plan))
    partial = path.with_name(path.name + ".partial")
    report = BackupReport(path=str(path))
    chosen: list[Store] = []
    try:
        revision = current_revision(db.engine)
        if revision != HEAD:
            raise BackupError(
                f"database {shown_url(db.engine)} is at revision {revision or 'none'}, this "
                f"headwater's is {HEAD}: back it up with the headwater that uses it"
            )
        chosen = stores(plan, proxies=proxies, mirrors=mirrors)
        with tempfile.TemporaryDirectory(prefix="headwater-backup-") as scratch:
            dumps: dict[str, Path] = {}
            prints: dict[str, rowlib.Fingerprint] = {}
            wanted: dict[tuple[str, str], tuple[str, int]] = {}
            with reading(db.engine, snapshot=True) as conn:
                serial = int(
                    conn.execute(sa.select(sa.func.max(journal.c.serial))).scalar_one() or 0
                )
                for table in rowlib.tables():
                    dumps[table.name] = Path(scratch) / f"{table.name}.jsonl"
                    summer = rowlib.Summer()
                    with dumps[table.name].open("wb") as out:
                        for row in summer.tee(rowlib.iter_rows(conn, table)):
                            out.write(msgspec.json.encode(row) + b"\n")
                            if table is files:
                                wanted[(f"hosted/{row['index']}", row["storage_key"])] = (
                                    row["sha256"],
                                    row["size"],
                                )
                    prints[table.name] = summer.result()
                    say(f"table {table.name}: {prints[table.name].rows} rows")
            header = Header(
                format=FORMAT,
                headwater=__version__,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                revision=revision,
                source=shown_url(db.engine),
                serial=serial,
                tables=prints,
                stores=[s.name for s in chosen],
                objects_included=objects,
            )
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                tar = TarWriter(out, root=ROOT, mtime=datetime.now(UTC).timestamp())
                tar.add_bytes(_HEADER, msgspec.json.format(msgspec.json.encode(header)) + b"\n")
                for name, dump in dumps.items():
                    with dump.open("rb") as handle:
                        tar.add_file(f"tables/{name}.jsonl", handle, dump.stat().st_size)
                manifest = await _objects(tar if objects else None, chosen, report)
                seen = {(e.store, e.key): (e.sha256, e.size) for e in manifest}
                for (store, key), promised in sorted(wanted.items()):
                    if seen.get((store, key)) != promised:
                        raise BackupError(
                            f"{store}: object {key} is missing or differs from its row (deleted "
                            "or replaced during the backup?): run the backup again"
                        )
                tar.add_bytes(_MANIFEST, b"".join(msgspec.json.encode(e) + b"\n" for e in manifest))
                tar.close()
                out.flush()
                os.fsync(out.fileno())
        partial.replace(path)
        report.header = header
        return report
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        db.close()
        await close_stores(chosen)


async def _objects(
    tar: TarWriter | None, chosen: list[Store], report: BackupReport
) -> list[ObjectEntry]:
    entries: list[ObjectEntry] = []
    for store in chosen:
        keys = sorted([key async for key in store.storage.iter_keys()])
        for key in keys:
            stat = await store.storage.stat(key)
            if stat is None:
                continue  # deleted since it was listed
            if tar is not None:
                member = f"objects/{len(entries) + 1:06d}"
                sha256 = await tar.add_stream(member, store.storage.open_read(key), stat.size)
                size = stat.size
            else:
                member = None
                sha256, size = await store.storage.digest(key)
            entries.append(
                ObjectEntry(store=store.name, key=key, sha256=sha256, size=size, member=member)
            )
            report.objects += 1
            report.object_bytes += size
    return entries


def _parse(data: bytes, kind: type[Any], what: str) -> Any:
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as exc:
        raise BackupError(f"{what} is damaged: {exc}") from exc


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise BackupError(f"cannot read the backup {path}: {exc.strerror or exc}") from exc


def _read_backup(
    path: Path,
    report: BackupReport,
    *,
    on_table: Callable[[str, list[dict[str, Any]]], None] | None = None,
    on_object: Callable[[str, Any], Any] | None = None,
) -> list[ObjectEntry]:
    """One pass over the archive: check the framing, every member's sha256 against SHA256SUMS,
    the header, every row (decodes; fingerprints agree) and the manifest; hand rows and object
    members to the callbacks. Problems go into ``report``."""
    header: Header | None = None
    manifest: list[ObjectEntry] = []
    digests: dict[str, str] = {}
    listed: dict[str, str] | None = None
    tables_seen: set[str] = set()
    object_members: dict[str, str] = {}
    with _open(path) as handle:
        for member in TarReader(handle, root=ROOT, where=str(path)):
            name = member.name
            if name == _HEADER:
                header = _parse(member.read(_MAX_SMALL), Header, f"{path}: header.json")
                if header.format != FORMAT:
                    raise BackupError(
                        f"{path} is backup format {header.format}; this headwater reads format "
                        f"{FORMAT}: use a newer headwater"
                    )
            elif name.startswith("tables/") and name.endswith(".jsonl"):
                if header is None:
                    raise BackupError(f"{path}: tables come before header.json")
                table = name.removeprefix("tables/").removesuffix(".jsonl")
                tables_seen.add(table)
                _read_table(member, table, header, report, on_table)
            elif name.startswith("objects/"):
                digest = on_object(name, member) if on_object is not None else _drain(member)
                object_members[name] = digest
            elif name == _MANIFEST:
                manifest = [
                    _parse(line, ObjectEntry, f"{path}: objects.jsonl")
                    for line in member.read(_MAX_SMALL).splitlines()
                    if line.strip()
                ]
            elif name == SUMS:
                listed = {}
                for line in member.read(_MAX_SMALL).decode(errors="replace").splitlines():
                    digest, _, listed_name = line.partition("  ")
                    listed[listed_name.removeprefix(f"{ROOT}/")] = digest
                continue
            else:
                report.problems.append(f"unexpected member {name[:100]!r}")
            _drain(member)  # what a branch left unread still counts towards the member's sha256
            digests[name] = member.digest.hexdigest()
    if header is None:
        raise BackupError(f"{path} has no header.json: not a headwater backup")
    report.header = header
    if listed is None:
        report.problems.append("SHA256SUMS is missing: the backup was not finished")
    else:
        for name in sorted(listed):
            if name not in digests:
                report.problems.append(f"{name} is listed in SHA256SUMS but missing")
        for name in sorted(digests):
            if name not in listed:
                report.problems.append(f"{name} is not listed in SHA256SUMS")
            elif listed[name] != digests[name]:
                report.problems.append(f"{name}: sha256 differs from SHA256SUMS (damaged)")
    for table in sorted(set(header.tables) - tables_seen):
        report.problems.append(f"table {table} is missing from the backup")
    for entry in manifest:
        report.objects += 1
        report.object_bytes += entry.size
        if header.objects_included:
            got = object_members.get(entry.member or "")
            if got is None:
                report.problems.append(f"{entry.store}: {entry.key}: its bytes are missing")
            elif got != entry.sha256:
                report.problems.append(
                    f"{entry.store}: {entry.key}: its bytes differ from the manifest"
                )
    return manifest


def _drain(member: Any) -> str:
    for _ in member.chunks():
        pass
    return str(member.digest.hexdigest())


def _read_table(
    member: Any,
    table: str,
    header: Header,
    report: BackupReport,
    on_table: Callable[[str, list[dict[str, Any]]], None] | None,
) -> None:
    expected = header.tables.get(table)
    if expected is None:
        report.problems.append(f"tables/{table}.jsonl is not in the header")
    summer = rowlib.Summer()
    batch: list[dict[str, Any]] = []
    rest = b""
    for chunk in member.chunks():
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if not line.strip():
                continue
            row = _parse(line, dict[str, Any], f"table {table}")
            try:
                rowlib.decode_row(table, row)
            except rowlib.RowError as exc:
                report.problems.append(str(exc))
                return
            summer.add(row)
            batch.append(row)
            if on_table is not None and len(batch) >= rowlib.BATCH:
                on_table(table, batch)
                batch = []
    if rest.strip():
        report.problems.append(f"table {table}: the last line is cut short")
    if on_table is not None and batch:
        on_table(table, batch)
    if expected is not None and summer.result() != expected:
        report.problems.append(
            f"table {table}: {summer.result().rows} rows whose fingerprint differs from the "
            f"header's ({expected.rows} rows): damaged"
        )


async def verify_backup(path: Path, plan: ServePlan | None = None) -> BackupReport:
    """Check ``path`` without changing anything; with ``plan`` and a backup without objects, also
    check that every object of the manifest is in ``plan``'s stores with the same sha256."""
    report = BackupReport(path=str(path))
    try:
        manifest = _read_backup(path, report)
    except (ArchiveError, BackupError) as exc:
        report.problems.append(str(exc))
        return report
    assert report.header is not None
    if plan is not None and not report.header.objects_included:
        await _check_present(plan, report.header, manifest, report)
    return report


async def _check_present(
    plan: ServePlan, header: Header, manifest: list[ObjectEntry], report: BackupReport
) -> None:
    try:
        where = _store_map(plan, header.stores)
    except BackupError as exc:
        report.problems.append(str(exc))
        return
    try:
        for entry in manifest:
            try:
                have = await where[entry.store].storage.digest(entry.key)
            except NotFound:
                report.problems.append(
                    f"{entry.store}: {entry.key} is not in the installation's storage"
                )
                continue
            except StorageError as exc:
                report.problems.append(f"{entry.store}: {entry.key}: {exc}")
                continue
            if have != (entry.sha256, entry.size):
                report.problems.append(
                    f"{entry.store}: {entry.key} differs from the backup's manifest"
                )
    finally:
        await close_stores(list(where.values()))


async def restore_backup(path: Path, plan: ServePlan, *, replace: bool = False) -> BackupReport:
    """Restore ``path`` into the installation ``plan`` describes (module docstring: verify
    everything first, then objects, then rows in one transaction).

    Raises:
        BackupError: the backup is damaged, from a newer headwater, needs stores the configuration
            lacks, or the database is not empty (without ``replace``). Nothing was changed.
    """
    report = await verify_backup(path, plan)
    if report.problems:
        shown = "; ".join(report.problems[:5])
        more = f" (and {len(report.problems) - 5} more)" if len(report.problems) > 5 else ""
        raise BackupError(f"{path} cannot be restored, nothing was changed: {shown}{more}")
    header = report.header
    assert header is not None
    if header.revision not in REVISIONS:
        raise BackupError(
            f"{path} was made by a newer headwater (schema revision {header.revision}; this one "
            f"knows up to {HEAD}): restore it with that version or a newer one"
        )
    where = _store_map(plan, header.stores)
    _private_folder(Path(plan.settings.data_dir))
    db = Database.connect(database_url(plan))
    try:
        return await _restore(path, db, header, where, report, replace=replace)
    finally:
        db.close()
        await close_stores(list(where.values()))


async def _restore(
    path: Path,
    db: Database,
    header: Header,
    where: dict[str, Store],
    report: BackupReport,
    *,
    replace: bool,
) -> BackupReport:
    db.upgrade()
    with reading(db.engine) as conn:
        full = {t: n for t, n in rowlib.count_rows(conn).items() if n}
    if full and not replace:
        shown = ", ".join(f"{t} ({n})" for t, n in sorted(full.items()))
        raise BackupError(
            f"the database {shown_url(db.engine)} is not empty ({shown}): restore into an empty "
            "database, or pass --replace to delete its rows first"
        )
    if header.objects_included:
        await _restore_objects(path, where)
    with writing(db.engine) as conn:
        if replace:
            rowlib.delete_all(conn)

        def load(table: str, batch: list[dict[str, Any]]) -> None:
            rowlib.insert_rows(conn, table, batch)

        again = BackupReport(path=str(path))
        _read_backup(path, again, on_table=load)
        if again.problems:  # the file changed between the two passes
            raise BackupError(f"{path} changed during the restore: {again.problems[0]}")
        rowlib.reset_sequences(conn)
    if header.revision == HEAD:
        with reading(db.engine, snapshot=True) as conn:
            landed = rowlib.fingerprints(conn)
        for table, expected in header.tables.items():
            if landed.get(table) != expected:
                report.problems.append(f"table {table}: the restored rows differ from the backup")
    return report


def _private_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


async def _restore_objects(path: Path, where: dict[str, Store]) -> None:
    """Write every object member of the backup to its store (atomic per object)."""
    # The manifest comes after the objects: read it first (a cheap pass skipping object bytes).
    probe = BackupReport(path=str(path))
    manifest = _read_backup(path, probe)
    by_member = {e.member: e for e in manifest if e.member}
    with _open(path) as handle:
        for member in TarReader(handle, root=ROOT, where=str(path)):
            entry = by_member.get(member.name)
            if entry is None:
                continue
            storage = where[entry.store].storage
            async with storage.writer(entry.key) as writer:
                for chunk in member.chunks():
                    await writer.write(chunk)
                if member.digest.hexdigest() != entry.sha256:
                    writer.abort()
                    raise BackupError(f"{path} changed during the restore ({entry.key} differs)")
