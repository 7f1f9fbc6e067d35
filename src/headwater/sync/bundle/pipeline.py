"""Moving a bundle's bytes: copies inside the kernel, sha256 on a second thread, hints ahead.

``bundle create`` must write every byte of every file into a volume and check that the bytes hash
to the file's key. Read into Python, hashed and written back, each byte crosses the kernel twice
and the whole of it runs on one core (measured: about 2 CPU-seconds per GiB, ``bench/
bench_bundle.py``). So a file's bytes go into the volume inside the kernel instead
(:class:`Sink`: ``copy_file_range`` from the file to the volume, ``sendfile`` where the volume is
a pipe), and a second thread (:class:`Hasher`) hashes them, reading them back from the volume
while they are still in the page cache. The two cores split the copy and the sha256, and no byte
passes through the interpreter to be written.

The hasher reads what the volume holds, not the file: what is checked is what was packed, even if
another program rewrote the file between the two reads. Where the volume cannot be read back
(stdout), it reads the file through the same descriptor the copy used.

Where the kernel refuses a way of copying for a pair of files (an error in :data:`REFUSED`: file
systems that cannot splice, a volume opened for appending, an old kernel), the next one in
:data:`METHODS` is used for the rest of the volume; the last, read and write through one reused
buffer, works everywhere. :func:`next_method` is that decision.

Memory is two buffers of :data:`CHUNK` bytes and at most :data:`LAG` queued jobs (a few words
each), whatever the size of a file or a bundle. The hasher is at most ``LAG * STEP`` bytes behind
the copy, so what it reads back is still in the page cache.

The disk is kept busy by the kernel's read-ahead, told what comes next: ``POSIX_FADV_SEQUENTIAL``
on each file (a larger read-ahead window) and ``POSIX_FADV_WILLNEED`` on the next files before
the current one ends (:func:`will_need`), so the read-ahead crosses from one file to the next.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "CHUNK",
    "COPY_FILE_RANGE",
    "HINT_AHEAD",
    "LAG",
    "METHODS",
    "READ_WRITE",
    "REFUSED",
    "SENDFILE",
    "STEP",
    "Hasher",
    "Mismatch",
    "Segment",
    "ShortFile",
    "Sink",
    "next_method",
    "sequential",
    "will_need",
]

#: Bytes per read and per write where bytes pass through Python (the hasher, the read/write copy,
#: the importer): large enough that a call's overhead is nothing against the copy, small enough
#: to stay in a core's L2 cache between the read and the hash.
CHUNK = 1 << 20
#: Bytes per kernel copy, and per job handed to the hasher.
STEP = 8 << 20
#: Jobs the hasher may have queued before the copy waits for it.
LAG = 4
#: How many files ahead of the one being packed the kernel is told about.
HINT_AHEAD = 2

COPY_FILE_RANGE = "copy_file_range"
SENDFILE = "sendfile"
READ_WRITE = "read/write"
#: The ways of copying, fastest first.
METHODS = (COPY_FILE_RANGE, SENDFILE, READ_WRITE)
#: Errors with which the kernel refuses a way of copying for a pair of files before copying a
#: byte (``copy_file_range``: EXDEV across some file systems, EINVAL for a pipe or a file system
#: that cannot splice, EBADF for a volume opened for appending, ENOSYS/EOPNOTSUPP where missing).
#: Any other error is the disk's or the file's, and stops create.
REFUSED = frozenset(
    {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF}
)


def next_method(method: str, error: int | None) -> str | None:
    """The way of copying to try after ``method`` failed with ``error``; ``None``: the error
    stands (it is not a refusal, or nothing is left to try)."""
    if error not in REFUSED or method == READ_WRITE:
        return None
    return METHODS[METHODS.index(method) + 1]


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


class Mismatch(Exception):
    """A file's bytes do not hash to its sha256."""

    def __init__(self, name: str, got: str) -> None:
        super().__init__(name)
        self.name = name
        self.got = got


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


