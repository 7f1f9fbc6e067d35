"""PEP 691 content negotiation (standards.md items 43-51)."""

from __future__ import annotations

import pytest

from headwater.simple.negotiation import (
    CLIENT_ACCEPT,
    HTML_V1,
    JSON_V1,
    TEXT_HTML,
    NotAcceptable,
    select_content_type,
)

PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
POETRY = "application/vnd.pypi.simple.v1+json, */*;q=0.1"
BANDERSNATCH = "application/vnd.pypi.simple.v1+json"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        pytest.param("application/vnd.pypi.simple.v1+json", JSON_V1, id="item-43-json"),
        pytest.param("application/vnd.pypi.simple.v1+html", HTML_V1, id="item-43-html"),
        pytest.param("text/html", TEXT_HTML, id="item-43-text-html-alias"),
        pytest.param("application/vnd.pypi.simple.latest+json", JSON_V1, id="item-44-latest-json"),
        pytest.param("application/vnd.pypi.simple.latest+html", HTML_V1, id="item-44-latest-html"),
        pytest.param(None, TEXT_HTML, id="item-45-missing-accept-is-any"),
        pytest.param("", TEXT_HTML, id="item-45-empty-accept-is-any"),
        pytest.param("*/*", TEXT_HTML, id="item-45-any-gets-html-like-pypi"),
        pytest.param(f"{TEXT_HTML}, {JSON_V1};q=0.5", TEXT_HTML, id="item-47-q-beats-order"),
        pytest.param(f"{TEXT_HTML};q=0.2, {JSON_V1};q=0.5", JSON_V1, id="item-47-q-values"),
        pytest.param(f"{HTML_V1}, {JSON_V1}", JSON_V1, id="item-49-json-preferred-on-tie"),
        pytest.param(f"{TEXT_HTML}, {HTML_V1}", HTML_V1, id="item-49-text-html-last-resort"),
        pytest.param("application/*", JSON_V1, id="item-47-type-wildcard"),
        pytest.param("text/*", TEXT_HTML, id="item-47-text-wildcard"),
        pytest.param(f"{JSON_V1};q=0, */*", TEXT_HTML, id="item-47-q-zero-excludes"),
        pytest.param("TEXT/HTML", TEXT_HTML, id="case-insensitive"),
        pytest.param(f"{JSON_V1};q=nonsense, {TEXT_HTML}", TEXT_HTML, id="malformed-q-ignored"),
        pytest.param(PIP, JSON_V1, id="item-50-pip"),
        pytest.param(POETRY, JSON_V1, id="item-50-poetry"),
        pytest.param(BANDERSNATCH, JSON_V1, id="item-50-bandersnatch"),
        pytest.param(CLIENT_ACCEPT, JSON_V1, id="item-50-headwater-as-client"),
    ],
)
def test_select(accept: str | None, expected: str) -> None:
    assert select_content_type(accept) == expected


@pytest.mark.parametrize(
    "accept",
    [
        pytest.param("application/json", id="item-46-plain-json-is-not-pep691"),
        pytest.param("image/png, application/xml;q=0.9", id="item-46-unrelated"),
        pytest.param(f"{JSON_V1};q=0, {HTML_V1};q=0, {TEXT_HTML};q=0", id="item-46-all-refused"),
        pytest.param("application/vnd.pypi.simple.v2+json", id="item-46-future-version"),
    ],
)
def test_item_46_nothing_acceptable_is_406(accept: str) -> None:
    with pytest.raises(NotAcceptable, match="can be served"):
        select_content_type(accept)


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        (JSON_V1, JSON_V1),
        (HTML_V1, HTML_V1),
        (TEXT_HTML, TEXT_HTML),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
    ],
)
def test_item_51_format_param_overrides_accept(param: str, expected: str) -> None:
    assert select_content_type("text/html", param) == expected


@pytest.mark.parametrize("param", ["application/json", "*/*", f"{JSON_V1}, {TEXT_HTML}"])
def test_item_51_format_param_is_one_concrete_type(param: str) -> None:
    with pytest.raises(NotAcceptable, match=r"\?format="):
        select_content_type(None, param)


def test_item_48_always_a_concrete_type() -> None:
    # Whatever the client sends, the answer is one concrete type the server can put in Content-Type.
    for accept in [None, "*/*", "application/*", PIP, "application/vnd.pypi.simple.latest+json"]:
        assert select_content_type(accept) in (JSON_V1, HTML_V1, TEXT_HTML)


def test_restricted_supported_set() -> None:
    # An HTML-only index (a test upstream mimicking an old server) never answers JSON.
    assert select_content_type(PIP, supported=(HTML_V1, TEXT_HTML)) == HTML_V1
    with pytest.raises(NotAcceptable):
        select_content_type(BANDERSNATCH, supported=(HTML_V1, TEXT_HTML))


def test_huge_accept_header_is_bounded() -> None:
    accept = "x/y;q=0.5, " * 10_000 + JSON_V1
    # Only the first 4 KiB are read, so the JSON at the end is never seen.
    with pytest.raises(NotAcceptable):
        select_content_type(accept)
