"""The synchronous API of the hosted-index database: :class:`Database`.

One :class:`Database` per process, shared by its threads (the server calls it through
``asyncio.to_thread``); several processes may share one database. Every method is one transaction:
reads see one snapshot, writes hold the database's write lock (see :mod:`headwater.db.engine`), so
a method either happens completely or not at all.

Serials: every change to an index's content (a new project or file, a yank or unyank, a deletion,
a status, alternate-locations or tracks) appends a row to the journal and gets a new serial. Serials
grow with commit order across the whole database (one sequence for all indexes), like PyPI's
changelog; a mirror follows an index with :meth:`Database.changes_since`. Changes of owners,
namespaces, users and tokens are not content and take no serial.

Names: project arguments are normalized on the way in (any valid spelling works;
:class:`headwater.simple.InvalidName` for an invalid one) and come back normalized, with the
display name beside them.

The whole surface (this class and the two halves it inherits):

- life cycle: :meth:`~Database.connect`, ``ping``, ``close``, ``upgrade``, ``check_schema``, ``url``
- the change signal: ``generation()`` (what caches of the database's content key on)
- serials: ``last_serial(index)``, ``project_serial(index, name)``, ``changes_since(index, serial)``
- projects: ``project(index, name)``, ``projects(index)``, ``quarantined_files(index)``, ``add_file(index, name, NewFile,
  uploader=)`` (an :class:`~headwater.db.AddResult`, not an exception, for conflicts)
- :mod:`headwater.db.changes`: ``yank``/``unyank`` (a file or a release), ``delete_file``,
  ``delete_release``, ``delete_project`` (each returns the storage keys no longer referenced),
  ``set_status`` (PEP 792), ``set_alternate_locations`` and ``set_tracks`` (PEP 708)
- :mod:`headwater.db.access`: ``create_user``, ``users``, ``create_token``, ``authenticate``,
  ``revoke_token``, ``tokens``, ``owners``, ``add_owner``, ``remove_owner``, ``grant_namespace``,
  ``revoke_namespace``, ``namespaces``, ``namespace_covering`` (PEP 752), ``create_first_admin``
- :mod:`headwater.db.passwords`: ``set_password``, ``clear_password``, ``has_password``,
  ``check_password``, ``password_sign_in`` (counted by :mod:`headwater.db.throttle`),
  ``authenticate_session``, ``end_session``, ``sessions``: the interface's passwords
- :mod:`headwater.db.publishers`: trusted publishers (``add_publisher``, ``remove_publisher``,
  ``publishers``, ``publishers_for``, ``sync_publishers``); :mod:`headwater.db.minting`: tokens
  minted for them, used OIDC token ids, the publishing log
- :mod:`headwater.db.blobs`: ``reserve_blob``, ``release_blob``, ``blob_references``,
  ``delete_unreferenced``, ``forget_abandoned_reservations`` (what the garbage collector and
  uploads agree on)
"""

from __future__ import annotations

import os
import threading
import weakref
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from headwater.db import migrate
from headwater.db import schema as t
from headwater.db._checks import (
    check_index,
    check_line,
    check_sha256,
    check_text,
    journal,
    name_of,
    now,
    project_row,
    require_project,
    require_user,
)
from headwater.db.access import AccessControl
from headwater.db.blobs import BlobReferences
from headwater.db.changes import ProjectChanges
from headwater.db.engine import make_engine, reading, shown_url, unavailable, writing
from headwater.db.errors import DatabaseError, InvalidArgument
from headwater.db.generation import ChangeSignal, signal_for
from headwater.db.minting import Minting
from headwater.db.passwords import Passwords
from headwater.db.publishers import Publishers
from headwater.db.records import (
    AddResult,
    Change,
    FileRecord,
    NewFile,
    ProjectRecord,
    ProjectSummary,
)
from headwater.simple.model import ProjectStatus
from headwater.simple.names import NormalizedName

__all__ = ["Database"]

