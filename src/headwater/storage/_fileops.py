"""The blocking file-system steps under :class:`~headwater.storage.filesystem.FileStorage`.

Plain functions on str paths, run in a storage's worker thread (:mod:`headwater.storage._batch`)
or asyncio's executor: making a key's directories when most likely only the last one is missing
(and racing safely with aborted writes that remove them again), unlinking in bulk, stat of a
regular file, hashing, writing a whole buffer, dropping an unpublished file, fsync of files and
directories, and the one ``/proc/self/fd`` directory that ``linkat`` names unnamed files through.
"""

# The write path works on str paths with os calls: building pathlib objects for every file was
# about a tenth of a 2,000-project sync's CPU in a py-spy profile.
# ruff: noqa: PTH102, PTH108, PTH112, PTH116

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import stat as stat_module
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

__all__ = [
    "DIR_RACE_RETRIES",
    "discard",
    "fsync_paths",
    "hash_file",
    "make_dirs",
    "next_batch",
    "proc_self_fd",
    "stat_file",
    "unlink_all",
    "walk_stats",
    "write_all",
]

T = TypeVar("T")

# How often a write makes its directory again when an aborted write of another key (here or in
# another process sharing the tree) removed it between this write's mkdir and its open or link.
DIR_RACE_RETRIES = 3

_PROC_FD = -1  # /proc/self/fd, the source directory of linkat for every FileStorage


_PROC_FD_LOCK = threading.Lock()


def proc_self_fd() -> int:
    global _PROC_FD
    if _PROC_FD < 0:
        with _PROC_FD_LOCK:  # storages' threads may ask at once: open it once
            if _PROC_FD < 0:
                _PROC_FD = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    return _PROC_FD


def _forget_proc_fd_in_child() -> None:
    global _PROC_FD
    if _PROC_FD >= 0:  # the parent's /proc/<pid>/fd: its fd numbers are not the child's
        with contextlib.suppress(OSError):
            os.close(_PROC_FD)
        _PROC_FD = -1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_proc_fd_in_child)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_paths(files: list[Path], dirs: set[Path]) -> None:
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


def unlink_all(paths: list[str]) -> list[bool]:
    """Unlink each path in order (one trip to the storage thread for all); whether each existed."""
    existed = []
    for path in paths:
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            existed.append(False)
        else:
            existed.append(True)
    return existed


def make_dirs(directory: str, mode: int = 0o755) -> str | None:
    """``os.makedirs(directory, mode, exist_ok=True)`` for a directory that is most likely missing
    while its parent exists (a new sha256 directory): mkdir first, parents only on ENOENT,
    without makedirs' stat of every parent (a tenth of the storage thread's time in a sync).
    Unlike ``os.makedirs``, missing parents get ``mode`` too. Returns the topmost directory it
    created (None if all existed), for an aborted write to remove again.

    An aborted write (here or in another process) may remove a directory between this call's
    mkdir of it and of its child, or between EEXIST and the check that it is a directory: each
    such step is tried again, up to ``DIR_RACE_RETRIES`` times."""
    top: str | None = None
    for _ in range(DIR_RACE_RETRIES):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            if os.path.isdir(directory):
                return top
            if os.path.lexists(directory):  # a file (or a dangling link) in the way
                raise
            continue  # removed since: again
        except FileNotFoundError:
            parent = directory.rpartition("/")[0]
            if not parent or parent == directory:
                raise
            top = make_dirs(parent, mode) or top
            continue  # the parent exists now (unless removed again): mkdir once more
        return top or directory
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), directory)


def stat_file(path: str) -> os.stat_result | None:
    """The stat of the regular file at ``path``, or None (missing, or not a regular file)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st if stat_module.S_ISREG(st.st_mode) else None


def walk_stats(root: str, base: str, skip: str) -> Iterator[tuple[str, os.stat_result]]:
    """Each regular file under ``base`` (inside ``root``) as its key relative to ``root`` and its
    stat, found by ``os.scandir`` as it walks: the entries a directory walk lists (symbolic links
    to directories are not followed), each stat'ed where it was found. ``skip`` names a top
    directory of ``root`` left out (the temporary files). A file removed meanwhile is left out."""
    root_len = len(root) + 1
    pending = [base]
    while pending:
        directory = pending.pop()
        try:
            listing = os.scandir(directory)
        except OSError:  # gone, not a directory, unreadable: skipped, as os.walk does
            continue
        with listing:
            for entry in listing:
                if entry.is_dir():
                    if not entry.is_symlink() and not (directory == root and entry.name == skip):
                        pending.append(entry.path)
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                if stat_module.S_ISREG(st.st_mode):
                    yield entry.path[root_len:], st


def next_batch(items: Iterator[T], size: int) -> list[T]:
    """Up to ``size`` more items of ``items`` (an empty list once it is exhausted)."""
    return list(itertools.islice(items, size))


def hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):  # hashlib releases the GIL on large updates
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def discard(fd: int, tmp: str | None) -> None:
    """Drop an unpublished file (an unnamed one disappears when closed)."""
    with contextlib.suppress(OSError):  # already closed by a failed publish
        os.close(fd)
    if tmp is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
