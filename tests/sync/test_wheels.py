"""Core metadata taken from a verified wheel (PEP 658)."""

from __future__ import annotations

import io
import zipfile

import pytest

from headwater.simple.names import normalize_name
from headwater.sync.wheels import wheel_metadata
from headwater.testing.wheels import build_wheel, core_metadata


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_metadata_of_a_real_wheel_is_its_dist_info_metadata() -> None:
    data = build_wheel(normalize_name("Foo.Bar"), "Foo.Bar", "1.0")
    assert wheel_metadata("foo_bar-1.0-py3-none-any.whl", data) == core_metadata("Foo.Bar", "1.0")


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        pytest.param("foo-1.0.tar.gz", b"", id="not-a-wheel"),
        pytest.param("foo-1.0-py3-none-any.whl", b"not a zip", id="corrupt"),
        pytest.param("foo-1.0-py3-none-any.whl", _zip({"foo/__init__.py": b""}), id="no-dist-info"),
        pytest.param(
            "foo-1.0-py3-none-any.whl",
            _zip({"bar-1.0.dist-info/METADATA": b"x"}),
            id="other-project",
        ),
        pytest.param(
            "foo-1.0-py3-none-any.whl",
            _zip({"foo-1.0.dist-info/METADATA": b"a", "Foo-1.0.dist-info/METADATA": b"b"}),
            id="ambiguous",
        ),
    ],
)
def test_no_metadata_rather_than_a_guess(filename: str, data: bytes) -> None:
    assert wheel_metadata(filename, data) is None


def test_older_spelling_of_the_dist_info_directory() -> None:
    data = _zip({"Foo_Bar-1.0.dist-info/METADATA": b"Name: Foo_Bar\n"})
    assert wheel_metadata("Foo_Bar-1.0-py3-none-any.whl", data) == b"Name: Foo_Bar\n"
