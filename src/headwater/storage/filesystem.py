"""Storage in a local directory, with atomic writes and batched fsync.

A write goes to a file nobody can see until it is complete, then appears at its key in one step:

- On Linux, an unnamed file (``O_TMPFILE``) in the key's own directory, given its name with
  ``linkat(2)`` when complete. A reader (nginx, rsync) never sees it before, a crash leaves
  nothing behind (the kernel frees an unnamed file), and its inode is allocated next to its
  directory rather than next to a shared temp directory: on ext4, every file created in one
  directory comes from the same block group, which then fills with freed inodes that each later
  allocation scans past.
- ``linkat`` cannot replace a file, so an existing key (a page rewritten by a later sync) is
  replaced by linking the finished file into ``<root>/.headwater-tmp/`` and renaming it over
  the key (atomic on POSIX).
- A write that is aborted (an exception in the ``writer`` block, ``abort()``, cancellation, a
  failed publish) removes the directories it made for its key while they are empty, so failed
  downloads leave no empty ``packages/<aa>/<bb>/<rest>/`` behind. An unnamed file does not keep
  its directory from being removed: a writer whose directory vanished that way makes it again
  when it links its file (only that rare case costs extra syscalls).
- Where ``O_TMPFILE`` is not supported (other systems, some file systems), a named temp file in
  ``<root>/.headwater-tmp/`` (same file system, outside any served directory) renamed into place.

**Permissions.** Files are created with the storage's ``mode`` (``PUBLIC``, 0644, the default:
a mirror tree is meant to be served by nginx or copied by rsync as another user; ``PRIVATE``,
0600, for hosted uploads and proxy caches) and directories with the matching 0755 or 0700; the
process umask can only take bits away. The root's parents are made with the same mode.

``sync()`` is the durability barrier for everything written since the last one. It uses one
``syncfs(2)`` for the whole file system where Linux offers it (measured: 2,000 small files cost
12 s as individual fsyncs and a fraction of a second as one syncfs), and otherwise fsyncs each
written file and its directory. Blocking file work runs off the event loop: small operations
(create, write, link, stat, delete) in one worker thread per storage that takes them in batches
(:mod:`headwater.storage._batch`), the barrier, tree walks, hashing and streamed reads in
asyncio's default executor, so a long ``syncfs`` never holds up writes.

This module is the write protocol and the :class:`~headwater.storage.base.Storage` interface;
the blocking steps it is made of (directories, unlink, stat, hash, fsync) are
:mod:`headwater.storage._fileops`.
"""

# The write path works on str paths with os calls: building pathlib objects for every file was
# about a tenth of a 2,000-project sync's CPU in a py-spy profile.
# ruff: noqa: PTH105, PTH106, PTH108, PTH112, PTH116

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import itertools
import os
import stat as stat_module
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from headwater.storage._batch import BatchThread
from headwater.storage._fileops import (
    DIR_RACE_RETRIES,
    discard,
    fsync_paths,
    hash_file,
    make_dirs,
    next_batch,
    proc_self_fd,
    stat_file,
    unlink_all,
    walk_stats,
    write_all,
)
from headwater.storage.base import InvalidKey, NotFound, Stat, StorageError, check_key

__all__ = ["PRIVATE", "PUBLIC", "FileStorage", "directory_mode", "private_directory"]

TMP_DIR = ".headwater-tmp"
#: Files a listing with sizes stats per trip to its worker thread.
_STAT_BATCH = 1024
Durability = str  # "syncfs" | "fsync" | "none"


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return syncfs


_SYNCFS = _load_syncfs()
_WRITE_BUFFER = 1 << 20  # hand chunks to a worker thread a MiB at a time
_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)
# What open(O_TMPFILE) fails with where the file system or kernel cannot make unnamed files.
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOSYS})


# What link(2) fails with where the file system has no hard links (vfat, exFAT, FUSE object
# stores, some SMB mounts) or the link would cross a mount inside the tree.
_NO_HARDLINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV, errno.EMLINK}
)


class _NoHardLinks(Exception):
    """This file system refused a hard link: write a copy instead."""


class _FileWriter:
    """Buffers chunks and writes them to the unpublished file from a worker thread."""

    def __init__(self, fd: int, thread: BatchThread) -> None:
        self._fd = fd
        self._thread = thread
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
            await self._thread.run(write_all, self._fd, data)

    def abort(self) -> None:
        self.aborted = True


#: File modes for :class:`FileStorage`: readable by all (mirror trees) or by the owner only.
PUBLIC = 0o644
PRIVATE = 0o600


def directory_mode(file_mode: int) -> int:
    """The mode of directories holding files of ``file_mode``: searchable where readable."""
    return 0o700 | file_mode | ((file_mode & 0o044) >> 2)


