"""Reading an uploaded wheel or sdist safely: what it is, and its core metadata.

:func:`inspect_distribution` opens a local file that a client uploaded and answers "which project,
which version, which kind of file, and what is its core metadata", refusing anything an installer,
a mirror or a person would be hurt by: unsafe or non-normalized filenames, archives that are not
what their suffix says, member paths that escape the archive, links and devices in sdists, zip and
gzip bombs, and metadata that does not parse or names another project or version.

It never extracts anything to disk and reads at most ``Limits.max_metadata_size`` bytes of metadata
into memory; the rest of the archive is only listed (zip) or streamed through (tar.gz). It is
synchronous on purpose: the server runs it in a worker thread.

Specs: binary-distribution-format (PEP 427), source-distribution-format (PEP 625, PEP 643),
core-metadata, PEP 658 (``.metadata`` files); PyPI's upload checks (standards.md U11, N2, N3).
"""

from __future__ import annotations

import gzip
import hashlib
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import IO, Literal

import msgspec
from packaging.metadata import InvalidMetadata, Metadata, parse_email
from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from headwater.errors import InvalidInput
from headwater.simple.filenames import DistributionFilename, InvalidFilename, parse_filename
from headwater.simple.names import (
    InvalidName,
    NormalizedName,
    normalize_name,
    normalize_or_none,
    wheel_escape,
)

__all__ = [
    "Distribution",
    "InvalidDistribution",
    "Limits",
    "inspect_distribution",
    "metadata_for_pep658",
]

_MiB = 1024 * 1024

# Metadata-Version from which PEP 643 guarantees that every field not listed in ``Dynamic`` in an
# sdist's PKG-INFO is exactly what a wheel built from it will carry.
_PEP643_VERSION = Version("2.2")
# A WHEEL file is a handful of short lines; anything bigger is not a WHEEL file.
_MAX_WHEEL_FILE_SIZE = 64 * 1024
# Fields that may appear once only: a second copy lands in packaging's "unparsed" dict, and an
# upload whose identity is ambiguous must be refused rather than guessed.
_SINGLE_FIELDS = frozenset({"metadata-version", "name", "version", "requires-python", "summary"})
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
    max_total_size: int = 8 * 1024 * _MiB
    #: Uncompressed / compressed size, per member and for the whole archive.
    max_ratio: float = 200.0
    #: Expanded size below which the ratio is not checked.
    ratio_floor: int = 100 * _MiB
    #: Size of ``METADATA`` / ``PKG-INFO``; it embeds the long description, so it can be large.
    max_metadata_size: int = 8 * _MiB


class Distribution(msgspec.Struct, frozen=True, kw_only=True):
    """What an uploaded wheel or sdist is, read from its filename and its own core metadata."""

    filename: str
    #: The project name, normalized (``Foo.Bar`` -> ``foo-bar``).
    name: NormalizedName
    #: The project name as written in the core metadata.
    display_name: str
    #: The version in PEP 440 normalized form (as it must appear in the filename).
    version: str
    #: Trailing zeros stripped (``1.0.0`` -> ``1``): equal for versions PEP 440 calls equal.
    canonical_version: str
    filetype: Literal["bdist_wheel", "sdist"]
    #: The wheel's Python tag (``py3``, ``cp312``, ``py2.py3``); ``source`` for an sdist.
    pyversion: str
    #: Size of the archive in bytes.
    size: int
    #: The core metadata verbatim (wheel ``*.dist-info/METADATA``, sdist ``*/PKG-INFO``).
    metadata: bytes
    metadata_sha256: str
    metadata_version: str
    requires_python: str | None = None
    summary: str | None = None
    requires_dist: tuple[str, ...] = ()
    provides_extra: tuple[str, ...] = ()
    #: PEP 643: fields an sdist's build may still change (always empty for wheels).
    dynamic: tuple[str, ...] = ()


def inspect_distribution(path: Path, filename: str, *, limits: Limits = Limits()) -> Distribution:
    """Read the wheel or sdist at ``path``, uploaded as ``filename``, and return what it is.

    Accepts wheels (``.whl``, PEP 427 normalized names), sdists (``.tar.gz``, PEP 625
    ``{name_with_underscores}-{version}.tar.gz``) and legacy ``.zip`` sdists with the same name
    rule. Nothing is extracted to disk.

    Raises:
        InvalidDistribution: the filename is unsafe, not normalized, or not a wheel/sdist name;
            the file is not the archive its suffix says; a member path is absolute or contains
            ``..``; an sdist holds a link or device; a limit in ``limits`` is exceeded; the
            wheel lacks exactly one ``.dist-info`` with ``METADATA``, ``WHEEL`` and ``RECORD``;
            the core metadata does not parse or names another project or version. The message
            names the file and says what to fix.
    """
    parsed = _check_filename(filename)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidDistribution(f"{filename}: cannot read the uploaded file: {exc}") from exc
    if parsed.kind == "wheel":
        metadata = _read_wheel(path, filename, parsed, size, limits)
    elif filename.endswith(".zip"):
        metadata = _read_zip_sdist(path, filename, parsed, size, limits)
    else:
        metadata = _read_tar_sdist(path, filename, parsed, size, limits)
    return _build(parsed, metadata, size)


