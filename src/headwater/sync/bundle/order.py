"""The order in which ``bundle create`` reads a tree: where its files lie on the disk.

A tree's files are addressed by their sha256, so the order of their keys is random against where
the file system put them: reading them by key makes the disk jump between distant places for
every file. ``bundle create`` reads (and so writes into the bundle) the files in the order of
their place on the disk instead, which is one sweep across it.

Only the entries applied *before the barrier* may move: distribution files and their sidecars
(``.metadata``, ``.provenance``). Among themselves their order means nothing (the importer applies
them all, then makes them durable, then publishes pages). Everything from the shared-file markers
on (pages, the root, ``web/last-modified``, the state) keeps the apply order, after them; the
importer relies on that order too (it also sorts what it applies by :func:`apply_rank`, so a
bundle written in any order applies safely).

The place of a file on the disk:

========================  ==============================================================
file system               position used
========================  ==============================================================
answers ``FS_IOC_FIEMAP``  physical byte offset of the file's first extent (ext4, XFS,
                          btrfs, ...); a file with no extent yet (empty, or data still in
                          memory) sorts first
does not (tmpfs, NFS,     the inode number for every file of the tree (file systems place
FUSE, another OS)         a file's data near its inode, so inode order is the closest
                          cheap guess)
========================  ==============================================================

The decision is per tree: positions of two kinds are never compared.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

from headwater.sync.bundle.listing import apply_rank

__all__ = ["BARRIER_RANK", "disk_positions", "first_extent", "read_order"]

#: Entries with an apply rank below this are applied before the durability barrier (files and
#: their sidecars); from it on they are published in apply order.
BARRIER_RANK = 2

_FS_IOC_FIEMAP = 0xC020660B  # _IOWR('f', 11, struct fiemap) on Linux
_FIEMAP_HEADER = struct.Struct("=QQIIII")  # start, length, flags, mapped, count, reserved
_FIEMAP_EXTENT = struct.Struct("=QQQQQIIII")  # logical, physical, length, reserved x2, flags, ...


def first_extent(fd: int) -> int | None:
    """The physical byte offset of the first extent of the open file ``fd``: 0 when it has none
    yet, None when the file system (or the platform) does not answer FIEMAP."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return None
    request = bytearray(
        _FIEMAP_HEADER.pack(0, 0xFFFF_FFFF_FFFF_FFFF, 0, 0, 1, 0) + bytes(_FIEMAP_EXTENT.size)
    )
    try:
        fcntl.ioctl(fd, _FS_IOC_FIEMAP, request)
    except (OSError, ValueError):
        return None
    mapped = _FIEMAP_HEADER.unpack_from(request)[3]
    if not mapped:
        return 0
    return int(_FIEMAP_EXTENT.unpack_from(request, _FIEMAP_HEADER.size)[1])


def _probe(path: Path) -> tuple[int | None, int]:
    """(first extent or None, inode number) of ``path``; (None, 0) if it cannot be opened (the
    reader names it when it gets there)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None, 0
    try:
        return first_extent(fd), os.fstat(fd).st_ino
    finally:
        os.close(fd)


def disk_positions(
    root: Path,
    keys: Sequence[str],
    wanted: Sequence[bool],
    probe: Callable[[Path], tuple[int | None, int]] = _probe,
) -> list[int]:
    """A position on the disk for every wanted key that is applied before the barrier (0 for the
    rest): FIEMAP's physical offsets if the file system gave one for every such key, else the
    inode numbers (see the module's table)."""
    probed: dict[int, tuple[int | None, int]] = {}
    for i, key in enumerate(keys):
        if wanted[i] and apply_rank(key)[0] < BARRIER_RANK:
            probed[i] = probe(root / key)
    use_extents = all(extent is not None for extent, _inode in probed.values())
    positions = [0] * len(keys)
    for i, (extent, inode) in probed.items():
        positions[i] = (extent or 0) if use_extents else inode
    return positions


def read_order(keys: Sequence[str], positions: Sequence[int]) -> list[int]:
    """The indices of ``keys`` (given in apply order) in the order to read and pack them: the
    entries applied before the barrier first, by ``positions`` (ties keep apply order); then the
    others, in apply order. Pure."""
    before = [i for i, key in enumerate(keys) if apply_rank(key)[0] < BARRIER_RANK]
    after = [i for i, key in enumerate(keys) if apply_rank(key)[0] >= BARRIER_RANK]
    before.sort(key=lambda i: positions[i])
    return before + after
