"""A hosted index: projects uploaded to headwater, served from the database and storage.

The database is the truth (projects, files, status, yanks, serials); files live in storage with
the same content-addressed layout as a mirror tree (``web/packages/<aa>/<bb>/<rest>/<filename>``),
so a file URL means the same thing in a hosted index and in a tree.

Pages and models are rendered by :mod:`headwater.simple` the first time they are asked for and
kept in memory until the database changes: every request first asks the database's change signal
(:meth:`headwater.db.Database.generation`, microseconds, no round trip), and any change, by this
process or another (a CLI command, another worker, another machine on PostgreSQL), clears the
cached pages, models and file lookups before the request is answered. An admin change (an upload,
yank, deletion, status, tracks, alternate-locations, owner or PEP 752 namespace) is therefore
visible on the next request on every worker.
"""

from __future__ import annotations

import asyncio
import os
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

__all__ = ["HostedSource", "provenance_url", "render_record"]


class HostedDatabase(Protocol):
    """What a hosted source reads from :class:`headwater.db.Database` (synchronous calls)."""

    def generation(self) -> int: ...
    def last_serial(self, index: str) -> int: ...
    def project(self, index: str, name: NormalizedName) -> Any: ...
    def projects(self, index: str) -> list[Any]: ...
    def quarantined_files(self, index: str) -> list[tuple[str, str]]: ...
    def namespace_covering(self, index: str, name: str) -> Any: ...
    def namespaces(self, index: str) -> list[Any]: ...
    def project_serial(self, index: str, name: str) -> int | None: ...
    def owners(self, index: str, name: str) -> list[str]: ...
    def ping(self) -> None: ...


def provenance_url(public_url: str | None, project: str, version: str, filename: str) -> str | None:
    """The integrity-API URL of a file's provenance under the index's public URL, or None when
    the index has no ``https://`` public URL (PEP 740: the URL MUST be a secure origin, so an
    index known only by a relative or ``http://`` address lists none; the route still answers)."""
    if not public_url or not public_url.startswith("https://"):
        return None
    return f"{public_url.rstrip('/')}/integrity/{project}/{version}/{filename}/provenance"


def render_record(
    record: Any,
    *,
    namespaces: tuple[Namespace, ...] | None = None,
    public_url: str | None = None,
) -> ProjectPage:
    """The model page of a project record from the database.

    PEP 792: a quarantined project offers no files. PEP 700: size and upload-time on every file.
    PEP 658: ``core_metadata`` carries the sha256 of the ``.metadata`` file when there is one.
    PEP 740: ``provenance`` is the integrity URL of an attested file (see :func:`provenance_url`).
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
                    provenance=provenance_url(
                        public_url, str(record.name), rec.version, rec.filename
                    )
                    if getattr(rec, "provenance_sha256", None)
                    else None,
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
        public_url: str | None = None,
    ) -> None:
        """``private``: reading needs a token with the ``read`` scope (checked by the server).
        ``public_url``: the index's absolute URL (``https://host/NAME``), for PEP 740
        provenance URLs on its pages.
        ``revalidate``: how long a file's storage lookup is kept (files are content-addressed;
        a change of the database forgets them at once)."""
        self.name = name
        self.db = db
        self.storage = storage
        self.revalidate = revalidate
        self.private = private
        self.public_url = public_url
        self._files = TreeSource(name, storage, revalidate=revalidate)
        self._pages: dict[tuple[NormalizedName | None, str], RenderedPage | None] = {}
        self._rendering: SingleFlight[tuple[NormalizedName | None, str], RenderedPage | None] = (
            SingleFlight()
        )
        self._blocked: frozenset[str] = frozenset()  # file keys of quarantined projects
        self._models: dict[NormalizedName, SourceProject] = {}
        self._serial = -1
        #: The database generation the caches were built at (None: rebuild on next request).
        self._generation: int | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"HostedSource({self.name!r})"

    async def _fresh(self) -> None:
        """Forget cached pages, models and file lookups if the database changed since they were
        made (one look at the change signal; the database is read only after a change)."""
        if self.db.generation() == self._generation:
            return
        async with self._lock:
            # The generation before the reads: a change committed during them shows as a new
            # generation on the next request.
            generation = self.db.generation()
            if generation == self._generation:
                return
            serial = await asyncio.to_thread(self.db.last_serial, self.name)
            blocked = await asyncio.to_thread(self._quarantined_keys)
            self._serial = serial
            self._blocked = blocked
            self._pages.clear()
            self._models.clear()
            self._files = TreeSource(self.name, self.storage, revalidate=self.revalidate)
            self._generation = generation

    @property
    def generation(self) -> int | None:
        """The database generation this source's caches were built at (None before the first
        request): a composed index keys what it built from this source on it."""
        return self._generation

    def _quarantined_keys(self) -> frozenset[str]:
        return frozenset(
            file_key(sha256, name) for sha256, name in self.db.quarantined_files(self.name)
        )

    def changed(self) -> None:
        """This process just changed the index: forget cached pages now (the change signal
        would say so too; this also covers a signal that cannot see this process's writes)."""
        self._generation = None

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
        generation = self._generation
        page = await self._render(project, fmt)
        if generation == self._generation:  # the database did not change while rendering
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
        page = render_record(record, namespaces=namespaces, public_url=self.public_url)
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
            generation = self._generation
            found = await asyncio.to_thread(self._project_with_namespace, name)
            claimed = False
            if found is None:
                claimed = await asyncio.to_thread(self._holds_name, name)
        except (OSError, DatabaseError) as exc:
            raise self._unavailable(exc) from exc
        page = (
            render_record(found[0], namespaces=found[1], public_url=self.public_url)
            if found is not None
            else None
        )
        # The version changes with the database generation: a namespace grant or an owner
        # changes the page without taking a serial.
        result = SourceProject(page, version=f"{self.name}@{generation}", claimed=claimed)
        if generation == self._generation:
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
