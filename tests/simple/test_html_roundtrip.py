"""Hypothesis round trips for :mod:`headwater.simple.html`, and cross-checks with other readers.

HTML carries less than the model (and JSON): no size, upload time, versions or namespaces, one
digest per file, and no way to say "no core metadata" apart from "unknown". So a rendered page does
not parse back to the page itself but to its *HTML projection*, written out explicitly below. The
same rendered bytes are read by pypi-simple and mousebender (independent html.parser-based
readers) and must give the same data.
"""

from __future__ import annotations

import warnings

import mousebender.simple as mousebender
import pypi_simple
import pytest
from hypothesis import HealthCheck, given, settings

from headwater.simple.html import (
    parse_project_list_html,
    parse_project_page_html,
    render_project_list_html,
    render_project_page_html,
)
from headwater.simple.model import (
    HTML_API_VERSION,
    File,
    ProjectList,
    ProjectListEntry,
    ProjectPage,
)
from headwater.simple.names import normalize_name
from tests.simple.strategies import project_lists, project_pages

BASE = "https://index.example/simple/"
# The spec's hashlib-guaranteed algorithms, in the order a renderer should prefer them (sha256 is
# the recommended one; stronger before weaker after it).
PREFERRED = ("sha256", "sha512", "sha384", "sha224", "sha1", "md5")


def _one_digest(hashes: dict[str, str]) -> dict[str, str]:
    for algo in PREFERRED:
        if algo in hashes:
            return {algo: hashes[algo]}
    return {}


def html_file_projection(file: File) -> File:
    """What of ``file`` an HTML anchor carries.

    - ``hashes``: one digest, in the URL fragment (the preferred algorithm present).
    - ``core_metadata``: ``True`` or one digest; ``False`` and ``None`` both become "no attribute",
      which reads back as ``None`` (unknown).
    - ``size`` and ``upload_time``: not in HTML, so ``None``.
    - everything else (filename, url, requires-python, yank state and reason, gpg-sig, provenance)
      unchanged.
    """
    metadata = file.core_metadata
    if isinstance(metadata, dict):
        projected: dict[str, str] | bool | None = _one_digest(metadata) or True
    elif metadata is True:
        projected = True
    else:
        projected = None
    return File(
        filename=file.filename,
        url=file.url,
        hashes=_one_digest(file.hashes),
        requires_python=file.requires_python,
        yanked=file.yanked,
        yanked_reason=file.yanked_reason,
        core_metadata=projected,
        gpg_sig=file.gpg_sig,
        size=None,
        upload_time=None,
        provenance=file.provenance,
    )


def html_page_projection(page: ProjectPage) -> ProjectPage:
    """What of ``page`` an HTML project page carries.

    Name, status and reason, tracks, alternate locations and the SERIAL trailer survive;
    ``versions`` and ``namespaces`` do not (``None``); the version read back is the one HTML
    always declares, 1.4 (PEP 833).
    """
    return ProjectPage(
        name=page.name,
        files=tuple(html_file_projection(f) for f in page.files),
        versions=None,
        status=page.status,
        status_reason=page.status_reason,
        tracks=page.tracks,
        alternate_locations=page.alternate_locations,
        namespaces=None,
        last_serial=page.last_serial,
        api_version=HTML_API_VERSION,
    )


def html_list_projection(plist: ProjectList) -> ProjectList:
    """A root page keeps the names and the global serial, not per-project serials."""
    return ProjectList(
        projects=tuple(ProjectListEntry(e.name) for e in plist.projects),
        last_serial=plist.last_serial,
        api_version=HTML_API_VERSION,
    )


# ----------------------------------------------------------------------------- round trips


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(project_pages())
def test_item_13_to_24_and_58_project_page_round_trip(page: ProjectPage) -> None:
    rendered = render_project_page_html(page)
    parsed = parse_project_page_html(rendered, name=page.name, base_url=BASE + page.name + "/")
    assert parsed == html_page_projection(page)
    # Rendering is a function of the projection: nothing HTML cannot carry leaks into the bytes.
    assert render_project_page_html(html_page_projection(page)) == rendered


@settings(max_examples=200)
@given(project_lists)
def test_item_12_and_58_project_list_round_trip(plist: ProjectList) -> None:
    parsed = parse_project_list_html(render_project_list_html(plist), base_url=BASE)
    assert parsed == html_list_projection(plist)


