"""inspect_distribution: real wheels and sdists built here, and a table of hostile ones.

Item ids: U11 (upload filename checks), N2 (wheel filenames), N3 (sdist filenames, metadata
matches), from section 4.3 and 5 of standards.md.
"""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from headwater.repository.artifacts import (
    Distribution,
    InvalidDistribution,
    Limits,
    inspect_distribution,
    metadata_for_pep658,
)
from headwater.simple.names import normalize_name
from headwater.testing.wheels import build_sdist, build_wheel, core_metadata

FOO = normalize_name("foo")
MiB = 1024 * 1024
DEFAULT = Limits()


def meta(name: str = "foo", version: str = "1.0", *extra: str, mv: str = "2.1") -> bytes:
    lines = [f"Metadata-Version: {mv}", f"Name: {name}", f"Version: {version}", *extra]
    return ("\n".join(lines) + "\n\n").encode()


def zip_bytes(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we build
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return buffer.getvalue()


def wheel_entries(
    dist_info: str = "foo-1.0.dist-info", metadata: bytes | None = None
) -> list[tuple[str | zipfile.ZipInfo, bytes]]:
    return [
        ("foo/__init__.py", b""),
        (f"{dist_info}/METADATA", meta() if metadata is None else metadata),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nTag: py3-none-any\n"),
        (f"{dist_info}/RECORD", b""),
    ]


def tar_gz(entries: list[tuple[tarfile.TarInfo, bytes]], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as archive:
        for info, data in entries:
            info.size = len(data) if info.isreg() else 0
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(raw.getvalue(), mtime=0)


def member(name: str, kind: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def sdist_entries(
    root: str = "foo-1.0", metadata: bytes | None = None
) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [
        (member(f"{root}/PKG-INFO"), meta() if metadata is None else metadata),
        (member(f"{root}/foo/__init__.py"), b""),
    ]


def inspect(tmp_path: Path, filename: str, data: bytes, limits: Limits = DEFAULT) -> Distribution:
    path = tmp_path / "upload.part"
    path.write_bytes(data)
    return inspect_distribution(path, filename, limits=limits)


# --- accepted -------------------------------------------------------------------------------------


def test_n2_wheel_built_by_the_test_upstream(tmp_path: Path) -> None:
    name = normalize_name("Foo.Bar")
    metadata = core_metadata("Foo.Bar", "1.0", requires_python=">=3.9")
    data = build_wheel(name, "Foo.Bar", "1.0", tag="py2.py3-none-any", metadata=metadata)
    dist = inspect_distribution(_write(tmp_path, data), "foo_bar-1.0-py2.py3-none-any.whl")
    assert (dist.name, dist.display_name, dist.version) == ("foo-bar", "Foo.Bar", "1.0")
    assert (dist.filetype, dist.pyversion, dist.size) == ("bdist_wheel", "py2.py3", len(data))
    assert dist.metadata == metadata
    assert dist.metadata_version == "2.1"
    assert dist.requires_python == ">=3.9"
    assert dist.canonical_version == "1"
    # PEP 658: the wheel's METADATA verbatim.
    assert metadata_for_pep658(dist) == metadata


def test_n3_sdist_built_by_the_test_upstream(tmp_path: Path) -> None:
    data = build_sdist(normalize_name("Foo.Bar"), "Foo.Bar", "2.0.post1")
    dist = inspect_distribution(_write(tmp_path, data), "foo_bar-2.0.post1.tar.gz")
    assert (dist.name, dist.version, dist.filetype, dist.pyversion) == (
        "foo-bar",
        "2.0.post1",
        "sdist",
        "source",
    )
    assert dist.metadata.startswith(b"Metadata-Version: 2.1\nName: Foo.Bar\n")
    # Metadata-Version 2.1 PKG-INFO promises nothing about a built wheel (PEP 643).
    assert metadata_for_pep658(dist) is None


@pytest.mark.parametrize(
    ("extra", "served"),
    [((), True), (("Dynamic: Requires-Dist",), False)],
    ids=["static", "dynamic-requires-dist"],
)
def test_pep658_sdist_metadata_served_only_when_static(
    tmp_path: Path, extra: tuple[str, ...], served: bool
) -> None:
    pkg_info = meta("foo", "1.0", "Requires-Dist: bar>=1", *extra, mv="2.2")
    dist = inspect(tmp_path, "foo-1.0.tar.gz", tar_gz(sdist_entries(metadata=pkg_info)))
    assert dist.requires_dist == ("bar>=1",)
    assert (metadata_for_pep658(dist) == pkg_info) is served


def test_n3_old_sdist_root_spelled_as_written_is_accepted(tmp_path: Path) -> None:
    # setuptools < 69 named the directory after the name as written.
    entries = sdist_entries(root="Foo.Bar-1.0", metadata=meta("Foo.Bar"))
    dist = inspect(tmp_path, "foo_bar-1.0.tar.gz", tar_gz(entries))
    assert dist.name == "foo-bar"


def test_zip_sdist_is_read(tmp_path: Path) -> None:
    data = zip_bytes([("foo-1.0/PKG-INFO", meta()), ("foo-1.0/setup.py", b"")])
    dist = inspect(tmp_path, "foo-1.0.zip", data)
    assert (dist.filetype, dist.metadata) == ("sdist", meta())


def test_nothing_is_extracted(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    path = spool / "upload.part"
    path.write_bytes(build_wheel(FOO, "foo", "1.0"))
    inspect_distribution(path, "foo-1.0-py3-none-any.whl")
    assert [p.name for p in tmp_path.rglob("*")] == ["spool", "upload.part"]


# --- refused --------------------------------------------------------------------------------------

_GOOD_WHEEL = zip_bytes(wheel_entries())
_GOOD_SDIST = tar_gz(sdist_entries())


def _zip_symlink() -> bytes:
    link = zipfile.ZipInfo("foo-1.0/evil")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    return zip_bytes([("foo-1.0/PKG-INFO", meta()), (link, b"/etc/passwd")])


def _pax(headers: dict[str, str]) -> bytes:
    info = member("foo-1.0/big.txt")
    info.pax_headers = headers
    return tar_gz([*sdist_entries(), (info, b"x")])


HOSTILE: list[tuple[str, str, Callable[[], bytes], Limits, str]] = [
    # (id, filename, body, limits, what the message must say)
    (
        "U11-traversal-filename",
        "../foo-1.0-py3-none-any.whl",
        lambda: _GOOD_WHEEL,
        Limits(),
        "unsafe",
    ),
    ("U11-control-char", "foo-1.0-py3-none-any.whl\n", lambda: _GOOD_WHEEL, Limits(), "unsafe"),
    ("U11-legacy-suffix", "foo-1.0.tar.bz2", lambda: _GOOD_SDIST, Limits(), "neither a wheel"),
    (
        "N2-uppercase-wheel-name",
        "Foo-1.0-py3-none-any.whl",
        lambda: _GOOD_WHEEL,
        Limits(),
        "not normalized",
    ),
    (
        "N2-version-not-normal-form",
        "foo-01.0-py3-none-any.whl",
        lambda: _GOOD_WHEEL,
        Limits(),
        "'foo-1.0'",
    ),
    (
        "N3-pep625-hyphenated-name",
        "foo-bar-1.0.tar.gz",
        lambda: _GOOD_SDIST,
        Limits(),
        "'foo_bar-1.0'",
    ),
    (
        "N3-metadata-name-differs",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes(wheel_entries(metadata=meta("bar"))),
        Limits(),
        "Name: bar",
    ),
    (
        "N3-metadata-version-differs",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes(wheel_entries(metadata=meta("foo", "1.1"))),
        Limits(),
        "Version: 1.1",
    ),
    (
        "N3-sdist-metadata-name-differs",
        "foo-1.0.tar.gz",
        lambda: tar_gz(sdist_entries(metadata=meta("bar"))),
        Limits(),
        "Name: bar",
    ),
    (
        "dist-info-for-another-project",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes(wheel_entries("bar-1.0.dist-info")),
        Limits(),
        "names another project",
    ),
    ("wheel-not-a-zip", "foo-1.0-py3-none-any.whl", lambda: _GOOD_SDIST, Limits(), "not a zip"),
    (
        "corrupt-zip",
        "foo-1.0-py3-none-any.whl",
        lambda: b"PK\x03\x04" + b"\x00" * 200,
        Limits(),
        "corrupt zip",
    ),
    (
        "truncated-zip",
        "foo-1.0-py3-none-any.whl",
        lambda: _GOOD_WHEEL[:-40],
        Limits(),
        "corrupt zip",
    ),
    (
        "zip-bomb-ratio",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes([*wheel_entries(), ("foo/zeros", bytes(8 * MiB))]),
        Limits(ratio_floor=MiB),
        "zip bomb",
    ),
    (
        "zip-total-size",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes([*wheel_entries(), ("foo/a", bytes(5000))]),
        Limits(max_total_size=4000),
        "expands to more than 4000",
    ),
    (
        "zip-member-count",
        "foo-1.0-py3-none-any.whl",
        lambda: _GOOD_WHEEL,
        Limits(max_members=3),
        "more than the limit of 3",
    ),
    (
        "metadata-too-big",
        "foo-1.0-py3-none-any.whl",
        lambda: _GOOD_WHEEL,
        Limits(max_metadata_size=10),
        "METADATA is",
    ),
    (
        "zip-member-dotdot",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes([*wheel_entries(), ("foo/../../evil.pth", b"")]),
        Limits(),
        "unsafe member path",
    ),
    (
        "zip-member-absolute",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes([*wheel_entries(), ("/etc/evil", b"")]),
        Limits(),
        "unsafe member path",
    ),
    (
        "zip-member-drive",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes([*wheel_entries(), ("C:/evil", b"")]),
        Limits(),
        "unsafe member path",
    ),
    (
        "zip-duplicate-member",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes([*wheel_entries(), ("foo-1.0.dist-info/METADATA", meta("bar"))]),
        Limits(),
        "appears twice",
    ),
    (
        "two-dist-infos",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes([*wheel_entries(), *wheel_entries("foo-2.0.dist-info")[1:]]),
        Limits(),
        "exactly one",
    ),
    (
        "no-dist-info",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes([("foo/__init__.py", b"")]),
        Limits(),
        "exactly one",
    ),
    (
        "wheel-without-record",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes(wheel_entries()[:3]),
        Limits(),
        "RECORD is missing",
    ),
    (
        "wheel-without-wheel-file",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes([e for e in wheel_entries() if not str(e[0]).endswith("WHEEL")]),
        Limits(),
        "WHEEL is missing",
    ),
    (
        "wheel-version-2",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes(
            [
                e if not str(e[0]).endswith("WHEEL") else (e[0], b"Wheel-Version: 2.0\n")
                for e in wheel_entries()
            ]
        ),
        Limits(),
        "Wheel-Version '2.0'",
    ),
    (
        "metadata-version-invalid",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes(wheel_entries(metadata=meta(mv="9.9"))),
        Limits(),
        "not a valid metadata version",
    ),
    (
        "metadata-without-name",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes(wheel_entries(metadata=b"Metadata-Version: 2.1\nVersion: 1.0\n\n")),
        Limits(),
        "'name' is a required field",
    ),
    (
        "metadata-name-twice",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes(wheel_entries(metadata=meta("foo", "1.0", "Name: bar"))),
        Limits(),
        "name more than once",
    ),
    (
        "metadata-field-too-new",
        "foo-1.0-py3-none-any.whl",
        lambda: zip_bytes(wheel_entries(metadata=meta("foo", "1.0", "Dynamic: Requires-Dist"))),
        Limits(),
        "invalid core metadata",
    ),
    ("sdist-not-gzip", "foo-1.0.tar.gz", lambda: _GOOD_WHEEL, Limits(), "not a gzip"),
    (
        "sdist-truncated-gzip",
        "foo-1.0.tar.gz",
        lambda: _GOOD_SDIST[: len(_GOOD_SDIST) // 2],
        Limits(),
        "corrupt",
    ),
    (
        "sdist-gzip-of-garbage",
        "foo-1.0.tar.gz",
        lambda: gzip.compress(b"\x01" * 2000),
        Limits(),
        "corrupt tar",
    ),
    (
        "sdist-dotdot-member",
        "foo-1.0.tar.gz",
        lambda: tar_gz([*sdist_entries(), (member("foo-1.0/../../evil"), b"")]),
        Limits(),
        "unsafe member path",
    ),
    (
        "sdist-absolute-member",
        "foo-1.0.tar.gz",
        lambda: tar_gz([(member("/etc/cron.d/evil"), b""), *sdist_entries()]),
        Limits(),
        "unsafe member path",
    ),
    (
        "sdist-symlink",
        "foo-1.0.tar.gz",
        lambda: tar_gz(
            [
                *sdist_entries(),
                (member("foo-1.0/evil", tarfile.SYMTYPE, linkname="/etc/passwd"), b""),
            ]
        ),
        Limits(),
        "is a symlink",
    ),
    (
        "sdist-hardlink",
        "foo-1.0.tar.gz",
        lambda: tar_gz(
            [
                *sdist_entries(),
                (member("foo-1.0/evil", tarfile.LNKTYPE, linkname="foo-1.0/PKG-INFO"), b""),
            ]
        ),
        Limits(),
        "is a hard link",
    ),
    (
        "sdist-device",
        "foo-1.0.tar.gz",
        lambda: tar_gz(
            [
                *sdist_entries(),
                (member("foo-1.0/null", tarfile.CHRTYPE, devmajor=1, devminor=3), b""),
            ]
        ),
        Limits(),
        "device",
    ),
    (
        "sdist-fifo",
        "foo-1.0.tar.gz",
        lambda: tar_gz([*sdist_entries(), (member("foo-1.0/fifo", tarfile.FIFOTYPE), b"")]),
        Limits(),
        "special file",
    ),
    ("zip-sdist-symlink", "foo-1.0.zip", _zip_symlink, Limits(), "link or special file"),
    (
        "sdist-without-pkg-info",
        "foo-1.0.tar.gz",
        lambda: tar_gz(sdist_entries()[1:]),
        Limits(),
        "PKG-INFO is missing",
    ),
    (
        "sdist-member-outside-root",
        "foo-1.0.tar.gz",
        lambda: tar_gz([*sdist_entries(), (member("other/x"), b"")]),
        Limits(),
        "outside the single top-level",
    ),
    (
        "sdist-root-of-another-project",
        "foo-1.0.tar.gz",
        lambda: tar_gz(sdist_entries(root="bar-1.0")),
        Limits(),
        "top-level directory 'bar-1.0'",
    ),
    ("sdist-empty", "foo-1.0.tar.gz", lambda: tar_gz([]), Limits(), "empty"),
    (
        "sdist-duplicate-pkg-info",
        "foo-1.0.tar.gz",
        lambda: tar_gz([*sdist_entries(), (member("foo-1.0/PKG-INFO"), meta("bar"))]),
        Limits(),
        "appears twice",
    ),
    (
        "gzip-bomb-ratio",
        "foo-1.0.tar.gz",
        lambda: tar_gz([*sdist_entries(), (member("foo-1.0/zeros"), bytes(8 * MiB))]),
        Limits(ratio_floor=MiB),
        "compression bomb",
    ),
    (
        "sdist-total-size",
        "foo-1.0.tar.gz",
        lambda: _GOOD_SDIST,
        Limits(max_total_size=2000),
        "expands to more than 2000",
    ),
    (
        "sdist-member-count",
        "foo-1.0.tar.gz",
        lambda: _GOOD_SDIST,
        Limits(max_members=1),
        "more than the limit of 1",
    ),
    (
        "sdist-pkg-info-too-big",
        "foo-1.0.tar.gz",
        lambda: _GOOD_SDIST,
        Limits(max_metadata_size=10),
        "PKG-INFO is",
    ),
    (
        "pax-header-too-big",
        "foo-1.0.tar.gz",
        lambda: _pax({"comment": "x" * (2 * MiB)}),
        Limits(),
        "extended header",
    ),
    (
        "pax-size-override",
        "foo-1.0.tar.gz",
        lambda: _pax({"size": "4"}),
        Limits(),
        "overrides a member's size",
    ),
]


@pytest.mark.parametrize(
    ("filename", "body", "limits", "says"),
    [pytest.param(*case[1:], id=case[0]) for case in HOSTILE],
)
def test_hostile_distribution_refused(
    tmp_path: Path, filename: str, body: Callable[[], bytes], limits: Limits, says: str
) -> None:
    with pytest.raises(InvalidDistribution) as caught:
        inspect(tmp_path, filename, body(), limits)
    message = str(caught.value)
    assert says in message
    # Every message names the file and says what to do (or that it was refused).
    assert filename[:20] in message or repr(filename)[:20] in message
    assert [p.name for p in tmp_path.iterdir()] == ["upload.part"]


def test_good_bodies_of_the_hostile_table_are_accepted(tmp_path: Path) -> None:
    # The table's refusals come from the mutation, not from a broken baseline.
    assert inspect(tmp_path, "foo-1.0-py3-none-any.whl", _GOOD_WHEEL).name == "foo"
    assert inspect(tmp_path, "foo-1.0.tar.gz", _GOOD_SDIST).name == "foo"
    assert inspect(tmp_path, "foo-1.0.tar.gz", _pax({"comment": "short"})).name == "foo"


def test_missing_file_is_an_invalid_distribution(tmp_path: Path) -> None:
    with pytest.raises(InvalidDistribution, match="cannot read"):
        inspect_distribution(tmp_path / "nope", "foo-1.0-py3-none-any.whl")


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload.part"
    path.write_bytes(data)
    return path
