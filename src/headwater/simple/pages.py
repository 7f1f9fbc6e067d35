"""Parse and render pages by content type: the one entry point the mirror, proxy and server use.

A client SHOULD check the Content-Type of what it got (spec, Recommendations), so parsing starts from
the response's content type, not from sniffing the body.
"""

from __future__ import annotations

import re

from headwater.errors import printable
from headwater.simple.html import (
    parse_project_list_html,
    parse_project_page_html,
    render_project_list_html,
    render_project_page_html,
)
from headwater.simple.json import (
    parse_project_list_json,
    parse_project_page_json,
    render_project_list_json,
    render_project_page_json,
)
from headwater.simple.model import InvalidPage, ProjectList, ProjectPage, UnsupportedAPIVersion
from headwater.simple.names import normalize_name
from headwater.simple.negotiation import HTML_V1, JSON_V1, TEXT_HTML

__all__ = [
    "media_type",
    "parse_project_list",
    "parse_project_page",
    "render_project_list",
    "render_project_page",
]

_VERSIONED = re.compile(r"^application/vnd\.pypi\.simple\.v(\d+)\+(json|html)$")


def media_type(content_type: str | None, *, where: str | None = None) -> str:
    """The media type of a Content-Type header, lowercased and without parameters; ``where``
    (the page's URL) starts the error messages.

    Raises:
        InvalidPage: the header is missing or names no Simple API representation.
        UnsupportedAPIVersion: it names a Simple API major version other than 1.
    """
    at = f"{printable(str(where), 200)}: " if where else ""
    if not content_type:
        raise InvalidPage(
            f"{at}the response has no Content-Type, so it cannot be read as a Simple API page"
        )
    media = content_type.split(";", 1)[0].strip().lower()
    if media in (JSON_V1, HTML_V1, TEXT_HTML):
        return media
    versioned = _VERSIONED.match(media)
    if versioned:
        raise UnsupportedAPIVersion(
            f"{at}the response is {media}, Simple API version {versioned.group(1)}; headwater speaks "
            "version 1. Upgrade headwater, or ask the index for version 1."
        )
    raise InvalidPage(
        f"{at}the response has Content-Type {printable(content_type, 100)!r}, which is not a Simple API page "
        f"(expected {JSON_V1}, {HTML_V1} or {TEXT_HTML}); is the URL an index's /simple/ URL?"
    )


def parse_project_list(
    data: bytes, content_type: str | None, *, base_url: str | None = None
) -> ProjectList:
    """Parse a root page served with ``content_type``.

    Raises:
        InvalidPage: the content type or the page is not a valid Simple API project list.
    """
    if media_type(content_type, where=base_url) == JSON_V1:
        return parse_project_list_json(data)
    return parse_project_list_html(data, base_url=base_url)


def parse_project_page(
    data: bytes, content_type: str | None, *, name: str, base_url: str | None = None
) -> ProjectPage:
    """Parse the page of project ``name`` (the name that was requested) served with ``content_type``.

    A JSON page that names a different project than the one requested is refused: an upstream that
    answers ``/simple/foo/`` with the files of ``bar`` must not get ``bar``'s files served as
    ``foo``'s.

    Raises:
        InvalidName: ``name`` is not a valid project name.
        InvalidPage: the content type or the page is invalid, or the page is for another project.
    """
    requested = normalize_name(name)
    if media_type(content_type, where=base_url) == JSON_V1:
        page = parse_project_page_json(data, base_url=base_url)
        if page.name != requested:
            raise InvalidPage(
                f"asked for project {requested!r} but the page is for {page.name!r}; refusing to "
                "use it (check the index URL, or report the upstream)"
            )
        return page
    return parse_project_page_html(data, name=requested, base_url=base_url)


def render_project_list(project_list: ProjectList, content_type: str) -> bytes:
    """Render a root page as ``content_type`` (a type chosen by ``select_content_type``)."""
    if content_type == JSON_V1:
        return render_project_list_json(project_list)
    return render_project_list_html(project_list)


def render_project_page(page: ProjectPage, content_type: str) -> bytes:
    """Render a project page as ``content_type`` (a type chosen by ``select_content_type``)."""
    if content_type == JSON_V1:
        return render_project_page_json(page)
    return render_project_page_html(page)
