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

from headwater.simple.model import ProjectPage
from headwater.simple.names import NormalizedName
from headwater.sync.filters import FilterConfig, filter_page, project_filter

__all__ = ["TreeWants"]


class TreeWants(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """What a tree should hold. The defaults want everything, as a mirror without options does.

    Raises:
        InvalidFilter: (on first use) ``filters`` lists requirement files that were not loaded.
    """

    filters: FilterConfig = msgspec.field(default_factory=FilterConfig)
    tracks: bool = True
    metadata: bool = True

    @functools.cached_property
    def _wanted(self) -> Callable[[NormalizedName], bool] | None:
        return project_filter(self.filters)

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
        return msgspec.structs.replace(self.filters, allow=(), block=(), requirements=()) != (
            FilterConfig()
        ) or bool(self.filters.requirements)

    def files(self, page: ProjectPage) -> ProjectPage:
        """``page`` with only the files (and versions) the filters keep."""
        if not self.filters_files:
            return page
        return filter_page(page, self.filters).page

    @property
    def fingerprint(self) -> str | None:
        """Identifies everything that shapes the tree's pages; ``None`` for the defaults, so a tree
        synced without options matches a state that never recorded any. When the fingerprint a
        tree was synced with differs, the next mirror syncs every project again."""
        if self == TreeWants():
            return None
        if self.tracks and self.metadata:
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
        if self.filters_files:
            dropped = filter_page(page, self.filters).dropped
            if dropped:
                shown = ", ".join(f"{d.file.filename} ({d.reason})" for d in dropped[:3])
                more = f" and {len(dropped) - 3} more" if len(dropped) > 3 else ""
                found.append(f"lists files the filters drop: {shown}{more}")
        if not self.tracks and page.tracks:
            found.append("has tracks, but the configuration says tracks = false")
        elif self.tracks and tracks_url is not None and page.tracks != (tracks_url,):
            found.append(f"tracks is {list(page.tracks)}, the configuration wants [{tracks_url!r}]")
        if not self.metadata and any(f.core_metadata for f in page.files):
            found.append("promises .metadata files, but the configuration says metadata = false")
        return found
