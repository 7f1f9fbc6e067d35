"""The JSON parsers are total for nesting: a page nested past any recursion limit, anywhere in
it, is an InvalidPage (what the proxy and the mirror handle), never a RecursionError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.simple.model import InvalidPage

META = b'"meta": {"api-version": "1.1"}'
FILE = b'{"filename": "a-1.0.tar.gz", "url": "a-1.0.tar.gz", "hashes": {}}'

# Where the deep value goes: {} is replaced by it.
PAGE_SPOTS = [
    b"{}",
    b'{"name": "a", "files": [], ' + META + b', "unknown": {}}',
    b'{"name": "a", "files": {}, ' + META + b"}",
    b'{"name": "a", "files": [' + FILE + b", {}], " + META + b"}",
    b'{"name": "a", "files": [], "meta": {"api-version": "1.1", "x": {}}}',
    b'{"name": "a", "files": [], "versions": {}, ' + META + b"}",
    b'{"name": {}, "files": [], ' + META + b"}",
    b'{"name": "a", "files": [' + FILE[:-1] + b', "yanked": {}}], ' + META + b"}",
    b'{"name": "a", "files": [' + FILE[:-1] + b', "core-metadata": {}}], ' + META + b"}",
]
LIST_SPOTS = [
    b"{}",
    b'{"projects": [], ' + META + b', "unknown": {}}',
    b'{"projects": {}, ' + META + b"}",
    b'{"projects": [{"name": "a"}, {}], ' + META + b"}",
    b'{"projects": [{"name": "a", "_last-serial": {}}], ' + META + b"}",
    b'{"projects": [{"name": {}}], ' + META + b"}",
]


def _deep(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("spot", PAGE_SPOTS)
@pytest.mark.parametrize("kind", ["array", "object"])
def test_a_deep_project_page_is_an_invalid_page(spot: bytes, kind: str) -> None:
    data = spot.replace(b"{}", _deep(100_000, kind), 1)
    with pytest.raises(InvalidPage):
        parse_project_page_json(data)


@pytest.mark.parametrize("spot", LIST_SPOTS)
@pytest.mark.parametrize("kind", ["array", "object"])
def test_a_deep_project_list_is_an_invalid_page(spot: bytes, kind: str) -> None:
    data = spot.replace(b"{}", _deep(100_000, kind), 1)
    with pytest.raises(InvalidPage):
        parse_project_list_json(data)


@given(
    st.sampled_from(PAGE_SPOTS + LIST_SPOTS),
    st.integers(1, 20_000),
    st.sampled_from(["array", "object"]),
)
def test_any_depth_anywhere_parses_or_is_invalid(spot: bytes, depth: int, kind: str) -> None:
    data = spot.replace(b"{}", _deep(depth, kind), 1)
    for parse in (parse_project_page_json, parse_project_list_json):
        with contextlib.suppress(InvalidPage):
            parse(data)


def test_deep_html_is_read_without_recursion() -> None:
    """The HTML parsers do not recurse: a link under 100,000 open elements is still found."""
    from headwater.simple.html import parse_project_list_html, parse_project_page_html

    link = b'<a href="x-1.0.tar.gz">x-1.0.tar.gz</a>'
    data = b"<div>" * 100_000 + link + b"</div>" * 100_000
    assert len(parse_project_page_html(data, name="x", base_url="http://h/simple/x/").files) == 1
    assert parse_project_list_html(b"<div>" * 100_000 + b'<a href="x/">x</a>').projects
