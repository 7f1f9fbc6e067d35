"""Property tests: parse(render(x)) == x for JSON pages and lists, and pypi-simple reads our output."""

from __future__ import annotations

import json

import msgspec
import pypi_simple
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.simple.json import (
    parse_project_list_json,
    parse_project_page_json,
    render_project_list_json,
    render_project_page_json,
)
from headwater.simple.model import (
    JSON_API_VERSION,
    JSON_API_VERSION_NAMESPACES,
    ProjectList,
    ProjectPage,
)
from tests.simple.strategies import project_lists, project_pages


def _expected_page(page: ProjectPage) -> ProjectPage:
    """What parsing our own output must give: the page, declaring the version we rendered."""
    declared = JSON_API_VERSION if page.namespaces is None else JSON_API_VERSION_NAMESPACES
    return msgspec.structs.replace(page, api_version=declared)


@given(project_pages())
def test_page_roundtrip(page: ProjectPage) -> None:
    assert parse_project_page_json(render_project_page_json(page)) == _expected_page(page)


@given(project_pages())
def test_page_roundtrip_without_versions_lists_every_file_version(page: ProjectPage) -> None:
    # Item 30: when the model has no versions the renderer derives them from the filenames.
    bare = msgspec.structs.replace(page, versions=None)
    parsed = parse_project_page_json(render_project_page_json(bare))
    file_versions = {f.filename.split("-")[1].removesuffix(".tar.gz") for f in page.files}
    assert set(parsed.versions or ()) == file_versions
    assert msgspec.structs.replace(parsed, versions=None) == _expected_page(bare)


@given(project_pages())
def test_render_is_deterministic_and_stable(page: ProjectPage) -> None:
    once = render_project_page_json(page)
    assert render_project_page_json(parse_project_page_json(once)) == once


@given(project_lists)
def test_list_roundtrip(project_list: ProjectList) -> None:
    parsed = parse_project_list_json(render_project_list_json(project_list))
    assert parsed == msgspec.structs.replace(project_list, api_version=JSON_API_VERSION)
    assert parsed.rejected == ()


@given(project_lists, st.data())
def test_list_duplicates_rejected_not_kept(project_list: ProjectList, data: st.DataObject) -> None:
    if not project_list.projects:
        return
    victim = data.draw(st.sampled_from(project_list.projects))
    # Another spelling of the same project (or an exact repeat, for all-digit names).
    twin = victim.name.swapcase()
    doc = json.loads(render_project_list_json(project_list))
    doc["projects"].append({"name": twin})
    parsed = parse_project_list_json(json.dumps(doc).encode())
    assert parsed.projects == project_list.projects
    assert [r.value for r in parsed.rejected] == [twin]


@settings(max_examples=60)
@given(project_pages())
def test_pypi_simple_reads_our_output(page: ProjectPage) -> None:
    data = json.loads(render_project_page_json(page))
    if page.namespaces is None:
        theirs = pypi_simple.ProjectPage.from_json_data(data)
    else:
        # We declare 1.5 for PEP 752 data; pypi-simple speaks 1.4 and warns, as the spec asks.
        with pytest.warns(pypi_simple.UnexpectedRepoVersionWarning):
            theirs = pypi_simple.ProjectPage.from_json_data(data)
    assert theirs.project == page.name
    assert theirs.versions == list(page.versions or ())
    assert len(theirs.packages) == len(page.files)
    for pkg, ours in zip(theirs.packages, page.files, strict=True):
        assert pkg.filename == ours.filename
        assert pkg.url == ours.url
        assert pkg.digests == ours.hashes
        assert pkg.requires_python == ours.requires_python
        assert pkg.is_yanked == ours.yanked
        assert pkg.yanked_reason == ours.yanked_reason
        assert pkg.has_sig == ours.gpg_sig
        assert pkg.size == ours.size
        assert pkg.upload_time == ours.upload_time
        assert pkg.provenance_url == ours.provenance
        if isinstance(ours.core_metadata, dict):
            assert pkg.has_metadata is True
            assert pkg.metadata_digests == ours.core_metadata
        else:
            assert pkg.has_metadata == ours.core_metadata
