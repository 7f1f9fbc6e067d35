"""The pure sync plan."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from headwater.simple.model import ProjectList, ProjectListEntry
from headwater.simple.names import NormalizedName, normalize_name
from headwater.sync.plan import plan_sync
from tests.simple.strategies import names


def upstream(*entries: tuple[str, int | None], serial: int | None = 100) -> ProjectList:
    return ProjectList(
        projects=tuple(ProjectListEntry(n, s) for n, s in entries), last_serial=serial
    )


def N(name: str) -> NormalizedName:
    return normalize_name(name)


def test_new_changed_unchanged_deleted() -> None:
    plan = plan_sync(
        upstream(("New", 5), ("changed", 9), ("same", 3)),
        {N("changed"): 7, N("same"): 3, N("gone"): 1},
    )
    assert [(t.name, t.serial, t.reason) for t in plan.sync] == [
        ("new", 5, "new"),
        ("changed", 9, "changed"),
    ]
    assert plan.delete == ("gone",)
    assert plan.unchanged == 1
    assert plan.upstream_serial == 100


def test_no_serials_means_revalidate_everything() -> None:
    plan = plan_sync(upstream(("a", None), ("b", None), serial=None), {N("a"): None})
    assert [(t.name, t.reason) for t in plan.sync] == [("a", "no-serial"), ("b", "new")]


def test_local_serial_ahead_of_upstream_is_not_trusted() -> None:
    plan = plan_sync(upstream(("a", 5)), {N("a"): 9})
    assert [(t.name, t.reason) for t in plan.sync] == [("a", "stale-state")]


def test_spelling_variants_are_one_project() -> None:
    plan = plan_sync(upstream(("Foo_Bar", 2), ("foo.bar", 2)), {})
    assert [t.name for t in plan.sync] == ["foo-bar"]


def test_filter_skips_and_deletes_what_it_no_longer_wants() -> None:
    plan = plan_sync(
        upstream(("keep", 2), ("drop", 2)),
        {N("keep"): 2, N("drop"): 2},
        wanted=lambda name: name != "drop",
    )
    assert plan.sync == ()
    assert plan.delete == ("drop",)
    assert plan.skipped == ("drop",)
    assert plan.unchanged == 1


def test_only_requested_projects() -> None:
    plan = plan_sync(
        upstream(("a", 2), ("b", 2), ("c", 9)),
        {N("a"): 2, N("c"): 1, N("gone"): 1, N("d"): 1},
        only={N("a"), N("d")},
    )
    assert [(t.name, t.reason) for t in plan.sync] == [("a", "requested")]
    assert plan.delete == ("d",)  # requested and gone upstream; "gone" and "c" are not touched


local_states = st.dictionaries(
    names.map(normalize_name), st.none() | st.integers(0, 50), max_size=15
)
upstreams = st.lists(st.tuples(names, st.none() | st.integers(0, 50)), max_size=15)


@given(upstreams, local_states)
def test_every_project_is_accounted_for(
    entries: list[tuple[str, int | None]], local: dict[NormalizedName, int | None]
) -> None:
    plan = plan_sync(upstream(*entries), local)
    listed = {normalize_name(n) for n, _ in entries}
    synced = [t.name for t in plan.sync]
    assert len(synced) == len(set(synced))  # each project at most once
    assert set(synced) | set(plan.delete) | set(plan.skipped) <= listed | set(local)
    assert len(synced) + plan.unchanged == len(listed)
    assert set(plan.delete) == set(local) - listed
    for task in plan.sync:
        if task.reason == "changed":
            assert task.serial is not None and local[task.name] is not None
            assert task.serial > local[task.name]  # type: ignore[operator]


@given(upstreams)
def test_second_run_after_success_is_empty(entries: list[tuple[str, int | None]]) -> None:
    first = plan_sync(upstream(*entries), {})
    after = {t.name: t.serial for t in first.sync}
    second = plan_sync(upstream(*entries), after)
    # Only projects without serials are revalidated; everything else is unchanged.
    assert all(t.reason == "no-serial" for t in second.sync)
    assert second.delete == ()


# A requested project (``--project``, or a repair) is synced only when the upstream lists it AND
# the filters want it; otherwise it is named in not_synced, and deleted if the tree has it.
# (listed upstream, wanted, in the tree) -> (synced, deleted, not_synced reason prefix)
ONLY_TABLE = [
    (True, True, False, (True, False, None)),
    (True, True, True, (True, False, None)),
    (True, False, False, (False, False, "the mirror's filters")),
    (True, False, True, (False, True, "the mirror's filters")),
    (False, True, False, (False, False, "the upstream's project list")),
    (False, True, True, (False, True, "the upstream's project list")),
    (False, False, False, (False, False, "the upstream's project list")),
    (False, False, True, (False, True, "the upstream's project list")),
]


def test_requested_projects_truth_table() -> None:
    for listed, wanted, local, (synced, deleted, why) in ONLY_TABLE:
        plan = plan_sync(
            upstream(*([("Asked", 5)] if listed else []), ("other", 1)),
            {N("asked"): 4, N("other"): 1} if local else {N("other"): 1},
            wanted=lambda n, w=wanted: w or n != "asked",
            only=[N("asked")],
        )
        row = (listed, wanted, local)
        assert [t.name for t in plan.sync] == (["asked"] if synced else []), row
        assert plan.delete == (("asked",) if deleted else ()), row
        reasons = dict(plan.not_synced)
        if why is None:
            assert reasons == {}, row
        else:
            assert reasons["asked"].startswith(why), row
            assert reasons["asked"].endswith("removed from the tree") == deleted, row
