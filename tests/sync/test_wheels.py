"""Core metadata taken from a verified wheel (PEP 658)."""

from __future__ import annotations

import io
import zipfile

import pytest

from headwater.simple.names import normalize_name
from headwater.sync import wheels
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


def _zip_with(
    members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED, zip64: bool = False
) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        for name, data in members.items():
            with archive.open(name, "w", force_zip64=zip64) as handle:
                handle.write(data)
    return out.getvalue()


_META = b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n" * 20
_NAME = "foo-1.0-py3-none-any.whl"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            _zip_with({"foo/__init__.py": b"", "foo-1.0.dist-info/METADATA": _META}), id="deflated"
        ),
        pytest.param(
            _zip_with({"foo-1.0.dist-info/METADATA": _META}, method=zipfile.ZIP_STORED), id="stored"
        ),
        pytest.param(_zip_with({"foo-1.0.dist-info/METADATA": _META}, zip64=True), id="zip64"),
        pytest.param(
            _zip_with({"foo-1.0.dist-info/METADATA": _META}, method=zipfile.ZIP_BZIP2), id="bzip2"
        ),
        pytest.param(b"#!/bin/sh\n" + _zip({"foo-1.0.dist-info/METADATA": _META}), id="prepended"),
        pytest.param(
            _zip({"foo-1.0.dist-info/METADATA": _META, "foo-1.0.dist-info/RECORD": b""}) + b"",
            id="two-members",
        ),
        pytest.param(_zip({"Foo-1.0.dist-info/METADATA": _META}), id="case"),
        pytest.param(_zip({"föo-1.0.dist-info/METADATA": _META}), id="utf8-other-name"),
    ],
)
def test_fast_reader_agrees_with_zipfile(data: bytes) -> None:
    expected = wheels._read_with_zipfile(data, normalize_name("foo"))
    assert wheel_metadata(_NAME, data) == expected


def test_plain_wheels_do_not_need_zipfile(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(data: bytes, project: str) -> None:
        raise AssertionError("zipfile was used for a plain wheel")

    monkeypatch.setattr(wheels, "_read_with_zipfile", refuse)
    data = build_wheel(normalize_name("Foo.Bar"), "Foo.Bar", "1.0")
    assert wheel_metadata("foo_bar-1.0-py3-none-any.whl", data) == core_metadata("Foo.Bar", "1.0")
    stored = _zip_with({"foo-1.0.dist-info/METADATA": _META}, method=zipfile.ZIP_STORED)
    assert wheel_metadata(_NAME, stored) == _META
    ambiguous = _zip({"foo-1.0.dist-info/METADATA": b"a", "Foo-1.0.dist-info/METADATA": b"b"})
    assert wheel_metadata(_NAME, ambiguous) is None


def _corrupt(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1
    return data.replace(old, new)


def test_damaged_members_are_refused_not_guessed() -> None:
    stored = _zip_with({"foo-1.0.dist-info/METADATA": _META}, method=zipfile.ZIP_STORED)
    # Bytes changed inside the member: its CRC no longer matches.
    assert wheel_metadata(_NAME, _corrupt(stored, b"Version: 1.0", b"Version: 6.6")) is None
    deflated = _zip_with({"foo-1.0.dist-info/METADATA": _META})
    assert wheel_metadata(_NAME, deflated[: len(deflated) // 2]) is None  # cut short


def test_oversized_or_encrypted_metadata_is_refused() -> None:
    data = bytearray(_zip_with({"foo-1.0.dist-info/METADATA": _META}, method=zipfile.ZIP_STORED))
    central = data.index(b"PK\x01\x02")
    flagged = bytearray(data)
    flagged[central + 8] |= 0x1  # "encrypted"
    assert wheel_metadata(_NAME, bytes(flagged)) is None
    huge = bytearray(data)
    huge[central + 24 : central + 28] = (wheels._MAX_METADATA + 1).to_bytes(4, "little")
    assert wheel_metadata(_NAME, bytes(huge)) is None
