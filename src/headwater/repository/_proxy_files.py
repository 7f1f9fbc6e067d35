"""A proxy's distribution files: one upstream download per cold file, streamed while it is cached,
and a size cap with least-recently-used eviction.

**Downloads.** The first request for a file that is not cached starts a download task and gets a
:class:`ColdStream` of the bytes as they arrive. The task writes them to storage (an atomic write)
and checks size and sha256 against the page; the last byte is held back until the check passes,
so a client never receives a complete file with the wrong content: on a mismatch the stream raises
instead, the write is discarded and nothing is cached. The task does not depend on its reader: a
reader that goes away (a HEAD, a disconnect, a reader stuck for ``timeout`` seconds) is dropped
and the download carries on into the cache. Concurrent requests for the same file wait for that
one download and are then served from the cache. A file whose size is known neither from the page
nor from the upstream's Content-Length is not streamed: every request waits for the download.

**Size cap.** Files live at ``web/packages/...`` in the proxy's storage, content-addressed and
never changed. The access time of a file is its mtime: a process touches a file when it serves it,
at most once per ``touch_interval`` (a syscall per file per few minutes, not per request). When
the cached bytes exceed ``max_size``, the oldest files (by mtime) are deleted until the cache is
at 90 % of the cap. Each process counts what it adds and rescans the cache (walk and stat) when
its count passes the cap, or at most once a minute while it adds files, so additions by other
worker processes are seen too; an exclusive lock file (``state/evict.lock``) keeps two processes
from evicting at once. Eviction needs a local file system (mtime is the clock); on other storage
files are evicted oldest-written first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from headwater.errors import printable
from headwater.repository._client import ClientError, Deadline, HttpClient, Response
from headwater.repository._proxy_pages import SHA256
from headwater.repository._proxy_upstream import MIN_RATE
from headwater.repository.boundary import FetchBoundary
from headwater.repository.errors import IntegrityError, UpstreamError, UpstreamNotFound
from headwater.repository.http import USER_AGENT, RetryPolicy
from headwater.simple.filenames import InvalidFilename, check_safe_filename, project_candidates
from headwater.simple.model import File
from headwater.simple.names import NormalizedName
from headwater.storage.base import Storage, StorageError
from headwater.storage.filesystem import FileStorage
from headwater.storage.layout import WEB

__all__ = ["ColdStream", "Downloads", "LruCache", "Target", "find_target"]

log = logging.getLogger("headwater.proxy")

# Files are asked for as they are (RFC 9110: without Accept-Encoding any coding is acceptable)
# and read as sent, never decoded: the hash is of the bytes as stored.
_FILE_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
#: Cold files up to this size are verified whole before their first byte is sent.
VERIFY_FIRST = 16 << 20
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_QUEUE_CHUNKS = 8  # pieces buffered for a reader before the download waits for it
#: What a reader is handed at a time. The stall timeout runs per piece, so a reader that keeps
#: taking bytes is never dropped however large the chunks the upstream connection delivers (about
#: a MiB when it is fast): a steady reader needs only _PIECE bytes per ``timeout`` seconds.
_PIECE = 64 << 10
_LOW_WATER = 0.9  # eviction brings the cache down to this share of the cap
_RESCAN_EVERY = 60.0  # seconds between rescans while this process adds files
#: PEP 740 provenance documents are not evicted: a few KiB each, and the pages list them (the
#: publisher records of docs/provenance.md say they verified).
_KEPT = ".provenance"


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """One file to fetch: the upstream URL, where it goes in storage, and what it must be."""

    url: str
    key: str
    sha256: str
    size: int | None


class _Download:
    """One upstream download in progress, shared by every request for the same file."""

    def __init__(self, target: Target) -> None:
        loop = asyncio.get_running_loop()
        self.target = target
        #: The size once the upstream answered 200 (None: unknown until the end).
        self.started: asyncio.Future[int | None] = loop.create_future()
        #: Set when the file is in the cache; an exception when the download failed.
        self.done: asyncio.Future[None] = loop.create_future()
        self.queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(_QUEUE_CHUNKS)
        self.attached = True
        self.task: asyncio.Task[None] | None = None

    def detach(self, reason: BaseException | None = None) -> None:
        """Stop handing the reader bytes (and unblock a waiting hand-over); ``reason`` is what
        the reader gets if it asks for more."""
        self.attached = False
        while not self.queue.empty():
            self.queue.get_nowait()
        if reason is not None:
            self.queue.put_nowait(reason)


class ColdStream:
    """The bytes of a file as its first download brings them (see :class:`FileStream`)."""

    def __init__(self, download: _Download) -> None:
        self._download = download
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        item = await self._download.queue.get()
        if item is None:
            self._closed = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._closed = True
            raise item
        return item

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
        self._download.detach()


def _attached(download: _Download) -> bool:
    """Whether ``download`` still has its reader (read afresh after an await)."""
    return download.attached


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # retrieved: whoever awaits it re-raises it


class Downloads:
    """Cold-file downloads of one proxy (single-flight per storage key).

    Not :class:`~headwater.repository._flight.SingleFlight`: callers of one download do not
    get the same answer (the first streams the bytes as they arrive, the others wait for the
    stored file), and a download outlives its first reader by design."""

    def __init__(
        self,
        name: str,
        storage: Storage,
        client: Callable[[], HttpClient],
        boundary: FetchBoundary,
        *,
        retry: RetryPolicy,
        timeout: float,
        deadline: float,
        max_file_size: int,
        on_stored: Callable[[int], Awaitable[None]],
        verify_first: int = VERIFY_FIRST,
    ) -> None:
        self.name = name
        self.storage = storage
        self._client = client
        self.boundary = boundary
        self._retry = retry
        self._timeout = timeout
        self._deadline = deadline
        self.max_file_size = max_file_size
        self.verify_first = verify_first
        self._on_stored = on_stored
        self._active: dict[str, _Download] = {}

    async def start(self, target: Target) -> tuple[ColdStream | None, int | None]:
        """Join or start the download of ``target``.

        Returns a stream and the size when this caller is the first and the size is known (it
        should send the bytes as they come); ``(None, None)`` after the file was stored by a
        download this caller waited for (it should serve the file from storage).

        Raises:
            UpstreamError: the upstream failed or sent the wrong bytes (nothing was stored).
        """
        download = self._active.get(target.key)
        if download is not None:
            await asyncio.shield(download.done)
            return None, None
        download = _Download(target)
        self._active[target.key] = download
        download.task = asyncio.create_task(self._run(download))
        download.task.add_done_callback(lambda _: self._active.pop(target.key, None))
        size = await asyncio.shield(download.started)
        if size is None or size <= self.verify_first:
            download.detach()
            await asyncio.shield(download.done)
            return None, None
        return ColdStream(download), size

    async def aclose(self) -> None:
        """Cancel the downloads in progress (their temp files are discarded)."""
        tasks = [d.task for d in self._active.values() if d.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _open(self, url: str) -> Response:
        """GET ``url`` until the answer's headers are in, retrying what is worth retrying."""
        last: UpstreamError | None = None
        # One deadline for every attempt and the whole body (it grows with the bytes received).
        deadline = Deadline(self._deadline, MIN_RATE)
        for attempt in range(1, self._retry.attempts + 1):
            try:
                response = await self._client().get(
                    url, _FILE_HEADERS, boundary=self.boundary, deadline=deadline
                )
            except (ClientError, TimeoutError) as exc:
                # A forward proxy refusing (407, 403) answers the same to a second attempt.
                retryable = getattr(exc, "retryable", True)
                last = UpstreamError(
                    printable(f"{url}: {exc or 'timed out'}"), url=url, retryable=retryable
                )
                last.__cause__ = exc
                if not retryable:
                    raise last from exc
            else:
                if response.status == 200:
                    return response
                response.close()
                if response.status in (404, 410):
                    raise UpstreamNotFound(
                        f"{printable(url)}: HTTP {response.status}, although the project page "
                        "lists the file",
                        url=url,
                        status=response.status,
                    )
                last = UpstreamError(
                    printable(f"{url}: HTTP {response.status} {response.reason}".rstrip()),
                    url=url,
                    status=response.status,
                    retryable=response.status in _RETRY_STATUS,
                )
                if not last.retryable:
                    raise last
            if attempt < self._retry.attempts:
                await asyncio.sleep(self._retry.delay(attempt))
        assert last is not None
        raise last

    async def _give(self, download: _Download, item: bytes | BaseException | None) -> None:
        """Hand ``item`` to the reader, if there still is one; drop a reader that stalls."""
        if not download.attached:
            return
        if isinstance(item, BaseException):
            download.detach(item)
            return
        pieces: list[bytes | None] = (
            [item]
            if item is None or len(item) <= _PIECE
            else [item[i : i + _PIECE] for i in range(0, len(item), _PIECE)]
        )
        for piece in pieces:
            try:
                async with asyncio.timeout(self._timeout):
                    await download.queue.put(piece)
            except TimeoutError:
                log.info(
                    "proxy %r: a reader of %s took no bytes for %g s; caching without it",
                    self.name,
                    printable(download.target.url),
                    self._timeout,
                )
                download.detach(
                    UpstreamError(
                        f"{printable(download.target.url)}: this reader was dropped after "
                        f"taking no bytes for {self._timeout:g} s",
                        url=download.target.url,
                    )
                )
                return
            if not _attached(download):  # the reader may have gone while it waited
                return

    async def _run(self, download: _Download) -> None:
        target = download.target
        try:
            response = await self._open(target.url)
        except BaseException as exc:
            _fail(download.started, exc)
            _fail(download.done, exc)
            if not isinstance(exc, Exception):
                raise
            return
        try:
            async with response:
                await self._receive(download, response)
        except BaseException as exc:
            error = exc
            if isinstance(exc, (ClientError, TimeoutError)):
                error = UpstreamError(
                    printable(f"{target.url}: {exc or 'timed out'}"), url=target.url
                )
                error.__cause__ = exc
            _fail(download.started, error)
            _fail(download.done, error)
            await self._give(download, error)
            if not isinstance(exc, Exception):
                raise
            return
        if not download.done.done():
            download.done.set_result(None)

    async def _receive(self, download: _Download, response: Response) -> None:
        target = download.target
        url = printable(target.url, 200)
        size = target.size
        # The body is read as sent (never decoded), so Content-Length counts the same bytes.
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit():
            length = int(declared)
            if size is not None and length != size:
                raise IntegrityError(
                    f"{url} announces {length} bytes, its page promised {size}; not stored",
                    url=target.url,
                )
            size = length
        if size is not None and size > self.max_file_size:
            raise IntegrityError(
                f"{url} is {size} bytes, over the proxy's limit of {self.max_file_size} "
                "(max_file_size, or max_size); not fetched",
                url=target.url,
            )
        download.started.set_result(size)
        # Never read past the size promised, or the cap when nobody promised one.
        bound = size if size is not None else self.max_file_size
        digest = hashlib.sha256()
        received = 0
        held = b""
        async with self.storage.writer(target.key) as writer:
            async for chunk in response.iter_chunks(decode=False):
                received += len(chunk)
                if received > bound:
                    promised = "promised" if size is not None else "allowed (max_file_size)"
                    raise IntegrityError(
                        f"{url} is larger than the {bound} bytes {promised}; cut off there, "
                        "not stored",
                        url=target.url,
                    )
                digest.update(chunk)
                await writer.write(chunk)
                if size is not None and received == size:
                    # The last byte waits for the hash check: a reader never holds a complete
                    # file that turned out wrong.
                    chunk, held = chunk[:-1], chunk[-1:]
                if chunk:
                    await self._give(download, chunk)
            if size is not None and received != size:
                raise IntegrityError(
                    f"{url} sent {received} bytes, {size} were promised; not stored",
                    url=target.url,
                )
            found = digest.hexdigest()
            if found != target.sha256:
                raise IntegrityError(
                    f"{url} has sha256 {found}, its page promised {target.sha256}; not stored "
                    "and the download was aborted",
                    url=target.url,
                )
        # Stored (the write above was published): release the last byte and end the stream.
        download.done.set_result(None)
        if held:
            await self._give(download, held)
        await self._give(download, None)
        try:
            await self._on_stored(received)
        except (OSError, StorageError) as exc:  # the file is stored; eviction can wait
            log.warning("proxy %r: evicting old files failed: %s", self.name, exc)


