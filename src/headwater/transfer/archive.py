"""A minimal streaming tar writer and reader for backup archives.

Backups are plain POSIX tar (ustar) files, so an operator can list and extract one with ``tar``
and compress it with anything that reads a pipe. The writer streams each member from an async
source (an object in a bucket) without holding it, which :mod:`tarfile` cannot do; the reader
streams each member to its consumer. Member names are short by construction (``tables/NAME.jsonl``,
``objects/000001``): storage keys never become tar names, so no long-name extension is needed and no
key can become a path on extraction.

Every member's SHA-256 is computed while it is written; the last member, ``SHA256SUMS``, lists them
(the format of ``sha256sum``), so ``sha256sum -c`` checks an extracted backup too.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import AsyncIterable, Iterator
from typing import BinaryIO

from headwater.errors import HeadwaterError

__all__ = ["ArchiveError", "Member", "TarReader", "TarWriter"]

BLOCK = 512
SUMS = "SHA256SUMS"
_CHUNK = 1 << 16


class ArchiveError(HeadwaterError):
    """The archive is not a well-formed backup tar (truncated, a bad header)."""


class TarWriter:
    """Writes members to ``out`` one after another; :meth:`close` adds ``SHA256SUMS``."""

    def __init__(self, out: BinaryIO, *, root: str, mtime: float) -> None:
        self._out = out
        self._root = root
        self._mtime = int(mtime)
        self.sums: list[tuple[str, str]] = []

    def _header(self, name: str, size: int) -> bytes:
        info = tarfile.TarInfo(f"{self._root}/{name}")
        info.size = size
        info.mtime = self._mtime
        info.mode = 0o600
        info.type = tarfile.REGTYPE
        return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._out.write(b"\0" * (BLOCK - size % BLOCK))

    def add_bytes(self, name: str, data: bytes) -> str:
        """Add a member holding ``data``; return its sha256."""
        self._out.write(self._header(name, len(data)))
        self._out.write(data)
        self._pad(len(data))
        digest = hashlib.sha256(data).hexdigest()
        self.sums.append((digest, name))
        return digest

    def add_file(self, name: str, handle: BinaryIO, size: int) -> str:
        """Add a member copied from an open file of ``size`` bytes; return its sha256."""
        self._out.write(self._header(name, size))
        digest = hashlib.sha256()
        left = size
        while left:
            chunk = handle.read(min(_CHUNK, left))
            if not chunk:
                raise ArchiveError(f"{name}: the file ended {left} bytes early")
            digest.update(chunk)
            self._out.write(chunk)
            left -= len(chunk)
        self._pad(size)
        self.sums.append((digest.hexdigest(), name))
        return digest.hexdigest()

    async def add_stream(self, name: str, chunks: AsyncIterable[bytes], size: int) -> str:
        """Add a member streamed from ``chunks``, which must be exactly ``size`` bytes; return its
        sha256.

        Raises:
            ArchiveError: the stream was longer or shorter than ``size`` (the object changed while
                it was read); the archive is then unusable and must be discarded.
        """
        self._out.write(self._header(name, size))
        digest = hashlib.sha256()
        written = 0
        async for chunk in chunks:
            written += len(chunk)
            if written > size:
                raise ArchiveError(f"{name}: longer than the {size} bytes it had when listed")
            digest.update(chunk)
            self._out.write(chunk)
        if written != size:
            raise ArchiveError(f"{name}: {written} bytes read, {size} expected")
        self._pad(size)
        self.sums.append((digest.hexdigest(), name))
        return digest.hexdigest()

    def close(self) -> None:
        """Add ``SHA256SUMS`` and the end-of-archive blocks."""
        listing = "".join(f"{digest}  {self._root}/{name}\n" for digest, name in self.sums)
        data = listing.encode()
        self._out.write(self._header(SUMS, len(data)))
        self._out.write(data)
        self._pad(len(data))
        self._out.write(b"\0" * (2 * BLOCK))


class Member:
    """One member being read: its name (without the root folder) and size; read its bytes with
    :meth:`chunks` (once) or :meth:`read` (small members)."""

    def __init__(self, reader: TarReader, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._reader = reader
        self._left = size
        self.digest = hashlib.sha256()

    def chunks(self) -> Iterator[bytes]:
        while self._left:
            chunk = self._reader._read(min(_CHUNK, self._left))
            self._left -= len(chunk)
            self.digest.update(chunk)
            yield chunk

    def read(self, limit: int) -> bytes:
        if self.size > limit:
            raise ArchiveError(f"{self.name}: {self.size} bytes, more than the {limit} allowed")
        return b"".join(self.chunks())

    def _finish(self) -> None:
        for _ in self.chunks():
            pass
        if self.size % BLOCK:
            self._reader._read(BLOCK - self.size % BLOCK)


#: The first bytes of the compressed formats an operator may have piped a backup through
#: (docs/backup-and-move.md) -> (the format's name, the command that undoes it).
COMPRESSIONS: tuple[tuple[bytes, str, str], ...] = (
    (b"\x1f\x8b", "gzip", "gunzip -k FILE"),
    (b"\xfd7zXZ\x00", "xz", "unxz -k FILE"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd FILE"),
    (b"BZh", "bzip2", "bunzip2 -k FILE"),
    (b"\x04\x22\x4d\x18", "lz4", "unlz4 FILE"),
)


def compression_of(start: bytes) -> tuple[str, str] | None:
    """The compression (name, how to undo it) whose magic bytes ``start`` begins with, if any."""
    for magic, name, undo in COMPRESSIONS:
        if start.startswith(magic):
            return name, undo
    return None


class TarReader:
    """Reads the members of a backup tar in order, checking the framing."""

    def __init__(self, handle: BinaryIO, *, root: str, where: str) -> None:
        self._handle = handle
        self._root = root
        self._where = where

    def _raw(self, n: int) -> bytes:
        """Up to ``n`` bytes; a failing read (EIO, a directory) is an ArchiveError naming it."""
        try:
            return self._handle.read(n)
        except OSError as exc:
            raise ArchiveError(f"cannot read {self._where}: {exc.strerror or exc}") from exc

    def _read(self, n: int) -> bytes:
        data = self._raw(n)
        if len(data) != n:
            raise ArchiveError(f"{self._where} is truncated: it ends inside a member")
        return data

    def __iter__(self) -> Iterator[Member]:
        first = True
        while True:
            block = self._raw(BLOCK)
            compressed = compression_of(block) if first else None
            first = False
            if compressed is not None:
                name, undo = compressed
                raise ArchiveError(
                    f"{self._where} is {name}-compressed, and a backup is read as a plain tar: "
                    f"decompress it first ({undo.replace('FILE', self._where)}) and give the "
                    "tar file"
                )
            if len(block) < BLOCK:
                raise ArchiveError(
                    f"{self._where} is truncated: it ends without the end-of-archive blocks"
                )
            if block == b"\0" * BLOCK:
                if self._raw(BLOCK) != b"\0" * BLOCK:
                    raise ArchiveError(
                        f"{self._where} is truncated: it ends inside the end-of-archive blocks"
                    )
                return
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
            except (tarfile.HeaderError, UnicodeDecodeError) as exc:
                raise ArchiveError(f"{self._where}: a damaged tar header ({exc})") from exc
            if not info.isreg() or not info.name.startswith(f"{self._root}/"):
                raise ArchiveError(
                    f"{self._where}: unexpected member {info.name[:100]!r}: not a headwater backup"
                )
            member = Member(self, info.name.removeprefix(f"{self._root}/"), info.size)
            yield member
            member._finish()
