"""Which pages reference a file: a file is removed only when no page in the tree lists it.

Files are addressed by sha256 and filename, so two projects of one upstream that list the same
file share one key (PyPI never does this; other indexes can). Removing a file because one
project's page dropped it would leave the other's page pointing at nothing. Reading every page of
the tree before each removal would cost a full scan per sync on a PyPI-sized tree, so references
are counted cheaply:

* a file whose filename names project P (a wheel or sdist of P) is *owned* by P; P's page is the
  one place to look for it;
* any other page that lists it (a *foreign* reference, rare) leaves a marker
  ``state/refs/<sha256 path>/<filename>/<project>``, written and made durable before that page,
  and removed only after the page stops listing the file.

A file leaves the tree when its owner's page does not list it, no marker names another project,
and no project being synced right now is about to list it (a pin, taken before the sync looks for
the file on disk, so a removal and a reuse of the same file cannot interleave). ``headwater
verify`` checks the markers against the pages and the orphan scan reads every page, so both stay
exact even for trees written before markers existed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from posixpath import normpath

from headwater.simple.filenames import InvalidFilename
from headwater.simple.json import parse_project_page_json
from headwater.simple.model import InvalidPage, ProjectPage
from headwater.simple.names import NormalizedName, is_normalized, normalize_or_none
from headwater.storage.base import NotFound, Storage
from headwater.storage.layout import STATE_DIR, WEB, file_key, page_key, sha256_of_file_key
from headwater.sync.tree import Tree

__all__ = [
    "REFS",
    "Change",
    "References",
    "digest_keys",
    "file_keys",
    "foreign_keys",
    "marker_key",
    "owner_of",
    "page_file_keys",
]

REFS = f"{STATE_DIR}/refs"
#: A project's page changed: (project, keys it listed, keys it lists now), as :func:`file_keys`.
Change = tuple[NormalizedName, dict[str, bool], dict[str, bool]]
_PACKAGES = f"{WEB}/packages/"
_METADATA = ".metadata"
_PROVENANCE = ".provenance"


def page_file_keys(page: ProjectPage) -> Iterator[tuple[str, str | None, str]]:
    """The tree keys a project page points at: each file, its ``.metadata`` and, when the page
    lists PEP 740 provenance for it, its ``.provenance`` (kept beside the file by the mirror),
    with the sha256 the page promises (None if it promises none) and a name for messages. URLs
    that leave the tree (absolute URLs elsewhere) are skipped: they are not this tree's to check."""
    for file in page.files:
        key = normpath(f"{WEB}/simple/{page.name}/{file.url.partition('#')[0]}")
        if sha256_of_file_key(key) is None:
            continue
        yield key, file.hashes.get("sha256"), file.filename
        if isinstance(file.core_metadata, dict):
            yield key + ".metadata", file.core_metadata.get("sha256"), f"{file.filename}.metadata"
        elif file.core_metadata is True:
            yield key + ".metadata", None, f"{file.filename}.metadata"
        if file.provenance is not None:
            yield key + _PROVENANCE, None, f"{file.filename}.provenance"


def digest_keys(page: ProjectPage) -> Iterator[str]:
    """The names headwater's layout gives the files ``page`` lists by their sha256 (each file,
    and its ``.metadata`` and ``.provenance`` when the page promises them), wherever the page links
    them. On headwater's own pages these are the keys :func:`page_file_keys` gives. On pages of
    another layout they are the names ``headwater adopt`` gave the same bytes (a bandersnatch tree
    before its first sync links the upstream's paths), and so are not orphans: removing them
    would make that sync download what adoption found. Bad digests and unsafe names give none."""
    for file in page.files:
        sha256 = file.hashes.get("sha256")
        if sha256 is None:
            continue
        try:
            key = file_key(sha256, file.filename)
        except (ValueError, InvalidFilename):
            continue
        yield key
        if file.core_metadata:
            yield key + _METADATA
        if file.provenance is not None:
            yield key + _PROVENANCE


_SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar")


def owner_of(key: str) -> NormalizedName | None:
    """The project a file's name says it belongs to (a wheel's first field; an sdist's name before
    its last ``-``), or None when the name says none.

    Only the name part is read (no version or tag parsing): this runs for every file of every
    page a sync writes. It need not match what an installer would conclude for odd legacy names,
    only be one fixed function of the filename, so every page agrees on who owns a file; a name
    that owns nothing real makes every page that lists the file leave a marker.
    """
    filename = key.rsplit("/", 1)[1]
    if filename.endswith(".whl"):
        head = filename.split("-", 1)[0]
    else:
        lower = filename.lower()
        suffix = next((s for s in _SDIST_SUFFIXES if lower.endswith(s)), None)
        if suffix is None:
            return None
        head, dash, _version = filename[: -len(suffix)].rpartition("-")
        if not dash:
            return None
    return normalize_or_none(head)


