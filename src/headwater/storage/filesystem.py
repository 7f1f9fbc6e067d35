"""Storage in a local directory, with atomic writes and batched fsync.

Writes go to a temp file in ``<root>/.headwater-tmp/`` (same file system, outside any served
directory, so nginx and rsync never see a half-written file) and are renamed into place when
complete. ``sync()`` fsyncs every file written since the last barrier and their directories, in one
batch, so many small files cost one barrier instead of one fsync each. Blocking file work runs in
worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from headwater.storage.base import InvalidKey, NotFound, Stat, StorageError, check_key

__all__ = ["FileStorage"]

TMP_DIR = ".headwater-tmp"
_WRITE_BUFFER = 1 << 20  # hand chunks to a worker thread a MiB at a time


class _FileWriter:
    """Buffers chunks and writes them to the temp file from a worker thread."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer: list[bytes] = []
        self._buffered = 0
        self.aborted = False

    async def write(self, chunk: bytes) -> None:
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= _WRITE_BUFFER:
            await self.flush()

    async def flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            self._buffered = 0
            await asyncio.to_thread(_write_all, self._fd, data)

    def abort(self) -> None:
        self.aborted = True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_paths(files: list[Path], dirs: set[Path]) -> None:
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # replaced or deleted since; whatever replaced it is in the batch too
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for directory in dirs:
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class FileStorage:
    """A :class:`~headwater.storage.base.Storage` rooted at a local directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self._tmp = self.root / TMP_DIR
        self._unsynced_files: list[Path] = []
        self._unsynced_dirs: set[Path] = set()

    def __repr__(self) -> str:
        return f"FileStorage({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The file system path of ``key`` (checked to be a safe relative key)."""
        check_key(key)
        if key.split("/", 1)[0] == TMP_DIR:
            raise InvalidKey(f"storage key {key!r} is inside headwater's temp directory")
        return self.root / key

    async def read_bytes(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"{key} not found in {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc

    async def open_read(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_size: int = 1 << 16
    ) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"{key} not found in {self.root}") from exc
        try:
            if start:
                handle.seek(start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                want = chunk_size if remaining is None else min(chunk_size, remaining)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def stat(self, key: str) -> Stat | None:
        path = self.path(key)
        try:
            st = await asyncio.to_thread(path.stat)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        return Stat(size=st.st_size, mtime=st.st_mtime)

    @asynccontextmanager
    async def writer(self, key: str) -> AsyncIterator[_FileWriter]:
        target = self.path(key)
        await asyncio.to_thread(self._tmp.mkdir, parents=True, exist_ok=True)
        tmp = self._tmp / f"{secrets.token_hex(8)}.tmp"
        fd = await asyncio.to_thread(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        writer = _FileWriter(fd)
        published = False
        try:
            yield writer
            if not writer.aborted:
                await writer.flush()
                await asyncio.to_thread(self._publish, fd, tmp, target)
                published = True
        finally:
            if not published:
                await asyncio.to_thread(_discard, fd, tmp)

    def _publish(self, fd: int, tmp: Path, target: Path) -> None:
        os.close(fd)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
        self._unsynced_files.append(target)
        self._unsynced_dirs.add(target.parent)

    async def write_bytes(self, key: str, data: bytes) -> None:
        async with self.writer(key) as w:
            await w.write(data)

    async def delete(self, key: str) -> bool:
        path = self.path(key)
        try:
            await asyncio.to_thread(path.unlink)
        except (FileNotFoundError, NotADirectoryError):
            return False
        self._unsynced_dirs.add(path.parent)
        return True

    async def iter_keys(self, prefix: str = "") -> AsyncIterator[str]:
        base = self.path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        keys = await asyncio.to_thread(self._walk, base)
        for key in keys:
            yield key

    def _walk(self, base: Path) -> list[str]:
        keys: list[str] = []
        root_len = len(str(self.root)) + 1
        for dirpath, dirnames, filenames in os.walk(base):
            if dirpath == str(self.root) and TMP_DIR in dirnames:
                dirnames.remove(TMP_DIR)
            prefix = dirpath[root_len:]
            keys.extend(f"{prefix}/{name}" if prefix else name for name in filenames)
        return keys

    async def sync(self) -> None:
        files, self._unsynced_files = self._unsynced_files, []
        dirs, self._unsynced_dirs = self._unsynced_dirs, set()
        if files or dirs:
            await asyncio.to_thread(_fsync_paths, files, dirs)

    def clean_temp(self) -> int:
        """Remove temp files left by a crashed process; return how many. Call at start-up only."""
        if not self._tmp.is_dir():
            return 0
        removed = 0
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed


def _discard(fd: int, tmp: Path) -> None:
    with contextlib.suppress(OSError):  # already closed by a failed publish
        os.close(fd)
    tmp.unlink(missing_ok=True)
