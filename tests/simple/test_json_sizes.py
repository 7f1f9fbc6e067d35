"""A file's ``size`` read from an upstream is a byte count a client can hold: a non-negative
integer below 2**63. Anything else makes the page invalid input (an ``InvalidPage``, which the
proxy serves stale or refuses and the mirror reports), never a page headwater re-serves: uv
rejects a whole page whose ``size`` does not fit a u64 ("Received some unexpected JSON"), and a
negative size is not a size. Found black-box: a hostile upstream's ``size: -1`` and
``size: 10**30`` were served as they were, by the proxy and by a composed index over it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.simple.json import parse_project_page_json, render_project_page_json
from headwater.simple.model import InvalidPage

LARGEST = 2**63 - 1


def _page(size: object) -> bytes:
    return json.dumps(
        {
            "meta": {"api-version": "1.1"},
            "name": "a",
            "files": [
                {
                    "filename": "a-1.0.tar.gz",
                    "url": "https://files.example/a-1.0.tar.gz",
                    "hashes": {"sha256": "0" * 64},
                    "size": size,
                }
            ],
        }
    ).encode()


@pytest.mark.parametrize("size", [-1, -(2**63), 2**63, 2**64, 10**30])
def test_a_size_no_client_can_hold_makes_the_page_invalid(size: int) -> None:
    with pytest.raises(InvalidPage, match="size"):
        parse_project_page_json(_page(size))


@pytest.mark.parametrize("size", [0, 1, 8 * 2**30, LARGEST])
def test_every_real_size_is_kept(size: int) -> None:
    assert parse_project_page_json(_page(size)).files[0].size == size


@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_a_page_headwater_renders_never_carries_a_size_outside_a_u63(size: int) -> None:
    try:
        page = parse_project_page_json(_page(size))
    except InvalidPage:
        assert not 0 <= size <= LARGEST
        return
    rendered = json.loads(render_project_page_json(page))
    assert 0 <= rendered["files"][0]["size"] <= LARGEST
