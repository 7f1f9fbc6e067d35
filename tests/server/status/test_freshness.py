"""The freshness decisions as a truth table, plus properties over any history."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.server.status.freshness import (
    ORDER,
    Thresholds,
    UpstreamCheck,
    hit_rate,
    mirror_freshness,
    proxy_freshness,
    worst,
)
from headwater.sync.history import Run

NOW = 2_000_000_000.0
H = 3600.0
OK = Run(started=NOW - 600, seconds=30, serial=100, upstream_serial=100)


def _run(ago: float, **kw: object) -> Run:
    return Run(started=NOW - ago, seconds=10, **kw)  # type: ignore[arg-type]


# (runs, check, expected state, expected lag_serials, expected lag_seconds, words in reason)
TABLE = [
    ("no history", [], None, "unknown", None, None, "no sync recorded"),
    (
        "caught up at the check, even if the sync is old",
        [_run(10 * 86400, serial=100, upstream_serial=100)],
        UpstreamCheck(serial=100, checked=NOW - 60),
        "fresh",
        0,
        0.0,
        "has the upstream's serial 100",
    ),
    (
        "upstream behind the tree (stale CDN): lag zero, not negative",
        [_run(60, serial=100, upstream_serial=100)],
        UpstreamCheck(serial=90, checked=NOW - 60),
        "fresh",
        0,
        0.0,
        "serial 100",
    ),
    (
        "serials behind but synced ten minutes ago",
        [_run(600, serial=100, upstream_serial=100)],
        UpstreamCheck(serial=150, checked=NOW),
        "fresh",
        50,
        600.0,
        "10 min ago",
    ),
    (
        "behind after an hour",
        [_run(2 * H, serial=100, upstream_serial=100)],
        UpstreamCheck(serial=150, checked=NOW),
        "behind",
        50,
        2 * H,
        "2 h ago",
    ),
    (
        "stale after a day",
        [_run(3 * 86400, serial=100, upstream_serial=100)],
        UpstreamCheck(serial=150, checked=NOW),
        "stale",
        50,
        3 * 86400.0,
        "3 days ago",
    ),
    (
        "never checked: the last run's upstream serial and the age decide",
        [_run(2 * H, serial=100, upstream_serial=120)],
        None,
        "behind",
        20,
        2 * H,
        "2 h ago",
    ),
    (
        "check failed: serial from the last run, age decides",
        [_run(30, serial=100, upstream_serial=100)],
        UpstreamCheck(serial=None, checked=NOW, error="timed out"),
        "fresh",
        0,
        30.0,
        "30 s ago",
    ),
    (
        "last run failed as a whole: failing, lag still shown",
        [_run(2 * H, serial=100, upstream_serial=100), _run(60, error="cannot read the list")],
        UpstreamCheck(serial=130, checked=NOW),
        "failing",
        30,
        2 * H,
        "cannot read the list",
    ),
    (
        "failed projects hold the serial: age from the last complete run",
        [
            _run(5 * H, serial=100, upstream_serial=100),
            _run(60, serial=100, upstream_serial=140, failed=2, failures={"a": "x", "b": "y"}),
        ],
        UpstreamCheck(serial=140, checked=NOW),
        "behind",
        40,
        5 * H,
        "2 project(s) failed",
    ),
    (
        "no run ever completed",
        [_run(60, serial=None, upstream_serial=140, failed=1)],
        None,
        "stale",
        None,
        None,
        "no sync of this tree has completed",
    ),
    (
        "a partial run (--project) is not a complete one",
        [_run(2 * H, serial=100, upstream_serial=100), _run(60, serial=100, partial=True)],
        UpstreamCheck(serial=101, checked=NOW),
        "behind",
        1,
        2 * H,
        "2 h ago",
    ),
    (
        "no serials upstream: the age decides",
        [_run(30, serial=None, upstream_serial=None)],
        UpstreamCheck(serial=None, checked=NOW),
        "fresh",
        None,
        30.0,
        "30 s ago",
    ),
]


@pytest.mark.parametrize(
    ("runs", "check", "state", "lag_serials", "lag_seconds", "words"),
    [pytest.param(*row[1:], id=row[0]) for row in TABLE],
)
def test_mirror_freshness_table(
    runs: list[Run],
    check: UpstreamCheck | None,
    state: str,
    lag_serials: int | None,
    lag_seconds: float | None,
    words: str,
) -> None:
    got = mirror_freshness(runs, check, NOW)
    assert got.state == state, got.reason
    assert got.lag_serials == lag_serials
    assert got.lag_seconds == lag_seconds
    assert words in got.reason


def test_thresholds_are_the_callers() -> None:
    runs = [_run(120, serial=1, upstream_serial=1)]
    check = UpstreamCheck(serial=2, checked=NOW)
    assert mirror_freshness(runs, check, NOW).state == "fresh"
    tight = Thresholds(behind_after=60, stale_after=100)
    assert mirror_freshness(runs, check, NOW, tight).state == "stale"
    assert mirror_freshness(runs, check, NOW, Thresholds(behind_after=60)).state == "behind"


runs_strategy = st.lists(
    st.builds(
        Run,
        started=st.floats(NOW - 1e7, NOW + 1e4),
        seconds=st.floats(0, 1e5),
        serial=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
        upstream_serial=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
        failed=st.integers(0, 10),
        partial=st.booleans(),
        error=st.one_of(st.none(), st.text(max_size=20)),
    ),
    max_size=8,
)
checks = st.one_of(
    st.none(),
    st.builds(
        UpstreamCheck,
        serial=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
        checked=st.just(NOW),
        error=st.one_of(st.none(), st.just("x")),
    ),
)


@settings(max_examples=300, deadline=None)
@given(runs=runs_strategy, check=checks)
def test_mirror_freshness_properties(runs: list[Run], check: UpstreamCheck | None) -> None:
    got = mirror_freshness(runs, check, NOW)
    assert got.state in ORDER and got.reason
    assert got.lag_serials is None or got.lag_serials >= 0
    assert got.lag_seconds is None or got.lag_seconds >= 0
    if runs and runs[-1].error is not None:
        assert got.state == "failing"
    if got.state == "fresh":
        # Fresh means known current, or a complete sync recent enough.
        assert got.lag_seconds is not None and got.lag_seconds < Thresholds().behind_after
    # A later clock never makes a mirror fresher.
    later = mirror_freshness(runs, check, NOW + 10 * 86400)
    assert ORDER.index(later.state) >= ORDER.index(got.state) or got.state == "unknown"


def test_proxy_freshness() -> None:
    assert proxy_freshness(offline=True, check=None).state == "offline"
    assert proxy_freshness(offline=False, check=None).state == "unknown"
    failing = proxy_freshness(offline=False, check=UpstreamCheck(checked=NOW, error="refused"))
    assert failing.state == "failing" and "refused" in failing.reason
    assert proxy_freshness(offline=False, check=UpstreamCheck(checked=NOW, serial=3)).state == (
        "fresh"
    )


def test_hit_rate_and_worst() -> None:
    assert hit_rate(0, 0) is None
    assert hit_rate(3, 1) == 0.75
    assert worst([]) == "unknown"
    assert worst(["fresh", "stale", "behind"]) == "stale"
    assert worst(["fresh", "unreachable", "failing"]) == "unreachable"
