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


def test_a_deflate_stream_longer_than_its_header_says_is_never_inflated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A zip bomb: 200 MiB of zeros whose central directory claims 100 bytes. The fast reader
    stops at what the header promises; the archive must not reach zipfile, whose read() would
    inflate all of it before comparing sizes."""
    import struct

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg-1.0.dist-info/METADATA", b"\0" * (200 << 20))
    data = bytearray(buffer.getvalue())
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<L", data, central + 24, 100)  # uncompressed size: 100 bytes
    monkeypatch.setattr(wheels, "_read_with_zipfile", lambda *a: pytest.fail("reached zipfile"))
    assert wheel_metadata("pkg-1.0-py3-none-any.whl", bytes(data)) is None


def test_zip64_sizes_of_the_metadata_member_are_read_through_zipfile() -> None:
    """Sizes of 0xFFFFFFFF in the central directory mean "see the zip64 extra field": not an
    oversized member to refuse."""
    import struct
    import zlib

    metadata = core_metadata("pkg", "1.0")
    name = b"pkg-1.0.dist-info/METADATA"
    crc = zlib.crc32(metadata)
    local = (
        struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(metadata),
                    len(metadata), len(name), 0)
        + name
        + metadata
    )  # fmt: skip
    zip64 = struct.pack("<HHQQ", 1, 16, len(metadata), len(metadata))  # usize, csize
    central = (
        struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF,
                    0xFFFFFFFF, len(name), len(zip64), 0, 0, 0, 0, 0)
        + name
        + zip64
    )  # fmt: skip
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local), 0)
    data = local + central + end
    assert wheels._read_with_zipfile(data, normalize_name("pkg")) == metadata
    assert wheel_metadata("pkg-1.0-py3-none-any.whl", data) == metadata
