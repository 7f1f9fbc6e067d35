"""``_last-serial`` read from an upstream is a serial a client can hold (0 <= serial < 2**63, an
integer or, as bandersnatch writes it, a string of digits); anything else is an ``InvalidPage``,
the one error the parsers promise. Found black-box: a string of 5,000 digits made both JSON parsers
raise ValueError (Python's int-conversion digit limit), which the proxy could only report as
"unexpected ValueError", and -5 or 10**30 were re-served in X-PyPI-Last-Serial."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.simple.model import InvalidPage

LARGEST = 2**63 - 1


def _list_meta(serial: Any) -> bytes:
    return json.dumps(
        {"meta": {"api-version": "1.1", "_last-serial": serial}, "projects": []}
    ).encode()


def _list_entry(serial: Any) -> bytes:
    return json.dumps(
        {"meta": {"api-version": "1.1"}, "projects": [{"name": "a", "_last-serial": serial}]}
    ).encode()


def _page(serial: Any) -> bytes:
    return json.dumps(
        {"meta": {"api-version": "1.1", "_last-serial": serial}, "name": "a", "files": []}
    ).encode()


def _read_list_meta(serial: Any) -> int | None:
    return parse_project_list_json(_list_meta(serial)).last_serial


def _read_list_entry(serial: Any) -> int | None:
    # A list entry with a bad serial is left off the list (the rest of the list is good).
    projects = parse_project_list_json(_list_entry(serial)).projects
    if not projects:
        raise InvalidPage("the entry with a bad _last-serial was left off")
    return projects[0].last_serial


def _read_page(serial: Any) -> int | None:
    return parse_project_page_json(_page(serial)).last_serial


READERS: list[Callable[[Any], int | None]] = [_read_list_meta, _read_list_entry, _read_page]


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize("serial", ["9" * 5000, "9" * 20, -1, -(2**63), 2**63, 10**30])
def test_a_serial_no_client_can_hold_is_an_invalid_page(
    read: Callable[[Any], int | None], serial: Any
) -> None:
    with pytest.raises(InvalidPage, match="_last-serial"):
        read(serial)


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize(
    ("serial", "value"), [(0, 0), (12345, 12345), ("678", 678), (LARGEST, LARGEST)]
)
def test_every_real_serial_is_kept(
    read: Callable[[Any], int | None], serial: Any, value: int
) -> None:
    assert read(serial) == value


@given(
    st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.text(alphabet="0123456789", max_size=30),
    )
)
def test_the_parsers_raise_nothing_but_invalid_page_for_any_serial(serial: Any) -> None:
    for read in READERS:
        try:
            value = read(serial)
        except InvalidPage:
            continue
        assert value is not None and 0 <= value <= LARGEST
