"""Changing hosted projects: yanks, deletions, status, alternate-locations and tracks.

The methods here are part of :class:`headwater.db.Database` (see :mod:`headwater.db.database` for
transactions and serials). Each change that changes something takes one new serial; a call that
changes nothing (a status set to what it is) takes none and returns ``None`` or ``[]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from headwater.db import schema as t
from headwater.db._checks import check_line, check_urls, journal, name_of, require_project
from headwater.db.engine import writing
from headwater.db.errors import InvalidArgument, NotFound
from headwater.simple.model import ProjectStatus
from headwater.simple.names import NormalizedName

__all__ = ["ProjectChanges"]


class ProjectChanges:
    """Yank, delete and configure projects (mixed into :class:`headwater.db.Database`)."""

    _engine: Engine

    # --- yanking ---------------------------------------------------------------------------

    def yank(
        self,
        index: str,
        name: str,
        *,
        filename: str | None = None,
        version: str | None = None,
        reason: str = "",
        actor: str | None = None,
    ) -> list[str]:
        """Yank one file, or every file of a release (PEP 592); return the filenames that changed
        (none: nothing changed and no serial was taken).

        Raises:
            InvalidArgument: neither ``filename`` nor ``version`` given.
            NotFound: no such project, or no file matches.
        """
        return self._set_yanked(index, name, filename, version, True, reason, actor)

    def unyank(
        self,
        index: str,
        name: str,
        *,
        filename: str | None = None,
        version: str | None = None,
        actor: str | None = None,
    ) -> list[str]:
        """Undo :meth:`yank` for a file or a release; return the filenames that changed."""
        return self._set_yanked(index, name, filename, version, False, "", actor)

    def _set_yanked(
        self,
        index: str,
        name: str,
        filename: str | None,
        version: str | None,
        yanked: bool,
        reason: str,
        actor: str | None,
    ) -> list[str]:
        check_line(reason, "yank reason")
        project = name_of(name)
        with writing(self._engine) as conn:
            row = require_project(conn, index, project)
            rows = self._matching_files(conn, index, row, filename, version)
            changed = [
                f.filename
                for f in rows
                if bool(f.yanked) != yanked or (yanked and f.yanked_reason != reason)
            ]
            if not changed:
                return []
            conn.execute(
                sa.update(t.files)
                .where(t.files.c.project_id == row.id, t.files.c.filename.in_(changed))
                .values(yanked=yanked, yanked_reason=reason if yanked else "")
            )
            journal(
                conn,
                index,
                project,
                "yank" if yanked else "unyank",
                version=version,
                filename=filename,
                actor=actor,
            )
        return changed

    @staticmethod
    def _matching_files(
        conn: Connection, index: str, row: Row[Any], filename: str | None, version: str | None
    ) -> Sequence[Row[Any]]:
        if filename is None and version is None:
            raise InvalidArgument("name a file or a release (filename= or version=)")
        query = sa.select(t.files).where(t.files.c.project_id == row.id)
        if filename is not None:
            query = query.where(t.files.c.filename == filename)
        if version is not None:
            query = query.where(t.files.c.version == version)
        rows = conn.execute(query.order_by(t.files.c.filename)).all()
        if not rows:
            what = f"file {filename!r}" if filename is not None else f"release {version!r}"
            raise NotFound(f"no {what} in project {row.name!r} of index {index!r}")
        return rows

    # --- deleting --------------------------------------------------------------------------

    def delete_file(
        self, index: str, name: str, filename: str, *, actor: str | None = None
    ) -> list[str]:
        """Delete one file; its filename can never be uploaded again. Returns the storage keys
        no file of the index refers to any more (the caller deletes those blobs, after this
        returns: the database is the truth).

        Raises:
            NotFound: no such project or file.
        """
        return self._delete(index, name, filename, None, actor)

    def delete_release(
        self, index: str, name: str, version: str, *, actor: str | None = None
    ) -> list[str]:
        """Delete every file of a release; like :meth:`delete_file`."""
        return self._delete(index, name, None, version, actor)

    def delete_project(self, index: str, name: str, *, actor: str | None = None) -> list[str]:
        """Delete a project with its files and owners; its filenames stay unusable. Returns the
        storage keys no longer referred to.

        Raises:
            NotFound: no such project.
        """
        project = name_of(name)
        with writing(self._engine) as conn:
            row = require_project(conn, index, project)
            rows = conn.execute(sa.select(t.files).where(t.files.c.project_id == row.id)).all()
            serial = journal(conn, index, project, "delete project", actor=actor)
            keys = self._forget(conn, index, project, rows, serial)
            conn.execute(sa.delete(t.owners).where(t.owners.c.project_id == row.id))
            conn.execute(sa.delete(t.projects).where(t.projects.c.id == row.id))
        return keys

    def _delete(
        self, index: str, name: str, filename: str | None, version: str | None, actor: str | None
    ) -> list[str]:
        project = name_of(name)
        with writing(self._engine) as conn:
            row = require_project(conn, index, project)
            rows = self._matching_files(conn, index, row, filename, version)
            action = "delete file" if filename is not None else "delete release"
            serial = journal(
                conn, index, project, action, version=version, filename=filename, actor=actor
            )
            return self._forget(conn, index, project, rows, serial)

    @staticmethod
    def _forget(
        conn: Connection, index: str, project: NormalizedName, rows: Sequence[Row[Any]], serial: int
    ) -> list[str]:
        if not rows:
            return []
        conn.execute(
            sa.insert(t.deleted_files),
            [
                {
                    "index": index,
                    "filename": r.filename,
                    "project": project,
                    "sha256": r.sha256,
                    "serial": serial,
                }
                for r in rows
            ],
        )
        conn.execute(sa.delete(t.files).where(t.files.c.id.in_([r.id for r in rows])))
        keys = sorted({r.storage_key for r in rows})
        still = {
            k
            for (k,) in conn.execute(
                sa.select(t.files.c.storage_key).where(
                    t.files.c.index == index, t.files.c.storage_key.in_(keys)
                )
            ).all()
        }
        return [k for k in keys if k not in still]

    # --- project settings ------------------------------------------------------------------

    def set_status(
        self,
        index: str,
        name: str,
        status: ProjectStatus | str,
        reason: str = "",
        *,
        actor: str | None = None,
    ) -> int | None:
        """Set the project's PEP 792 status and reason; return the new serial, or None if they
        were already so.

        Raises:
            InvalidArgument: not a PEP 792 status marker.
            NotFound: no such project.
        """
        check_line(reason, "status reason")
        try:
            marker = ProjectStatus(status)
        except ValueError:
            raise InvalidArgument(
                f"invalid project status {status!r}: use one of {[s.value for s in ProjectStatus]}"
            ) from None
        return self._set(
            index, name, "status", {"status": marker.value, "status_reason": reason}, actor
        )

    def set_alternate_locations(
        self, index: str, name: str, urls: Iterable[str], *, actor: str | None = None
    ) -> int | None:
        """Set the project's PEP 708 alternate-locations; return the new serial or None."""
        return self._set(
            index,
            name,
            "alternate-locations",
            {"alternate_locations": check_urls(urls, "alternate-locations")},
            actor,
        )

    def set_tracks(
        self, index: str, name: str, urls: Iterable[str], *, actor: str | None = None
    ) -> int | None:
        """Set the project's PEP 708 tracks (the operator's statement; admins only); return the
        new serial or None."""
        return self._set(index, name, "tracks", {"tracks": check_urls(urls, "tracks")}, actor)

    def _set(
        self, index: str, name: str, action: str, values: dict[str, Any], actor: str | None
    ) -> int | None:
        project = name_of(name)
        with writing(self._engine) as conn:
            row = require_project(conn, index, project)
            if all(getattr(row, key) == value for key, value in values.items()):
                return None
            conn.execute(sa.update(t.projects).where(t.projects.c.id == row.id).values(**values))
            return journal(conn, index, project, action, actor=actor)
