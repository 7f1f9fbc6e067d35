"""Conformance tests for headwater.simple.json against standards.md section 1 (items cited by number)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.simple.json import (
    parse_project_list_json,
    parse_project_page_json,
    render_project_list_json,
    render_project_page_json,
)
from headwater.simple.model import (
    File,
    InvalidPage,
    Namespace,
    NewerAPIVersionWarning,
    ProjectList,
    ProjectListEntry,
    ProjectPage,
    ProjectStatus,
    UnsupportedAPIVersion,
)
from headwater.simple.names import InvalidName, normalize_many, normalize_name, normalize_or_none
from tests.simple.strategies import names

DATA = Path(__file__).parent.parent / "data" / "json"
SHA = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"


def _file(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": "demo-1.0-py3-none-any.whl",
        "url": "https://files.example/demo-1.0-py3-none-any.whl",
        "hashes": {"sha256": SHA},
        "size": 100,
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not _DROP}


_DROP = object()


def _page(*files: dict[str, Any], **top: Any) -> bytes:
    doc: dict[str, Any] = {
        "meta": {"api-version": "1.4"},
        "name": "demo",
        "versions": ["1.0"],
        "files": list(files) or [_file()],
    }
    doc.update(top)
    return json.dumps({k: v for k, v in doc.items() if v is not _DROP}).encode()


def _one(**overrides: Any) -> File:
    return parse_project_page_json(_page(_file(**overrides))).files[0]


def _render(page: ProjectPage) -> dict[str, Any]:
    out = json.loads(render_project_page_json(page))
    assert isinstance(out, dict)
    return out


def _demo_page(**fields: Any) -> ProjectPage:
    base: dict[str, Any] = {
        "name": normalize_name("demo"),
        "files": (
            File(filename="demo-1.0.tar.gz", url="https://f.example/demo-1.0.tar.gz", size=10),
        ),
        "versions": ("1.0",),
    }
    base.update(fields)
    return ProjectPage(**base)


# --- 1.2 Versioning -------------------------------------------------------------------------------


def test_item_8_api_version_always_rendered() -> None:
    assert _render(_demo_page())["meta"]["api-version"] == "1.4"
    assert json.loads(render_project_list_json(ProjectList()))["meta"]["api-version"] == "1.4"


def test_item_8_api_version_1_5_only_with_namespaces() -> None:
    out = _render(_demo_page(namespaces=(Namespace(name="demo", owned=True),)))
    assert out["meta"]["api-version"] == "1.5"
    assert out["namespaces"] == [{"name": "demo", "owned": True}]
    assert "namespaces" not in _render(_demo_page())
    # An index that supports namespaces says so even for a project in none: null, not absent.
    empty = _render(_demo_page(namespaces=()))
    assert "namespaces" in empty and empty["namespaces"] is None
    assert empty["meta"]["api-version"] == "1.5"


@pytest.mark.parametrize(
    "meta",
    [_DROP, {}, {"_last-serial": 3}],
    ids=["item_9_no_meta", "item_9_empty", "item_9_no_ver"],
)
def test_item_9_missing_api_version_means_1_0(meta: Any) -> None:
    assert parse_project_page_json(_page(meta=meta)).api_version == "1.0"
    root = {"projects": []} if meta is _DROP else {"meta": meta, "projects": []}
    assert parse_project_list_json(json.dumps(root).encode()).api_version == "1.0"


@pytest.mark.parametrize("version", ["2.0", "10.1"])
def test_item_10_higher_major_hard_fails(version: str) -> None:
    with pytest.raises(UnsupportedAPIVersion, match=version):
        parse_project_page_json(_page(meta={"api-version": version}))
    with pytest.raises(UnsupportedAPIVersion):
        parse_project_list_json(
            json.dumps({"meta": {"api-version": version}, "projects": []}).encode()
        )


def test_item_10_higher_minor_accepted_and_reported() -> None:
    with pytest.warns(NewerAPIVersionWarning, match="1.9"):
        assert parse_project_page_json(_page(meta={"api-version": "1.9"})).api_version == "1.9"


def test_item_10_malformed_version_refused() -> None:
    with pytest.raises(InvalidPage, match=r"MAJOR\.MINOR"):
        parse_project_page_json(_page(meta={"api-version": "one"}))


# --- 1.4 JSON -------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"[]", b'["demo"]', b'"demo"', b"3", b"null"])
def test_item_25_top_level_must_be_object(body: bytes) -> None:
    with pytest.raises(InvalidPage, match="must be an object"):
        parse_project_page_json(body)
    with pytest.raises(InvalidPage, match="must be an object"):
        parse_project_list_json(body)


def test_item_25_rendered_pages_are_objects() -> None:
    assert render_project_page_json(_demo_page()).startswith(b"{")
    assert render_project_list_json(ProjectList()).startswith(b"{")


def test_item_25_not_json_is_invalid_page_from_msgspec() -> None:
    with pytest.raises(InvalidPage, match="not valid JSON") as info:
        parse_project_page_json(b"{not json")
    assert isinstance(info.value.__cause__, msgspec.DecodeError)


def test_item_26_unknown_keys_ignored() -> None:
    data = _page(
        _file(**{"future-key": {"x": [1]}, "dist-info-metadata-v2": 1}),
        meta={"api-version": "1.4", "new-thing": True},
        **{"future-top": [1, 2], "project-status": {"status": "archived", "extra": 1}},
    )
    page = parse_project_page_json(data)
    assert page.status is ProjectStatus.ARCHIVED
    assert page.files[0].hashes == {"sha256": SHA}
    root = {"meta": {"api-version": "1.4", "x": 1}, "projects": [{"name": "A", "weird": 2}], "y": 3}
    assert parse_project_list_json(json.dumps(root).encode()).projects == (ProjectListEntry("A"),)


def test_item_27_private_keys_ignored_except_last_serial() -> None:
    page = parse_project_page_json(
        _page(_file(_private=1), meta={"api-version": "1.4", "_last-serial": 5, "_other": "x"})
    )
    assert page.last_serial == 5
    out = render_project_page_json(page)
    assert re.findall(rb'"(_[^"]*)"', out) == [b"_last-serial"]


def test_item_28_project_list_shape() -> None:
    data = b'{"meta":{"api-version":"1.1"},"projects":[{"name":"Foo.Bar"},{"name":"baz"}]}'
    parsed = parse_project_list_json(data)
    # Display names are kept as the index gave them.
    assert [e.name for e in parsed.projects] == ["Foo.Bar", "baz"]
    assert [e.normalized for e in parsed.projects] == ["foo-bar", "baz"]
    out = json.loads(render_project_list_json(parsed))
    assert out == {
        "meta": {"api-version": "1.4"},
        "projects": [{"name": "Foo.Bar"}, {"name": "baz"}],
    }


def test_item_28_list_missing_projects_refused() -> None:
    with pytest.raises(InvalidPage, match="projects"):
        parse_project_list_json(b'{"meta":{"api-version":"1.4"}}')


def test_item_29_detail_keys_rendered() -> None:
    out = _render(_demo_page(status=ProjectStatus.ARCHIVED))
    assert set(out) == {"meta", "name", "versions", "files", "project-status"}
    assert out["name"] == "demo"


def test_item_29_name_normalized_when_parsed() -> None:
    assert parse_project_page_json(_page(name="Demo_Pkg.X")).name == "demo-pkg-x"


@pytest.mark.parametrize("name", ["", "-demo", "demo\n", "de mo", "dé", 5])
def test_item_29_invalid_name_refused(name: object) -> None:
    with pytest.raises(InvalidPage):
        parse_project_page_json(_page(name=name))


def test_item_29_missing_files_refused() -> None:
    with pytest.raises(InvalidPage, match="files"):
        parse_project_page_json(b'{"meta":{"api-version":"1.4"},"name":"demo"}')


def test_item_30_versions_kept_as_listed() -> None:
    page = parse_project_page_json(_page(versions=["2.0", "1.0", "1.0.post1"]))
    assert page.versions == ("2.0", "1.0", "1.0.post1")
    assert parse_project_page_json(_page(versions=_DROP)).versions is None


def test_item_30_versions_derived_from_filenames_when_absent() -> None:
    files = tuple(
        File(filename=f, url=f"https://f.example/{f}")
        for f in [
            "demo-1.0.tar.gz",
            "demo-1.0-py3-none-any.whl",
            "demo-2.0rc1-cp312-cp312-manylinux_2_28_x86_64.whl",
            "demo-01.10.zip",
            "demo-0.9-py2.7.egg",  # legacy: stored, carries no parseable version
            "demo-0.8.win32.exe",
        ]
    )
    out = _render(_demo_page(files=files, versions=None))
    assert out["versions"] == ["1.0", "1.10", "2.0rc1"]


def test_item_30_every_file_version_listed_on_captured_page() -> None:
    page = parse_project_page_json((DATA / "pypi-pip.v1.json").read_bytes())
    derived = _render(msgspec.structs.replace(page, versions=None))["versions"]
    # pip publishes only wheels and sdists, so deriving from filenames gives back every listed one.
    assert sorted(derived) == sorted(page.versions or ())


@pytest.mark.parametrize("missing", ["filename", "url", "hashes"])
def test_item_31_mandatory_file_keys(missing: str) -> None:
    good = _file()
    bad = _file(**{"filename": "demo-2.0.tar.gz", missing: _DROP})
    with pytest.raises(InvalidPage, match=r"file entry #1") as info:
        parse_project_page_json(_page(good, bad))
    assert missing in str(info.value)
    assert isinstance(info.value.__cause__, msgspec.ValidationError)
    if missing != "filename":
        assert "demo-2.0.tar.gz" in str(info.value)


def test_item_31_empty_hashes_allowed_and_names_lowercased() -> None:
    assert _one(hashes={}).hashes == {}
    assert _one(hashes={"SHA256": SHA, "Md5": "ab"}).hashes == {"sha256": SHA, "md5": "ab"}


@pytest.mark.parametrize(
    "filename", ["../evil.whl", "a/b.whl", ".hidden.tar.gz", "x\x00.whl", "c:\\x.whl", "x" * 300]
)
def test_item_31_unsafe_filename_refused_and_named(filename: str) -> None:
    with pytest.raises(InvalidPage, match="file entry #0"):
        parse_project_page_json(_page(_file(filename=filename)))


@pytest.mark.parametrize("value", [None, ">=3.8", "<4,>=3.9"], ids=["null", "plain", "angle"])
def test_item_32_requires_python(value: str | None) -> None:
    file = _one(**{"requires-python": value})
    assert file.requires_python == value
    page = _demo_page(files=(file,))
    rendered = render_project_page_json(page)
    if value is None:
        assert b"requires-python" not in rendered
    else:
        # Only JSON escaping: no HTML entities.
        assert _render(page)["files"][0]["requires-python"] == value
        assert b"&lt;" not in rendered


@pytest.mark.parametrize(
    ("wire", "model"),
    [
        (_DROP, None),
        (None, None),
        (True, True),
        (False, False),
        ({"SHA256": "ab"}, {"sha256": "ab"}),
        ({}, True),
    ],
    ids=["item_33_missing", "null", "true", "false", "dict", "empty_dict"],
)
def test_item_33_core_metadata(wire: Any, model: Any) -> None:
    assert _one(**{"core-metadata": wire}).core_metadata == model


@pytest.mark.parametrize("model", [True, False, {"sha256": "ab"}])
def test_item_33_core_metadata_rendered(model: Any) -> None:
    file = File(filename="demo-1.0.tar.gz", url="u", core_metadata=model)
    assert _render(_demo_page(files=(file,)))["files"][0]["core-metadata"] == model


def test_item_33_core_metadata_unknown_not_rendered() -> None:
    assert "core-metadata" not in _render(_demo_page())["files"][0]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"dist-info-metadata": {"sha256": "aa"}}, {"sha256": "aa"}),
        ({"data-dist-info-metadata": True}, True),
        ({"core-metadata": False, "data-dist-info-metadata": True}, False),
        (
            {"core-metadata": {"sha256": "cc"}, "dist-info-metadata": {"sha256": "dd"}},
            {"sha256": "cc"},
        ),
    ],
    ids=["item_34_deprecated", "item_34_pypi_alias", "item_34_core_wins", "item_34_core_wins_dict"],
)
def test_item_34_dist_info_metadata_fallback(keys: dict[str, Any], expected: Any) -> None:
    assert _one(**keys).core_metadata == expected


@pytest.mark.parametrize("value", [True, False, None])
def test_item_35_gpg_sig(value: bool | None) -> None:
    file = _one(**{"gpg-sig": value})
    assert file.gpg_sig is value
    rendered = _render(_demo_page(files=(file,)))["files"][0]
    assert rendered.get("gpg-sig") is value


@pytest.mark.parametrize(
    ("wire", "yanked", "reason"),
    [
        (_DROP, False, None),
        (False, False, None),
        (True, True, None),
        ("Broken release", True, "Broken release"),
        ("", False, None),
    ],
    ids=["item_36_absent", "item_36_false", "item_36_true", "item_36_reason", "item_36_empty_str"],
)
def test_item_36_yanked_parsed(wire: Any, yanked: bool, reason: str | None) -> None:
    file = _one(yanked=wire)
    assert (file.yanked, file.yanked_reason) == (yanked, reason)


@pytest.mark.parametrize(
    ("yanked", "reason", "expected"),
    [(False, None, _DROP), (True, None, True), (True, "bad <b>", "bad <b>")],
    ids=["item_36_omitted", "item_36_true", "item_36_reason"],
)
def test_item_36_yanked_rendered(yanked: bool, reason: str | None, expected: Any) -> None:
    file = File(filename="demo-1.0.tar.gz", url="u", yanked=yanked, yanked_reason=reason)
    assert _render(_demo_page(files=(file,)))["files"][0].get("yanked", _DROP) == expected


def test_item_37_size_rendered_and_unknown_size_omitted() -> None:
    sized = File(filename="demo-1.0.tar.gz", url="u", size=0)
    unknown = File(filename="demo-1.0-py3-none-any.whl", url="v")
    files = _render(_demo_page(files=(sized, unknown)))["files"]
    assert files[0]["size"] == 0
    assert "size" not in files[1]
    assert _one(size=12345).size == 12345


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("2010-06-29T19:56:36.719942Z", datetime(2010, 6, 29, 19, 56, 36, 719942, tzinfo=UTC)),
        ("2008-11-17T18:17:56Z", datetime(2008, 11, 17, 18, 17, 56, tzinfo=UTC)),
        ("2008-11-17T18:17:56.5Z", datetime(2008, 11, 17, 18, 17, 56, 500000, tzinfo=UTC)),
        ("2008-11-17T20:17:56+02:00", datetime(2008, 11, 17, 18, 17, 56, tzinfo=UTC)),
        ("2008-11-17T18:17:56", datetime(2008, 11, 17, 18, 17, 56, tzinfo=UTC)),
        (None, None),
    ],
    ids=[
        "item_38_micro",
        "item_38_no_fraction",
        "item_38_short",
        "item_38_offset",
        "naive",
        "null",
    ],
)
def test_item_38_upload_time_parsed(wire: str | None, expected: datetime | None) -> None:
    got = _one(**{"upload-time": wire}).upload_time
    assert got == expected
    if got is not None:
        assert got.utcoffset() is not None and got.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_item_38_upload_time_rendered_with_microseconds_and_z() -> None:
    file = File(
        filename="demo-1.0.tar.gz",
        url="u",
        upload_time=datetime(2008, 11, 17, 18, 17, 56, tzinfo=UTC),
    )
    assert (
        _render(_demo_page(files=(file,)))["files"][0]["upload-time"]
        == "2008-11-17T18:17:56.000000Z"
    )


def test_item_38_bad_upload_time_names_the_file() -> None:
    with pytest.raises(InvalidPage, match=r"file entry #0 \('demo-1.0-py3-none-any.whl'\)"):
        _one(**{"upload-time": "yesterday"})


def test_item_39_provenance() -> None:
    url = "https://pypi.org/integrity/demo/1.0/demo-1.0-py3-none-any.whl/provenance"
    file = _one(provenance=url)
    assert file.provenance == url
    assert _one(provenance=None).provenance is None
    assert _render(_demo_page(files=(file,)))["files"][0]["provenance"] == url


@pytest.mark.parametrize(
    ("wire", "status", "reason"),
    [
        (_DROP, ProjectStatus.ACTIVE, None),
        ({}, ProjectStatus.ACTIVE, None),
        ({"status": "archived"}, ProjectStatus.ARCHIVED, None),
        ({"reason": "moved"}, ProjectStatus.ACTIVE, "moved"),
        ({"status": "deprecated", "reason": "use x"}, ProjectStatus.DEPRECATED, "use x"),
    ],
    ids=["item_40_absent", "item_40_empty", "item_40_status", "item_40_reason", "item_40_both"],
)
def test_item_40_project_status_parsed(
    wire: Any, status: ProjectStatus, reason: str | None
) -> None:
    page = parse_project_page_json(_page(**{"project-status": wire}))
    assert (page.status, page.status_reason) == (status, reason)


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (ProjectStatus.ACTIVE, None, _DROP),
        (ProjectStatus.ACTIVE, "hi", {"status": "active", "reason": "hi"}),
        (ProjectStatus.QUARANTINED, None, {"status": "quarantined"}),
    ],
    ids=["item_40_active_omitted", "item_40_reason", "item_40_quarantined"],
)
def test_item_40_project_status_rendered(
    status: ProjectStatus, reason: str | None, expected: Any
) -> None:
    out = _render(_demo_page(status=status, status_reason=reason))
    assert out.get("project-status", _DROP) == expected


@pytest.mark.parametrize("marker", list(ProjectStatus))
def test_item_41_every_marker_parses(marker: ProjectStatus) -> None:
    page = parse_project_page_json(_page(**{"project-status": {"status": marker.value}}))
    assert page.status is marker


@pytest.mark.parametrize("marker", ["deleted", "Archived", ""])
def test_item_41_unknown_marker_refused(marker: str) -> None:
    with pytest.raises(InvalidPage, match="unknown project-status marker"):
        parse_project_page_json(_page(**{"project-status": {"status": marker}}))


def test_item_42_order_kept_not_judged() -> None:
    a = _file(filename="demo-2.0.tar.gz")
    b = _file(filename="demo-1.0.tar.gz")
    page = parse_project_page_json(_page(a, b, versions=["2.0", "1.0"]))
    assert [f.filename for f in page.files] == ["demo-2.0.tar.gz", "demo-1.0.tar.gz"]
    root = b'{"projects":[{"name":"zeta"},{"name":"alpha"}]}'
    assert [e.name for e in parse_project_list_json(root).projects] == ["zeta", "alpha"]


# --- 1.7 PyPI-specific ----------------------------------------------------------------------------


def test_item_57_last_serial_everywhere() -> None:
    root = b'{"meta":{"api-version":"1.4","_last-serial":99},"projects":[{"name":"a","_last-serial":7}]}'
    parsed = parse_project_list_json(root)
    assert parsed.last_serial == 99
    assert parsed.projects == (ProjectListEntry("a", 7),)
    assert json.loads(render_project_list_json(parsed)) == json.loads(root)
    page = parse_project_page_json(_page(meta={"api-version": "1.4", "_last-serial": 12}))
    assert page.last_serial == 12
    assert _render(page)["meta"]["_last-serial"] == 12


def test_item_57_last_serial_as_string_accepted() -> None:
    # bandersnatch-built trees (and the captured pages) write the serial as a string.
    root = b'{"meta":{"_last-serial":"99"},"projects":[{"name":"a","_last-serial":"7"}]}'
    parsed = parse_project_list_json(root)
    assert (parsed.last_serial, parsed.projects) == (99, (ProjectListEntry("a", 7),))
    assert parse_project_page_json(_page(meta={"_last-serial": "12"})).last_serial == 12


@pytest.mark.parametrize("serial", ["12a", True, 1.5, "-3"])
def test_item_57_non_integer_serial_refused(serial: Any) -> None:
    with pytest.raises(InvalidPage, match="_last-serial"):
        parse_project_page_json(_page(meta={"api-version": "1.4", "_last-serial": serial}))


def test_item_60_never_emit_dist_info_metadata() -> None:
    file = File(filename="demo-1.0.tar.gz", url="u", core_metadata={"sha256": "ab"})
    out = render_project_page_json(_demo_page(files=(file,)))
    assert b"dist-info-metadata" not in out
    assert b'"core-metadata":{"sha256":"ab"}' in out


# --- 1.9 tolerances -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "status", "reason"),
    [
        ({"project-status": "archived"}, ProjectStatus.ARCHIVED, None),
        ({"project-status": "archived", "project-status-reason": "r"}, ProjectStatus.ARCHIVED, "r"),
        (
            {"project-status": {"status": "quarantined", "reason": "m"}},
            ProjectStatus.QUARANTINED,
            "m",
        ),
        ({"project-status-reason": "only"}, ProjectStatus.ACTIVE, "only"),
    ],
    ids=["s1_9_meta_str", "s1_9_meta_reason", "s1_9_meta_obj", "s1_9_meta_reason_only"],
)
def test_section_1_9_stale_meta_project_status(
    meta: dict[str, Any], status: ProjectStatus, reason: str | None
) -> None:
    page = parse_project_page_json(_page(meta={"api-version": "1.4", **meta}))
    assert (page.status, page.status_reason) == (status, reason)


def test_section_1_9_stale_meta_unknown_marker_refused() -> None:
    with pytest.raises(InvalidPage, match="unknown project-status marker"):
        parse_project_page_json(_page(meta={"api-version": "1.4", "project-status": "gone"}))


def test_section_1_9_top_level_status_wins_over_meta() -> None:
    data = _page(
        meta={"api-version": "1.4", "project-status": "archived"},
        **{"project-status": {"status": "quarantined"}},
    )
    assert parse_project_page_json(data).status is ProjectStatus.QUARANTINED


def test_section_1_9_pep_792_state_spelling() -> None:
    page = parse_project_page_json(
        _page(**{"project-status": {"state": "archived", "reason": "x"}})
    )
    assert (page.status, page.status_reason) == (ProjectStatus.ARCHIVED, "x")


def test_section_1_9_tracks_in_meta_alternate_locations_top_level() -> None:
    data = _page(
        meta={"api-version": "1.2", "tracks": ["https://pypi.org/simple/demo/"]},
        **{"alternate-locations": ["https://a.example/simple/demo/"]},
    )
    page = parse_project_page_json(data)
    assert page.tracks == ("https://pypi.org/simple/demo/",)
    assert page.alternate_locations == ("https://a.example/simple/demo/",)
    out = _render(page)
    assert out["meta"]["tracks"] == ["https://pypi.org/simple/demo/"]
    assert out["alternate-locations"] == ["https://a.example/simple/demo/"]
    assert "tracks" not in out and "alternate-locations" not in out["meta"]


def test_section_1_9_pep_708_keys_omitted_when_empty() -> None:
    out = _render(_demo_page())
    assert "tracks" not in out["meta"] and "alternate-locations" not in out


def test_section_1_9_declares_1_4_without_1_2_fields() -> None:
    page = parse_project_page_json(_page(meta={"api-version": "1.4"}))
    assert (page.tracks, page.alternate_locations) == ((), ())


# --- PEP 752 namespaces ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (_DROP, None),
        (None, ()),
        ([{"name": "acme", "owned": True}], (Namespace(name="acme", owned=True),)),
    ],
    ids=["absent", "null", "list"],
)
def test_pep_752_namespaces(wire: Any, expected: Any) -> None:
    assert parse_project_page_json(_page(namespaces=wire)).namespaces == expected


# --- relative URLs (item 5) -----------------------------------------------------------------------


def test_item_5_relative_urls_resolved_against_base_url() -> None:
    data = _page(
        _file(url="../../packages/demo-1.0-py3-none-any.whl"),
        _file(filename="demo-1.0.tar.gz", url="https://cdn.example/demo-1.0.tar.gz"),
    )
    page = parse_project_page_json(data, base_url="https://idx.example/simple/demo/")
    assert page.files[0].url == "https://idx.example/packages/demo-1.0-py3-none-any.whl"
    assert page.files[1].url == "https://cdn.example/demo-1.0.tar.gz"
    # Without a base the URL is kept as given.
    assert parse_project_page_json(data).files[0].url == "../../packages/demo-1.0-py3-none-any.whl"


# --- project list robustness ----------------------------------------------------------------------


def test_item_6_list_skips_invalid_names_and_records_them() -> None:
    names = ["good", "Bad Name", "-x", "ok.Name", "", "a" * 201, "n\u00e9", "fine\n"]
    data = json.dumps({"meta": {"api-version": "1.4"}, "projects": [{"name": n} for n in names]})
    parsed = parse_project_list_json(data.encode())
    assert [e.name for e in parsed.projects] == ["good", "ok.Name"]
    assert [r.value for r in parsed.rejected] == [n for n in names if n not in ("good", "ok.Name")]
    assert all("name" in r.reason for r in parsed.rejected)


def test_item_1_list_drops_duplicate_normalized_names() -> None:
    data = b'{"projects":[{"name":"Foo_Bar"},{"name":"foo-bar"},{"name":"FOO.BAR"},{"name":"x"}]}'
    parsed = parse_project_list_json(data)
    assert [e.name for e in parsed.projects] == ["Foo_Bar", "x"]
    assert [r.value for r in parsed.rejected] == ["foo-bar", "FOO.BAR"]
    assert "duplicate" in parsed.rejected[0].reason


def test_list_malformed_entries_rejected_not_fatal() -> None:
    data = (
        b'{"projects":[{"name":"a"},{"name":5},"b",{"nome":"c"},{"name":"d","_last-serial":"x"}]}'
    )
    parsed = parse_project_list_json(data)
    assert [e.name for e in parsed.projects] == ["a"]
    assert len(parsed.rejected) == 4


def test_list_entry_without_serial_rendered_without_key() -> None:
    out = render_project_list_json(
        ProjectList(projects=(ProjectListEntry("a"), ProjectListEntry("B", 3)), last_serial=4)
    )
    assert out == (
        b'{"meta":{"api-version":"1.4","_last-serial":4},'
        b'"projects":[{"name":"a"},{"name":"B","_last-serial":3}]}'
    )


def test_render_is_compact() -> None:
    out = render_project_page_json(_demo_page())
    assert b": " not in out and b", " not in out


# --- captured pages -------------------------------------------------------------------------------


def _captured(name: str) -> ProjectPage:
    return parse_project_page_json((DATA / name).read_bytes())


def test_captured_six() -> None:
    page = _captured("pypi-six.v1.json")
    assert page.name == "six" and len(page.files) == 48 and len(page.versions or ()) == 29
    assert page.last_serial == 26356948 and page.api_version == "1.1"
    wheel = next(f for f in page.files if f.filename == "six-1.16.0-py2.py3-none-any.whl")
    assert wheel.hashes == {"sha256": SHA}
    assert wheel.size == 11053
    assert wheel.upload_time == datetime(2021, 5, 5, 14, 18, 17, 237677, tzinfo=UTC)
    assert not any(f.yanked for f in page.files)


def test_captured_attrs_yanked_reasons() -> None:
    page = _captured("pypi-attrs.v1.json")
    assert len(page.files) == 72
    yanked = {f.filename: f.yanked_reason for f in page.files if f.yanked}
    assert yanked == {
        "attrs-21.1.0-py2.py3-none-any.whl": "Installable but not importable on Python 3.4.",
        "attrs-21.1.0.tar.gz": "Installable but not importable on Python 3.4.",
    }


def test_captured_pip_many_files() -> None:
    page = _captured("pypi-pip.v1.json")
    assert len(page.files) == 291 and len(page.versions or ()) == 160
    assert sum(f.yanked for f in page.files) == 6
    wheel = next(f for f in page.files if f.filename == "pip-24.0-py3-none-any.whl")
    assert wheel.hashes["sha256"].startswith("ba0d021a1668")
    assert wheel.requires_python == ">=3.7"
    assert sum(f.requires_python is None for f in page.files) == 91


def test_captured_requests_reason_kept_verbatim() -> None:
    page = _captured("pypi-requests.v1.json")
    assert len(page.files) == 244
    file = next(f for f in page.files if f.filename == "requests-2.32.1-py3-none-any.whl")
    # The trailing space is the publisher's; the parser does not edit reasons.
    assert file.yanked_reason == "Yanked due to conflicts with CVE-2024-35195 mitigation "
    assert any(f.filename.endswith(".egg") for f in page.files)


def test_sample_pypi_1_4_shape() -> None:
    page = _captured("sample-pypi-1.4-shape.json")
    assert (page.api_version, page.last_serial) == ("1.4", 24812345)
    assert (page.status, page.status_reason) == (
        ProjectStatus.DEPRECATED,
        "Use example-pkg2 instead",
    )
    first, sdist, last = page.files
    assert first.core_metadata == {"sha256": "aa11" * 16}
    assert sdist.core_metadata is False and sdist.yanked_reason == "Broken build"
    assert last.provenance is not None and last.provenance.endswith("/provenance")


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in DATA.glob("*.json")),
)
def test_captured_pages_render_and_reparse(name: str) -> None:
    page = _captured(name)
    again = parse_project_page_json(render_project_page_json(page))
    assert again == msgspec.structs.replace(page, api_version="1.4")


# --- the fast name checks agree with headwater.simple.names ---------------------------------------

_name_text = st.text(alphabet="aZ09._-\n é", max_size=12) | names


@given(_name_text)
def test_item_6_fast_normalize_agrees_with_normalize_name(name: str) -> None:
    try:
        expected: str | None = normalize_name(name)
    except InvalidName:
        expected = None
    assert normalize_or_none(name) == expected


@given(st.lists(_name_text, max_size=6))
def test_item_6_bulk_normalize_agrees_with_one_by_one(raw: list[str]) -> None:
    assert normalize_many(raw) == [normalize_or_none(n) for n in raw]


@pytest.mark.parametrize(
    "hostile",
    ["bad name", "\u212aeras", "Keras", "ke\nras", "", "-x", "a" * 201],
    ids=["space", "kelvin_sign", "duplicate", "newline", "empty", "leading_dash", "too_long"],
)
def test_item_6_one_hostile_name_in_a_large_list(hostile: str) -> None:
    names = (
        [f"Pkg_{i}.x" for i in range(2000)] + ["keras", hostile] + [f"q--{i}" for i in range(50)]
    )
    doc = {"projects": [{"name": n, "_last-serial": i} for i, n in enumerate(names)]}
    parsed = parse_project_list_json(json.dumps(doc).encode())
    assert len(parsed.projects) == len(names) - 1
    assert [r.value for r in parsed.rejected] == [hostile]
    assert parsed.projects[-1] == ProjectListEntry("q--49", 2051)


def test_item_29_rendered_name_is_normalized_even_from_a_sloppy_model() -> None:
    sloppy = _demo_page(name="Demo_Pkg")
    assert _render(sloppy)["name"] == "demo-pkg"