class LruCache:
    """Access times and the size cap of a proxy's files (see the module docstring)."""

    def __init__(
        self,
        name: str,
        storage: Storage,
        *,
        max_size: int | None,
        touch_interval: float = 300.0,
    ) -> None:
        self.name = name
        self.storage = storage
        self.max_size = max_size
        self.touch_interval = touch_interval
        self._local = storage if isinstance(storage, FileStorage) else None
        self._touched: dict[str, float] = {}
        self._estimate: int | None = None  # bytes cached, as of the last scan plus our additions
        self._scanned = float("-inf")
        self._evicting: asyncio.Lock | None = None
        self.evicted = 0  # files deleted by this process (for tests and logs)

    async def touch(self, key: str, path: Path | None) -> None:
        """``key`` was just served: record the access (at most once per ``touch_interval``)."""
        if self.max_size is None or path is None:
            return
        now = time.monotonic()
        last = self._touched.get(key)
        if last is not None and now - last < self.touch_interval:
            return
        if len(self._touched) >= 100_000:
            self._touched.clear()
        self._touched[key] = now
        with contextlib.suppress(OSError):  # evicted meanwhile: nothing to record
            await asyncio.to_thread(os.utime, path)

    async def stored(self, size: int) -> None:
        """This process stored ``size`` more bytes: evict if the cache may be over its cap."""
        if self.max_size is None:
            return
        if self._estimate is not None:
            self._estimate += size
        due = time.monotonic() - self._scanned > _RESCAN_EVERY
        if self._estimate is None or self._estimate > self.max_size or due:
            await self.evict()

    async def evict(self) -> int:
        """Scan the cache and delete the least recently used files while it is over the cap;
        returns how many were deleted (0 when another process is evicting)."""
        if self.max_size is None:
            return 0
        if self._evicting is None:
            self._evicting = asyncio.Lock()
        async with self._evicting:
            if self._local is not None:
                total, deleted = await asyncio.to_thread(
                    _evict_local, self._local, self.max_size, self.name
                )
            else:
                total, deleted = await self._evict_generic(self.max_size)
            if total >= 0:
                self._estimate = total
            self._scanned = time.monotonic()
            self.evicted += deleted
            return deleted

    async def _evict_generic(self, cap: int) -> tuple[int, int]:
        entries: list[tuple[float, int, str]] = []
        async for key, stat in self.storage.iter_stats(f"{WEB}/packages"):
            if not key.endswith(_KEPT):
                entries.append((stat.mtime, stat.size, key))
        total = sum(size for _, size, _ in entries)
        if total <= cap:
            return total, 0
        deleted = 0
        for _, size, key in sorted(entries):
            if total <= cap * _LOW_WATER:
                break
            if await self.storage.delete(key):
                total -= size
                deleted += 1
        return total, deleted


