"""A hosted index: projects uploaded to headwater, served from the database and storage.

The database is the truth (projects, files, status, yanks, serials); files live in storage with
the same content-addressed layout as a mirror tree (``web/packages/<aa>/<bb>/<rest>/<filename>``),
so a file URL means the same thing in a hosted index and in a tree.

Pages are rendered by :mod:`headwater.simple` the first time they are asked for and kept in memory
until the index changes. Each server process asks the database for the index's last serial at
most once per ``revalidate`` seconds; any change clears this index's cached pages. A process sees
its own writes at once; other processes within ``revalidate`` seconds.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

from headwater.db.errors import DatabaseError
from headwater.repository._flight import SingleFlight
from headwater.repository.base import (
    FileRef,
    PageFormat,
    RenderedPage,
    SourceProject,
    SourceUnavailable,
)
from headwater.repository.tree import TreeSource
from headwater.simple.html import render_project_list_html, render_project_page_html
from headwater.simple.json import render_project_list_json, render_project_page_json
from headwater.simple.model import (
    File,
    Namespace,
    ProjectList,
    ProjectListEntry,
    ProjectPage,
    ProjectStatus,
)
from headwater.simple.names import NormalizedName
from headwater.storage.base import Storage, StorageError
from headwater.storage.layout import file_key, file_url_from_project_page

__all__ = ["HostedSource", "render_record"]


class HostedDatabase(Protocol):
    """What a hosted source reads from :class:`headwater.db.Database` (synchronous calls)."""

    def last_serial(self, index: str) -> int: ...
    def project(self, index: str, name: NormalizedName) -> Any: ...
    def projects(self, index: str) -> list[Any]: ...
    def namespace_covering(self, index: str, name: str) -> Any: ...
    def namespaces(self, index: str) -> list[Any]: ...
    def project_serial(self, index: str, name: str) -> int | None: ...
    def owners(self, index: str, name: str) -> list[str]: ...
    def ping(self) -> None: ...


def render_record(record: Any, *, namespaces: tuple[Namespace, ...] | None = None) -> ProjectPage:
    """The model page of a project record from the database.

    PEP 792: a quarantined project offers no files. PEP 700: size and upload-time on every file.
    PEP 658: ``core_metadata`` carries the sha256 of the ``.metadata`` file when there is one.
    """
    status = ProjectStatus(record.status)
    files: list[File] = []
    if status is not ProjectStatus.QUARANTINED:
        for rec in record.files:
            yanked = rec.yanked is not False and rec.yanked is not None
            files.append(
                File(
                    filename=rec.filename,
                    url=file_url_from_project_page(rec.sha256, rec.filename),
                    hashes={"sha256": rec.sha256},
                    requires_python=rec.requires_python,
                    yanked=yanked,
                    yanked_reason=rec.yanked
                    if isinstance(rec.yanked, str) and rec.yanked
                    else None,
                    core_metadata={"sha256": rec.metadata_sha256} if rec.metadata_sha256 else False,
                    size=rec.size,
                    upload_time=rec.upload_time,
                )
            )
    files.sort(key=lambda f: f.filename)
    return ProjectPage(
        name=record.name,
        files=tuple(files),
        status=status,
        status_reason=record.status_reason or None,
        tracks=tuple(record.tracks or ()),
        alternate_locations=tuple(record.alternate_locations or ()),
        namespaces=namespaces,
        last_serial=record.last_serial,
    )


#: Cached rendered pages (and "no such project" answers) per index and process, at most.
_MAX_PAGES = 50_000

_RENDER_PAGE: dict[str, Callable[[ProjectPage], bytes]] = {
    "json": render_project_page_json,
    "html": render_project_page_html,
}
_RENDER_LIST: dict[str, Callable[[ProjectList], bytes]] = {
    "json": render_project_list_json,
    "html": render_project_list_html,
}


class HostedSource:
    """A hosted index named ``name``: pages from ``db``, files from ``storage``."""

    kind = "hosted"
    local = False

    def __init__(
        self,
        name: str,
        db: HostedDatabase,
        storage: Storage,
        *,
        revalidate: float = 1.0,
        private: bool = False,
    ) -> None:
        """``private``: reading needs a token with the ``read`` scope (checked by the server)."""
        self.name = name
        self.db = db
        self.storage = storage
        self.revalidate = revalidate
        self.private = private
        self._files = TreeSource(name, storage, revalidate=revalidate)
        self._pages: dict[tuple[NormalizedName | None, str], RenderedPage | None] = {}
        self._rendering: SingleFlight[tuple[NormalizedName | None, str], RenderedPage | None] = (
            SingleFlight()
        )
        self._blocked: frozenset[str] = frozenset()  # file keys of quarantined projects
        self._models: dict[NormalizedName, SourceProject] = {}
        self._serial = -1
        self._checked = float("-inf")
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"HostedSource({self.name!r})"

    async def _fresh(self) -> None:
        """Clear cached pages if the index changed (asking the database at most once per
        ``revalidate`` seconds)."""
        now = time.monotonic()
        if now - self._checked < self.revalidate:
            return
        async with self._lock:
            if time.monotonic() - self._checked < self.revalidate:
                return
            serial = await asyncio.to_thread(self.db.last_serial, self.name)
            self._checked = time.monotonic()
            if serial != self._serial:
                self._serial = serial
                self._pages.clear()
                self._models.clear()
                self._blocked = await asyncio.to_thread(self._quarantined_keys)

    def _quarantined_keys(self) -> frozenset[str]:
        keys: set[str] = set()
        for summary in self.db.projects(self.name):
            if str(summary.status) == ProjectStatus.QUARANTINED.value:
                record = self.db.project(self.name, summary.name)
                if record is not None:
                    keys.update(file_key(f.sha256, f.filename) for f in record.files)
        return frozenset(keys)

    def changed(self) -> None:
        """This process just changed the index: forget cached pages now."""
        self._checked = float("-inf")

    async def page(self, project: NormalizedName | None, fmt: PageFormat) -> RenderedPage | None:
        """The rendered page (None: no such project).

        Raises:
            SourceUnavailable: the database cannot be read (the server answers 503).
        """
        try:
            await self._fresh()
            key = (project, fmt)
            if key in self._pages:
                return self._pages[key]
            # Concurrent requests for a page that is not cached share one rendering.
            return await self._rendering.run(key, lambda: self._render_and_keep(project, fmt))
        except (OSError, DatabaseError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> SourceUnavailable:
        return SourceUnavailable(
            f"hosted index {self.name!r}: the database cannot be read: {exc}", source=self.name
        )

    async def _render_and_keep(
        self, project: NormalizedName | None, fmt: PageFormat
    ) -> RenderedPage | None:
        serial = self._serial
        page = await self._render(project, fmt)
        if serial == self._serial:  # the index did not change while rendering
            if len(self._pages) >= _MAX_PAGES:
                # Requests for made-up names must not grow memory without bound.
                self._pages.clear()
            self._pages[(project, fmt)] = page
        return page

    async def _render(self, project: NormalizedName | None, fmt: PageFormat) -> RenderedPage | None:
        if project is None:
            summaries = await asyncio.to_thread(self.db.projects, self.name)
            listing = ProjectList(
                # Item 61: quarantined projects are left off the project list, as on PyPI.
                projects=tuple(
                    ProjectListEntry(str(s.name), s.last_serial)
                    for s in sorted(summaries, key=lambda s: s.name)
                    if str(s.status) != ProjectStatus.QUARANTINED.value
                ),
                last_serial=self._serial,
                # PEP 752: a hosted index implements namespaces, so its list says 1.5 as its
                # project pages do (headwater.simple.versions).
                namespaces=True,
            )
            return RenderedPage(_RENDER_LIST[fmt](listing), serial=self._serial)
        found = await asyncio.to_thread(self._project_with_namespace, project)
        if found is None:
            return None
        record, namespaces = found
        page = render_record(record, namespaces=namespaces)
        return RenderedPage(_RENDER_PAGE[fmt](page), serial=record.last_serial)

    def _project_with_namespace(
        self, project: NormalizedName
    ) -> tuple[Any, tuple[Namespace, ...]] | None:
        """The record and its PEP 752 namespace entry: hosted indexes support namespaces, so
        every page says which one covers the project (``owned``: the namespace's grantee owns
        the project), or that none does."""
        record = self.db.project(self.name, project)
        if record is None:
            return None
        grant = self.db.namespace_covering(self.name, project)
        if grant is None:
            return record, ()
        owned = grant.owner in self.db.owners(self.name, project)
        return record, (Namespace(name=str(grant.name), owned=owned),)

    async def project(self, name: NormalizedName) -> SourceProject:
        """The project as a model for a composed index. A project that was deleted here is
        ``claimed`` without a page: the index then never takes the name from another source."""
        try:
            await self._fresh()
            cached = self._models.get(name)
            if cached is not None:
                return cached
            serial = self._serial
            found = await asyncio.to_thread(self._project_with_namespace, name)
            claimed = False
            if found is None:
                claimed = await asyncio.to_thread(self._holds_name, name)
        except (OSError, DatabaseError) as exc:
            raise self._unavailable(exc) from exc
        page = render_record(found[0], namespaces=found[1]) if found is not None else None
        result = SourceProject(page, version=f"{self.name}@{serial}", claimed=claimed)
        if serial == self._serial:
            if len(self._models) >= _MAX_PAGES:
                self._models.clear()
            self._models[name] = result
        return result

    def _holds_name(self, name: NormalizedName) -> bool:
        # The project existed here and was deleted. (Names inside this index's PEP 752
        # namespaces are claimed through the index's rules, which the policy plans with.)
        return self.db.project_serial(self.name, name) is not None

    async def project_names(self) -> list[NormalizedName]:
        try:
            summaries = await asyncio.to_thread(self.db.projects, self.name)
        except (OSError, DatabaseError) as exc:
            raise self._unavailable(exc) from exc
        return [
            NormalizedName(str(s.name))
            for s in summaries
            if str(s.status) != ProjectStatus.QUARANTINED.value
        ]

    async def namespace_grants(self) -> list[str]:
        """The PEP 752 namespaces granted on this index (each covers ``ns`` and ``ns-*``)."""
        grants = await asyncio.to_thread(self.db.namespaces, self.name)
        return [str(grant.name) for grant in grants]

    async def file(self, path: str) -> FileRef | None:
        try:
            await self._fresh()  # (which files are blocked: it must not be skipped)
        except DatabaseError as exc:
            raise self._unavailable(exc) from exc
        ref = await self._files.file(path)
        if ref is not None and ref.key.removesuffix(".metadata") in self._blocked:
            # PEP 792: a quarantined project MUST NOT offer any files (nor their .metadata).
            return None
        return ref

    async def aclose(self) -> None:
        """Cancel page renderings in progress (at shutdown; the database is the caller's)."""
        await self._rendering.aclose()

    async def check(self) -> None:
        """Ready when the database answers and the storage takes a write and gives it back."""
        await asyncio.to_thread(self.db.ping)
        probe = f"state/health-probe-{os.getpid()}"
        await self.storage.write_bytes(probe, b"ok")
        if await self.storage.read_bytes(probe) != b"ok":
            raise StorageError(f"hosted index {self.name!r}: storage gave back other bytes")