def test_projection_is_not_the_identity() -> None:
    # Guards the projection itself: a field HTML drops must differ, or the round trip proves little.
    file = File(
        filename="a-1.0.tar.gz",
        url="https://x.example/a-1.0.tar.gz",
        hashes={"md5": "0" * 32, "sha256": "1" * 64},
        core_metadata=False,
        size=3,
    )
    projected = html_file_projection(file)
    assert projected.hashes == {"sha256": "1" * 64}
    assert (projected.core_metadata, projected.size) == (None, None)
    assert projected != file


# ----------------------------------------------------------------------------- cross-checks


def _yank_reason(reason: str | None) -> str | None:
    return reason or None


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(project_pages())
def test_pypi_simple_reads_rendered_page(page: ProjectPage) -> None:
    expected = html_page_projection(page)
    theirs = pypi_simple.ProjectPage.from_html(
        page.name, render_project_page_html(page), BASE + page.name + "/"
    )
    assert theirs.repository_version == HTML_API_VERSION
    # No status meta is emitted for an active project (PEP 792 only asks for non-active ones).
    status = theirs.status.value if theirs.status is not None else "active"
    assert status == expected.status.value
    assert theirs.status_reason == expected.status_reason
    assert tuple(theirs.tracks) == expected.tracks
    assert tuple(theirs.alternate_locations) == expected.alternate_locations
    assert len(theirs.packages) == len(expected.files)
    for pkg, file in zip(theirs.packages, expected.files, strict=True):
        assert (pkg.filename, pkg.url) == (file.filename, file.url)
        assert pkg.digests == file.hashes
        assert pkg.requires_python == file.requires_python
        assert pkg.has_sig == file.gpg_sig
        assert pkg.is_yanked == file.yanked
        assert _yank_reason(pkg.yanked_reason) == file.yanked_reason
        assert bool(pkg.has_metadata) == file.has_metadata
        if isinstance(file.core_metadata, dict):
            assert pkg.metadata_digests == file.core_metadata
        assert pkg.provenance_url == file.provenance


def _mousebender_expected_file(file: File) -> dict[str, object]:
    """The dict mousebender builds for an anchor, from the projected file."""
    out: dict[str, object] = {"filename": file.filename, "url": file.url, "hashes": file.hashes}
    if file.core_metadata is not None:
        out["core-metadata"] = out["dist-info-metadata"] = file.core_metadata
    if file.requires_python:
        out["requires-python"] = file.requires_python
    if file.yanked:
        out["yanked"] = file.yanked_reason or True
    if file.gpg_sig is not None:
        out["gpg-sig"] = file.gpg_sig
    return out


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(project_pages())
def test_mousebender_reads_rendered_page(page: ProjectPage) -> None:
    expected = html_page_projection(page)
    html = render_project_page_html(page).decode()
    # mousebender warns about any minor version above 1.1; that it warns at all shows it read the
    # repository-version meta (item 7).
    with pytest.warns(mousebender.APIVersionWarning):
        theirs = mousebender.from_project_details_html(html, page.name)
    assert theirs["name"] == page.name
    assert theirs["files"] == [_mousebender_expected_file(f) for f in expected.files]


@settings(max_examples=150)
@given(project_lists)
def test_third_party_readers_read_rendered_list(plist: ProjectList) -> None:
    html = render_project_list_html(plist).decode()
    names = [e.name for e in plist.projects]
    assert pypi_simple.IndexPage.from_html(html).projects == names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mousebender.APIVersionWarning)
        theirs = mousebender.from_project_index_html(html)
    assert [p["name"] for p in theirs["projects"]] == names


def test_cross_check_sees_escaped_hostile_text() -> None:
    # A reason that would break out of the attribute if it were not escaped.
    reason = '"><a href="https://evil.example/x.whl">x.whl</a><!--'
    file = File(
        filename="demo-1.0.tar.gz",
        url="https://files.example/demo-1.0.tar.gz",
        yanked=True,
        yanked_reason=reason,
        requires_python="<4 & >=3",
    )
    page = ProjectPage(name=normalize_name("demo"), files=(file,))
    html = render_project_page_html(page)
    theirs = pypi_simple.ProjectPage.from_html("demo", html)
    assert [p.filename for p in theirs.packages] == ["demo-1.0.tar.gz"]
    assert theirs.packages[0].yanked_reason == reason
    assert theirs.packages[0].requires_python == "<4 & >=3"


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(project_pages())
def test_fast_and_general_attribute_paths_agree(page: ProjectPage) -> None:
    # Canonical anchors take the parser's fast path; an extra attribute in front forces the
    # general attribute scan. Both must read the same page.
    html = render_project_page_html(page).decode()
    general = html.replace("<a href=", '<a rel="internal" href=')
    assert general != html or not page.files
    assert parse_project_page_html(general, name=page.name) == parse_project_page_html(
        html, name=page.name
    )
