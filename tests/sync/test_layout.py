"""Static tree layout (DESIGN.md "Data on disk")."""

from __future__ import annotations

import pytest

from headwater.simple.filenames import InvalidFilename
from headwater.simple.names import normalize_name
from headwater.storage.layout import (
    file_key,
    file_url_from_project_page,
    metadata_key,
    page_key,
    sha256_of_file_key,
)

SHA = "0123456789abcdef" * 4


def test_bandersnatch_compatible_keys() -> None:
    assert page_key(None, "json") == "web/simple/index.v1_json"
    assert page_key(normalize_name("Foo.Bar"), "html") == "web/simple/foo-bar/index.v1_html"
    assert page_key(normalize_name("foo"), "plain-html") == "web/simple/foo/index.html"
    assert file_key(SHA, "foo-1.0.tar.gz") == f"web/packages/01/23/{SHA[4:]}/foo-1.0.tar.gz"
    assert metadata_key(SHA, "foo-1.0-py3-none-any.whl").endswith(".whl.metadata")


def test_relative_url_from_a_project_page_resolves_to_the_file() -> None:
    from posixpath import normpath

    page_dir = "web/simple/foo"
    url = file_url_from_project_page(SHA, "foo-1.0.tar.gz")
    assert normpath(f"{page_dir}/{url}") == file_key(SHA, "foo-1.0.tar.gz")


@pytest.mark.parametrize("bad", ["", "ABC", "g" * 64, SHA[:-1], SHA + "0", "../" + SHA[3:]])
def test_digest_is_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="sha256"):
        file_key(bad, "foo-1.0.tar.gz")


def test_filename_is_checked() -> None:
    with pytest.raises(InvalidFilename):
        file_key(SHA, "../../../etc/passwd")


def test_sha256_of_file_key() -> None:
    assert sha256_of_file_key(file_key(SHA, "f.whl")) == SHA
    assert sha256_of_file_key(file_key(SHA, "f.whl") + ".metadata") == SHA
    assert sha256_of_file_key("web/simple/foo/index.html") is None
    assert sha256_of_file_key(f"web/packages/012/3/{SHA[4:]}/f.whl") is None
