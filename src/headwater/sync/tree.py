"""Reading and writing the static tree's pages through :class:`~headwater.storage.base.Storage`.

The tree writer knows the layout and the formats, nothing about upstreams: the engine hands it
model pages whose file URLs already point into the tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

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
from headwater.storage.layout import LAST_MODIFIED, page_key

__all__ = ["Tree"]


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
        """Write several projects' pages (each as :meth:`write_project` does) in one storage call,
        so a batch costs one trip to the storage's worker thread, not one per project."""
        items: list[tuple[str, bytes]] = []
        for page in pages:
            html = render_project_page_html(page)
            items.append((page_key(page.name, "plain-html"), html))
            items.append((page_key(page.name, "html"), html))
            items.append((page_key(page.name, "json"), render_project_page_json(page)))
        await self.storage.write_many(items)
        self.written.extend(key for key, _ in items)

    async def remove_project(self, name: NormalizedName) -> None:
        """Remove the project's pages (its files are the caller's business, after this)."""
        for fmt in ("json", "html", "plain-html"):
            key = page_key(name, fmt)
            if await self.storage.delete(key):
                self.removed.append(key)

    async def write_root(self, project_list: ProjectList) -> None:
        """Write the root page in every format (JSON last, as for projects)."""
        html = render_project_list_html(project_list)
        items = [
            (page_key(None, "plain-html"), html),
            (page_key(None, "html"), html),
            (page_key(None, "json"), render_project_list_json(project_list)),
        ]
        await self.storage.write_many(items)
        self.written.extend(key for key, _ in items)

    async def write_last_modified(self, when: datetime | None = None) -> None:
        """``web/last-modified`` in bandersnatch's format (``%Y%m%dT%H:%M:%S``, UTC)."""
        moment = when or datetime.now(UTC)
        await self.storage.write_bytes(LAST_MODIFIED, moment.strftime("%Y%m%dT%H:%M:%S\n").encode())
        self.written.append(LAST_MODIFIED)

    async def remove_file(self, key: str) -> None:
        """Remove a distribution or metadata file."""
        if await self.storage.delete(key):
            self.removed.append(key)
