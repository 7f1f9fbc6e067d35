"""``parse_range``: a truth table, and totality over any header value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.server.files import MAX_RANGE_LENGTH, parse_range

SIZE = 1000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes=0-99", (0, 100)),
        ("bytes=100-", (100, SIZE)),
        ("bytes=-10", (SIZE - 10, SIZE)),
        ("bytes=-5000", (0, SIZE)),
        ("bytes=990-5000", (990, SIZE)),
        ("bytes=0-" + "9" * 19, (0, SIZE)),
        (" bytes=1-2 ", (1, 3)),
        ("bytes=1000-", False),
        ("bytes=5-1", False),
        ("bytes=-0", False),
        ("bytes=-", None),
        ("bytes=", None),
        ("items=1-2", None),
        ("bytes=0-1,5-6", None),
        # Positions of 20 digits or more: past any file, ignored (RFC 9110 allows ignoring).
        ("bytes=" + "9" * 20 + "-", None),
        ("bytes=" + "9" * 5000 + "-", None),
        ("bytes=-" + "9" * 5000, None),
        ("bytes=0-" + "9" * 5000, None),
        ("bytes=0-0," * 2000, None),
        # Only ASCII digits are digits here.
        ("bytes=\u0663-", None),
        ("bytes=1_000-", None),
        ("bytes=0x10-", None),
    ],
)
def test_parse_range(value: str, expected: object) -> None:
    assert parse_range(value, SIZE) == expected


def test_a_suffix_range_of_an_empty_file_is_unsatisfiable() -> None:
    assert parse_range("bytes=-1", 0) is False
    assert parse_range("bytes=0-", 0) is False


@given(st.text(max_size=MAX_RANGE_LENGTH * 2), st.integers(0, 2**63))
def test_parse_range_is_total(value: str, size: int) -> None:
    """Any header value gets an answer (never an exception), and a span is inside the file."""
    got = parse_range(value, size)
    if isinstance(got, tuple):
        start, end = got
        assert 0 <= start < end <= size


@given(st.from_regex(r"bytes=[0-9]{0,30}-[0-9]{0,30}", fullmatch=True), st.integers(0, 2**63))
def test_parse_range_of_any_digits(value: str, size: int) -> None:
    got = parse_range(value, size)
    if isinstance(got, tuple):
        start, end = got
        assert 0 <= start < end <= size
