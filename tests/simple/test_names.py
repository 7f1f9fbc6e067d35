"""Project names (standards.md items 1, 6; section 5 N1)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from headwater.simple.names import (
    InvalidName,
    is_normalized,
    is_valid_name,
    normalize_name,
    wheel_escape,
)
from tests.simple.strategies import names


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("Django", "django"),
        ("Foo_Bar", "foo-bar"),
        ("foo.bar", "foo-bar"),
        ("FOO--bar__baz..qux", "foo-bar-baz-qux"),
        ("a", "a"),
        ("zope.interface", "zope-interface"),
        ("A-_.-B", "a-b"),
    ],
)
def test_item_1_normalize(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("-foo", id="leading-separator"),
        pytest.param("foo_", id="trailing-separator"),
        pytest.param("foo\n", id="item-6-trailing-newline-needs-backslash-Z"),
        pytest.param("foo bar", id="space"),
        pytest.param("../etc", id="traversal"),
        pytest.param("foo/bar", id="slash"),
        pytest.param("foo\x00", id="nul"),
        pytest.param("café", id="non-ascii"),
        pytest.param("a" * 201, id="over-long"),
    ],
)
def test_item_6_invalid_names_refused(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(InvalidName, match="invalid project name"):
        normalize_name(name)


def test_invalid_name_error_is_a_value_error_and_names_the_input() -> None:
    with pytest.raises(ValueError, match=re.escape("'bad name'")):
        normalize_name("bad name")


@given(names)
def test_item_1_agrees_with_packaging(name: str) -> None:
    assert normalize_name(name) == canonicalize_name(name, validate=True)


@given(names)
def test_normalize_is_idempotent_and_recognised(name: str) -> None:
    once = normalize_name(name)
    assert normalize_name(once) == once
    assert is_normalized(once)


@given(st.text(max_size=30))
def test_validity_agrees_with_the_spec_regex(text: str) -> None:
    spec = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE)
    assert is_valid_name(text) == bool(spec.match(text))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a-b", True), ("a--b", False), ("A", False), ("a.b", False), ("a-", False)],
)
def test_is_normalized(name: str, expected: bool) -> None:
    assert is_normalized(name) is expected


def test_wheel_escape() -> None:
    assert wheel_escape(normalize_name("Foo.Bar-baz")) == "foo_bar_baz"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("\u212a", id="kelvin-sign-casefolds-to-k"),
        pytest.param("a\u017fb", id="long-s-casefolds-to-s"),
        pytest.param("\u0130stanbul", id="dotted-capital-i"),
    ],
)
def test_item_6_unicode_that_casefolds_to_ascii_is_refused(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(InvalidName):
        normalize_name(name)
