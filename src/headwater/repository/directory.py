"""A local folder of distribution files (wheels and sdists, in subfolders too) served as a source.

PEP 708 calls such a repository *local*: an index may always merge its files with another
source's. Files are grouped into projects by their filenames (wheel and sdist naming rules);
files whose names do not parse, hidden files and folders (``.name``) are skipped, and each skipped
file is reported once in the log.

Pages are in *served form*, like a mirror tree's: rendered by headwater, JSON and HTML, with file
URLs ``../../packages/<sha256[0:2]>/<sha256[2:4]>/<sha256[4:]>/<filename>`` that :meth:`file`
maps back to the real file (the server hands it to the kernel). Every file carries its size and
upload time (its mtime, PEP 700); wheels whose core metadata reads cleanly get a PEP 658
``.metadata`` file, served from memory. A file's sha256 (and metadata) is computed once per
(path, size, mtime) and kept in memory.

The folder is rescanned (a walk and a ``stat`` per file, in a worker thread) when a request comes
more than ``revalidate`` seconds after the last scan, so files added, replaced or removed show up
within that time. A folder that is missing or cannot be read makes the source *unavailable*
(:class:`SourceUnavailable`, a 503 naming the source and the folder), never empty, and it is
looked at again on every request until it can be read. When two files in different subfolders share a filename, the first in sorted
path order is served and the other is reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from headwater.repository.artifacts import (
    InvalidDistribution,
    inspect_distribution,
    metadata_for_pep658,
)
from headwater.repository.base import (
    FileRef,
    PageFormat,
    RenderedPage,
    SourceProject,
    SourceUnavailable,
)
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.html import render_project_list_html, render_project_page_html
from headwater.simple.json import render_project_list_json, render_project_page_json
from headwater.simple.model import File, ProjectList, ProjectListEntry, ProjectPage
from headwater.simple.names import NormalizedName
from headwater.storage.base import InvalidKey, StorageError, check_key
from headwater.storage.filesystem import FileStorage
from headwater.storage.layout import file_url_from_project_page

__all__ = ["DirectorySource"]

log = logging.getLogger("headwater.directory")


@dataclass(frozen=True, slots=True)
class _Found:
    """One distribution file of the folder, as of the last scan."""

    relpath: str  # below the folder, "/"-separated
    project: NormalizedName
    size: int
    mtime_ns: int
    sha256: str
    metadata: bytes | None  # PEP 658 core metadata (wheels only)
    requires_python: str | None

    @property
    def served_path(self) -> str:
        """The path below ``packages/`` the pages link to."""
        return file_url_from_project_page(self.sha256, self.filename).removeprefix(
            "../../packages/"
        )

    @property
    def filename(self) -> str:
        return self.relpath.rpartition("/")[2]


class _Scan:
    """Everything one scan of the folder found, and the pages rendered from it (lazily)."""

    def __init__(self, files: list[_Found]) -> None:
        self.by_path: dict[str, _Found] = {}
        self.projects: dict[NormalizedName, list[_Found]] = {}
        for found in files:
            self.by_path[found.served_path] = found
            self.projects.setdefault(found.project, []).append(found)
        self.names = sorted(self.projects)
        self.models: dict[NormalizedName, ProjectPage] = {}
        self.rendered: dict[tuple[NormalizedName | None, str], RenderedPage] = {}

    def model(self, name: NormalizedName) -> ProjectPage | None:
        page = self.models.get(name)
        if page is None:
            files = self.projects.get(name)
            if files is None:
                return None
            page = ProjectPage(name=name, files=tuple(_file(f) for f in files))
            self.models[name] = page
        return page

    def page(self, name: NormalizedName | None, fmt: PageFormat) -> RenderedPage | None:
        rendered = self.rendered.get((name, fmt))
        if rendered is not None:
            return rendered
        if name is None:
            listing = ProjectList(projects=tuple(ProjectListEntry(n) for n in self.names))
            render_list = render_project_list_json if fmt == "json" else render_project_list_html
            rendered = RenderedPage(render_list(listing))
        else:
            page = self.model(name)
            if page is None:
                return None
            render = render_project_page_json if fmt == "json" else render_project_page_html
            rendered = RenderedPage(render(page))
        self.rendered[(name, fmt)] = rendered
        return rendered


def _file(found: _Found) -> File:
    return File(
        filename=found.filename,
        url=file_url_from_project_page(found.sha256, found.filename),
        hashes={"sha256": found.sha256},
        requires_python=found.requires_python,
        core_metadata=(
            {"sha256": hashlib.sha256(found.metadata).hexdigest()}
            if found.metadata is not None
            else False
        ),
        size=found.size,
        upload_time=datetime.fromtimestamp(found.mtime_ns / 1e9, UTC),
    )


class DirectorySource:
    """The distribution files in the folder ``path`` (see the module docstring).

    Raises (from :meth:`check`, and from pages, models and files):
        SourceUnavailable: ``path`` is missing, not a folder, or cannot be read (it or a folder
            in it). An unreadable folder is never taken for an empty one: that would hand its
            projects to the next source. The folder is looked at again on the next request, so
            the source is back as soon as the folder is.
    """

    kind = "directory"
    local = True

    def __init__(self, name: str, path: Path, *, revalidate: float = 2.0) -> None:
        self.name = name
        self.path = Path(path).resolve()
        self.revalidate = revalidate
        # Made at first use, after a scan found a folder: the storage refuses a root that is a
        # file, and this source must start anyway and answer 503 until the folder is there.
        self._storage: FileStorage | None = None
        self._scan: _Scan | None = None
        self._state: list[tuple[str, int]] = []
        self._scanned = float("-inf")
        self._lock = asyncio.Lock()
        # (relpath, size, mtime_ns) -> what was computed for that file: never computed twice.
        self._known: dict[tuple[str, int, int], _Found] = {}
        self._reported: set[str] = set()

    def __repr__(self) -> str:
        return f"DirectorySource({self.name!r}, {str(self.path)!r})"

    @property
    def storage(self) -> FileStorage:
        """The folder as a storage (files are read through it once a scan has found them).

        Raises:
            SourceUnavailable: the folder has become a file since the scan."""
        if self._storage is None:
            try:
                self._storage = FileStorage(self.path, durability="none")
            except StorageError as exc:
                raise SourceUnavailable(f"source {self.name!r}: {exc}", source=self.name) from exc
        return self._storage

    async def _current(self) -> _Scan:
        scan = self._scan
        if scan is not None and time.monotonic() - self._scanned < self.revalidate:
            return scan
        async with self._lock:  # one scan at a time; the others use its result
            if self._scan is not None and time.monotonic() - self._scanned < self.revalidate:
                return self._scan
            files = await asyncio.to_thread(self._walk)
            self._scanned = time.monotonic()
            state = [(f.served_path, f.mtime_ns) for f in files]
            if self._scan is None or state != self._state:
                # Something changed: new pages (an unchanged folder keeps the rendered ones).
                self._scan, self._state = _Scan(files), state
            return self._scan

    def _walk(self) -> list[_Found]:
        """Walk the folder; hash and inspect only files not seen before (blocking).

        Raises:
            SourceUnavailable: the folder (or a folder in it) cannot be read.
        """
        try:
            return self._walk_folder()
        except OSError as exc:
            where = exc.filename or self.path
            if isinstance(exc, FileNotFoundError) and str(where) == str(self.path):
                why = f"{self.path} does not exist"
            elif isinstance(exc, NotADirectoryError) and str(where) == str(self.path):
                why = f"{self.path} is not a folder"
            else:
                why = f"cannot read {where} ({exc.strerror or type(exc).__name__})"
            raise SourceUnavailable(
                f"directory source {self.name!r}: {why}; nothing is served from it until it can "
                "be read (create the folder, fix its permissions, or fix the path in the "
                "configuration)",
                source=self.name,
            ) from None

    def _walk_folder(self) -> list[_Found]:
        if not self.path.is_dir():
            error = FileNotFoundError if not self.path.exists() else NotADirectoryError
            raise error(0, "not a folder", str(self.path))

        def failed(exc: OSError) -> None:
            # A folder that vanished mid-walk is gone, not unreadable; anything else is fatal.
            if not isinstance(exc, FileNotFoundError) or str(exc.filename) == str(self.path):
                raise exc

        seen: dict[tuple[str, int, int], _Found] = {}
        by_name: dict[str, str] = {}
        root = str(self.path)
        for dirpath, dirnames, filenames in os.walk(root, onerror=failed):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                full = os.path.join(dirpath, filename)  # noqa: PTH118 - os.walk speaks str
                relpath = os.path.relpath(full, root).replace(os.sep, "/")
                found = self._examine(full, relpath)
                if found is None:
                    continue
                first = by_name.get(found.filename)
                if first is not None:
                    self._report(
                        relpath, f"same filename as {first}, which is served instead; rename one"
                    )
                    continue
                by_name[found.filename] = relpath
                seen[(relpath, found.size, found.mtime_ns)] = found
        self._known = seen  # forget files that are gone
        return sorted(seen.values(), key=lambda f: (f.project, f.filename))

    def _examine(self, full: str, relpath: str) -> _Found | None:
        try:
            parsed = parse_filename(relpath.rpartition("/")[2])
            check_key(relpath)
        except (InvalidFilename, InvalidKey) as exc:
            self._report(relpath, f"not served: {exc}")
            return None
        try:
            st = os.stat(full)  # noqa: PTH116
        except OSError:
            return None  # removed while walking
        key = (relpath, st.st_size, st.st_mtime_ns)
        known = self._known.get(key)
        if known is not None:
            return known
        try:
            with open(full, "rb") as handle:  # noqa: PTH123
                sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            self._report(relpath, f"cannot be read ({exc.strerror or exc})")
            return None
        metadata = requires_python = None
        if parsed.kind == "wheel":
            try:
                dist = inspect_distribution(Path(full), parsed.filename)
            except InvalidDistribution as exc:
                self._report(relpath, f"served without .metadata: {exc}")
            else:
                metadata = metadata_for_pep658(dist)
                requires_python = dist.requires_python
        found = _Found(
            relpath=relpath,
            project=parsed.name,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            sha256=sha256,
            metadata=metadata,
            requires_python=requires_python,
        )
        self._known[key] = found
        return found

    def _report(self, relpath: str, why: str) -> None:
        if relpath not in self._reported:
            self._reported.add(relpath)
            log.warning("directory source %r: %s/%s %s", self.name, self.path, relpath, why)

    # -- ServedSource and ProjectSource ----------------------------------------------------------

    async def page(self, project: NormalizedName | None, fmt: PageFormat) -> RenderedPage | None:
        return (await self._current()).page(project, fmt)

    async def file(self, path: str) -> FileRef | None:
        scan = await self._current()
        metadata = path.endswith(".metadata")
        found = scan.by_path.get(path.removesuffix(".metadata") if metadata else path)
        if found is None:
            return None
        if metadata:
            if found.metadata is None:
                return None
            return FileRef(
                self.storage,
                found.relpath + ".metadata",
                len(found.metadata),
                found.mtime_ns / 1e9,
                None,
                found.metadata,
            )
        local = self.storage.path(found.relpath)
        try:
            st = await asyncio.to_thread(local.stat)
        except OSError:
            return None
        if (st.st_size, st.st_mtime_ns) != (found.size, found.mtime_ns):
            return None  # changed since the scan: the next scan hashes it again
        return FileRef(self.storage, found.relpath, found.size, found.mtime_ns / 1e9, local)

    async def check(self) -> None:
        """Ready when the folder can be walked."""
        await self._current()

    async def project(self, name: NormalizedName) -> SourceProject:
        scan = await self._current()
        page = scan.model(name)
        if page is None:
            return SourceProject(None, version="absent")
        digest = hashlib.blake2b(digest_size=16)
        for file in page.files:
            digest.update(f"{file.filename}\0{file.hashes['sha256']}\0{file.size}\n".encode())
        return SourceProject(page, version=digest.hexdigest())

    async def project_names(self) -> list[NormalizedName]:
        return (await self._current()).names
