"""The sign-in counters' decision (headwater.db.throttle) as a truth table, and its properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.db import throttle
from headwater.db.throttle import Counter, Limit

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LIMIT = Limit(failures=3, window=timedelta(minutes=10), lockout=timedelta(minutes=5))
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("counter", "at", "refused_until"),
    [
        (None, T0, None),
        (Counter(2, T0), T0 + M, None),
        (Counter(3, T0, locked_until=T0 + 5 * M), T0 + M, T0 + 5 * M),
        (Counter(3, T0, locked_until=T0 + 5 * M), T0 + 5 * M, None),  # the lock has run out
        (Counter(3, T0, locked_until=T0 + 5 * M), T0 + 6 * M, None),
    ],
)
def test_locked(counter: Counter | None, at: datetime, refused_until: datetime | None) -> None:
    assert throttle.locked(counter, at) == refused_until


@pytest.mark.parametrize(
    ("counter", "at", "after"),
    [
        (None, T0, Counter(1, T0)),
        (Counter(1, T0), T0 + M, Counter(2, T0)),
        # The third attempt within the window reaches the limit: locked from now on.
        (Counter(2, T0), T0 + 2 * M, Counter(3, T0, locked_until=T0 + 10 * M)),
        # ... for the lockout, when that ends after the window.
        (Counter(2, T0), T0 + 8 * M, Counter(3, T0, locked_until=T0 + 13 * M)),
        # The window is over: a new one starts.
        (Counter(2, T0), T0 + 10 * M, Counter(1, T0 + 10 * M)),
        # A lock that has run out starts a new window too.
        (Counter(3, T0, locked_until=T0 + 5 * M), T0 + 6 * M, Counter(1, T0 + 6 * M)),
    ],
)
def test_after_attempt(counter: Counter | None, at: datetime, after: Counter) -> None:
    assert throttle.after_attempt(counter, LIMIT, at) == after


@pytest.mark.parametrize(
    ("counter", "kind", "after"),
    [
        (None, "user", None),
        (Counter(2, T0), "user", None),
        (Counter(3, T0, locked_until=T0 + 5 * M), "user", None),
        (None, "address", None),
        (Counter(1, T0), "address", None),
        (Counter(2, T0), "address", Counter(1, T0)),
        # The attempt that set the lock was a success: the lock goes with it.
        (Counter(3, T0, locked_until=T0 + 5 * M), "address", Counter(2, T0)),
        # Failures beyond the limit stay locked.
        (Counter(5, T0, locked_until=T0 + 5 * M), "address", Counter(4, T0, T0 + 5 * M)),
    ],
)
def test_after_success(counter: Counter | None, kind: throttle.Kind, after: Counter | None) -> None:
    assert throttle.after_success(counter, kind, LIMIT) == after


@given(st.lists(st.integers(min_value=0, max_value=30), max_size=60))
def test_never_more_checks_than_the_limit_within_a_window(gaps: list[int]) -> None:
    """Whatever the timing of attempts (all failing), the windows are fixed: at most
    ``failures`` checks from the start of each, so at most twice that in any stretch of
    ``window`` (the end of one window and the start of the next)."""
    counter: Counter | None = None
    at = T0
    checked: list[datetime] = []
    for gap in gaps:
        at += timedelta(seconds=gap * 20)
        if throttle.locked(counter, at) is not None:
            continue
        counter = throttle.after_attempt(counter, LIMIT, at)
        checked.append(at)
    for i, start in enumerate(checked):
        within = [c for c in checked[i:] if c < start + LIMIT.window]
        assert len(within) <= 2 * LIMIT.failures
    windows: dict[datetime, int] = {}
    counter = None
    at = T0
    for gap in gaps:
        at += timedelta(seconds=gap * 20)
        if throttle.locked(counter, at) is None:
            counter = throttle.after_attempt(counter, LIMIT, at)
            windows[counter.since] = windows.get(counter.since, 0) + 1
    assert all(count <= LIMIT.failures for count in windows.values())


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("-", "-"),
        ("not an address", "not an address"),
    ],
)
def test_address_key(address: str, key: str) -> None:
    assert throttle.address_key(address) == key


def test_counter_keys_are_bounded_and_distinct() -> None:
    assert len(throttle.counter_key("user", "x" * 10_000)) == 64
    assert throttle.counter_key("user", "a") != throttle.counter_key("address", "a")
