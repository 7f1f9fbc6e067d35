"""A static tree (written by ``headwater mirror``) served as an index.

Pages are read from the tree as rendered, never re-parsed or re-rendered, and kept in memory. A
cached page is revalidated against storage (one ``stat``) at most once per ``revalidate`` seconds,
so a sync becomes visible within that time without a syscall on every request. Files are
content-addressed and never change, so a file lookup is one ``stat``.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict

import msgspec

from headwater.repository.base import (
    FileRef,
    PageFormat,
    RenderedPage,
    SourceProject,
    SourceUnavailable,
)
from headwater.simple.filenames import check_safe_filename
from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.simple.model import InvalidPage, ProjectPage
from headwater.simple.names import NormalizedName
from headwater.storage.base import NotFound, RedirectingStorage, Stat, Storage
from headwater.storage.filesystem import FileStorage
from headwater.storage.layout import PAGE_FILES, ROOT_INDEX_DIR, WEB

__all__ = ["PageCache", "TreeSource"]

_HTML_SERIAL = re.compile(rb"<!--\s*SERIAL\s+([0-9]{1,20})\s*-->")
# packages/<2 hex>/<2 hex>/<60 hex>/<filename>: anything else is not a file of this tree.
_FILE_PATH = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/([^/]+)\Z")


class _Meta(msgspec.Struct):
    last_serial: int | str | None = msgspec.field(default=None, name="_last-serial")


class _JsonHead(msgspec.Struct):
    meta: _Meta | None = None


_JSON_HEAD = msgspec.json.Decoder(_JsonHead)


def page_serial(body: bytes, fmt: PageFormat) -> int | None:
    """The ``_last-serial`` a rendered page carries (JSON meta, or PyPI's HTML comment)."""
    if fmt == "json":
        try:
            meta = _JSON_HEAD.decode(body).meta
        except msgspec.DecodeError:
            return None
        value = meta.last_serial if meta else None
        if isinstance(value, str):
            return int(value) if value.isdigit() else None
        return value
    found = _HTML_SERIAL.search(body, max(0, len(body) - 200))
    return int(found.group(1)) if found else None


class _Entry:
    __slots__ = ("checked", "page", "stat")

    def __init__(self, page: RenderedPage | None, stat: Stat | None, checked: float) -> None:
        self.page = page
        self.stat = stat
        self.checked = checked


class PageCache:
    """Bounded in-memory cache of rendered pages with time-based revalidation.

    Entries (including "no such page", so a flood of requests for a missing name costs no I/O) are
    evicted oldest first past ``max_entries``.
    """

    def __init__(self, *, revalidate: float = 1.0, max_entries: int = 50_000) -> None:
        self.revalidate = revalidate
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str | None, str], _Entry] = OrderedDict()

    def get(self, key: tuple[str | None, str]) -> _Entry | None:
        """The entry for ``key`` whether fresh or not (the caller compares ``checked`` with
        ``revalidate``), or None."""
        return self._entries.get(key)

    def put(self, key: tuple[str | None, str], entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class FileCache:
    """Small files kept in memory, within a byte budget, oldest evicted first.

    Distribution files are content-addressed and never change, so keeping their bytes is safe; an
    entry is still re-checked against storage every ``revalidate`` seconds so that a file the
    mirror deletes stops being served. Most wheels and every ``.metadata`` are small, and serving
    them from memory avoids a thread hop and a file open per request.
    """

    def __init__(self, *, revalidate: float, max_file: int, budget: int) -> None:
        self.revalidate = revalidate
        self.max_file = max_file
        self.budget = budget
        self.used = 0
        self._entries: OrderedDict[str, tuple[FileRef, float]] = OrderedDict()

    def get(self, path: str) -> tuple[FileRef, float] | None:
        """The entry for ``path`` and when it was last checked, fresh or not."""
        return self._entries.get(path)

    def put(self, path: str, ref: FileRef, now: float) -> None:
        old = self._entries.pop(path, None)
        if old is not None and old[0].body is not None:
            self.used -= len(old[0].body)
        self._entries[path] = (ref, now)
        if ref.body is not None:
            self.used += len(ref.body)
        while self.used > self.budget or len(self._entries) > 100_000:
            _, (evicted, _) = self._entries.popitem(last=False)
            if evicted.body is not None:
                self.used -= len(evicted.body)


class TreeSource:
    """A mirror tree in ``storage`` (keys ``web/simple/...``, ``web/packages/...``)."""

    kind = "mirror"
    local = False

    def __init__(
        self,
        name: str,
        storage: Storage,
        *,
        revalidate: float = 1.0,
        memory_file_size: int = 256 << 10,
        memory_budget: int = 128 << 20,
    ) -> None:
        """``memory_file_size``: files up to this size are kept in memory, within
        ``memory_budget`` bytes in all."""
        self.name = name
        self.storage = storage
        self.cache = PageCache(revalidate=revalidate)
        self.files = FileCache(
            revalidate=max(revalidate, 1.0), max_file=memory_file_size, budget=memory_budget
        )
        self._local = storage if isinstance(storage, FileStorage) else None
        # Parsed pages for indexes composed of sources, keyed by the rendered page's ETag.
        self._models: OrderedDict[NormalizedName, tuple[str, ProjectPage]] = OrderedDict()
        self._names: tuple[str, list[NormalizedName]] | None = None

    def __repr__(self) -> str:
        return f"TreeSource({self.name!r}, {self.storage!r})"

    async def page(self, project: NormalizedName | None, fmt: PageFormat) -> RenderedPage | None:
        key = (project, fmt)
        now = time.monotonic()
        entry = self.cache.get(key)
        if entry is not None and now - entry.checked < self.cache.revalidate:
            return entry.page
        directory = ROOT_INDEX_DIR if project is None else f"{ROOT_INDEX_DIR}/{project}"
        storage_key = f"{directory}/{PAGE_FILES[fmt]}"
        stat = await self.storage.stat(storage_key)
        if entry is not None and stat == entry.stat:
            entry.checked = now  # unchanged since last read: keep the bytes, reset the clock
            return entry.page
        page: RenderedPage | None = None
        if stat is not None:
            try:
                body = await self.storage.read_bytes(storage_key)
            except NotFound:  # removed between stat and read: a sync is deleting the project
                stat = None
            else:
                page = RenderedPage(body, serial=page_serial(body, fmt), last_modified=stat.mtime)
        self.cache.put(key, _Entry(page, stat, now))
        return page

    async def file(self, path: str) -> FileRef | None:
        now = time.monotonic()
        cached = self.files.get(path)
        if cached is not None and now - cached[1] < self.files.revalidate:
            return cached[0]
        found = _FILE_PATH.match(path)
        if found is None:
            return None
        try:
            check_safe_filename(found.group(1))
        except ValueError:
            return None
        key = f"{WEB}/packages/{path}"
        stat = await self.storage.stat(key)
        if stat is None:
            return None
        if cached is not None and (cached[0].size, cached[0].mtime) == (stat.size, stat.mtime):
            self.files.put(path, cached[0], now)  # still there, unchanged: keep the bytes
            return cached[0]
        local = self._local.path(key) if self._local is not None else None
        body = None
        # A storage that redirects file requests (a presigned URL, a CDN) never sends the bytes.
        redirects = isinstance(self.storage, RedirectingStorage) and self.storage.redirects_files
        if stat.size <= self.files.max_file and not redirects:
            try:
                body = await self.storage.read_bytes(key)
            except NotFound:
                return None
        ref = FileRef(
            self.storage, key, len(body) if body is not None else stat.size, stat.mtime, local, body
        )
        self.files.put(path, ref, now)
        return ref

    async def project(self, name: NormalizedName) -> SourceProject:
        """The tree's page of ``name`` as a model (parsed once per page version). The mirror wrote
        ``tracks`` (the upstream project URL) on it; that URL identifies the page for PEP 708."""
        try:
            rendered = await self.page(name, "json")
        except OSError as exc:
            raise SourceUnavailable(
                f"mirror {self.name!r} cannot be read: {exc}", source=self.name
            ) from exc
        if rendered is None:
            return SourceProject(None, version="absent")
        cached = self._models.get(name)
        if cached is not None and cached[0] == rendered.etag:
            self._models.move_to_end(name)
            model = cached[1]
        else:
            try:
                model = parse_project_page_json(rendered.body)
            except InvalidPage as exc:
                raise SourceUnavailable(
                    f"mirror {self.name!r} has a malformed page for {name!r}: {exc}; run "
                    "`headwater verify --repair` or sync again",
                    source=self.name,
                ) from exc
            self._models[name] = (rendered.etag, model)
            if len(self._models) > 20_000:
                self._models.popitem(last=False)
        return SourceProject(
            model,
            version=rendered.etag,
            url=model.tracks[0] if model.tracks else None,
        )

    async def project_names(self) -> list[NormalizedName]:
        rendered = await self.page(None, "json")
        if rendered is None:
            return []
        if self._names is None or self._names[0] != rendered.etag:
            try:
                listing = parse_project_list_json(rendered.body)
            except InvalidPage as exc:
                raise SourceUnavailable(
                    f"mirror {self.name!r} has a malformed root page: {exc}", source=self.name
                ) from exc
            self._names = (rendered.etag, [entry.normalized for entry in listing.projects])
        return self._names[1]

    async def check(self) -> None:
        """Ready when the tree's root page exists (a tree never synced is not servable)."""
        if await self.storage.stat(f"{ROOT_INDEX_DIR}/{PAGE_FILES['json']}") is None:
            raise NotFound(
                f"mirror {self.name!r}: no root page in {self.storage!r}; run `headwater mirror`"
            )
