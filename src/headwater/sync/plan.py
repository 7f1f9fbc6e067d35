"""The sync plan: a pure diff of what upstream lists against what the tree already has.

No I/O: the engine fetches the upstream project list and loads local state, calls :func:`plan_sync`,
and executes the result. Keeping the decision pure makes it cheap to test exhaustively and to run at
PyPI's size (700,000 projects) in well under a second.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Literal

import msgspec

from headwater.simple.model import ProjectList
from headwater.simple.names import NormalizedName, is_normalized, normalize_name

__all__ = ["Plan", "ProjectTask", "plan_sync"]

Reason = Literal["new", "changed", "no-serial", "requested", "stale-state", "filters-changed"]


class ProjectTask(msgspec.Struct, frozen=True):
    """Sync one project: fetch its page and files. ``serial`` is what upstream listed (the page
    fetched must be at least this new, or it is a stale cache answer and must be retried)."""

    name: NormalizedName
    serial: int | None
    reason: Reason


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """What a sync will do. ``delete`` lists projects to remove from the tree (gone upstream or no
    longer wanted by the filters); ``unchanged`` counts projects left alone."""

    sync: tuple[ProjectTask, ...]
    delete: tuple[NormalizedName, ...]
    unchanged: int
    upstream_serial: int | None
    skipped: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing to fetch and nothing to delete."""
        return not self.sync and not self.delete


def plan_sync(
    upstream: ProjectList,
    local: Mapping[NormalizedName, int | None],
    *,
    wanted: Callable[[NormalizedName], bool] | None = None,
    only: Collection[NormalizedName] | None = None,
    resync_all: bool = False,
) -> Plan:
    """Decide which projects to sync and which to delete.

    ``local`` maps every project in the tree to the upstream serial it was synced at (``None`` if the
    upstream had no serials). A project is synced when it is new, when upstream's serial is higher
    than the local one, or when neither side has serials (the engine then revalidates with a
    conditional request). A local serial *higher* than upstream's means the state came from another
    upstream or the upstream was reset: resynced, never trusted. ``wanted`` is the project filter;
    projects in the tree that it no longer wants are deleted. ``only`` restricts the plan to those
    projects (``headwater mirror --project``): they are synced even if unchanged, and nothing else is
    synced or deleted. ``resync_all`` (the filters changed since the last sync) syncs every wanted
    project again, so files the filters no longer keep are removed from the tree.
    """
    tasks: list[ProjectTask] = []
    seen: set[NormalizedName] = set()
    unchanged = 0
    skipped: list[str] = []
    only_set = set(only) if only is not None else None
    for entry in upstream.projects:
        name = entry.name
        # Fast path: PyPI lists display names; most are already normalized.
        normalized = NormalizedName(name) if is_normalized(name) else normalize_name(name)
        if normalized in seen:
            continue
        seen.add(normalized)
        if only_set is not None:
            if normalized in only_set:
                tasks.append(ProjectTask(normalized, entry.last_serial, "requested"))
            continue
        if wanted is not None and not wanted(normalized):
            skipped.append(normalized)
            continue
        serial = entry.last_serial
        if normalized not in local:
            tasks.append(ProjectTask(normalized, serial, "new"))
            continue
        have = local[normalized]
        if serial is None or have is None:
            tasks.append(ProjectTask(normalized, serial, "no-serial"))
        elif serial > have:
            tasks.append(ProjectTask(normalized, serial, "changed"))
        elif serial < have:
            tasks.append(ProjectTask(normalized, serial, "stale-state"))
        elif resync_all:
            tasks.append(ProjectTask(normalized, serial, "filters-changed"))
        else:
            unchanged += 1
    if only_set is not None:
        # Requested projects upstream no longer lists are deleted; nothing else is touched.
        delete = tuple(sorted(n for n in only_set if n not in seen and n in local))
    else:
        delete = tuple(
            sorted(n for n in local if n not in seen or (wanted is not None and not wanted(n)))
        )
    return Plan(
        sync=tuple(tasks),
        delete=delete,
        unchanged=unchanged,
        upstream_serial=upstream.last_serial,
        skipped=tuple(skipped),
    )
