"""The Storage protocol: where trees, caches and uploads keep their bytes.

Keys are relative POSIX paths (``web/simple/foo/index.v1_json``). Every write is atomic: a reader
sees the old content or the new content, never a mix, and a write that fails or is abandoned leaves
nothing behind. ``sync()`` is the durability barrier: what was written before it survives a power
loss once it returns (the mirror calls it before committing pages that point at new files).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

import msgspec

from headwater.errors import HeadwaterError, InvalidInput

__all__ = [
    "InvalidKey",
    "NotFound",
    "RedirectingStorage",
    "Stat",
    "Storage",
    "StorageError",
    "Writer",
    "check_key",
]

# Forbidden anywhere in a key: NUL and other control characters, backslashes (a separator on
# Windows and a confusion everywhere).
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


class StorageError(HeadwaterError):
    """A storage operation failed (disk full, permission denied, bucket unreachable)."""


class NotFound(StorageError, KeyError):
    """The key does not exist."""

    def __str__(self) -> str:  # KeyError's str() adds quotes around the message
        return str(self.args[0]) if self.args else "not found"


class InvalidKey(InvalidInput):
    """A key is not a safe relative path."""


class Stat(msgspec.Struct, frozen=True):
    """Size in bytes and modification time (seconds since the epoch) of a stored object."""

    size: int
    mtime: float


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative POSIX path; raise otherwise.

    Refuses empty keys, absolute paths, ``.`` and ``..`` components, empty components, backslashes
    and control characters, so no key can name anything outside the storage root.

    Raises:
        InvalidKey: naming the key and what is wrong with it.
    """
    if not key or key.startswith("/") or _BAD_CHARS.search(key):
        raise InvalidKey(
            f"unsafe storage key {key[:200]!r}: keys are relative paths without control characters"
        )
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKey(f"unsafe storage key {key[:200]!r}: empty, '.' or '..' path component")
    return key


@runtime_checkable
class Writer(Protocol):
    """An open atomic write. Bytes become visible at the key only when the context exits cleanly."""

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk``."""
        ...

    def abort(self) -> None:
        """Discard what was written; the context then exits without publishing anything."""
        ...


@runtime_checkable
class Storage(Protocol):
    """Where bytes live. Implementations: filesystem (atomic rename), S3 (storage/s3.py), memory
    (tests)."""

    async def read_bytes(self, key: str) -> bytes:
        """The whole content of ``key``. Raises NotFound."""
        ...

    def open_read(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_size: int = 1 << 16
    ) -> AsyncIterator[bytes]:
        """Stream ``key`` from byte ``start`` up to (not including) ``end``. Raises NotFound."""
        ...

    async def stat(self, key: str) -> Stat | None:
        """Size and mtime of ``key``, or None if it does not exist."""
        ...

    async def digest(self, key: str) -> tuple[str, int]:
        """The sha256 (hex) and size of ``key``'s content. Raises NotFound."""
        ...

    def writer(self, key: str) -> AbstractAsyncContextManager[Writer]:
        """Open an atomic streaming write to ``key`` (replacing any existing object)."""
        ...

    async def write_bytes(self, key: str, data: bytes) -> None:
        """Atomically replace ``key`` with ``data``."""
        ...

    async def write_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Atomically replace each key with its data (a key given twice ends with the later
        data). Each write is atomic on its own, but they may run concurrently and in any order
        (S3 does): a failure or a crash may leave any of them done. A caller that needs one
        write visible before another (a page after the files it lists) makes two calls. Every
        key is checked before anything is written."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it existed."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> list[bool]:
        """Remove each key, in order, in as few trips as the storage allows; return whether each
        existed. Each removal stands on its own: a crash may leave a prefix of the list done."""
        ...

    def iter_keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Every key under the directory ``prefix`` (recursively), in no particular order."""
        ...

    def iter_stats(self, prefix: str = "") -> AsyncIterator[tuple[str, Stat]]:
        """Every key under the directory ``prefix`` (recursively) with its size and mtime, in no
        particular order: the objects :meth:`iter_keys` lists (less any whose :meth:`stat` would
        say None: deleted meanwhile, or on a directory not a regular file), measured by the
        listing itself (S3's ListObjectsV2 page carries each object's size and date; a directory
        walk stats as it goes) rather than by one :meth:`stat` (one S3 HEAD) per key. What a
        caller that sums or compares sizes uses; one that must see an object's size at the
        moment it reads it (a tar member header) still calls :meth:`stat` then."""
        ...

    async def sync(self) -> None:
        """Durability barrier: everything written before this call survives a power loss."""
        ...


@runtime_checkable
class RedirectingStorage(Protocol):
    """A storage whose files may be fetched from elsewhere (a presigned URL, a CDN): the server
    answers a file request with a redirect instead of the bytes when :meth:`file_url` says so."""

    #: Whether :meth:`file_url` redirects at all (sources then need not read small files into
    #: memory to serve them).
    redirects_files: bool

    async def file_url(self, key: str) -> tuple[str, int] | None:
        """The URL to redirect an (authorized) request for ``key`` to and the seconds the
        redirect may be cached (0: never), or None to send the bytes."""
        ...
