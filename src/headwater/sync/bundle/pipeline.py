"""Overlapping the disk and the CPU when a bundle is made or imported: read ahead, write behind.

Making or importing a bundle is three kinds of work on every byte: reading it, hashing it, and
writing it. Done one after the other on one thread, the disk waits while the CPU hashes and the
CPU waits while the disk reads. Here each runs in its own thread (reading, writing and sha256 all
release the GIL), joined by bounded queues:

- :class:`ReadAhead` reads a list of byte ranges of files (``bundle create``: the pieces of a
  volume, in on-disk order) or one stream (``bundle import``: a volume) in chunks, ahead of the
  caller, telling the kernel which file comes next (``POSIX_FADV_WILLNEED``) so its read-ahead
  crosses from one file to the next without waiting for the caller.
- :class:`WriteBehind` runs the caller's writes (and the closes and renames that must follow
  them) in order on one thread, and starts the write-back of each finished file early
  (:func:`start_writeback`) so the disk writes while the next file is read, instead of all at
  once at the final barrier.

Memory is bounded: at most ``depth`` chunks wait in each queue (``depth * CHUNK`` bytes), plus
the chunk each thread holds. An error in a thread reaches the caller at its next call, and
:meth:`close` stops the thread and waits for it, so nothing is written after an error is raised.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

__all__ = ["CHUNK", "DEPTH", "ReadAhead", "Segment", "WriteBehind", "start_writeback"]

#: Bytes per read and per write: large enough that a call's overhead is nothing against the copy,
#: small enough that a few in flight stay far below the memory bound.
CHUNK = 4 << 20
#: Chunks that may wait in a queue (read ahead of the caller, or written behind it).
DEPTH = 6
#: Whether reading and writing run on their own threads (False: in the caller's, in the same
#: order, with the same hints to the kernel).
THREADED = os.environ.get("HEADWATER_BUNDLE_THREADS", "1") != "0"
#: How many files ahead of the one being read the kernel is told about.
_HINT_AHEAD = 2
_DONE = object()


@dataclass(frozen=True)
class Segment:
    """Bytes ``offset .. offset+length`` of the file at ``path``; ``name`` is how errors call it."""

    path: Path
    offset: int
    length: int
    name: str


def _advise(fd: int, offset: int, length: int, advice: int) -> None:
    """``posix_fadvise`` where the platform has it; a hint, so a refusal is ignored."""
    fadvise = getattr(os, "posix_fadvise", None)
    if fadvise is not None:
        with contextlib.suppress(OSError):
            fadvise(fd, offset, length, advice)


def start_writeback(fd: int, offset: int = 0, length: int = 0) -> None:
    """Ask the kernel to start writing ``fd``'s dirty pages (``length`` bytes from ``offset``;
    0: to the end) now, without waiting for them.

    On Linux ``POSIX_FADV_DONTNEED`` starts write-back of the file's dirty pages (and drops those
    already clean, so a bundle does not push the served tree out of the page cache). It is not a
    durability barrier: the caller still syncs before anything depends on the bytes.
    """
    _advise(fd, offset, length, getattr(os, "POSIX_FADV_DONTNEED", 4))


class ShortFile(Exception):
    """A segment's file ended before the segment did (it changed since it was listed)."""

    def __init__(self, segment: Segment) -> None:
        super().__init__(segment.name)
        self.segment = segment