def file_keys(page: ProjectPage | None) -> dict[str, bool]:
    """The distribution files a page lists (``.metadata`` keys folded into their file): key ->
    whether the page promises its ``.metadata``."""
    if page is None:
        return {}
    keys: dict[str, bool] = {}
    for key, _, _ in page_file_keys(page):
        if key.endswith(_PROVENANCE):
            continue  # travels with its file (removed with it)
        if key.endswith(_METADATA) and key[: -len(_METADATA)] in keys:
            keys[key[: -len(_METADATA)]] = True
        else:
            keys.setdefault(key, False)
    return keys


def foreign_keys(page: ProjectPage) -> list[str]:
    """The files ``page`` lists that its project does not own (each needs a marker)."""
    return [key for key in file_keys(page) if owner_of(key) != page.name]


def marker_key(key: str, project: NormalizedName) -> str:
    """The marker saying ``project``'s page lists the file ``key``."""
    return f"{REFS}/{key.removeprefix(_PACKAGES)}/{project}"


class References:
    """Reference counting for one sync (or repair) of ``tree``; see the module docstring."""

    def __init__(self, tree: Tree, held: dict[NormalizedName, list[str]] | None = None) -> None:
        self.tree = tree
        #: Files kept for projects whose last sync failed (the state's ``held``): references too.
        self.held = held if held is not None else {}
        self.storage: Storage = tree.storage
        self._pins: Counter[str] = Counter()
        self._removing: dict[str, asyncio.Event] = {}
        self._lock = asyncio.Lock()
        self._deferred: set[str] = set()
        self._marker_index: dict[str, set[str]] | None = None

    def pin(self, keys: Iterable[str]) -> list[str]:
        """Hold ``keys`` in the tree until :meth:`unpin`: a project about to list them takes the
        pin before it looks for them on disk. Returns the keys, for the matching unpin."""
        pinned = list(keys)
        self._pins.update(pinned)
        return pinned

    def unpin(self, keys: Iterable[str]) -> None:
        self._pins.subtract(keys)
        self._pins += Counter()  # drop zero counts

    async def settled(self, key: str) -> None:
        """Wait until a removal of ``key`` that began before the caller's pin is finished (then
        the file is either there, or gone and fetched again)."""
        event = self._removing.get(key)
        if event is not None:
            await event.wait()

    async def record(self, page: ProjectPage) -> None:
        """Write the markers of the foreign files ``page`` lists; call before the page is written
        (and before the barrier that makes its files durable, which covers the markers too)."""
        foreign = foreign_keys(page)
        if foreign:
            markers = await self._markers()
            for key in foreign:  # known before written (see _markers)
                markers.setdefault(key, set()).add(page.name)
            await self.storage.write_many([(marker_key(key, page.name), b"") for key in foreign])

    async def release(
        self, project: NormalizedName, old: ProjectPage | None, new: ProjectPage | None
    ) -> int:
        """``project``'s page changed from ``old`` to ``new`` (None: removed) and is written:
        remove the files (and ``.metadata``) it no longer lists that no other page lists, then
        its markers for them. Returns how many distribution files were removed."""
        return await self.release_keys(project, file_keys(old), file_keys(new))

    async def release_keys(
        self, project: NormalizedName, before: dict[str, bool], after: dict[str, bool]
    ) -> int:
        """:meth:`release` for key sets (key -> whether its ``.metadata`` is listed)."""
        return await self.release_many([(project, before, after)])

    async def release_many(self, changes: Sequence[Change]) -> int:
        """:meth:`release_keys` for several projects' pages at once (each project once): the
        removals of all of them in one storage call. Returns how many files were removed."""
        # One release at a time: two projects dropping a shared file at once would each see the
        # other's marker, keep the file, then both remove their markers (a leaked orphan).
        async with self._lock:
            return await self._release(changes)

    async def _release(self, changes: Sequence[Change]) -> int:
        """Batched: every lookup first (the owners' pages, the markers), then every decision with
        no await in between, then one storage call for all the removals and one for the markers.
        The first sync after ``headwater adopt`` drops every old name of every page it replaces:
        a trip to the storage thread per file (or per project, behind the page writes queued
        there) made that sync several times slower than a full one."""
        decisions: list[tuple[NormalizedName, list[tuple[str, bool]], set[str]]] = []
        for project, before, after in changes:
            dropping: list[tuple[str, bool]] = []  # (key, whether the file itself goes)
            for key, had_metadata in before.items():
                if key in after and (after[key] or not had_metadata):
                    continue  # still listed (with its .metadata if it had one)
                dropping.append((key, key not in after))
            elsewhere = await self._referenced_elsewhere([key for key, _ in dropping], project)
            decisions.append((project, dropping, elsewhere))
            # This project's markers for what its page no longer lists are stale from now on
            # (the page is written): the next project of the batch must not count them, or two
            # projects dropping one shared file would each keep it for the other (a leak).
            markers = await self._markers()
            for key, _ in dropping:
                if key not in after and owner_of(key) != project:
                    markers.get(key, set()).discard(project)
        keys: list[str] = []
        removed = 0
        registered: dict[str, asyncio.Event] = {}
        # No await from the pin checks to registering the removals: a project that pins one of
        # these keys from here on waits in settled() and then finds the file gone.
        for _project, dropping, elsewhere in decisions:
            for key, dropped_file in dropping:
                if key in elsewhere or key in registered:
                    continue
                if self._pins[key] > 0:
                    # A project in flight is about to list it, or fails first: decided at the end.
                    if dropped_file:
                        self._deferred.add(key)
                    continue
                event = self._removing[key] = registered[key] = asyncio.Event()
                if dropped_file:
                    keys += [key, key + _METADATA, key + _PROVENANCE]
                    removed += 1
                else:
                    keys.append(key + _METADATA)
        try:
            await self.tree.remove_files(keys)
        finally:
            for key, event in registered.items():
                del self._removing[key]
                event.set()
        # The markers go after the files: a crash in between leaves markers no page calls for,
        # which keep nothing that is still there and which verify --repair removes.
        gone = [
            (key, project)
            for project, before, after in changes
            for key in before
            if key not in after and owner_of(key) != project
        ]
        if gone:
            await self.storage.delete_many([marker_key(key, project) for key, project in gone])
        return removed

    async def settle(self) -> int:
        """At the end of a run (no project in flight): remove the files a release kept only
        because a project had pinned them, if in the end no page lists them (the pinning project
        failed, or its page left them out) and no failed project holds them. Returns how many."""
        async with self._lock:
            deferred, self._deferred = sorted(self._deferred), set()
            elsewhere = await self._referenced_elsewhere(deferred, None)
            doomed = [key for key in deferred if self._pins[key] <= 0 and key not in elsewhere]
            await self.tree.remove_files(
                [name for key in doomed for name in (key, key + _METADATA, key + _PROVENANCE)]
            )
        return len(doomed)

    async def _markers(self) -> dict[str, set[str]]:
        """Which projects' markers name each file key: read from storage once per run (one
        listing, not one per file), then kept current by :meth:`record` and :meth:`release`, the
        only writers while the run holds the tree. An entry is added before its marker is written
        (a failure in between only keeps a file longer) and dropped once the page that called for
        it is written without the file (the marker is stale from then on, whenever its removal
        reaches the storage)."""
        if self._marker_index is None:
            index: dict[str, set[str]] = {}
            async for marker in self.storage.iter_keys(REFS):
                path, _, name = marker.removeprefix(f"{REFS}/").rpartition("/")
                index.setdefault(_PACKAGES + path, set()).add(name)
            self._marker_index = index
        return self._marker_index

    async def _referenced_elsewhere(
        self, keys: list[str], project: NormalizedName | None
    ) -> set[str]:
        """Those of ``keys`` a page (or a held file list) other than ``project``'s references;
        with ``project`` None, those anything references. Each owner's page is read once."""
        if not keys:
            return set()
        held = {key for name, listed in self.held.items() if name != project for key in listed}
        markers = await self._markers()
        owners: dict[NormalizedName, frozenset[str] | None] = {}
        found: set[str] = set()
        for key in keys:
            if key in held or any(name != project for name in markers.get(key, ())):
                found.add(key)
                continue
            owner = owner_of(key)
            if owner is None or owner == project or not is_normalized(owner):
                continue
            if owner not in owners:
                owners[owner] = await self._listed_by(owner)
            listed = owners[owner]
            if listed is None or key in listed:  # None: unreadable page, keep the file
                found.add(key)
        return found

    async def _listed_by(self, owner: NormalizedName) -> frozenset[str] | None:
        """The files ``owner``'s page lists (empty without a page; None when unreadable)."""
        try:
            raw = await self.storage.read_bytes(page_key(owner, "json"))
        except NotFound:
            return frozenset()
        try:
            return frozenset(file_keys(parse_project_page_json(raw)))
        except InvalidPage:
            return None  # cannot tell (verify reports the page)
