"""Reading a tar.gz sdist as a forward-only stream, with the gzip and tar headers kept in check.

The tar.gz half of :func:`headwater.repository.artifacts.inspect_distribution`. The archive is
decompressed as it is read and never held whole: :class:`_CountingGzip` stops at the total and
ratio limits (no gzip bomb) and :class:`_TarHeaderGuard` follows the tar header blocks ahead of
:mod:`tarfile`, which would read a PAX or GNU long-name header whole into memory. Members must be
regular files or directories under the single ``{name}-{version}`` directory; the one kept in
memory is ``PKG-INFO``.

Specs: source-distribution-format (PEP 625), POSIX pax / GNU tar header layout.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from pathlib import Path
from typing import IO

from headwater.repository._archive import (
    InvalidDistribution,
    Limits,
    MiB,
    check_member_path,
    check_total,
    sdist_root,
)
from headwater.simple.filenames import DistributionFilename


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
            data = self._gzip.read(n if n >= 0 else MiB)
        except (OSError, EOFError, zlib.error) as exc:
            raise InvalidDistribution(
                f"{self._filename}: corrupt gzip stream ({exc}); rebuild the sdist"
            ) from exc
        self.count += len(data)
        check_total(self._filename, self.count, self._size, self._limits)
        self._guard.feed(data)
        return data


# Extended headers (PAX "x"/"g", GNU long name "L" / long link "K") are read whole into memory by
# tarfile; a real one is a few hundred bytes.
_MAX_EXTENDED_HEADER = 1 * MiB
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


def read_tar_sdist_metadata(
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
        check_member_path(name, filename)
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
        root = sdist_root([name], filename, parsed, root)
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
