"""Reading and writing the static tree's pages through :class:`~headwater.storage.base.Storage`.

The tree writer knows the layout and the formats, nothing about upstreams: the engine hands it
model pages whose file URLs already point into the tree.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from headwater.simple.html import render_project_list_html, render_project_page_html
from headwater.simple.json import (
    parse_project_list_json,
    parse_project_page_json,
    render_project_list_json,
    render_project_page_json,
)
from headwater.simple.model import InvalidPage, ProjectList, ProjectPage
from headwater.simple.names import NormalizedName
from headwater.storage.base import NotFound, Storage
from headwater.storage.filesystem import FileStorage
from headwater.storage.layout import LAST_MODIFIED, WEB, page_key

__all__ = ["Tree", "empty_directories", "prune_empty_directories"]


class Tree:
    """A static tree in ``storage``. ``written`` and ``removed`` collect every key touched, for the
    diff file rsync users feed to ``--files-from``."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.written: list[str] = []
        self.removed: list[str] = []

    async def read_project(self, name: NormalizedName) -> ProjectPage | None:
        """The project's page as the tree has it (from its JSON), or None if absent or unreadable."""
        try:
            raw = await self.storage.read_bytes(page_key(name, "json"))
        except NotFound:
            return None
        try:
            return parse_project_page_json(raw)
        except InvalidPage:
            return None  # a damaged page is rewritten by this sync; verify reports it

    async def read_root(self) -> ProjectList | None:
        """The root page as the tree has it, or None."""
        try:
            return parse_project_list_json(await self.storage.read_bytes(page_key(None, "json")))
        except (NotFound, InvalidPage):
            return None

    async def write_project(self, page: ProjectPage) -> None:
        """Write the project's page in every format. JSON goes last and is removed first: it is what
        the tree reads back, so "the JSON page exists" implies every format exists, even after a
        crash between two writes."""
        await self.write_projects([page])

    async def write_projects(self, pages: Sequence[ProjectPage]) -> None:
        """Write several projects' pages (each as :meth:`write_project` does) in two storage
        calls, every HTML page then every JSON page: a batch costs two trips to the storage's
        worker thread, not three per project, and a storage that writes a call's items
        concurrently (S3) still writes each JSON page after its HTML ones."""
        html_items: list[tuple[str, bytes]] = []
        for page in pages:
            html = render_project_page_html(page)
            html_items.append((page_key(page.name, "plain-html"), html))
            html_items.append((page_key(page.name, "html"), html))
        json_items = [(page_key(p.name, "json"), render_project_page_json(p)) for p in pages]
        await self.storage.write_many(html_items)
        self.written.extend(key for key, _ in html_items)
        await self.storage.write_many(json_items)
        self.written.extend(key for key, _ in json_items)

    async def remove_project(self, name: NormalizedName) -> None:
        """Remove the project's pages (its files are the caller's business, after this)."""
        for fmt in ("json", "html", "plain-html"):
            key = page_key(name, fmt)
            if await self.storage.delete(key):
                self.removed.append(key)

    async def write_root(self, project_list: ProjectList) -> None:
        """Write the root page in every format (JSON last, as for projects)."""
        html = render_project_list_html(project_list)
        items = [(page_key(None, "plain-html"), html), (page_key(None, "html"), html)]
        await self.storage.write_many(items)
        json_key = page_key(None, "json")
        await self.storage.write_bytes(json_key, render_project_list_json(project_list))
        self.written.extend([*(key for key, _ in items), json_key])

    async def write_last_modified(self, when: datetime | None = None) -> None:
        """``web/last-modified`` in bandersnatch's format (``%Y%m%dT%H:%M:%S``, UTC)."""
        moment = when or datetime.now(UTC)
        await self.storage.write_bytes(LAST_MODIFIED, moment.strftime("%Y%m%dT%H:%M:%S\n").encode())
        self.written.append(LAST_MODIFIED)

    async def remove_files(self, keys: list[str]) -> None:
        """Remove distribution and metadata files, in order, in one storage call."""
        if keys:
            existed = await self.storage.delete_many(keys)
            self.removed.extend(key for key, gone in zip(keys, existed, strict=True) if gone)


# Directories a deletion may leave empty: a project's page directory and a file's sha256 path.
# ``web/simple`` and ``web/packages`` themselves stay (an empty mirror still has them).
_PRUNED = (f"{WEB}/simple", f"{WEB}/packages")
_PRUNE_THREADS = 4
_PRUNE_SHARE = 256  # fewer candidate directories than this: one thread


def _prunable(storage: FileStorage) -> tuple[Path, set[Path]]:
    web = storage.root / WEB
    return web, {storage.root / top for top in _PRUNED} | {web}


async def prune_empty_directories(storage: Storage, keys: Iterable[str] | None = None) -> int:
    """Remove the directories under ``web/simple`` and ``web/packages`` that deletions left empty:
    those holding one of ``keys`` (and their parents while they empty too), or with ``None`` every
    empty one. A plain static server answers 200 or 403 for an empty directory where the tree
    means 404. Only on a file system (object stores have no directories). Run while no other
    writer touches the tree (a sync holds its lock). Returns how many were removed."""
    if not isinstance(storage, FileStorage):
        return 0
    web, stops = _prunable(storage)
    starts = None if keys is None else {storage.path(key).parent for key in keys}

    def prune(candidates: list[Path]) -> int:
        removed = 0
        for directory in candidates:
            while directory not in stops and directory.is_relative_to(web):
                try:
                    directory.rmdir()
                except OSError:  # not empty (or already gone): its parents are not empty either
                    break
                removed += 1
                directory = directory.parent
        return removed

    def work() -> int:
        candidates: list[Path] = []
        if starts is None:
            for top in _PRUNED:
                for dirpath, _dirs, _files in os.walk(storage.root / top, topdown=False):
                    candidates.append(Path(dirpath))
        else:
            candidates = sorted(starts, key=lambda p: len(p.parts), reverse=True)
        if len(candidates) < _PRUNE_SHARE:
            return prune(candidates)
        # Several threads, each a set of whole subtrees (web/packages/<aa>, web/simple/<name>):
        # no directory is in two shares, and each share stays deepest first. Measured at load 12
        # on this machine's ext4: 7,700 directories took 20 s one after another, 1-2.6 s in 4
        # threads (each rmdir waits on the file system far longer than it computes).
        shares: dict[str, list[Path]] = {}
        for directory in candidates:
            parts = directory.relative_to(web).parts
            shares.setdefault("/".join(parts[:2]), []).append(directory)
        groups = list(shares.values())
        work_lists = [
            [d for group in groups[i::_PRUNE_THREADS] for d in group] for i in range(_PRUNE_THREADS)
        ]
        with ThreadPoolExecutor(max_workers=_PRUNE_THREADS) as pool:
            return sum(pool.map(prune, work_lists))

    return await asyncio.to_thread(work)


async def empty_directories(storage: Storage) -> list[str]:
    """The directories under ``web/simple`` and ``web/packages`` with nothing in them (keys
    relative to the tree), for verify; none on object stores."""
    if not isinstance(storage, FileStorage):
        return []
    root = storage.root

    def work() -> list[str]:
        found: list[str] = []
        for top in _PRUNED:
            for dirpath, dirs, files in os.walk(root / top):
                path = Path(dirpath)
                if not files and not dirs and path != root / top:
                    found.append(path.relative_to(root).as_posix())
        return found

    return await asyncio.to_thread(work)