_REFUSED = {
    ProjectStatus.ARCHIVED: AddResult.ARCHIVED,
    ProjectStatus.QUARANTINED: AddResult.QUARANTINED,
}


def _file_record(row: Row[Any]) -> FileRecord:
    return FileRecord(
        filename=row.filename,
        version=row.version,
        sha256=row.sha256,
        blake2_256=row.blake2_256,
        size=row.size,
        upload_time=row.upload_time,
        requires_python=row.requires_python,
        metadata_sha256=row.metadata_sha256,
        provenance_sha256=row.provenance_sha256,
        publishers=tuple(row.publishers or ()),
        yanked=row.yanked_reason if row.yanked else False,
        storage_key=row.storage_key,
        uploader=row.uploader,
    )


#: Databases whose change signal is made, to forget in a forked child (see _forget_signal).
_WITH_SIGNALS: weakref.WeakSet[Database] = weakref.WeakSet()
_INHERITED: list[ChangeSignal] = []


def _after_fork_in_child() -> None:
    for db in list(_WITH_SIGNALS):
        db._forget_signal()
    _WITH_SIGNALS.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def sqlite_file(url: str) -> str | None:
    """The file a ``sqlite:///PATH`` URL names, or None (another database, in-memory, or a URL
    :func:`~headwater.db.engine.make_engine` will refuse with its own message)."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


class Database(ProjectChanges, Minting, AccessControl, Passwords, Publishers, BlobReferences):
    """A headwater database (SQLite or PostgreSQL). Make one with :meth:`connect`."""

    def __init__(self, engine: sa.Engine) -> None:
        """Wrap an engine made by :func:`headwater.db.engine.make_engine` (use :meth:`connect`)."""
        self._engine = engine
        self._signal: ChangeSignal | None = None
        self._signal_lock = threading.Lock()

    @classmethod
    def connect(cls, url: str, *, create: bool = True) -> Self:
        """Open the database at ``url`` (``sqlite:///PATH`` or ``postgresql://...``) and check that
        it answers. The schema is not checked: call :meth:`check_schema` or :meth:`upgrade`.

        ``create=False`` refuses a SQLite file that does not exist yet instead of making an empty
        one: a command that only reads or checks must not leave a database behind a mistyped
        ``--data-dir`` (and then report an empty schema, or nothing at all, as if it were real).

        Raises:
            DatabaseError: the URL is malformed or names an unsupported database; or, with
                ``create=False``, its SQLite file does not exist.
            DatabaseUnavailable: the database does not answer (the URL is shown without password).
        """
        if not create:
            path = sqlite_file(url)
            if path is not None and not os.path.exists(path):  # noqa: PTH110
                raise DatabaseError(
                    f"no database at {path}: nothing has been set up there. Check --data-dir or "
                    "--database (or the configuration's data_dir and database), or create it "
                    "with `headwater db upgrade`."
                )
        db = cls(make_engine(url))
        try:
            db.ping()
        except BaseException:
            db.close()
            raise
        return db

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for whole-database tools: moves, backups)."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with its password masked."""
        return shown_url(self._engine)

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    def close(self) -> None:
        """Close every pooled connection. The object may be used again (it reconnects)."""
        with self._signal_lock:
            if self._signal is not None:
                self._signal.close()
                self._signal = None
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def ping(self) -> None:
        """Raise :class:`DatabaseUnavailable` unless the database answers a query."""
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except (sa.exc.DatabaseError, sa.exc.InterfaceError) as exc:
            # DatabaseError: also a file that is not a database ("file is not a database").
            raise unavailable(self._engine, exc) from exc

    def generation(self) -> int:
        """A number that changes whenever anything in the database may have changed, by any
        process (see :mod:`headwater.db.generation`): what every cache derived from the
        database keys on. Costs microseconds, no round trip; asked on every request."""
        signal = self._signal
        if signal is None:
            signal = self._new_signal()
        return signal.generation()

    def _new_signal(self) -> ChangeSignal:
        with self._signal_lock:
            if self._signal is None:
                self._signal = signal_for(self._engine)
                _WITH_SIGNALS.add(self)
            return self._signal

    def _forget_signal(self) -> None:
        # In a forked child: the parent's SQLite connection or listener thread is not ours. It
        # is kept, never closed: SQLite must not act on a connection made before a fork.
        if self._signal is not None:
            _INHERITED.append(self._signal)
        self._signal = None
        self._signal_lock = threading.Lock()

    # --- schema ----------------------------------------------------------------------------

    def upgrade(self) -> tuple[str | None, str]:
        """Apply every migration the database lacks (idempotent; safe from several processes at
        once). Returns (revision before, revision after). ``headwater db upgrade`` calls this.

        Raises:
            DatabaseUnavailable: the database failed; the schema is left at the previous revision.
        """
        return migrate.upgrade(self._engine)

    def check_schema(self) -> None:
        """Raise unless the schema is exactly what this headwater needs.

        Raises:
            SchemaOutOfDate: "database at URL is at revision X, headwater needs Y: run
                `headwater db upgrade`" (or a newer headwater's revision).
        """
        migrate.check_schema(self._engine)

    # --- serials ---------------------------------------------------------------------------

    def last_serial(self, index: str) -> int:
        """The serial of the index's newest change (0 if it never changed)."""
        with reading(self._engine) as conn:
            value = conn.execute(
                sa.select(sa.func.max(t.journal.c.serial)).where(t.journal.c.index == index)
            ).scalar()
        return int(value or 0)

    def project_serial(self, index: str, name: str) -> int | None:
        """The serial of the project's newest change (also after it was deleted); None if the
        project never existed."""
        project = name_of(name)
        with reading(self._engine) as conn:
            value = conn.execute(
                sa.select(sa.func.max(t.journal.c.serial)).where(
                    t.journal.c.index == index, t.journal.c.project == project
                )
            ).scalar()
        return None if value is None else int(value)

    def changes_since(self, index: str, serial: int, *, limit: int = 10_000) -> list[Change]:
        """The index's changes with a serial above ``serial``, oldest first, at most ``limit``."""
        with reading(self._engine) as conn:
            rows = conn.execute(
                sa.select(t.journal)
                .where(t.journal.c.index == index, t.journal.c.serial > serial)
                .order_by(t.journal.c.serial)
                .limit(limit)
            ).all()
        return [
            Change(
                serial=row.serial,
                index=index,
                project=NormalizedName(row.project),
                action=row.action,
                version=row.version,
                filename=row.filename,
                actor=row.actor,
                time=row.time,
            )
            for row in rows
        ]

    # --- reading projects ------------------------------------------------------------------

    def project(self, index: str, name: str) -> ProjectRecord | None:
        """The project with its files (sorted by filename), or None."""
        project = name_of(name)
        with reading(self._engine, snapshot=True) as conn:
            row = project_row(conn, index, project)
            if row is None:
                return None
            file_rows = conn.execute(
                sa.select(t.files)
                .where(t.files.c.project_id == row.id)
                .order_by(t.files.c.filename)
            ).all()
        return ProjectRecord(
            name=NormalizedName(row.name),
            display_name=row.display_name,
            status=ProjectStatus(row.status),
            status_reason=row.status_reason,
            alternate_locations=tuple(row.alternate_locations),
            tracks=tuple(row.tracks),
            last_serial=row.last_serial,
            files=tuple(_file_record(f) for f in file_rows),
        )

    def totals(self, index: str) -> tuple[int, int]:
        """(files, bytes) of the index's files, for the web interface's home page."""
        with reading(self._engine) as conn:
            row = conn.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(t.files.c.size), 0)).where(
                    t.files.c.index == index
                )
            ).one()
        return int(row[0]), int(row[1])

    def projects(self, index: str) -> list[ProjectSummary]:
        """Every project of the index, by name, whatever its status (the caller hides
        quarantined ones where it must)."""
        with reading(self._engine) as conn:
            rows = conn.execute(
                sa.select(
                    t.projects.c.name,
                    t.projects.c.display_name,
                    t.projects.c.last_serial,
                    t.projects.c.status,
                )
                .where(t.projects.c.index == index)
                .order_by(t.projects.c.name)
            ).all()
        return [
            ProjectSummary(
                name=NormalizedName(row.name),
                display_name=row.display_name,
                last_serial=row.last_serial,
                status=ProjectStatus(row.status),
            )
            for row in rows
        ]

    def quarantined_files(self, index: str) -> list[tuple[str, str]]:
        """(sha256, filename) of every file of the index's quarantined projects (PEP 792: they
        must not be served): one query, so a server can ask again after every change."""
        with reading(self._engine) as conn:
            rows = conn.execute(
                sa.select(t.files.c.sha256, t.files.c.filename)
                .join(t.projects, t.files.c.project_id == t.projects.c.id)
                .where(
                    t.projects.c.index == index,
                    t.projects.c.status == ProjectStatus.QUARANTINED.value,
                )
            ).all()
        return [(row.sha256, row.filename) for row in rows]

    # --- adding files ----------------------------------------------------------------------

    def add_file(
        self,
        index: str,
        name: str,
        new: NewFile,
        *,
        uploader: str | None = None,
        owners_only: bool = False,
        publisher: int | None = None,
    ) -> AddResult:
        """Add ``new`` to project ``name`` of ``index``, creating the project if needed (its
        first uploader becomes an owner).

        Returns CREATED, or why nothing changed: IDENTICAL (same filename and sha256 there),
        ``publisher``: the upload is made with a token minted for this trusted publisher
        (``uploader`` is then the token's label, not a user): it may add to the project it is
        bound to, or create the project it is pending for (then it is bound to it and its
        ``owner`` owns the project); anything else is NOT_OWNER, decided in the write
        transaction like ownership.

        CONFLICT (same filename, other content, in this or another project), PREVIOUSLY_DELETED
        (filenames are never reused), ARCHIVED or QUARANTINED (PEP 792: no uploads), NOT_OWNER
        (``owners_only`` and the project exists without ``uploader`` among its owners). Other
        permission checks (scopes, namespaces) are the caller's; ownership is checked here too,
        in the write transaction, because a project the caller saw as new may have been created
        by another user since (two first uploads of one name at once: the second is NOT_OWNER,
        never a file in the first user's project). Two concurrent adds of one filename: one
        CREATED, the other IDENTICAL or CONFLICT.

        Raises:
            InvalidArgument: a malformed index name, digest, size or time.
            NotFound: ``uploader`` is not a user.
        """
        check_index(index)
        project = name_of(name)
        self._check_new_file(new)
        with writing(self._engine) as conn:
            row = project_row(conn, index, project)
            if row is not None and ProjectStatus(row.status) in _REFUSED:
                return _REFUSED[ProjectStatus(row.status)]
            creator: str | None = uploader
            if publisher is not None:
                allowed, creator = self.bind_publisher(conn, publisher, index, project)
                if not allowed:
                    return AddResult.NOT_OWNER
            elif row is not None and owners_only and not self._owns(conn, row.id, uploader):
                return AddResult.NOT_OWNER
            early = self._existing(conn, index, new, None if row is None else row.id)
            if early is not None:
                return early
            if uploader is not None and publisher is None:
                require_user(conn, uploader)
            if row is None:
                row = self._create_project(
                    conn, index, project, new.display_name, creator, actor=uploader
                )
                if publisher is not None:
                    self.bound_to(conn, publisher, row.id)
            try:
                # A savepoint: PostgreSQL aborts the whole transaction on a failed insert.
                with conn.begin_nested():
                    conn.execute(
                        sa.insert(t.files).values(self._file_values(index, row.id, new, uploader))
                    )
            except sa.exc.IntegrityError:
                # Unreachable while writes hold the write lock; the unique constraint is the
                # last word if anything ever inserts without it.
                return self._existing(conn, index, new, row.id) or AddResult.CONFLICT
            journal(
                conn,
                index,
                project,
                "add file",
                version=new.version,
                filename=new.filename,
                actor=uploader,
            )
        return AddResult.CREATED

    @staticmethod
    def _owns(conn: Connection, project_id: int, user: str | None) -> bool:
        if user is None:
            return False
        found = conn.execute(
            sa.select(t.owners.c.user).where(
                t.owners.c.project_id == project_id, t.owners.c.user == user
            )
        ).first()
        return found is not None

    @staticmethod
    def _check_new_file(new: NewFile) -> None:
        check_sha256(new.sha256, "sha256")
        if new.blake2_256 is not None:
            check_sha256(new.blake2_256, "blake2_256")
        if new.metadata_sha256 is not None:
            check_sha256(new.metadata_sha256, "metadata_sha256")
        check_line(new.version, "version", limit=200)
        check_line(new.requires_python, "requires_python", limit=1000)
        check_line(new.display_name, "display_name", limit=200)
        check_text(new.storage_key, "storage_key", limit=1000)
        if new.size < 0:
            raise InvalidArgument(f"a file size cannot be negative ({new.size})")
        if new.upload_time.tzinfo is None:
            raise InvalidArgument("upload_time must be an aware (UTC) datetime")
        if (
            not new.filename
            or "/" in new.filename
            or "\\" in new.filename
            or not new.filename.isprintable()
        ):
            raise InvalidArgument(f"invalid filename {new.filename[:80]!r}")

    @staticmethod
    def _existing(
        conn: Connection, index: str, new: NewFile, project_id: int | None
    ) -> AddResult | None:
        deleted = conn.execute(
            sa.select(t.deleted_files.c.filename).where(
                t.deleted_files.c.index == index, t.deleted_files.c.filename == new.filename
            )
        ).first()
        if deleted is not None:
            return AddResult.PREVIOUSLY_DELETED
        there = conn.execute(
            sa.select(t.files.c.sha256, t.files.c.project_id).where(
                t.files.c.index == index, t.files.c.filename == new.filename
            )
        ).first()
        if there is None:
            return None
        if there.sha256 == new.sha256 and there.project_id == project_id:
            return AddResult.IDENTICAL
        return AddResult.CONFLICT

    @staticmethod
    def _create_project(
        conn: Connection,
        index: str,
        project: NormalizedName,
        display: str | None,
        uploader: str | None,
        *,
        actor: str | None = None,
    ) -> Row[Any]:
        display_name = display if display and name_of(display) == project else project
        conn.execute(
            sa.insert(t.projects).values(
                index=index,
                name=project,
                display_name=display_name,
                status=ProjectStatus.ACTIVE.value,
                status_reason="",
                alternate_locations=[],
                tracks=[],
                last_serial=0,
                created=now(),
            )
        )
        row = require_project(conn, index, project)
        if uploader is not None:
            conn.execute(sa.insert(t.owners).values(project_id=row.id, user=uploader))
        journal(conn, index, project, "create", actor=actor or uploader)
        return row

    @staticmethod
    def _file_values(
        index: str, project_id: int, new: NewFile, uploader: str | None
    ) -> dict[str, Any]:
        return {
            "project_id": project_id,
            "index": index,
            "filename": new.filename,
            "version": new.version,
            "sha256": new.sha256,
            "blake2_256": new.blake2_256,
            "size": new.size,
            "upload_time": new.upload_time,
            "requires_python": new.requires_python,
            "metadata_sha256": new.metadata_sha256,
            "provenance_sha256": new.provenance_sha256,
            "publishers": list(new.publishers) or None,
            "yanked": False,
            "yanked_reason": "",
            "storage_key": new.storage_key,
            "uploader": uploader,
        }
