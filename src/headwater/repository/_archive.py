"""Reading a distribution archive without trusting it: zip archives, member paths, and bombs.

The archive half of :func:`headwater.repository.artifacts.inspect_distribution`: it opens a wheel
or a legacy ``.zip`` sdist, refuses what would hurt whoever unpacks it (member paths that escape
the archive, duplicate or encrypted members, links and devices in sdists, zip bombs, more members
or bytes than :class:`Limits` allows) and returns the one core metadata file, read into memory
up to ``Limits.max_metadata_size`` and never extracted to disk. The checks that tar.gz sdists
share (member paths, the single top-level directory, total and ratio limits) live here too;
the tar.gz stream itself is :mod:`headwater.repository._tar`.

Specs: binary-distribution-format (PEP 427), source-distribution-format (PEP 625).
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

from packaging.version import InvalidVersion, Version

from headwater.errors import InvalidInput
from headwater.simple.filenames import DistributionFilename
from headwater.simple.names import normalize_or_none, wheel_escape

MiB = 1024 * 1024

# A WHEEL file is a handful of short lines; anything bigger is not a WHEEL file.
_MAX_WHEEL_FILE_SIZE = 64 * 1024
# A Windows drive ("C:") at the start of a member name is as absolute as a leading "/".
_DRIVE = re.compile(r"\A[A-Za-z]:")


class InvalidDistribution(InvalidInput):
    """An uploaded distribution file is malformed, unsafe, or does not match its own filename."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what reading one archive may cost (defaults fit every real wheel on PyPI).

    ``max_ratio`` is only applied to members (and archives) that expand past ``ratio_floor``: small
    files of repeated bytes compress extremely well and are harmless; a bomb has to be big to hurt.
    """

    #: Members (files and directories) in the archive.
    max_members: int = 100_000
    #: Sum of the uncompressed sizes of all members (the largest wheels on PyPI are ~4 GiB).
    max_total_size: int = 8 * 1024 * MiB
    #: Uncompressed / compressed size, per member and for the whole archive.
    max_ratio: float = 200.0
    #: Expanded size below which the ratio is not checked.
    ratio_floor: int = 100 * MiB
    #: Size of ``METADATA`` / ``PKG-INFO``; it embeds the long description, so it can be large.
    max_metadata_size: int = 8 * MiB


def _open_zip(path: Path, filename: str, size: int, limits: Limits) -> zipfile.ZipFile:
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise InvalidDistribution(f"{filename}: cannot read the uploaded file: {exc}") from exc
    if magic != b"PK\x03\x04":
        raise InvalidDistribution(
            f"{filename}: not a zip archive (a {filename.rsplit('.', 1)[-1]} file must be a zip "
            "file); upload the file your build backend produced, unmodified"
        )
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InvalidDistribution(
            f"{filename}: corrupt zip archive ({exc}); rebuild the file and upload it again"
        ) from exc
    try:
        _check_zip_members(archive, filename, size, limits)
    except BaseException:
        archive.close()
        raise
    return archive


def _check_zip_members(archive: zipfile.ZipFile, filename: str, size: int, limits: Limits) -> None:
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise InvalidDistribution(
            f"{filename}: {len(members)} members, more than the limit of {limits.max_members}"
        )
    seen: set[str] = set()
    total = 0
    for info in members:
        check_member_path(info.filename, filename)
        if info.filename in seen:
            # Two members with one name: tools disagree on which one wins, so an installer and a
            # reviewer could see different files.
            raise InvalidDistribution(
                f"{filename}: member {info.filename!r} appears twice; rebuild the archive"
            )
        seen.add(info.filename)
        if info.flag_bits & 0x1:
            raise InvalidDistribution(
                f"{filename}: member {info.filename!r} is encrypted; upload an unencrypted archive"
            )
        _check_ratio(filename, info.filename, info.file_size, info.compress_size, limits)
        total += info.file_size
    check_total(filename, total, size, limits)


def _read_zip_member(archive: zipfile.ZipFile, name: str, filename: str, limit: int) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise InvalidDistribution(
            f"{filename}: {name} is {info.file_size} bytes, more than the limit of {limit}"
        )
    try:
        with archive.open(info) as member:
            # zipfile stops at the size the central directory declares and checks the CRC, so a
            # member that lies about its size cannot make this read grow.
            data = member.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise InvalidDistribution(
            f"{filename}: cannot read {name} ({exc}); rebuild the file and upload it again"
        ) from exc
    if len(data) > limit:
        raise InvalidDistribution(f"{filename}: {name} is larger than the limit of {limit} bytes")
    return data


def read_wheel_metadata(
    path: Path, filename: str, parsed: DistributionFilename, size: int, limits: Limits
) -> bytes:
    with _open_zip(path, filename, size, limits) as archive:
        names = archive.namelist()
        dist_infos = sorted(
            {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        )
        if len(dist_infos) != 1:
            found = ", ".join(dist_infos) or "none"
            raise InvalidDistribution(
                f"{filename}: a wheel must contain exactly one top-level .dist-info directory "
                f"(found: {found}); rebuild the wheel"
            )
        dist_info = dist_infos[0]
        # PEP 427: "{distribution}-{version}.dist-info"; older builders did not normalize the
        # name, so compare normalized forms.
        di_name, _, di_version = dist_info.removesuffix(".dist-info").rpartition("-")
        if normalize_or_none(di_name) != parsed.name or not same_version(
            di_version, parsed.version
        ):
            raise InvalidDistribution(
                f"{filename}: the .dist-info directory {dist_info!r} names another project or "
                f"version than the filename; rebuild the wheel"
            )
        present = set(names)
        for required in ("METADATA", "WHEEL", "RECORD"):
            if f"{dist_info}/{required}" not in present:
                raise InvalidDistribution(
                    f"{filename}: {dist_info}/{required} is missing; every wheel needs METADATA, "
                    "WHEEL and RECORD (PEP 427); rebuild the wheel"
                )
        wheel = _read_zip_member(archive, f"{dist_info}/WHEEL", filename, _MAX_WHEEL_FILE_SIZE)
        _check_wheel_file(wheel, filename)
        return _read_zip_member(
            archive, f"{dist_info}/METADATA", filename, limits.max_metadata_size
        )


def _check_wheel_file(data: bytes, filename: str) -> None:
    headers = BytesHeaderParser().parsebytes(data)
    wheel_version = headers.get("Wheel-Version", "")
    # PEP 427: installers "should fail if Wheel-Version is greater than the version it supports";
    # accepting a wheel no installer can install would only fail later, for every user.
    major = wheel_version.strip().split(".", 1)[0]
    if major != "1":
        raise InvalidDistribution(
            f"{filename}: WHEEL says Wheel-Version {wheel_version.strip()!r}; only 1.x is "
            "installable; rebuild the wheel with a current build backend"
        )


def read_zip_sdist_metadata(
    path: Path, filename: str, parsed: DistributionFilename, size: int, limits: Limits
) -> bytes:
    with _open_zip(path, filename, size, limits) as archive:
        root = sdist_root((info.filename for info in archive.infolist()), filename, parsed)
        for info in archive.infolist():
            # Unix mode in the high 16 bits; many writers leave the file-type bits at 0, which
            # unpackers treat as a regular file.
            kind = stat.S_IFMT(info.external_attr >> 16)
            if info.create_system == 3 and kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise InvalidDistribution(
                    f"{filename}: member {info.filename!r} is a link or special file; an sdist "
                    "may hold regular files and directories only"
                )
        pkg_info = f"{root}/PKG-INFO"
        try:
            archive.getinfo(pkg_info)
        except KeyError:
            raise InvalidDistribution(
                f"{filename}: {pkg_info} is missing; an sdist must carry its core metadata "
                "there; rebuild it with a current build backend"
            ) from None
        return _read_zip_member(archive, pkg_info, filename, limits.max_metadata_size)


def sdist_root(
    names: Iterable[str],
    filename: str,
    parsed: DistributionFilename,
    root: str | None = None,
) -> str:
    # source-distribution-format: "a single top-level directory called {name}-{version}". Older
    # tools spelled the name as written, so the directory is compared in normalized form.
    for name in names:
        top = name.split("/", 1)[0]
        if root is None:
            dir_name, _, dir_version = top.rpartition("-")
            if normalize_or_none(dir_name) != parsed.name or not same_version(
                dir_version, parsed.version
            ):
                raise InvalidDistribution(
                    f"{filename}: the top-level directory {top!r} does not match the filename; "
                    f"an sdist holds one directory named "
                    f"'{wheel_escape(parsed.name)}-{parsed.version}'"
                )
            root = top
        elif top != root:
            raise InvalidDistribution(
                f"{filename}: member {name!r} is outside the single top-level directory "
                f"{root!r}; rebuild the sdist"
            )
    if root is None:
        raise InvalidDistribution(f"{filename}: the archive is empty; rebuild the sdist")
    return root


def check_member_path(name: str, filename: str) -> None:
    # Installers and unpackers join member names onto a directory; an absolute name or a ".."
    # component would write outside it.
    parts = name.replace("\\", "/").split("/")
    if (
        not name
        or name.startswith(("/", "\\"))
        or _DRIVE.match(name)
        or ".." in parts
        or "\x00" in name
    ):
        raise InvalidDistribution(
            f"{filename}: unsafe member path {name[:200]!r} (absolute or containing '..'); "
            "rebuild the archive with relative paths only"
        )


def _check_ratio(
    filename: str, member: str, expanded: int, compressed: int, limits: Limits
) -> None:
    if expanded > limits.ratio_floor and expanded > limits.max_ratio * max(compressed, 1):
        raise InvalidDistribution(
            f"{filename}: member {member!r} expands from {compressed} to {expanded} bytes, a "
            f"ratio above the limit of {limits.max_ratio:g} (a zip bomb?); refused"
        )


def check_total(filename: str, total: int, size: int, limits: Limits) -> None:
    if total > limits.max_total_size:
        raise InvalidDistribution(
            f"{filename}: expands to more than {limits.max_total_size} bytes, the limit for "
            "one distribution; refused"
        )
    if total > limits.ratio_floor and total > limits.max_ratio * max(size, 1):
        raise InvalidDistribution(
            f"{filename}: expands from {size} to more than {total} bytes, a ratio above the "
            f"limit of {limits.max_ratio:g} (a compression bomb?); refused"
        )


def same_version(text: str, version: Version) -> bool:
    try:
        return Version(text) == version
    except InvalidVersion:
        return False