class ReadAhead:
    """Reads ahead of the caller in a thread; iterate it for ``(segment index, chunk)`` pairs
    (:meth:`segments`) or read it as a stream (:meth:`read`).

    Use as a context manager: leaving it stops the thread (also after an error)."""

    def __init__(
        self,
        *,
        segments: Sequence[Segment] | None = None,
        stream: BinaryIO | None = None,
        chunk: int = CHUNK,
        depth: int = DEPTH,
        threaded: bool | None = None,
    ) -> None:
        if (segments is None) == (stream is None):
            raise ValueError("give segments or a stream")
        self._segments = segments
        self._stream = stream
        self._chunk = chunk
        self._items = self._produce()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._pending = memoryview(b"")
        self._ended = False
        self._thread: threading.Thread | None = None
        if THREADED if threaded is None else threaded:
            self._thread = threading.Thread(target=self._run, name="bundle-read-ahead", daemon=True)
            self._thread.start()

    # -- reading (on the thread, or in the caller's when not threaded) -------------------------

    def _produce(self) -> Generator[object]:
        if self._segments is not None:
            yield from self._read_segments(self._segments)
        else:
            assert self._stream is not None
            yield from self._read_stream(self._stream)

    def _put(self, item: object) -> bool:
        """Queue ``item``; False when the reader was told to stop."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the caller, raised there
            self._put(exc)
        finally:
            self._items.close()

    def _read_stream(self, stream: BinaryIO) -> Iterator[bytes]:
        fd = _fileno(stream)
        if fd is not None:
            _advise(fd, 0, 0, getattr(os, "POSIX_FADV_SEQUENTIAL", 2))
        while data := stream.read(self._chunk):
            yield data

    def _read_segments(self, segments: Sequence[Segment]) -> Iterator[tuple[int, bytes]]:
        hinted = -1
        for index, segment in enumerate(segments):
            # Tell the kernel about the next files now, so its read-ahead does not stop at the
            # end of this one (the files of a tree lie apart on the disk).
            for ahead in range(max(index, hinted + 1), min(len(segments), index + _HINT_AHEAD)):
                _hint(segments[ahead])
                hinted = ahead
            with segment.path.open("rb", buffering=0) as stream:
                fd = stream.fileno()
                _advise(fd, 0, 0, getattr(os, "POSIX_FADV_SEQUENTIAL", 2))
                stream.seek(segment.offset)
                left = segment.length
                while left:
                    data = stream.read(min(self._chunk, left))
                    if not data:
                        raise ShortFile(segment)
                    left -= len(data)
                    yield index, data

    # -- the caller --------------------------------------------------------------------------

    def _next(self) -> object:
        if self._ended:
            return _DONE
        if self._thread is None:
            try:
                item = next(self._items, _DONE)
            except BaseException:
                self._ended = True
                raise
        else:
            item = self._queue.get()
        if item is _DONE:
            self._ended = True
        elif isinstance(item, BaseException):
            self._ended = True
            raise item
        return item

    def chunks(self) -> Iterator[tuple[int, bytes]]:
        """Every segment's bytes, in order, as ``(segment index, chunk)``.

        Raises:
            ShortFile: a file ended early; OSError: a file could not be read.
        """
        while True:
            item = self._next()
            if item is _DONE:
                return
            assert isinstance(item, tuple)
            yield item

    def read_some(self, size: int) -> bytes | memoryview:
        """Between 1 and ``size`` bytes of the stream (none only at its end): what is left of
        the chunk at hand, never copied."""
        if not self._pending:
            item = self._next()
            if item is _DONE:
                return b""
            assert isinstance(item, bytes)
            self._pending = memoryview(item)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def read(self, size: int) -> bytes | memoryview:
        """Up to ``size`` bytes of the stream (fewer only at its end), without copying when the
        bytes lie in one chunk."""
        if len(self._pending) >= size:
            out, self._pending = self._pending[:size], self._pending[size:]
            return out
        parts = [self._pending] if self._pending else []
        have = len(self._pending)
        self._pending = memoryview(b"")
        while have < size:
            item = self._next()
            if item is _DONE:
                break
            assert isinstance(item, bytes)
            view = memoryview(item)
            take = size - have
            parts.append(view[:take])
            self._pending = view[take:]
            have += min(take, len(view))
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def close(self) -> None:
        if self._thread is None:
            self._items.close()
            return
        self._stop.set()  # a reader waiting for room sees it within its put's timeout
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _fileno(stream: BinaryIO) -> int | None:
    """The stream's descriptor, or None (a wrapper without one, a test's BytesIO)."""
    try:
        return stream.fileno()
    except (OSError, AttributeError, ValueError):
        return None


def _hint(segment: Segment) -> None:
    try:
        fd = os.open(segment.path, os.O_RDONLY)
    except OSError:
        return  # the reader names the file when it gets there
    try:
        _advise(fd, segment.offset, segment.length, getattr(os, "POSIX_FADV_WILLNEED", 3))
    finally:
        os.close(fd)


class WriteBehind:
    """Runs writes (and what must follow them: a close, a rename) in order on one thread.

    :meth:`submit` queues a call and returns at once unless ``depth`` calls wait already;
    :meth:`drain` waits until every queued call ran. The first error a call raises is raised by
    the next :meth:`submit` or :meth:`drain`, and no later call runs. Use as a context manager:
    leaving it (also on an error) stops the thread, skipping what was still queued."""

    def __init__(self, depth: int = DEPTH, threaded: bool | None = None) -> None:
        self._queue: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bundle-write-behind", daemon=True)
        self._threaded = THREADED if threaded is None else threaded
        if self._threaded:
            self._thread.start()

    def _run(self) -> None:
        while True:
            call = self._queue.get()
            try:
                if call is None:
                    return
                if self._error is None and not self._abandon.is_set():
                    call()
            except BaseException as exc:  # raised in the caller's thread
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            self._abandon.set()  # nothing queued after a failure runs
            error, self._error = self._error, None
            raise error

    def submit(self, call: Callable[[], object]) -> None:
        self._raise()
        if self._abandon.is_set():
            raise RuntimeError("a write failed before: nothing more is written")
        if not self._threaded:
            try:
                call()
            except BaseException:
                self._abandon.set()
                raise
            return
        self._queue.put(call)

    def drain(self) -> None:
        """Wait for every queued call; raise the first error one raised."""
        if self._threaded:
            self._queue.join()
        self._raise()

    def close(self) -> None:
        """Stop the thread. Calls still queued are skipped unless :meth:`drain` ran first."""
        if not self._thread.is_alive():
            return
        self._abandon.set()
        self._queue.put(None)
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
