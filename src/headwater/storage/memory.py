"""Storage in a dict, for tests and in-process fakes. Same contract as the file system."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from headwater.storage.base import NotFound, Stat, check_key

__all__ = ["MemoryStorage"]


class _MemoryWriter:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.aborted = False

    async def write(self, chunk: bytes) -> None:
        self.chunks.append(bytes(chunk))

    def abort(self) -> None:
        self.aborted = True


class MemoryStorage:
    """A :class:`~headwater.storage.base.Storage` in memory; ``objects`` maps keys to bytes."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, float]] = {}
        self.syncs = 0

    async def read_bytes(self, key: str) -> bytes:
        try:
            return self.objects[check_key(key)][0]
        except KeyError:
            raise NotFound(f"{key} not found in memory storage") from None

    async def open_read(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_size: int = 1 << 16
    ) -> AsyncIterator[bytes]:
        data = (await self.read_bytes(key))[start:end]
        for offset in range(0, len(data), chunk_size):
            yield data[offset : offset + chunk_size]

    async def stat(self, key: str) -> Stat | None:
        found = self.objects.get(check_key(key))
        return None if found is None else Stat(size=len(found[0]), mtime=found[1])

    async def digest(self, key: str) -> tuple[str, int]:
        data = await self.read_bytes(key)
        return hashlib.sha256(data).hexdigest(), len(data)

    @asynccontextmanager
    async def writer(self, key: str) -> AsyncIterator[_MemoryWriter]:
        check_key(key)
        writer = _MemoryWriter()
        yield writer
        if not writer.aborted:
            self.objects[key] = (b"".join(writer.chunks), time.time())

    async def write_bytes(self, key: str, data: bytes) -> None:
        self.objects[check_key(key)] = (bytes(data), time.time())

    async def write_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        for key, _ in items:  # check every key before writing any, like the file system
            check_key(key)
        for key, data in items:
            await self.write_bytes(key, data)

    async def delete(self, key: str) -> bool:
        return self.objects.pop(check_key(key), None) is not None

    async def delete_many(self, keys: Sequence[str]) -> list[bool]:
        for key in keys:  # every key checked before any is removed, like the file system
            check_key(key)
        return [self.objects.pop(key, None) is not None for key in keys]

    async def iter_keys(self, prefix: str = "") -> AsyncIterator[str]:
        directory = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        for key in list(self.objects):
            if key.startswith(directory):
                yield key

    async def iter_stats(self, prefix: str = "") -> AsyncIterator[tuple[str, Stat]]:
        async for key in self.iter_keys(prefix):
            found = self.objects.get(key)
            if found is not None:  # deleted while the listing was read
                yield key, Stat(size=len(found[0]), mtime=found[1])

    async def sync(self) -> None:
        self.syncs += 1