def private_directory(path: str | os.PathLike[str]) -> int | None:
    """Make ``path`` (and missing parents) a directory only its owner can enter (0700), or
    tighten it to 0700 if group or others have any access to it (a directory an older headwater
    made 0755). Returns the mode it had when it was tightened, else None.

    Raises:
        OSError: it cannot be made, or is not ours to change.
    """
    directory = os.fspath(path)
    make_dirs(directory, 0o700)
    st = os.stat(directory)
    mode = stat_module.S_IMODE(st.st_mode)
    if mode & 0o077:
        os.chmod(directory, 0o700)  # noqa: PTH101 (this module speaks str paths)
        return mode
    return None


class FileStorage:
    """A :class:`~headwater.storage.base.Storage` rooted at a local directory."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        durability: Durability = "syncfs",
        mode: int = PUBLIC,
    ) -> None:
        """``durability``: ``"syncfs"`` (one syncfs per barrier; falls back to ``"fsync"`` where
        unavailable), ``"fsync"`` (each written file and directory), or ``"none"`` (the barrier
        does nothing: for scratch trees and benchmarks of the rest). ``mode``: of the files it
        creates (:data:`PUBLIC` or :data:`PRIVATE`; directories get :func:`directory_mode`).

        Raises:
            StorageError: ``root`` is a file, not a directory."""
        if durability not in ("syncfs", "fsync", "none"):
            raise ValueError(f"durability must be 'syncfs', 'fsync' or 'none', not {durability!r}")
        if mode & ~0o666 or (mode & 0o600) != 0o600:
            raise ValueError(f"file mode must give the owner rw- and nobody x, not {mode:#o}")
        self.mode = mode
        self._dir_mode = directory_mode(mode)
        self.root = Path(root).resolve()
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(
                f"{self.root} is a file, not a directory: a tree, a cache or a hosted index's "
                "files live in a directory; give a directory (or a new path)"
            )
        self.durability = "fsync" if durability == "syncfs" and _SYNCFS is None else durability
        self._tmp = self.root / TMP_DIR
        self._tmp_ready = False
        self._names = itertools.count()
        # Unnamed files until the first sign that this system cannot make them (then named temps).
        # linkat names them through /proc/self/fd: without /proc (a chroot, a minimal
        # container) they could be made but never named.
        self._tmpfile = _O_TMPFILE != 0 and os.path.isdir("/proc/self/fd")
        # Second names for identical pages until the file system refuses hard links.
        self._hardlinks = True
        self._thread = BatchThread()
        # stat() gets a lane of its own: a server's per-request stat must not wait behind a
        # large write or a cache flush queued on the write thread.
        self._stat_thread = BatchThread()
        self._prefix = f"{self.root}/"
        self._unsynced_files: list[Path] = []
        self._unsynced_dirs: set[Path] = set()
        self._dirty = False

    def __repr__(self) -> str:
        return f"FileStorage({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The file system path of ``key`` (checked to be a safe relative key)."""
        check_key(key)
        if key.split("/", 1)[0] == TMP_DIR:
            raise InvalidKey(f"storage key {key!r} is inside headwater's temp directory")
        return self.root / key

    def _target(self, key: str) -> str:
        """:meth:`path` as a str, without building a Path (the write path does this per file)."""
        check_key(key)
        if key.startswith(TMP_DIR) and key.split("/", 1)[0] == TMP_DIR:
            raise InvalidKey(f"storage key {key!r} is inside headwater's temp directory")
        return self._prefix + key

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
        st = await self._stat_thread.run(stat_file, self._target(key))
        return None if st is None else Stat(size=st.st_size, mtime=st.st_mtime)

    async def digest(self, key: str) -> tuple[str, int]:
        path = self.path(key)
        try:
            return await asyncio.to_thread(hash_file, path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"{key} not found in {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def _ensure_tmp(self) -> None:
        if not self._tmp_ready:
            make_dirs(str(self._tmp), self._dir_mode)
            self._tmp_ready = True

    def _temp_name(self) -> str:
        # Unique per process and call; no randomness needed (urandom is slow on some hosts).
        return f"{self._tmp}/{os.getpid()}-{next(self._names)}.tmp"

    def _open_unpublished(self, target: str) -> tuple[int, str | None, str | None]:
        """Open a file to write ``target``'s new content into: an unnamed file in its directory
        (returns ``(fd, None, made)``), or a named temp file (returns ``(fd, temp path, None)``).
        ``made`` is the topmost directory this call created for it (None if it made none): an
        aborted write removes what it made (:meth:`_unmake_dirs`)."""
        self._ensure_tmp()
        if self._tmpfile:
            directory = target.rpartition("/")[0]
            made: str | None = None
            try:
                for _ in range(DIR_RACE_RETRIES):
                    try:
                        return os.open(directory, _O_TMPFILE | os.O_WRONLY, self.mode), None, made
                    except FileNotFoundError:  # the first file in this directory
                        made = make_dirs(directory, self._dir_mode) or made
                # Every try found the directory removed again by aborting writers (other
                # processes sharing this tree): give up on this write.
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), directory)
            except OSError as exc:
                if made is not None:
                    self._unmake_dirs(directory, made)
                if exc.errno not in _NO_TMPFILE:
                    raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
                self._tmpfile = False  # this file system cannot: named temp files from now on
        tmp = self._temp_name()
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.mode), tmp, None

    def _unmake_dirs(self, directory: str, made: str) -> None:
        """Remove ``directory`` and its parents up to ``made`` (the topmost one a write created)
        while they are empty: an aborted write leaves no empty directory per key behind.

        Stops at the first directory that is not empty (another key's file, or a directory
        another writer made meanwhile) and never removes the storage root. A directory already
        gone (ENOENT) is passed over. Another writer may hold an unnamed file for this very
        directory (unnamed files do not keep it from being removed): its link at publish time
        then finds the directory missing and makes it again (:meth:`_link_unnamed`)."""
        root = str(self.root)
        while directory.startswith(self._prefix):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError:  # ENOTEMPTY/EEXIST (in use), or not ours to remove: leave it
                return
            if directory == made:
                return
            directory = directory.rpartition("/")[0]
            if directory == root:
                return

    @asynccontextmanager
    async def writer(self, key: str) -> AsyncIterator[_FileWriter]:
        target = self._target(key)
        opening = self._thread.run(self._open_unpublished, target)
        try:
            fd, tmp, made = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The open still happens on the thread: drop the file it makes.
            opening.add_done_callback(lambda done: self._discard_opened(done, target))
            raise
        writer = _FileWriter(fd, self._thread)
        handed_over = False  # _publish owns (and closes) the file from the moment it is queued
        try:
            yield writer
            if not writer.aborted:
                await writer.flush()
                handed_over = True
                await self._thread.run(self._publish, fd, tmp, target, made)
        finally:
            if not handed_over:
                # Queued after every write of this file (one thread, in order): never closes
                # a descriptor number that another file has been given since.
                await self._thread.run(self._discard, fd, tmp, target, made)

    def _discard_opened(
        self, opening: asyncio.Future[tuple[int, str | None, str | None]], target: str
    ) -> None:
        if not opening.cancelled() and opening.exception() is None:
            fd, tmp, made = opening.result()
            self._thread.run(self._discard, fd, tmp, target, made)

    def _discard(self, fd: int, tmp: str | None, target: str, made: str | None) -> None:
        """Drop an unpublished file and the directories made for it (now empty)."""
        discard(fd, tmp)
        if made is not None:
            self._unmake_dirs(target.rpartition("/")[0], made)

    def _publish(self, fd: int, tmp: str | None, target: str, made: str | None = None) -> None:
        """Give the finished file ``fd`` the name ``target`` (replacing any file there) and close
        it. An unnamed file is linked in place; a named temp file is renamed. If that fails,
        the directories made for it (``made``, or here) are removed again while empty."""
        try:
            if tmp is None:
                self._link_unnamed(fd, target)
            else:
                os.close(fd)
                fd = -1
                try:
                    os.replace(tmp, target)
                except FileNotFoundError:  # first file in this directory
                    made = make_dirs(target.rpartition("/")[0], self._dir_mode) or made
                    os.replace(tmp, target)
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if made is not None:
                self._unmake_dirs(target.rpartition("/")[0], made)
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            if fd >= 0:
                os.close(fd)
        self._dirty = True
        if self.durability == "fsync":
            self._unsynced_files.append(Path(target))
            self._unsynced_dirs.add(Path(target).parent)

    def _link_unnamed(self, fd: int, target: str) -> None:
        # linkat(AT_FDCWD... "/proc/self/fd/N", AT_SYMLINK_FOLLOW): the documented way to name an
        # O_TMPFILE file without privileges. It refuses to replace: an existing key gets the file
        # under a temp name first, then the rename replaces it atomically.
        source = proc_self_fd()

        def link(name: str) -> None:
            os.link(str(fd), name, src_dir_fd=source, follow_symlinks=True)

        for attempt in range(DIR_RACE_RETRIES):
            try:
                self._name(link, target)
                return
            except FileNotFoundError:
                # The directory this file was opened in was removed meanwhile: an aborted write
                # of another key in it (_unmake_dirs) found it empty, as unnamed files do not
                # count. Make it again; the unnamed file can be linked into any directory of
                # the file system. Only the first call (no exception) costs nothing extra.
                if attempt == DIR_RACE_RETRIES - 1:
                    raise
                make_dirs(target.rpartition("/")[0], self._dir_mode)

    def _name(self, link: Callable[[str], None], target: str) -> None:
        """``link(name)`` gives a file one more name: make that ``target``, replacing a file
        already there atomically (link(2) refuses to replace: a temp name first, then rename)."""
        try:
            link(target)
        except FileExistsError:
            tmp = self._temp_name()
            link(tmp)
            try:
                os.replace(tmp, target)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    def _write_whole(self, target: str, data: bytes) -> None:
        fd, tmp, made = self._open_unpublished(target)
        try:
            write_all(fd, data)
        except BaseException:
            self._discard(fd, tmp, target, made)
            raise
        self._publish(fd, tmp, target, made)

    async def write_bytes(self, key: str, data: bytes) -> None:
        await self._thread.run(self._write_whole, self._target(key), data)

    async def write_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        targets = [(self._target(key), data) for key, data in items]  # check every key first
        await self._thread.run(self._write_all_whole, targets)

    def _write_all_whole(self, targets: list[tuple[str, bytes]]) -> None:
        previous: tuple[str, bytes] | None = None
        for target, data in targets:
            if self._hardlinks and previous is not None and previous[1] == data:
                # The same bytes as the item before (a project's index.html and index.v1_html):
                # a second name for that file, not a second file. Each name is still replaced
                # atomically, and a later write of either gives that one a new file.
                try:
                    self._link_copy(previous[0], target)
                except _NoHardLinks:
                    self._hardlinks = False  # this file system cannot: copies from now on
                    self._write_whole(target, data)
            else:
                self._write_whole(target, data)
            previous = (target, data)

    def _link_copy(self, source: str, target: str) -> None:
        try:
            try:
                self._name(lambda name: os.link(source, name), target)
            except FileNotFoundError:  # a directory of its own
                make_dirs(target.rpartition("/")[0], self._dir_mode)
                os.link(source, target)
        except OSError as exc:
            if exc.errno in _NO_HARDLINKS:
                raise _NoHardLinks from exc
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
        self._dirty = True
        if self.durability == "fsync":
            self._unsynced_dirs.add(Path(target).parent)

    async def delete(self, key: str) -> bool:
        path = self._target(key)
        try:
            await self._thread.run(os.unlink, path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        self._dirty = True
        if self.durability == "fsync":
            self._unsynced_dirs.add(Path(path).parent)
        return True

    async def delete_many(self, keys: Sequence[str]) -> list[bool]:
        paths = [self._target(key) for key in keys]  # check every key first
        if not paths:
            return []
        self._dirty = True  # before: a failure part way has removed a prefix
        existed = await self._thread.run(unlink_all, paths)
        if self.durability == "fsync":
            self._unsynced_dirs.update(Path(path).parent for path in paths)
        return existed

    async def iter_keys(self, prefix: str = "") -> AsyncIterator[str]:
        base = self.path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        keys = await asyncio.to_thread(self._walk, base)
        for key in keys:
            yield key

    async def iter_stats(self, prefix: str = "") -> AsyncIterator[tuple[str, Stat]]:
        # One walk that stats each file where it finds it, in batches on a worker thread (not
        # one thread hop per file, and not the whole tree in memory at once).
        base = self.path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        # A listing left early is closed when dropped (its open directory with it).
        walk = walk_stats(str(self.root), str(base), TMP_DIR)
        while batch := await asyncio.to_thread(next_batch, walk, _STAT_BATCH):
            for key, st in batch:
                yield key, Stat(size=st.st_size, mtime=st.st_mtime)

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
        if not self._dirty:
            return
        self._dirty = False
        if self.durability == "syncfs":
            await asyncio.to_thread(self._syncfs)
        elif self.durability == "fsync":
            files, self._unsynced_files = self._unsynced_files, []
            dirs, self._unsynced_dirs = self._unsynced_dirs, set()
            await asyncio.to_thread(fsync_paths, files, dirs)

    def _syncfs(self) -> None:
        assert _SYNCFS is not None
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _SYNCFS(fd) != 0:
                err = ctypes.get_errno()
                raise StorageError(f"syncfs on {self.root} failed: {os.strerror(err)}")
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def exclusive(self, name: str = "state/.lock") -> Iterator[None]:
        """Hold an exclusive lock on the tree for this process (released when the process dies).

        Raises:
            StorageError: another process holds it.
        """
        path = self.path(name)
        make_dirs(str(path.parent), self._dir_mode)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, self.mode)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                raise StorageError(
                    f"another headwater process (pid {holder}) is working on {self.root}; wait for "
                    "it to finish (nothing was changed)"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    def clean_temp(self) -> int:
        """Remove temp files left by a crashed process; return how many. Call at start-up only."""
        if not self._tmp.is_dir():
            return 0
        removed = 0
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed
