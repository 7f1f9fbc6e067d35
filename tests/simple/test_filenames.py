"""Distribution filenames (standards.md section 5: N2, N3, N5; hostile filenames)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from headwater.simple.filenames import (
    InvalidFilename,
    check_safe_filename,
    parse_filename,
    project_candidates,
)


@pytest.mark.parametrize(
    ("filename", "kind", "name", "version"),
    [
        ("foo_bar-1.0-py3-none-any.whl", "wheel", "foo-bar", "1.0"),
        pytest.param(
            "Foo.Bar-1.0-py2.py3-none-any.whl",
            "wheel",
            "foo-bar",
            "1.0",
            id="N2-older-form-accepted",
        ),
        (
            "numpy-2.1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "wheel",
            "numpy",
            "2.1.0",
        ),
        ("foo-1.0-1build-py3-none-any.whl", "wheel", "foo", "1.0"),
        ("foo_bar-1.0.tar.gz", "sdist", "foo-bar", "1.0"),
        pytest.param("Foo_Bar-1.0.tar.gz", "sdist", "foo-bar", "1.0", id="N3-legacy-case"),
        ("foo-1.0.zip", "sdist", "foo", "1.0"),
    ],
)
def test_parse(filename: str, kind: str, name: str, version: str) -> None:
    parsed = parse_filename(filename)
    assert (parsed.kind, parsed.name, parsed.version) == (kind, name, Version(version))


def test_wheel_build_tag_and_tags() -> None:
    parsed = parse_filename("foo-1.0-1build-py2.py3-none-any.whl")
    assert parsed.build == (1, "build")
    assert {str(t) for t in parsed.tags} == {"py2-none-any", "py3-none-any"}


@pytest.mark.parametrize(
    "filename",
    [
        pytest.param("foo-bar-1.0-py3-none-any.whl", id="N2-dash-in-name"),
        pytest.param("foo-notaversion-py3-none-any.whl", id="bad-version"),
        pytest.param("foo-1.0.tar.bz2", id="N5-legacy-not-parsed"),
        pytest.param("foo-1.0.egg", id="N5-egg-not-parsed"),
        pytest.param("foo.txt", id="not-a-distribution"),
    ],
)
def test_unparseable(filename: str) -> None:
    with pytest.raises(InvalidFilename, match="foo"):
        parse_filename(filename)


@pytest.mark.parametrize(
    "filename",
    [
        pytest.param("", id="empty"),
        pytest.param("../foo-1.0.tar.gz", id="traversal"),
        pytest.param("..", id="dotdot"),
        pytest.param(".hidden-1.0.tar.gz", id="leading-dot"),
        pytest.param("/etc/passwd", id="absolute"),
        pytest.param("a\\b-1.0.tar.gz", id="backslash"),
        pytest.param("foo\x00-1.0.tar.gz", id="nul"),
        pytest.param("foo\n-1.0.tar.gz", id="newline"),
        pytest.param("foo\x7f-1.0.tar.gz", id="del"),
        pytest.param("foo\ufdd0-1.0.tar.gz", id="noncharacter"),
        pytest.param("foo\U0010ffff-1.0.tar.gz", id="plane-16-noncharacter"),
        pytest.param("foo\ud800-1.0.tar.gz", id="surrogate"),
        pytest.param("a" * 250 + ".tar.gz", id="over-long"),
        pytest.param("é" * 130 + ".whl", id="over-long-in-bytes"),
    ],
)
def test_hostile_filenames_refused(filename: str) -> None:
    with pytest.raises(InvalidFilename):
        check_safe_filename(filename)
    with pytest.raises(InvalidFilename):
        parse_filename(filename)


@pytest.mark.parametrize("filename", ["foo-1.0.tar.bz2", "foo-1.0.win32.exe", "foo-1.0-py2.7.egg"])
def test_N5_legacy_files_are_safe_to_store(filename: str) -> None:
    assert check_safe_filename(filename) == filename


def _reference_is_safe(filename: str) -> bool:
    """The rules check_safe_filename documents, written the slow, obvious way."""
    return (
        filename != ""
        and not filename.startswith(".")
        and not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "/\\" for c in filename)
        and not any(
            0xD800 <= ord(c) <= 0xDFFF or 0xFDD0 <= ord(c) <= 0xFDEF or ord(c) & 0xFFFE == 0xFFFE
            for c in filename
        )
        and len(filename.encode("utf-8", "surrogatepass")) <= 255
    )


@given(st.text(max_size=300) | st.text(alphabet="abc./\\-_ \x00\x7f", max_size=300))
def test_fast_path_agrees_with_the_documented_rules(filename: str) -> None:
    try:
        check_safe_filename(filename)
        accepted = True
    except InvalidFilename:
        accepted = False
    assert accepted == _reference_is_safe(filename)


@pytest.mark.parametrize(
    ("filename", "candidates"),
    [
        ("odd_pkg-1.0-py3-none-any.whl", ["odd-pkg"]),
        ("Odd_Pkg-1.1.tar.gz", ["odd-pkg"]),
        ("odd-pkg-1.0.zip", ["odd-pkg"]),
        # Names parse_filename refuses (legacy formats, a '-' inside a version): the text before
        # the version first, then the first field.
        ("odd-pkg-1.0.tar.bz2", ["odd-pkg", "odd"]),
        ("odd-pkg-1.0.tgz", ["odd-pkg", "odd"]),
        ("odd-pkg-1.0.tar", ["odd-pkg", "odd"]),
        ("odd_pkg-1.0-py3.6.egg", ["odd-pkg"]),
        ("odd-pkg-1.0.win32.exe", ["odd-pkg", "odd"]),
        ("odd-pkg-1.0-beta.tar.gz", ["odd-pkg", "odd"]),
        ("odd-pkg-1.0.linux-x86_64.tar.gz", ["odd-pkg", "odd"]),
        ("nothing", ["nothing"]),
        ("", []),
    ],
)
def test_project_candidates(filename: str, candidates: list[str]) -> None:
    assert project_candidates(filename) == candidates