def metadata_for_pep658(distribution: Distribution) -> bytes | None:
    """The exact bytes to serve as ``<filename>.metadata`` (PEP 658), or ``None`` to serve none.

    For a wheel this is its ``METADATA`` verbatim: installers compare it byte for byte with the
    hash on the page and then trust it instead of downloading the wheel.

    For an sdist, ``PKG-INFO`` is served only when it is a promise: Metadata-Version 2.2 or later
    (PEP 643: fields not marked ``Dynamic`` MUST be the same in every wheel built from it) *and* no
    field is ``Dynamic``. An installer that resolves from a ``.metadata`` file never builds the
    sdist, so any dynamic field (most often ``Requires-Dist``) could make it resolve against
    dependencies the real build would not have; then no file is better than a wrong one. PyPI
    itself serves ``.metadata`` for wheels only.
    """
    if distribution.filetype == "bdist_wheel":
        return distribution.metadata
    if Version(distribution.metadata_version) >= _PEP643_VERSION and not distribution.dynamic:
        return distribution.metadata
    return None


# --- filename ---------------------------------------------------------------------------------


def _check_filename(filename: str) -> DistributionFilename:
    try:
        parsed = parse_filename(filename)
    except InvalidFilename as exc:
        raise InvalidDistribution(f"{exc}; upload a wheel (.whl) or an sdist (.tar.gz)") from exc
    escaped = wheel_escape(parsed.name)
    version = str(parsed.version)
    if parsed.kind == "wheel":
        # PEP 427 / binary-distribution-format: the name is normalized then "-" becomes "_", and
        # the version is normalized; PyPI refuses other spellings since 2025-10 (U11).
        name_part, version_part = filename.split("-", 2)[:2]
        expected = f"{escaped}-{version}"
    else:
        # PEP 625: "{name}-{version}.tar.gz" with the name escaped as for wheels; legacy .zip sdists
        # are held to the same rule so a name can never be spelled two ways.
        stem = filename.removesuffix(".tar.gz").removesuffix(".zip")
        name_part, _, version_part = stem.rpartition("-")
        expected = f"{escaped}-{version}"
    if f"{name_part}-{version_part}" != expected:
        suffix = filename[len(name_part) + 1 + len(version_part) :]
        raise InvalidDistribution(
            f"{filename}: the filename is not normalized; it must start with {expected!r} "
            f"(name lowercased with runs of '-_.' as one '_', version in PEP 440 normal form), "
            f"e.g. {expected + suffix!r}; rebuild it with a current build backend"
        )
    return parsed


# --- wheels and zip sdists ----------------------------------------------------------------------


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
        _check_member_path(info.filename, filename)
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
    _check_total(filename, total, size, limits)


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


