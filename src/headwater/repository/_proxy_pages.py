"""What a proxy keeps of an upstream page, and the form it serves it in.

:class:`Meta` is the record stored beside each page (``state/pages/<project>/meta.json``),
:class:`Entry` and :class:`Root` are a project and the project list as one process knows them
(with their renderings), :func:`served_form` turns an upstream page into the page the proxy
serves (file URLs into its own tree, only what it can verify), and :func:`headwater.simple.filenames.project_candidates` says which
project pages may list a distribution file. No I/O here: :mod:`headwater.repository.proxy` reads
and writes, fetches and decides when.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import msgspec

from headwater.repository.base import PageFormat, RenderedPage
from headwater.repository.publishers import HeldRecord
from headwater.simple.html import render_project_list_html, render_project_page_html
from headwater.simple.json import render_project_list_json, render_project_page_json
from headwater.simple.model import File, ProjectList, ProjectListEntry, ProjectPage
from headwater.simple.names import NormalizedName
from headwater.storage.layout import file_url_from_project_page

__all__ = [
    "KEPT_ENTRY_COST",
    "KEPT_MEMORY",
    "META",
    "PAGE_DECODER",
    "ROOT_META",
    "ROOT_NAMES",
    "SHA256",
    "Entry",
    "KeptEntries",
    "Meta",
    "Root",
    "digest",
    "meta_key",
    "page_key",
    "served_form",
]

SHA256 = re.compile(r"[0-9a-f]{64}\Z")
# A legacy filename's project: everything before the first "-<digit>" ("foo-bar-1.0.egg").


class Meta(msgspec.Struct, frozen=True, kw_only=True):
    """What is known about one upstream page besides its content."""

    url: str
    #: Wall-clock time of the upstream's last answer (200, 304 or 404) for this page.
    checked: float
    etag: str | None = None
    absent: bool = False
    #: blake2b of the stored page (tells another process's newer copy apart).
    digest: str = ""


class Entry:
    """One project as this process knows it: the upstream page and its served form."""

    __slots__ = (
        "base",
        "files",
        "guard_due",
        "guard_tag",
        "held",
        "meta",
        "rendered",
        "retry_at",
        "served",
        "sized_at",
        "stale",
    )

    def __init__(self, meta: Meta, served: ProjectPage | None, files: dict[str, File]) -> None:
        self.meta = meta
        self.served = served
        #: path below packages/ -> the upstream's File, for every file on the served page.
        self.files = files
        self.rendered: dict[str, RenderedPage] = {}
        #: Why the page is an old copy (the last revalidation failed), and when to try again.
        self.stale: str | None = None
        self.retry_at = float("-inf")
        #: When the sizes the upstream did not give were last looked up in the cache.
        self.sized_at = float("-inf")
        #: The served form and files before provenance and the publisher guard (None: they
        #: did not apply), what the guard held, and whether to apply them again when the page
        #: is revalidated (something was held or left off: an acceptance or a document fetched
        #: now may let it in).
        self.base: tuple[ProjectPage, dict[str, File]] | None = None
        self.held: list[HeldRecord] = []
        self.guard_due = False
        #: Tells served pages apart that the guard made different from one upstream page.
        self.guard_tag = ""

    @property
    def version(self) -> str:
        """Changes whenever the served page does (a new upstream page, or a size filled in)."""
        if self.served is None:
            return "absent"
        known = sum(1 for file in self.served.files if file.size is not None)
        return f"{self.meta.digest}:{known}{self.guard_tag}"

    def page(self, fmt: PageFormat) -> RenderedPage | None:
        if self.served is None:
            return None
        rendered = self.rendered.get(fmt)
        if rendered is None:
            render = render_project_page_json if fmt == "json" else render_project_page_html
            rendered = RenderedPage(render(self.served), serial=self.served.last_serial)
            self.rendered[fmt] = rendered
        if self.stale is None:
            return rendered
        return RenderedPage(rendered.body, serial=rendered.serial, stale=self.stale)


#: Memory the project pages one proxy keeps between requests may hold (estimated as
#: KEPT_ENTRY_COST per file, renderings included); the oldest are dropped first.
KEPT_MEMORY = 128 << 20
#: Bytes one file of a kept page holds: its upstream and served entries and its share of the
#: JSON and HTML renderings (measured 1.8 KiB per file on a page of 70,000; rounded up).
KEPT_ENTRY_COST = 2 << 10


def kept_cost(entry: Entry) -> int:
    """The memory ``entry`` holds, estimated (:data:`KEPT_ENTRY_COST` per file it lists)."""
    return 1024 + KEPT_ENTRY_COST * len(entry.files)


class KeptEntries:
    """The project pages one proxy keeps in memory between requests: at most ``max_count``
    pages and ``max_bytes`` of estimated memory (:func:`kept_cost`), the oldest kept dropped
    first. Bounded by bytes, not only by count: ten thousand pages of a few files are nothing,
    a handful of pages of 100,000 files each are gigabytes. A page larger than ``max_bytes``
    alone is not kept at all: it is served, and the next request reads it from the disk cache
    again (within the page memory budget)."""

    __slots__ = ("_entries", "max_bytes", "max_count", "used")

    def __init__(self, *, max_bytes: int, max_count: int) -> None:
        self._entries: dict[NormalizedName, Entry] = {}
        self.max_bytes = max_bytes
        self.max_count = max_count
        #: The estimated bytes the kept entries hold.
        self.used = 0

    def get(self, name: NormalizedName) -> Entry | None:
        return self._entries.get(name)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[NormalizedName]:
        return iter(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self.used = 0

    def keep(self, name: NormalizedName, entry: Entry) -> Entry:
        """Keep ``entry`` (replacing any for ``name``) if it fits; returns it either way."""
        old = self._entries.pop(name, None)
        if old is not None:
            self.used -= kept_cost(old)
        cost = kept_cost(entry)
        if cost > self.max_bytes:
            return entry
        entries = self._entries
        while entries and (len(entries) >= self.max_count or self.used + cost > self.max_bytes):
            self.used -= kept_cost(entries.pop(next(iter(entries))))  # the oldest kept
        entries[name] = entry
        self.used += cost
        return entry


class Root:
    """The upstream project list as this process knows it."""

    __slots__ = ("meta", "names", "rendered", "retry_at", "stale")

    def __init__(self, meta: Meta, names: list[NormalizedName]) -> None:
        self.meta = meta
        self.names = names
        self.rendered: dict[str, RenderedPage] = {}
        self.stale: str | None = None
        self.retry_at = float("-inf")

    def page(self, fmt: PageFormat) -> RenderedPage | None:
        if self.meta.absent:
            return None
        rendered = self.rendered.get(fmt)
        if rendered is None:
            listing = ProjectList(projects=tuple(ProjectListEntry(n) for n in self.names))
            render = render_project_list_json if fmt == "json" else render_project_list_html
            rendered = RenderedPage(render(listing))
            self.rendered[fmt] = rendered
        if self.stale is None:
            return rendered
        return RenderedPage(rendered.body, stale=self.stale)


def meta_key(name: NormalizedName) -> str:
    return f"state/pages/{name}/meta.json"


def page_key(name: NormalizedName) -> str:
    return f"state/pages/{name}/page.json"


ROOT_META = "state/root/meta.json"
ROOT_NAMES = "state/root/names.txt"
META = msgspec.json.Decoder(Meta)
PAGE_DECODER = msgspec.json.Decoder(ProjectPage)


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def served_form(page: ProjectPage, url: str) -> tuple[ProjectPage, dict[str, File], list[str]]:
    """The served form of an upstream page, its files by path, and what was left off (why).

    Only sha256 is kept of the hashes: it is what the proxy checks. ``.metadata`` is offered
    when the upstream gives its sha256 (so it can be checked too). GPG signatures point at the
    upstream and are not proxied: they are dropped; so are PEP 740 provenance URLs here (the
    files' map keeps them: :mod:`headwater.repository._proxy_provenance` fetches the documents
    and lists local URLs).
    """
    files: list[File] = []
    by_path: dict[str, File] = {}
    left_off: list[str] = []
    for file in page.files:
        sha = file.hashes.get("sha256", "").lower()
        if not SHA256.match(sha):
            left_off.append(f"{file.filename[:100]!r} has no sha256 to check it against")
            continue
        scheme = urlsplit(file.url).scheme.lower()
        if scheme not in ("http", "https"):
            left_off.append(f"{file.filename[:100]!r} has a non-http URL {file.url[:100]!r}")
            continue
        try:
            rel = file_url_from_project_page(sha, file.filename)
        except ValueError as exc:
            left_off.append(str(exc))
            continue
        core = file.core_metadata
        md = core.get("sha256", "").lower() if isinstance(core, dict) else ""
        files.append(
            File(
                filename=file.filename,
                url=rel,
                hashes={"sha256": sha},
                requires_python=file.requires_python,
                yanked=file.yanked,
                yanked_reason=file.yanked_reason,
                core_metadata={"sha256": md} if SHA256.match(md) else False,
                size=file.size,
                upload_time=file.upload_time,
            )
        )
        by_path[rel.removeprefix("../../packages/")] = file
    served = ProjectPage(
        name=page.name,
        files=tuple(files),
        versions=page.versions,
        status=page.status,
        status_reason=page.status_reason,
        # PEP 708 D3: tracks point at the namespace owner. An upstream that tracks another
        # index (a piwheels-like extender) keeps its tracks; otherwise the upstream owns the
        # project, and the proxy says it serves that project (provenance).
        tracks=page.tracks or (url,),
        alternate_locations=page.alternate_locations,
        # PEP 752: a proxy does not implement namespaces (it has no /namespaces of its own),
        # so its pages carry none, whatever the upstream's say.
        namespaces=None,
        last_serial=page.last_serial,
    )
    return served, by_path, left_off
