"""The archive: plain POSIX tar (ustar), written and read strictly in the manifest's order.

Why tar: it streams (no central directory at the end, unlike zip, so a bundle can be piped
through ``ssh``, written to tape or read from stdin), every system can list it (``tar -tvf``),
and its framing is fixed-size 512-byte blocks, so the size of a volume is known before a byte is
written. Members are named by their place in the manifest (``data/<entry>.<offset>``), not by the
tree's keys: names stay under ustar's 100 bytes (no PAX records, so a header is always exactly
one block), and extracting a bundle with ``tar -x`` can never write outside the directory,
whatever an upstream named its files.

Each volume::

    headwater-bundle/manifest.json    the manifest (identical in every volume)
    headwater-bundle/manifest.sig     Ed25519 signature over it, hex
    headwater-bundle/volume           this volume's number
    data/<entry>.<offset>             the pieces planned for this volume, in manifest order
    (two zero blocks)
"""

from __future__ import annotations

import contextlib
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from headwater.sync.bundle.manifest import BLOCK, END_OF_ARCHIVE, InvalidBundle, padded
from headwater.sync.bundle.pipeline import CHUNK, sequential

__all__ = [
    "MANIFEST_MEMBER",
    "SIGNATURE_MEMBER",
    "VOLUME_MEMBER",
    "MemberReader",
    "header_bytes",
    "member_header",
    "piece_name",
]

MANIFEST_MEMBER = "headwater-bundle/manifest.json"
SIGNATURE_MEMBER = "headwater-bundle/manifest.sig"
VOLUME_MEMBER = "headwater-bundle/volume"


def piece_name(index: int, offset: int) -> str:
    return f"data/{index}.{offset}"


def member_header(name: str, size: int, mtime: int) -> bytes:
    """One ustar header block."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = mtime
    info.type = tarfile.REGTYPE
    raw = info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")
    assert len(raw) == BLOCK
    return raw


def header_bytes(manifest: int, signature: int, volume: int) -> int:
    """Bytes a volume spends on its three header members."""
    return 3 * BLOCK + padded(manifest) + padded(signature) + padded(volume)


def small_member(name: str, data: bytes, mtime: int) -> bytes:
    return member_header(name, len(data), mtime) + data + b"\0" * (padded(len(data)) - len(data))


class MemberReader:
    """Reads one volume's members in order from a stream, checking the tar framing.

    ``where`` names the volume in errors. Every error is :class:`InvalidBundle`. Data is read
    into one reused buffer (:mod:`~headwater.sync.bundle.pipeline`).
    """

    def __init__(self, stream: BinaryIO, where: str) -> None:
        self._stream = stream
        self._buffer: memoryview | None = None
        self.where = where
        self.offset = 0
        with contextlib.suppress(OSError, AttributeError, ValueError):
            sequential(stream.fileno())

    def _read_exact(self, size: int) -> bytes:
        data = self._stream.read(size)
        if data is None or len(data) != size:
            raise InvalidBundle(
                f"{self.where} ends early at byte {self.offset + len(data or b'')}: the volume is "
                "cut short (copy it again); nothing was changed"
            )
        self.offset += size
        return data

    def next_header(self, expected: str) -> int:
        """Read the next member's header; it must be named ``expected``. Returns its size."""
        block = self._read_exact(BLOCK)
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
        except (tarfile.HeaderError, UnicodeDecodeError) as exc:
            raise InvalidBundle(
                f"{self.where}: damaged tar header at byte {self.offset - BLOCK} (expected "
                f"{expected}): {exc}; nothing was changed"
            ) from exc
        if info.name != expected or not info.isreg():
            raise InvalidBundle(
                f"{self.where}: found member {info.name[:100]!r} where {expected} belongs: the "
                "volume was altered or is not this bundle's; nothing was changed"
            )
        return info.size

    def read_small(self, expected: str, limit: int) -> bytes:
        size = self.next_header(expected)
        if size > limit:
            raise InvalidBundle(f"{self.where}: {expected} is {size} bytes, more than {limit}")
        data = self._read_exact(size)
        self._padding(size)
        return data

    def _padding(self, size: int) -> None:
        """A member's padding must be zeros: no byte of a volume goes unchecked."""
        if self._read_exact(padded(size) - size).strip(b"\0"):
            raise InvalidBundle(
                f"{self.where}: non-zero bytes in a member's padding before byte {self.offset}: "
                "the volume is damaged (copy it again); nothing was changed"
            )

    def read_data(self, expected: str, length: int) -> Iterator[memoryview]:
        """The member's bytes in chunks, each a view of one reused buffer, valid until the next
        is asked for; its header must say ``length``."""
        size = self.next_header(expected)
        if size != length:
            raise InvalidBundle(
                f"{self.where}: member {expected} holds {size} bytes where the manifest says "
                f"{length}; nothing was changed"
            )
        if self._buffer is None:
            self._buffer = memoryview(bytearray(CHUNK))
        left = size
        while left:
            want = min(len(self._buffer), left)
            got = self._stream.readinto(self._buffer[:want])  # type: ignore[attr-defined]
            if not got:
                self._read_exact(left)  # raises: the volume ends early
            self.offset += got
            left -= got
            yield self._buffer[:got]
        self._padding(size)

    def read_end(self) -> None:
        """The end-of-archive blocks, and nothing after them."""
        end = self._read_exact(END_OF_ARCHIVE)
        if end.strip(b"\0"):
            raise InvalidBundle(
                f"{self.where}: more members follow the last one the manifest plans for this "
                "volume; nothing was changed"
            )
