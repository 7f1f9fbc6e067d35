"""Properties checked against plain-Python references, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.db import Conflict, Database
from headwater.db import schema as t
from headwater.simple.names import normalize_name
from tests.db.factories import new_file
from tests.simple.strategies import hostile_text

_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    # The database fixture is shared on purpose; each example cleans up after itself.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Few short segments, so namespaces and names collide and nest often.
_segments = st.lists(st.sampled_from(["a", "b", "ab", "a1"]), min_size=1, max_size=3)
spelled_names = st.builds(
    lambda parts, sep: sep.join(parts), _segments, st.sampled_from(["-", "_", ".", "-_"])
)


def _covers(namespace: str, name: str) -> bool:
    # PEP 752: a grant for ns covers ns and ns-* after normalization.
    return name == namespace or name.startswith(namespace + "-")


@_SETTINGS
@given(grants=st.lists(spelled_names, max_size=6), probes=st.lists(spelled_names, max_size=6))
def test_pep_752_overlap_and_covering_match_the_reference(
    db: Database, alice: str, grants: list[str], probes: list[str]
) -> None:
    granted: list[str] = []
    try:
        for spelling in grants:
            ns = normalize_name(spelling)
            overlaps = any(_covers(g, ns) or _covers(ns, g) for g in granted)
            if overlaps:
                with pytest.raises(Conflict):
                    db.grant_namespace("main", spelling, alice)
            else:
                db.grant_namespace("main", spelling, alice)
                granted.append(ns)
        assert sorted(g.name for g in db.namespaces("main")) == sorted(granted)
        for spelling in probes:
            name = normalize_name(spelling)
            expected = [g for g in granted if _covers(g, name)]
            found = db.namespace_covering("main", spelling)
            assert (found.name if found else None) == (expected[0] if expected else None)
            assert len(expected) <= 1
    finally:
        for ns in granted:
            db.revoke_namespace("main", ns)


@_SETTINGS
@given(reason=hostile_text, status_reason=hostile_text)
def test_reasons_round_trip_exactly(db: Database, reason: str, status_reason: str) -> None:
    db.add_file("main", "acme", new_file("acme-1.0.tar.gz"))
    try:
        db.yank("main", "acme", version="1.0", reason=reason)
        db.set_status("main", "acme", "deprecated", status_reason)
        record = db.project("main", "acme")
        assert record is not None
        assert record.files[0].yanked == reason
        assert record.status_reason == status_reason
    finally:
        db.delete_project("main", "acme")
        # Filenames are never reusable; the next example needs this one again.
        with db._engine.begin() as conn:
            conn.execute(t.deleted_files.delete())
