"""A page claims only the api-version whose mandatory fields it has; every page is valid HTML5.

``conformance_problems`` is a small validator written from standards.md (sections 1.2-1.4 and
the PEP 752 notes), independent of the renderer: what each version makes mandatory, which keys a
version introduces (a page claiming less carries none of them), and the value rules of the keys.
"""

from __future__ import annotations

import json
import re
from typing import Any

import html5lib
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from headwater.simple.filenames import InvalidFilename, check_safe_filename
from headwater.simple.html import parse_project_page_html, render_project_page_html
from headwater.simple.json import (
    parse_project_page_json,
    render_project_list_json,
    render_project_page_json,
)
from headwater.simple.model import File, Namespace, ProjectList, ProjectPage, ProjectStatus
from headwater.simple.names import NormalizedName, is_normalized
from headwater.simple.text import UNSAFE, neutralise, neutralise_url, unsafe_character
from headwater.simple.versions import page_api_version
from tests.simple.strategies import project_lists, project_pages

_MARKERS = {s.value for s in ProjectStatus}
_UPLOAD_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z\Z")
# Keys a version introduces with a meaning; a page claiming less must not carry them
# (standards.md 1.8 history; PEP 740 "api-version SHALL be >= 1.3"; PEP 752 "MUST NOT").
_INTRODUCED: dict[str, tuple[int, int]] = {
    "meta.tracks": (1, 2),
    "alternate-locations": (1, 2),
    "files[].provenance": (1, 3),
    "project-status": (1, 4),
    "namespaces": (1, 5),
}


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def conformance_problems(doc: dict[str, Any]) -> list[str]:
    """What in a JSON project detail page breaks the rules of the version it claims."""
    problems: list[str] = []
    meta = doc.get("meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("api-version"), str):
        return ["item 8: meta.api-version missing"]
    claimed = _version(meta["api-version"])
    if not isinstance(doc.get("name"), str) or not is_normalized(doc["name"]):
        problems.append("item 29: name is not a normalized name")
    files = doc.get("files")
    if not isinstance(files, list):
        return [*problems, "item 29: files missing"]
    present = {key for key in ("alternate-locations", "project-status", "namespaces") if key in doc}
    if "tracks" in meta:
        present.add("meta.tracks")
    for file in files:
        for key in ("filename", "url"):
            if not isinstance(file.get(key), str):
                problems.append(f"item 31: a file has no {key}")
        if not isinstance(file.get("hashes"), dict):
            problems.append("item 31: a file has no hashes dict")
        if "provenance" in file:
            present.add("files[].provenance")
            if file["provenance"] is not None and not file["provenance"].startswith("https://"):
                problems.append("item 39: provenance is not a secure origin")
        yanked = file.get("yanked", False)
        if not (isinstance(yanked, bool) or (isinstance(yanked, str) and yanked)):
            problems.append("item 36: yanked is neither a bool nor a non-empty string")
        if "upload-time" in file and not _UPLOAD_TIME.match(file["upload-time"]):
            problems.append("item 38: upload-time is not yyyy-mm-ddThh:mm:ss.ffffffZ")
        if claimed >= (1, 1) and not (isinstance(file.get("size"), int) and file["size"] >= 0):
            problems.append(f"item 37: {file.get('filename')!r} has no size at 1.1+")
    if claimed >= (1, 1) and not isinstance(doc.get("versions"), list):
        problems.append("item 29: versions is mandatory from 1.1")
    for key in sorted(present):
        if claimed < _INTRODUCED[key]:
            problems.append(f"{key} appears on a page claiming {meta['api-version']}")
    if claimed >= (1, 5):
        namespaces = doc.get("namespaces", "absent")
        if namespaces == "absent":
            problems.append("PEP 752: namespaces is mandatory at 1.5")
        elif namespaces is not None and not all(
            isinstance(ns.get("name"), str) and isinstance(ns.get("owned"), bool)
            for ns in namespaces
        ):
            problems.append("PEP 752: a namespace entry is not {name, owned}")
    status = doc.get("project-status")
    if status is not None and status.get("status", "active") not in _MARKERS:
        problems.append("item 40: unknown status marker")
    return problems


# Pages as sources really hand them over: sizes sometimes unknown (a proxy before the download),
# provenance http or https (an upstream's), namespaces per index.
@st.composite
def served_pages(draw: st.DrawFn) -> ProjectPage:
    page = draw(project_pages())
    files = tuple(
        File(
            **{
                **{f: getattr(file, f) for f in file.__struct_fields__},
                "size": None if draw(st.integers(0, 5)) == 0 else file.size,
                "provenance": draw(
                    st.sampled_from([file.provenance, "http://attest.example/p", None])
                ),
            }
        )
        for file in page.files
    )
    return ProjectPage(**{**{f: getattr(page, f) for f in page.__struct_fields__}, "files": files})


@given(served_pages())
@settings(max_examples=300)
def test_rendered_json_satisfies_the_version_it_claims(page: ProjectPage) -> None:
    doc = json.loads(render_project_page_json(page))
    assert conformance_problems(doc) == []
    claimed = doc["meta"]["api-version"]
    sizes_known = all(f.size is not None for f in page.files)
    # The highest version it satisfies, up to what the index implements: never less either.
    expected = ("1.5" if page.namespaces is not None else "1.4") if sizes_known else "1.0"
    assert claimed == expected == page_api_version(page)


@given(project_lists, st.booleans())
def test_project_list_claims_the_index_version(listing: ProjectList, pep752: bool) -> None:
    listing = ProjectList(projects=listing.projects, namespaces=pep752)
    doc = json.loads(render_project_list_json(listing))
    assert doc["meta"]["api-version"] == ("1.5" if pep752 else "1.4")


def test_a_proxy_page_without_sizes_claims_1_0_and_carries_no_later_keys() -> None:
    # What a proxy of an HTML-only upstream had before this fix: 1.4 and no size.
    page = ProjectPage(
        name=NormalizedName("demo"),
        files=(File(filename="demo-1.0.tar.gz", url="../demo-1.0.tar.gz", size=None),),
        status=ProjectStatus.DEPRECATED,
        tracks=("https://upstream.example/simple/demo/",),
        namespaces=(Namespace(name="demo", owned=True),),
    )
    doc = json.loads(render_project_page_json(page))
    assert doc["meta"]["api-version"] == "1.0"
    assert conformance_problems(doc) == []
    filled = ProjectPage(
        name=page.name,
        files=(File(filename="demo-1.0.tar.gz", url="../demo-1.0.tar.gz", size=3),),
        status=page.status,
        tracks=page.tracks,
        namespaces=page.namespaces,
    )
    doc = json.loads(render_project_page_json(filled))
    assert doc["meta"]["api-version"] == "1.5" and doc["files"][0]["size"] == 3
    assert doc["project-status"] == {"status": "deprecated"}


def test_http_provenance_is_never_rendered() -> None:
    file = File(
        filename="demo-1.0.tar.gz",
        url="https://f.example/demo-1.0.tar.gz",
        size=1,
        provenance="http://attest.example/demo/provenance",
    )
    page = ProjectPage(name=NormalizedName("demo"), files=(file,))
    assert "provenance" not in json.loads(render_project_page_json(page))["files"][0]
    assert b"data-provenance" not in render_project_page_html(page)
    secure = ProjectPage(
        name=page.name, files=(File(**{**_fields(file), "provenance": "https://a.example/p"}),)
    )
    assert b'data-provenance="https://a.example/p"' in render_project_page_html(secure)


def _fields(file: File) -> dict[str, Any]:
    return {f: getattr(file, f) for f in file.__struct_fields__}


# --- text that reaches HTML ---------------------------------------------------------------------

# Any character, with the ones HTML5 refuses (controls, CR, C1, noncharacters) drawn often.
_TRICKY = ["\x00", "\x01", "\x0b", "\r", "\x7f", "\x85", "\ufdd0", "\ufffe", "\U0010ffff", "&"]
any_text = st.text(
    alphabet=st.characters(codec=None) | st.sampled_from(_TRICKY), min_size=1, max_size=30
)
_STRICT = html5lib.HTMLParser(strict=True)


def _strict_parse(body: bytes) -> None:
    # html5lib's strict mode raises on every HTML5 parse error (controls, noncharacters,
    # illegal character references, ...).
    _STRICT.parse(body.decode("utf-8"))


@given(
    reason=any_text,
    status_reason=any_text,
    requires_python=any_text,
    url_tail=any_text,
    provenance_tail=any_text,
)
@settings(max_examples=300)
def test_any_text_in_any_field_renders_valid_html5_and_round_trips(
    reason: str, status_reason: str, requires_python: str, url_tail: str, provenance_tail: str
) -> None:
    file = File(
        filename="demo-1.0.tar.gz",
        url="https://f.example/" + url_tail,
        requires_python=requires_python,
        yanked=True,
        yanked_reason=reason,
        provenance="https://a.example/" + provenance_tail,
        size=1,
    )
    page = ProjectPage(
        name=NormalizedName("demo"),
        files=(file,),
        status=ProjectStatus.ARCHIVED,
        status_reason=status_reason,
        tracks=("https://t.example/" + url_tail,),
        last_serial=7,
    )
    body = render_project_page_html(page)
    _strict_parse(body)
    back = parse_project_page_html(body, name="demo")
    assert back.status_reason == neutralise(status_reason)
    (got,) = back.files
    assert got.yanked_reason == (neutralise(reason) or None)
    assert got.requires_python == neutralise(requires_python)
    assert got.provenance == neutralise_url(file.provenance or "").strip()
    # JSON carries the same neutralised text, so both forms of a page agree.
    json_file = parse_project_page_json(render_project_page_json(page)).files[0]
    assert json_file.yanked_reason == (neutralise(reason) or None)


@given(project_lists)
def test_project_lists_are_valid_html5(listing: ProjectList) -> None:
    from headwater.simple.html import render_project_list_html

    _strict_parse(render_project_list_html(listing))


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("fine reason", None),
        ("bell\x07", "U+0007"),
        ("nul\x00", "U+0000"),
        ("tab\there", "U+0009"),
        ("two\nlines", "U+000A"),
        ("cr\r", "U+000D"),
        ("del\x7f", "U+007F"),
        ("c1\x85", "U+0085"),
        ("nonchar\ufdd0", "U+FDD0"),
        ("nonchar\U0010ffff", "U+10FFFF"),
        ("caf\u00e9 \u2603 \U0001f600", None),
    ],
)
def test_unsafe_character_names_the_first_one(text: str, found: str | None) -> None:
    assert unsafe_character(text) == found


