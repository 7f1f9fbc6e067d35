"""What the configuration wants in a mirrored tree: one answer that every writer of the tree asks.

A tree is written by ``headwater mirror`` (a full run or ``--project``) and by ``headwater verify
--repair``; each of them used to assemble the filters and the ``tracks`` policy on its own, and the
repair forgot them (it restored filtered-out files and ``tracks``, and the next mirror found
nothing to do). :class:`TreeWants` is the whole statement, built once from the ``[mirror.NAME]``
table, recorded in the tree's state, and asked by the engine, the plan and verify alike:

====================  =========================================================================
``project(name)``     is the project in the tree at all (``allow``, ``block``, requirements)
``files(page)``       which files of its page are kept (the file and release filters)
``tracks``            PEP 708 ``tracks`` on every page, pointing at the upstream project
``metadata``          PEP 658 ``.metadata`` files mirrored (and promised by the pages)
``closure``           a closure mirror's computed file set (project -> filenames), or None
``fingerprint``       changes whenever any of the above changes: the tree is then synced again
``disagreements()``   how a page in the tree differs from what is wanted (verify reports them)
====================  =========================================================================

Pure: no I/O.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import msgspec
from packaging.version import InvalidVersion, Version

from headwater.policy.held import held_reason
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.model import ProjectPage
from headwater.simple.names import NormalizedName
from headwater.sync.filters import FilterConfig, filter_page, project_filter


def version_of(filename: str) -> Version | None:
    """The version in a wheel or sdist filename (None when it cannot be told)."""
    try:
        return parse_filename(filename).version
    except InvalidFilename:
        return None


def _parsed(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


__all__ = ["TreeWants"]


class TreeWants(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """What a tree should hold. The defaults want everything, as a mirror without options does.

    Raises:
        InvalidFilter: (on first use) ``filters`` lists requirement files that were not loaded.
    """

    filters: FilterConfig = msgspec.field(default_factory=FilterConfig)
    tracks: bool = True
    metadata: bool = True
    #: A closure mirror's answer (:mod:`headwater.sync.closure`): only these projects, and only
    #: these files of them (the filters still apply on top). None: no closure.
    closure: dict[str, tuple[str, ...]] | None = None

    @functools.cached_property
    def _wanted(self) -> Callable[[NormalizedName], bool] | None:
        named = project_filter(self.filters)
        if self.closure is None:
            return named
        in_closure = self.closure.__contains__
        if named is None:
            return in_closure
        return lambda name: in_closure(name) and named(name)

    @functools.cached_property
    def _closure_files(self) -> dict[str, frozenset[str]] | None:
        if self.closure is None:
            return None
        return {name: frozenset(files) for name, files in self.closure.items()}

    @property
    def project_filter(self) -> Callable[[NormalizedName], bool] | None:
        """The plan's ``wanted`` callable (``None``: every project is wanted)."""
        return self._wanted

    def project(self, name: NormalizedName) -> bool:
        """Whether the tree should have ``name`` at all."""
        return self._wanted is None or self._wanted(name)

    @property
    def filters_files(self) -> bool:
        """Whether any file or release filter is set (else :meth:`files` keeps every file)."""
        return (
            self.closure is not None
            or msgspec.structs.replace(self.filters, allow=(), block=(), requirements=())
            != FilterConfig()
            or bool(self.filters.requirements)
        )

    def files(self, page: ProjectPage) -> ProjectPage:
        """``page`` with only the files (and versions) the filters and the closure keep."""
        if not self.filters_files:
            return page
        return self._in_closure(filter_page(page, self.filters).page)

    def _in_closure(self, page: ProjectPage) -> ProjectPage:
        wanted = self._closure_files
        if wanted is None:
            return page
        names = wanted.get(page.name, frozenset())
        files = tuple(f for f in page.files if f.filename in names)
        if len(files) == len(page.files):
            return page
        # Item 30: files MUST belong to a listed version; the closure lists only versions it
        # keeps files of (file-less versions would tempt an installer into a failed resolve).
        versions = page.versions
        if versions is not None:
            kept = {version_of(f.filename) for f in files}
            versions = tuple(v for v in versions if _parsed(v) in kept)
        return msgspec.structs.replace(page, files=files, versions=versions)

    @property
    def fingerprint(self) -> str | None:
        """Identifies everything that shapes the tree's pages; ``None`` for the defaults, so a tree
        synced without options matches a state that never recorded any. When the fingerprint a
        tree was synced with differs, the next mirror syncs every project again."""
        if self == TreeWants():
            return None
        if self.tracks and self.metadata and self.closure is None:
            # Only filters: the fingerprint trees have recorded since filters existed, so they are
            # not synced again just for upgrading.
            return hashlib.sha256(msgspec.json.encode(self.filters)).hexdigest()[:16]
        return hashlib.sha256(msgspec.json.encode(self)).hexdigest()[:16]

    def disagreements(self, page: ProjectPage, tracks_url: str | None) -> list[str]:
        """How ``page`` (as the tree has it) differs from what is wanted, one sentence each; empty
        when it agrees. ``tracks_url`` is the upstream project's URL when the tree's upstream is
        known (then ``tracks`` must be exactly it)."""
        if not self.project(page.name):
            return ["the filters do not want this project (allow/block/requirements)"]
        found: list[str] = []
        # Held entries are the publisher guard's (policy/held.py), judged by it after the filters.
        if any(held_reason(f) is not None for f in page.files):
            page = msgspec.structs.replace(
                page, files=tuple(f for f in page.files if held_reason(f) is None)
            )
        if self.filters_files:
            dropped = [
                f"{d.file.filename} ({d.reason})" for d in filter_page(page, self.filters).dropped
            ]
            closure = self._closure_files
            if closure is not None:
                names = closure.get(page.name, frozenset())
                dropped += [
                    f"{f.filename} (not in the closure)"
                    for f in page.files
                    if f.filename not in names
                ]
            if dropped:
                shown = ", ".join(dropped[:3])
                more = f" and {len(dropped) - 3} more" if len(dropped) > 3 else ""
                found.append(f"lists files the filters drop: {shown}{more}")
        if not self.tracks and page.tracks:
            found.append("has tracks, but the configuration says tracks = false")
        elif self.tracks and tracks_url is not None and page.tracks != (tracks_url,):
            found.append(f"tracks is {list(page.tracks)}, the configuration wants [{tracks_url!r}]")
        if not self.metadata and any(f.core_metadata for f in page.files):
            found.append("promises .metadata files, but the configuration says metadata = false")
        return found