def _evict_local(storage: FileStorage, cap: int, name: str) -> tuple[int, int]:
    """Scan and evict on a local file system, under the proxy's eviction lock; (-1, 0) when
    another process holds the lock (it is evicting right now)."""
    try:
        with storage.exclusive("state/evict.lock"):
            return _evict_locked(storage.root / WEB / "packages", cap, name)
    except StorageError:
        return -1, 0


def _evict_locked(packages: Path, cap: int, name: str) -> tuple[int, int]:
    entries: list[tuple[float, int, str]] = []
    for dirpath, _, filenames in os.walk(packages):
        for filename in filenames:
            if filename.endswith(_KEPT):
                continue
            path = os.path.join(dirpath, filename)  # noqa: PTH118 - os.walk speaks str
            try:
                st = os.stat(path)  # noqa: PTH116
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in entries)
    if total <= cap:
        return total, 0
    entries.sort()
    deleted = 0
    for _, size, path in entries:
        if total <= cap * _LOW_WATER:
            break
        try:
            os.unlink(path)  # noqa: PTH108
        except FileNotFoundError:
            continue
        total -= size
        deleted += 1
        with contextlib.suppress(OSError):  # the file's <sha> directory, if now empty
            os.rmdir(os.path.dirname(path))  # noqa: PTH106, PTH120
    log.info("proxy %r: evicted %d file(s); %d bytes cached (cap %d)", name, deleted, total, cap)
    return total, deleted


