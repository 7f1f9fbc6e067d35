"""The sync plan: a pure diff of what upstream lists against what the tree already has.

No I/O: the engine fetches the upstream project list and loads local state, calls :func:`plan_sync`,
and executes the result. Keeping the decision pure makes it cheap to test exhaustively and to run at
PyPI's size (700,000 projects) in well under a second.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Literal, cast

import msgspec

from headwater.simple.model import ProjectList
from headwater.simple.names import NormalizedName, normalize_many, normalize_name

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
    longer wanted by the filters); ``unchanged`` counts projects left alone. ``not_synced`` maps
    projects that were asked for by name but will not be synced (the upstream does not list them,
    or the filters do not want them) to why: the run says so and fails."""

    sync: tuple[ProjectTask, ...]
    delete: tuple[NormalizedName, ...]
    unchanged: int
    upstream_serial: int | None
    skipped: tuple[str, ...] = ()
    not_synced: tuple[tuple[NormalizedName, str], ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing to fetch and nothing to delete."""
        return not self.sync and not self.delete


def _reason(serial: int | None, have: object, missing: object) -> Reason:
    if have is missing:
        return "new"
    if serial is None or have is None:
        return "no-serial"
    assert isinstance(have, int)
    if serial > have:
        return "changed"
    if serial < have:
        return "stale-state"
    return "filters-changed"  # equal serials are only planned when the filters changed


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
    projects (``headwater mirror --project``, ``headwater verify --repair``): they are synced even
    if unchanged, and nothing else is synced or deleted; ``wanted`` still decides (a name is never
    a way around ``block``), and a requested project the upstream does not list or the filters do
    not want is deleted from the tree if it is there and named in ``not_synced``. ``resync_all`` (the filters changed since the last sync) syncs every wanted
    project again, so files the filters no longer keep are removed from the tree.
    """
    entries = upstream.projects
    # All names at once: PyPI lists 700,000 display names, and a regex call per name would cost
    # more than the rest of the plan. The set and dict work below runs in comprehensions (C
    # speed); only changed projects become tasks one by one.
    names = normalize_many([e.name for e in entries])
    if None in names:
        for entry, normalized in zip(entries, names, strict=True):
            if normalized is None:
                normalize_name(entry.name)  # raises InvalidName, naming the entry
    valid = cast("list[NormalizedName]", names)  # no None left: InvalidName was raised above
    listed: dict[NormalizedName, int | None] = {}
    if len(set(valid)) == len(valid):
        listed = dict(zip(valid, [e.last_serial for e in entries], strict=True))
    else:  # spelling variants of one project: the first entry wins
        for entry, normalized in zip(entries, valid, strict=True):
            listed.setdefault(normalized, entry.last_serial)

    if only is not None:
        only_set = set(only)
        tasks = [
            ProjectTask(n, s, "requested")
            for n, s in listed.items()
            if n in only_set and (wanted is None or wanted(n))
        ]
        # Requested projects the tree must not have are deleted; nothing else is touched.
        delete: list[NormalizedName] = []
        not_synced: list[tuple[NormalizedName, str]] = []
        for name in sorted(only_set):
            if name not in listed:
                why = "the upstream's project list does not have it"
            elif wanted is not None and not wanted(name):
                why = "the mirror's filters do not want it (allow, block, requirements)"
            else:
                continue
            if name in local:
                delete.append(name)
                why += "; removed from the tree"
            not_synced.append((name, why))
        return Plan(
            sync=tuple(tasks),
            delete=tuple(delete),
            unchanged=0,
            upstream_serial=upstream.last_serial,
            not_synced=tuple(not_synced),
        )

    skipped: list[NormalizedName] = []
    if wanted is not None:
        skipped = [n for n in listed if not wanted(n)]
        for name in skipped:
            del listed[name]
    missing = object()
    # One pass picks the projects to sync: everything, if the filters changed; otherwise those
    # without serials on either side or whose serial differs from the tree's.
    changed = (
        list(listed.items())
        if resync_all
        else [(n, s) for n, s in listed.items() if s is None or local.get(n, missing) != s]
    )
    tasks = [ProjectTask(n, s, _reason(s, local.get(n, missing), missing)) for n, s in changed]
    unchanged = len(listed) - len(changed)
    return Plan(
        sync=tuple(tasks),
        delete=tuple(sorted(local.keys() - listed.keys())),
        unchanged=unchanged,
        upstream_serial=upstream.last_serial,
        skipped=tuple(skipped),
    )