@given(any_text)
@example("foo\ufdd0-1.0.tar.gz")
@example("bar-1.0\U0001ffff.whl")
def test_every_filename_a_page_may_list_is_valid_html5_anchor_text(filename: str) -> None:
    # The anchor text MUST be the filename (item 13): a filename the safety check accepts must
    # reach the page unchanged, so it may hold nothing HTML5 refuses.
    try:
        check_safe_filename(filename)
    except InvalidFilename:
        return
    # (HTML parsers strip the whitespace around anchor text; such names are another matter.)
    assume(filename.strip() == filename)
    file = File(filename=filename, url="https://f.example/x", size=1)
    body = render_project_page_html(ProjectPage(name=NormalizedName("demo"), files=(file,)))
    _strict_parse(body)
    assert parse_project_page_html(body, name="demo").files[0].filename == filename


@given(any_text | st.text(alphabet=st.characters(min_codepoint=0x10000), max_size=8))
@example("\U0001fffe")
@example("\U0010ffff")
@example("emoji \U0001f600 ok")
def test_the_fast_check_agrees_with_the_documented_rule(text: str) -> None:
    # neutralise() asks a faster check first; it must agree with UNSAFE exactly.
    assert (neutralise(text) is text) == (UNSAFE.search(text) is None)
    assert (neutralise_url(text) is text) == (UNSAFE.search(text) is None)