# packages/<2 hex>/<2 hex>/<60 hex>/<filename>: anything else is not a file of a proxy.
_FILE_PATH = re.compile(r"([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{60})/([^/]+)\Z")


async def find_target(
    path: str,
    kept: Callable[[NormalizedName], dict[str, File] | None],
    fetched: Callable[[NormalizedName], Awaitable[dict[str, File]]],
) -> Target | None:
    """What to fetch for ``path`` (below packages/): the upstream file the served page of its
    project lists at that path (``kept``: the files of a page held in memory, if any;
    ``fetched``: of the page fetched or revalidated now); None when no page lists it."""
    found = _FILE_PATH.match(path)
    if found is None:
        return None
    filename = found.group(4)
    metadata = filename.endswith(".metadata")
    dist = filename.removesuffix(".metadata") if metadata else filename
    try:
        check_safe_filename(dist)
    except InvalidFilename:
        return None
    dist_path = path.removesuffix(".metadata") if metadata else path
    for project in project_candidates(dist):
        files = kept(project)
        upstream = files.get(dist_path) if files is not None else None
        if upstream is None:
            upstream = (await fetched(project)).get(dist_path)
        if upstream is None:
            continue
        base = upstream.url.partition("#")[0]
        sha = found.group(1) + found.group(2) + found.group(3)
        if not metadata:
            return Target(url=base, key=f"{WEB}/packages/{path}", sha256=sha, size=upstream.size)
        core = upstream.core_metadata
        md = core.get("sha256", "").lower() if isinstance(core, dict) else ""
        if not SHA256.match(md):
            return None
        return Target(url=base + ".metadata", key=f"{WEB}/packages/{path}", sha256=md, size=None)
    return None