def will_need(segment: Segment) -> None:
    """Ask the kernel to start reading ``segment`` now."""
    try:
        fd = os.open(segment.path, os.O_RDONLY)
    except OSError:
        return  # the packer names the file when it gets there
    try:
        _advise(fd, segment.offset, segment.length, "POSIX_FADV_WILLNEED")
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Sink:
    """A volume being written, to a file descriptor or (where there is none) a stream.

    Small members are gathered and written in one call before the next copy; a file's bytes are
    copied by :meth:`copy`. ``position`` counts the bytes written; ``readable``: the hasher can
    read them back (``fd`` was opened for reading too).
    """

    def __init__(self, fd: int | None, *, readable: bool, stream: BinaryIO | None = None) -> None:
        self.fd = fd
        self.stream = stream
        self.readable = readable and fd is not None
        self.method = METHODS[0] if fd is not None else READ_WRITE
        if self.method == COPY_FILE_RANGE and not hasattr(os, "copy_file_range"):
            self.method = SENDFILE
        self.position = 0
        self._pending = bytearray()
        self._buffer: memoryview | None = None

    def write(self, data: bytes) -> None:
        self._pending += data
        self.position += len(data)
        if len(self._pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending.clear()
        if self.stream is not None:
            self.stream.flush()

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        if self.fd is not None:
            _write_all(self.fd, data)
        elif self.stream is not None:
            self.stream.write(data)

    def copy(self, source: int, offset: int, length: int) -> int:
        """Append up to ``length`` bytes of ``source`` from ``offset``; returns how many were
        appended (0: ``source`` ends at ``offset``)."""
        self.flush()
        while True:
            try:
                got = self._copy(source, offset, length)
            except OSError as exc:
                after = next_method(self.method, exc.errno)
                if after is None:
                    raise
                self.method = after  # refused before a byte was copied: the next way
                continue
            self.position += got
            return got

    def _copy(self, source: int, offset: int, length: int) -> int:
        if self.method == COPY_FILE_RANGE:
            # No destination offset: the copy writes at, and moves, the volume's position, as
            # the small members' writes do.
            return os.copy_file_range(source, self.fd, length, offset)  # type: ignore[arg-type]
        if self.method == SENDFILE:
            return os.sendfile(self.fd, source, offset, length)  # type: ignore[arg-type]
        if self._buffer is None:
            self._buffer = memoryview(bytearray(CHUNK))
        got = os.preadv(source, [self._buffer[: min(CHUNK, length)]], offset)
        self._emit(self._buffer[:got])
        return got


def _read_at(fd: int, view: memoryview, offset: int) -> int:
    """One read for the hasher (a function of its own so tests can act between reads)."""
    return os.preadv(fd, [view], offset)


@dataclass(frozen=True)
class _Hash:
    fd: int
    offset: int
    length: int
    digest: hashlib._Hash
    segment: Segment


@dataclass(frozen=True)
class _Expect:
    digest: hashlib._Hash
    sha256: str
    name: str


@dataclass(frozen=True)
class _Close:
    fd: int


@dataclass(frozen=True)
class _Signal:
    done: threading.Event


class Hasher:
    """sha256 on a second thread: jobs run in the order they are given.

    A failure (a read error, bytes missing, a digest that is not the expected one) is kept, every
    later job but closing and signalling is skipped, and :meth:`check` or :meth:`wait` raises it
    in the caller's thread. The caller's descriptors must stay open until a :meth:`wait` or
    :meth:`settle` after their last job, except those handed over with :meth:`close`.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[_Hash | _Expect | _Close | _Signal | None] = queue.Queue(LAG)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bundle-sha256", daemon=True)
        self._thread.start()

    def hash(
        self, fd: int, offset: int, length: int, digest: hashlib._Hash, segment: Segment
    ) -> None:
        """Add bytes ``offset .. offset+length`` of ``fd`` to ``digest``."""
        self._jobs.put(_Hash(fd, offset, length, digest, segment))

    def expect(self, digest: hashlib._Hash, sha256: str, name: str) -> None:
        """Once the jobs before this one are done, ``digest`` must be ``sha256``."""
        self._jobs.put(_Expect(digest, sha256, name))

    def close(self, fd: int) -> None:
        """Close ``fd`` once the jobs before this one are done."""
        self._jobs.put(_Close(fd))

    def check(self) -> None:
        """Raise the failure found so far, if any (without waiting)."""
        if self._failure is not None:
            raise self._failure

    def settle(self) -> None:
        """Wait until every job given so far is done or skipped."""
        done = threading.Event()
        self._jobs.put(_Signal(done))
        done.wait()

    def wait(self) -> None:
        """Wait for every job given so far, then raise the failure, if any."""
        self.settle()
        self.check()

    def stop(self) -> None:
        """Finish the jobs given so far and end the thread."""
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        buffer = memoryview(bytearray(CHUNK))
        while (job := self._jobs.get()) is not None:
            if isinstance(job, _Signal):
                job.done.set()
            elif isinstance(job, _Close):
                os.close(job.fd)
            elif self._failure is None:
                try:
                    if isinstance(job, _Hash):
                        _hash(buffer, job)
                    elif job.digest.hexdigest() != job.sha256:
                        raise Mismatch(job.name, job.digest.hexdigest())
                except BaseException as exc:  # raised in the caller's thread
                    self._failure = exc


def _hash(buffer: memoryview, job: _Hash) -> None:
    offset, length = job.offset, job.length
    while length:
        got = _read_at(job.fd, buffer[: min(len(buffer), length)], offset)
        if not got:
            raise ShortFile(job.segment)
        job.digest.update(buffer[:got])
        offset += got
        length -= got
