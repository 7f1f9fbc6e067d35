"""Parsing by content type (items 43, 48, 50: clients check Content-Type) and refusing pages that
answer for another project."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from headwater.simple.model import File, InvalidPage, ProjectPage, UnsupportedAPIVersion
from headwater.simple.names import InvalidName, NormalizedName
from headwater.simple.negotiation import HTML_V1, JSON_V1, TEXT_HTML
from headwater.simple.pages import (
    media_type,
    parse_project_list,
    parse_project_page,
    render_project_list,
    render_project_page,
)
from tests.simple.strategies import project_lists, project_pages

PAGE = ProjectPage(
    name=NormalizedName("foo-bar"),
    files=(
        File(
            filename="foo_bar-1.0-py3-none-any.whl",
            url="https://files.example/foo_bar-1.0-py3-none-any.whl",
            hashes={"sha256": "ab" * 32},
            size=10,
        ),
    ),
    versions=("1.0",),
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (JSON_V1, JSON_V1),
        (f"{JSON_V1}; charset=utf-8", JSON_V1),
        ("Application/VND.pypi.simple.v1+JSON", JSON_V1),
        (HTML_V1, HTML_V1),
        ("text/html; charset=utf-8", TEXT_HTML),
    ],
)
def test_media_type(header: str, expected: str) -> None:
    assert media_type(header) == expected


@pytest.mark.parametrize(
    "header", [None, "", "application/json", "text/plain", "application/octet-stream"]
)
def test_not_a_simple_page(header: str | None) -> None:
    with pytest.raises(InvalidPage):
        media_type(header)


def test_item_10_future_major_in_content_type() -> None:
    with pytest.raises(UnsupportedAPIVersion, match="version 2"):
        media_type("application/vnd.pypi.simple.v2+json")


@pytest.mark.parametrize("content_type", [JSON_V1, HTML_V1, TEXT_HTML])
def test_page_round_trip_by_content_type(content_type: str) -> None:
    body = render_project_page(PAGE, content_type)
    parsed = parse_project_page(body, content_type, name="Foo.Bar")
    assert parsed.name == "foo-bar"
    assert [f.filename for f in parsed.files] == ["foo_bar-1.0-py3-none-any.whl"]
    assert parsed.files[0].hashes == {"sha256": "ab" * 32}


def test_json_page_for_another_project_is_refused() -> None:
    body = render_project_page(PAGE, JSON_V1)
    with pytest.raises(InvalidPage, match="asked for project 'evil' but the page is for 'foo-bar'"):
        parse_project_page(body, JSON_V1, name="evil")


def test_requested_name_is_validated() -> None:
    with pytest.raises(InvalidName):
        parse_project_page(b"<html></html>", TEXT_HTML, name="../etc")


@settings(max_examples=50)
@given(project_pages())
def test_json_and_html_agree_on_what_both_carry(page: ProjectPage) -> None:
    from_json = parse_project_page(render_project_page(page, JSON_V1), JSON_V1, name=page.name)
    from_html = parse_project_page(render_project_page(page, HTML_V1), HTML_V1, name=page.name)
    assert [f.filename for f in from_json.files] == [f.filename for f in from_html.files]
    assert [f.url.partition("#")[0] for f in from_json.files] == [
        f.url.partition("#")[0] for f in from_html.files
    ]
    assert [f.requires_python for f in from_json.files] == [
        f.requires_python for f in from_html.files
    ]
    assert [(f.yanked, f.yanked_reason) for f in from_json.files] == [
        (f.yanked, f.yanked_reason) for f in from_html.files
    ]
    assert (from_json.status, from_json.status_reason) == (
        from_html.status,
        from_html.status_reason,
    )
    assert from_json.tracks == from_html.tracks
    assert from_json.alternate_locations == from_html.alternate_locations


@settings(max_examples=50)
@given(project_lists)
def test_project_list_names_agree(project_list: object) -> None:
    from headwater.simple.model import ProjectList

    assert isinstance(project_list, ProjectList)
    for content_type in (JSON_V1, HTML_V1):
        parsed = parse_project_list(render_project_list(project_list, content_type), content_type)
        assert [e.name for e in parsed.projects] == [e.name for e in project_list.projects]
