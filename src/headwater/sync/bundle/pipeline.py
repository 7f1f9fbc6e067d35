"""Moving a bundle's bytes: large reads into one reused buffer, and the kernel told what comes next.

Making or importing a bundle reads every byte, hashes it and writes it. Measured on the machine
the benchmark runs on (``bench/bench_bundle.py``, docs/airgap.md), most of the CPU goes to the
kernel copying bytes into and out of the process (sha256 has the CPU's SHA instructions), and a
copy into a fresh buffer costs about twice one into a buffer still in the CPU's cache; threads
that read ahead and write behind made both commands slower there (every chunk crossing threads
waits for a core), and so did starting the write-back of each written file early (the kernel's
flusher does that work otherwise, outside the command). So the bytes move on one thread, through
one reused buffer of :data:`CHUNK` bytes (it fits a core's L2 cache), and the disk is kept busy
by the kernel's read-ahead, told what comes next: ``POSIX_FADV_SEQUENTIAL`` on each file (a
larger read-ahead window) and ``POSIX_FADV_WILLNEED`` on the next files before the current one
ends, so the read-ahead crosses from one file to the next instead of waiting for the first read
of each.

Memory is the buffer, whatever the size of a file or a bundle.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CHUNK", "Segment", "ShortFile", "read_segments", "sequential"]

#: Bytes per read and per write: large enough that a call's overhead is nothing against the
#: copy, small enough to stay in a core's L2 cache between the read, the hash and the write.
CHUNK = 1 << 20
#: How many files ahead of the one being read the kernel is told about.
HINT_AHEAD = 2


@dataclass(frozen=True)
class Segment:
    """Bytes ``offset .. offset+length`` of the file at ``path``; ``name`` is how errors call it."""

    path: Path
    offset: int
    length: int
    name: str


class ShortFile(Exception):
    """A segment's file ended before the segment did (it changed since it was listed)."""

    def __init__(self, segment: Segment) -> None:
        super().__init__(segment.name)
        self.segment = segment


def _advise(fd: int, offset: int, length: int, advice: str) -> None:
    """``posix_fadvise`` where the platform has it; a hint, so a refusal is ignored."""
    fadvise = getattr(os, "posix_fadvise", None)
    value = getattr(os, advice, None)
    if fadvise is not None and value is not None:
        with contextlib.suppress(OSError):
            fadvise(fd, offset, length, value)


def sequential(fd: int) -> None:
    """Tell the kernel ``fd`` is read from start to end (a larger read-ahead window)."""
    _advise(fd, 0, 0, "POSIX_FADV_SEQUENTIAL")


def _will_need(segment: Segment) -> None:
    try:
        fd = os.open(segment.path, os.O_RDONLY)
    except OSError:
        return  # the reader names the file when it gets there
    try:
        _advise(fd, segment.offset, segment.length, "POSIX_FADV_WILLNEED")
    finally:
        os.close(fd)


def read_segments(
    segments: Sequence[Segment], buffer: bytearray | None = None
) -> Iterator[tuple[int, memoryview]]:
    """Every segment's bytes in order, as ``(segment index, chunk)``. A chunk is a view of
    ``buffer`` (one of :data:`CHUNK` bytes when not given), valid until the next is asked for.

    Raises:
        ShortFile: a file ended before its segment did.
        OSError: a file could not be opened or read.
    """
    view = memoryview(buffer if buffer is not None else bytearray(CHUNK))
    hinted = -1
    for index, segment in enumerate(segments):
        # The files of a tree lie apart on the disk: tell the kernel about the next ones now,
        # so its read-ahead does not stop at the end of this one.
        for ahead in range(max(index, hinted + 1), min(len(segments), index + HINT_AHEAD + 1)):
            if ahead > index:
                _will_need(segments[ahead])
            hinted = ahead
        with segment.path.open("rb", buffering=0) as stream:
            sequential(stream.fileno())
            stream.seek(segment.offset)
            left = segment.length
            while left:
                got = stream.readinto(view[: min(len(view), left)])
                if not got:
                    raise ShortFile(segment)
                left -= got
                yield index, view[:got]