def _read_wheel(
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
        if normalize_or_none(di_name) != parsed.name or not _same_version(
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


def _read_zip_sdist(
    path: Path, filename: str, parsed: DistributionFilename, size: int, limits: Limits
) -> bytes:
    with _open_zip(path, filename, size, limits) as archive:
        root = _sdist_root((info.filename for info in archive.infolist()), filename, parsed)
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


# --- tar.gz sdists --------------------------------------------------------------------------------


class _CountingGzip:
    """A read-only stream of the decompressed bytes that stops at a limit (no gzip bomb).

    It also watches the tar headers going past (:class:`_TarHeaderGuard`), because tarfile reads
    a PAX or GNU long-name header's whole content into memory before it yields the member.
    """

    def __init__(self, raw: IO[bytes], filename: str, size: int, limits: Limits) -> None:
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")
        self._filename = filename
        self._size = size
        self._limits = limits
        self._guard = _TarHeaderGuard(filename)
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._gzip.read(n if n >= 0 else _MiB)
        except (OSError, EOFError, zlib.error) as exc:
            raise InvalidDistribution(
                f"{self._filename}: corrupt gzip stream ({exc}); rebuild the sdist"
            ) from exc
        self.count += len(data)
        _check_total(self._filename, self.count, self._size, self._limits)
        self._guard.feed(data)
        return data


# Extended headers (PAX "x"/"g", GNU long name "L" / long link "K") are read whole into memory by
# tarfile; a real one is a few hundred bytes.
_MAX_EXTENDED_HEADER = 1 * _MiB
_EXTENDED_TYPES = frozenset(b"xgLK")
# tarfile skips no data after these types whatever their size field says.
_NO_DATA_TYPES = frozenset(b"123456")


class _TarHeaderGuard:
    """Follows the 512-byte tar header blocks in the decompressed stream ahead of tarfile.

    Refuses extended headers over :data:`_MAX_EXTENDED_HEADER`, old GNU sparse members (their
    extra header blocks would put this guard out of step) and PAX ``size`` overrides (which
    would do the same; only members over 8 GiB need one, and those are refused anyway).
    """

    def __init__(self, filename: str) -> None:
        self._filename = filename
        self._pos = 0
        self._next_header = 0
        self._header = bytearray()
        self._pax = bytearray()
        self._pax_left = 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        i = 0
        while i < len(view):
            if self._pos < self._next_header:
                step = min(self._next_header - self._pos, len(view) - i)
                if self._pax_left:
                    take = min(step, self._pax_left)
                    self._pax += view[i : i + take]
                    self._pax_left -= take
                    if not self._pax_left:
                        self._check_pax()
                i += step
                self._pos += step
                continue
            take = min(512 - len(self._header), len(view) - i)
            self._header += view[i : i + take]
            i += take
            self._pos += take
            if len(self._header) == 512:
                self._on_header(bytes(self._header))
                self._header.clear()

    def _refuse(self, why: str) -> InvalidDistribution:
        return InvalidDistribution(f"{self._filename}: {why}; rebuild the sdist")

    def _on_header(self, header: bytes) -> None:
        if not any(header):
            return  # end-of-archive blocks: nothing follows them
        field = header[124:136]
        try:
            if field[0] & 0x80:
                # GNU base-256 size; 0xff means negative.
                if field[0] == 0xFF:
                    raise ValueError("negative size")
                size = int.from_bytes(field[1:], "big")
            else:
                size = int(field.strip(b"\x00 ") or b"0", 8)
        except ValueError:
            raise self._refuse("corrupt tar header (unreadable size)") from None
        kind = header[156]
        if kind == ord("S"):
            raise self._refuse("the archive has a GNU sparse member; sparse files are not allowed")
        if kind in _EXTENDED_TYPES:
            if size > _MAX_EXTENDED_HEADER:
                raise self._refuse(
                    f"a tar extended header of {size} bytes (limit {_MAX_EXTENDED_HEADER})"
                )
            if kind in b"xg":
                self._pax.clear()
                self._pax_left = size
        if kind in _NO_DATA_TYPES:
            size = 0
        self._next_header = self._pos + -(-size // 512) * 512

    def _check_pax(self) -> None:
        # PAX records are "<length> <keyword>=<value>\n".
        for record in bytes(self._pax).split(b"\n"):
            keyword = record.partition(b" ")[2].partition(b"=")[0]
            if keyword == b"size" or keyword.startswith(b"GNU.sparse"):
                raise self._refuse(
                    "a PAX header overrides a member's size or declares a sparse file; neither "
                    "is allowed in an sdist"
                )


def _read_tar_sdist(
    path: Path, filename: str, parsed: DistributionFilename, size: int, limits: Limits
) -> bytes:
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise InvalidDistribution(f"{filename}: cannot read the uploaded file: {exc}") from exc
    with raw:
        if raw.read(2) != b"\x1f\x8b":
            raise InvalidDistribution(
                f"{filename}: not a gzip file (a .tar.gz sdist must be gzip-compressed tar); "
                "upload the file your build backend produced"
            )
        raw.seek(0)
        stream = _CountingGzip(raw, filename, size, limits)
        try:
            # "r|": a forward-only stream, so nothing but the current member is ever held.
            with tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[call-overload]
                return _scan_tar(archive, filename, parsed, limits)
        except tarfile.TarError as exc:
            raise InvalidDistribution(
                f"{filename}: corrupt tar archive ({exc}); rebuild the sdist"
            ) from exc


def _scan_tar(
    archive: tarfile.TarFile, filename: str, parsed: DistributionFilename, limits: Limits
) -> bytes:
    metadata: bytes | None = None
    root: str | None = None
    seen: set[str] = set()
    for count, member in enumerate(archive, start=1):
        if count > limits.max_members:
            raise InvalidDistribution(
                f"{filename}: more than the limit of {limits.max_members} members"
            )
        name = member.name.removesuffix("/")
        _check_member_path(name, filename)
        if not (member.isreg() or member.isdir()):
            kind = (
                "symlink"
                if member.issym()
                else "hard link"
                if member.islnk()
                else "device or special file"
            )
            raise InvalidDistribution(
                f"{filename}: member {name!r} is a {kind}; an sdist may hold regular files and "
                "directories only (links can point outside the unpacked tree)"
            )
        if name in seen and member.isreg():
            raise InvalidDistribution(
                f"{filename}: member {name!r} appears twice; rebuild the sdist"
            )
        seen.add(name)
        root = _sdist_root([name], filename, parsed, root)
        if name == f"{root}/PKG-INFO" and member.isreg():
            if member.size > limits.max_metadata_size:
                raise InvalidDistribution(
                    f"{filename}: {name} is {member.size} bytes, more than the limit of "
                    f"{limits.max_metadata_size}"
                )
            extracted = archive.extractfile(member)
            assert extracted is not None  # a regular file always has content
            metadata = extracted.read(limits.max_metadata_size + 1)
    if root is None:
        raise InvalidDistribution(f"{filename}: the archive is empty; rebuild the sdist")
    if metadata is None:
        raise InvalidDistribution(
            f"{filename}: {root}/PKG-INFO is missing; an sdist must carry its core metadata "
            "there; rebuild it with a current build backend"
        )
    return metadata


def _sdist_root(
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
            if normalize_or_none(dir_name) != parsed.name or not _same_version(
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


# --- shared checks ------------------------------------------------------------------------------


def _check_member_path(name: str, filename: str) -> None:
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


def _check_total(filename: str, total: int, size: int, limits: Limits) -> None:
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


def _same_version(text: str, version: Version) -> bool:
    try:
        return Version(text) == version
    except InvalidVersion:
        return False


# --- core metadata --------------------------------------------------------------------------------

#: Metadata versions before PEP 639 brought License-File (2.4).
_BEFORE_LICENSE_FILE = frozenset({"1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "2.3"})


def _build(parsed: DistributionFilename, data: bytes, size: int) -> Distribution:
    filename = parsed.filename
    raw, unparsed = parse_email(data)
    duplicated = sorted(_SINGLE_FIELDS.intersection(unparsed))
    if duplicated:
        raise InvalidDistribution(
            f"{filename}: the core metadata has {', '.join(duplicated)} more than once or "
            "unreadable; each may appear once; rebuild the distribution"
        )
    if "license_files" in raw and raw.get("metadata_version", "") in _BEFORE_LICENSE_FILE:
        # setuptools and hatchling wrote License-File under Metadata-Version 2.1-2.3 for years
        # before PEP 639 (2.4) standardised it, and PyPI accepts those files (the real
        # pypi_attestations-0.0.19.tar.gz on PyPI is one). headwater does not use the field, so
        # it is left out of validation rather than refusing such a distribution.
        raw = {key: value for key, value in raw.items() if key != "license_files"}  # type: ignore[assignment]
    try:
        metadata = Metadata.from_raw(raw, validate=True)
    except ExceptionGroup as group:
        problems = "; ".join(str(exc) for exc in group.exceptions)
        raise InvalidDistribution(
            f"{filename}: invalid core metadata: {problems}; fix the project's metadata and rebuild"
        ) from group
    except InvalidMetadata as exc:
        raise InvalidDistribution(f"{filename}: invalid core metadata: {exc}") from exc
    try:
        name = normalize_name(metadata.name)
    except InvalidName as exc:
        raise InvalidDistribution(f"{filename}: {exc}") from exc
    if name != parsed.name:
        raise InvalidDistribution(
            f"{filename}: the core metadata says Name: {metadata.name}, but the filename is for "
            f"project {parsed.name!r}; the two must name the same project"
        )
    if metadata.version != parsed.version:
        raise InvalidDistribution(
            f"{filename}: the core metadata says Version: {metadata.version}, but the filename "
            f"says {parsed.version}; the two must be the same version"
        )
    # PEP 427: "{python tag}-{abi tag}-{platform tag}" end the name and hold no "-"; twine sends
    # the python tag as written (e.g. "py2.py3").
    is_wheel = parsed.kind == "wheel"
    pyversion = filename.removesuffix(".whl").split("-")[-3] if is_wheel else "source"
    return Distribution(
        filename=filename,
        name=name,
        display_name=metadata.name,
        version=str(metadata.version),
        canonical_version=_canonical(metadata.version),
        filetype="bdist_wheel" if parsed.kind == "wheel" else "sdist",
        pyversion=pyversion,
        size=size,
        metadata=data,
        metadata_sha256=hashlib.sha256(data).hexdigest(),
        metadata_version=metadata.metadata_version,
        requires_python=str(metadata.requires_python) if metadata.requires_python else None,
        summary=metadata.summary,
        requires_dist=tuple(str(r) for r in metadata.requires_dist or ()),
        provides_extra=tuple(str(e) for e in metadata.provides_extra or ()),
        dynamic=tuple(metadata.dynamic or ()),
    )


def _canonical(version: Version) -> str:
    return canonicalize_version(version, strip_trailing_zero=True)
