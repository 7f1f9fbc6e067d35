"""The status of this server's mirrors, proxies and peers: gathered on a schedule, read cheaply.

Two halves, so a page view never waits for the network:

- **Checks** (:meth:`StatusService.check_once`), every ``[status] check_interval`` seconds, in one
  server process only (the one holding ``<run_dir>/status/checker.lock``; another takes over
  when it exits): each mirror's upstream serial (the ``X-PyPI-Last-Serial`` header of its
  project list, body not read), each proxy's upstream (reachable or not) and cache size, each
  peer (:mod:`headwater.server.status.peers`). The results go to ``<run_dir>/status/checks.json``
  (written atomically), which every process reads.
- **The document** (:meth:`StatusService.document`): each tree's ``state/history.json``, the
  proxies' counters summed over processes (the metrics snapshots), the checks file; judged by
  :mod:`headwater.server.status.freshness` and kept for one second, so ``/mirrors.json`` and the
  status page cost a dictionary lookup under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import msgspec

from headwater.config.status import StatusSettings
from headwater.repository._client import HttpClient
from headwater.repository.boundary import FetchBoundary
from headwater.repository.proxy import ProxySource
from headwater.server.metrics import Metrics, collect
from headwater.server.status.document import (
    Document,
    MirrorEntry,
    PeerEntry,
    ProxyEntry,
    RunEntry,
    ThresholdsEntry,
    rfc3339,
)
from headwater.server.status.freshness import (
    Thresholds,
    UpstreamCheck,
    hit_rate,
    mirror_freshness,
    proxy_freshness,
)
from headwater.server.status.peers import check_peer, check_upstream_serial
from headwater.storage.base import Storage
from headwater.storage.filesystem import private_directory
from headwater.sync.history import Run, read_history

__all__ = ["CacheSize", "Checks", "MirrorView", "StatusService"]

log = logging.getLogger("headwater.status")

#: Runs of each mirror put in the document (the history keeps more).
RUNS_SHOWN = 30
#: Most files counted when measuring a proxy's cache (beyond it the size is "at least").
_COUNT_LIMIT = 5_000_000
_DOCUMENT_TTL = 1.0


class CacheSize(msgspec.Struct, kw_only=True):
    bytes: int
    files: int
    checked: float
    #: A mirror tree's: when the newest run of its history started when it was measured (the
    #: tree is measured again only after another run, never on a page view).
    run: float | None = None


class Checks(msgspec.Struct, kw_only=True):
    """What the scheduled checks found (``checks.json``)."""

    #: Upstream URL (no trailing /) -> its last check.
    upstreams: dict[str, UpstreamCheck] = msgspec.field(default_factory=dict)
    #: Peer base URL -> its last check.
    peers: dict[str, PeerEntry] = msgspec.field(default_factory=dict)
    #: Proxy name -> its cache size.
    caches: dict[str, CacheSize] = msgspec.field(default_factory=dict)
    #: Mirror name -> the size of its tree's files.
    trees: dict[str, CacheSize] = msgspec.field(default_factory=dict)


class MirrorView(msgspec.Struct, kw_only=True):
    """A mirror's entry with its runs (for charts: every run the document shows)."""

    entry: MirrorEntry
    runs: list[Run]


_checks_decoder = msgspec.json.Decoder(Checks)
_encoder = msgspec.json.Encoder()


class StatusService:
    """Mirror, proxy and peer status for one server process.

    Args:
        mirrors: mirror name -> the storage of its tree.
        proxies: proxy name -> the proxy source.
        settings: the ``[status]`` table.
        metrics: this process's metrics (the proxies' counters are summed from them).
        base_url: this server's public URL (no trailing /), for the mirrors' index URLs.
        directory: where the checks file and the checker lock live (None: in memory only).
        clock: wall-clock time.
        client: the HTTP client for checks (default: one made on first use, closed by
            :meth:`aclose`).
    """

    def __init__(
        self,
        *,
        mirrors: dict[str, Storage],
        proxies: dict[str, ProxySource],
        settings: StatusSettings,
        metrics: Metrics,
        base_url: str,
        directory: Path | None = None,
        clock: Callable[[], float] = time.time,
        client: HttpClient | None = None,
    ) -> None:
        self.mirrors = mirrors
        self.proxies = proxies
        self.settings = settings
        self.metrics = metrics
        self.base_url = base_url.rstrip("/")
        self.directory = directory
        self.thresholds = Thresholds(
            behind_after=settings.behind_after, stale_after=settings.stale_after
        )
        self._clock = clock
        self._client = client
        self._own_client = client is None
        self._checks = Checks()
        self._checks_read = float("-inf")
        self._document: tuple[float, Document, dict[str, MirrorView]] | None = None
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock_file: IO[bytes] | None = None

    # -- reading ------------------------------------------------------------------------------

    async def document(self) -> Document:
        """The status of everything, as ``/mirrors.json`` serves it (at most a second old)."""
        return (await self._current())[0]

    async def mirror_views(self) -> dict[str, MirrorView]:
        """Mirror name -> its entry and the runs behind it (what the status page charts)."""
        return (await self._current())[1]

    async def _current(self) -> tuple[Document, dict[str, MirrorView]]:
        now = time.monotonic()
        cached = self._document
        if cached is not None and now - cached[0] < _DOCUMENT_TTL:
            return cached[1], cached[2]
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one rebuild at a time; the others take its result
            cached = self._document
            if cached is not None and time.monotonic() - cached[0] < _DOCUMENT_TTL:
                return cached[1], cached[2]
            document, views = await self._build()
            self._document = (time.monotonic(), document, views)
            return document, views

    def _read_checks(self) -> Checks:
        if self.directory is None:
            return self._checks
        path = self.directory / "checks.json"
        try:
            stat = path.stat()
            if stat.st_mtime != self._checks_read:
                self._checks = _checks_decoder.decode(path.read_bytes())
                self._checks_read = stat.st_mtime
        except FileNotFoundError:
            pass
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("status: %s is unreadable (%s); checking again", path, exc)
        return self._checks

    async def _build(self) -> tuple[Document, dict[str, MirrorView]]:
        now = self._clock()
        checks = await asyncio.to_thread(self._read_checks)
        views: dict[str, MirrorView] = {}
        for name, storage in self.mirrors.items():
            views[name] = await self._mirror(name, storage, checks, now)
        counters = collect(self.metrics).proxy
        proxies = [
            self._proxy(name, proxy, checks, counters) for name, proxy in self.proxies.items()
        ]
        document = Document(
            generated=rfc3339(now) or "",
            thresholds=ThresholdsEntry(
                behind_after=self.thresholds.behind_after,
                stale_after=self.thresholds.stale_after,
            ),
            mirrors=[view.entry for view in views.values()],
            proxies=proxies,
            peers=[
                checks.peers.get(url) or PeerEntry(url=url, reason="not checked yet")
                for url in self.settings.peers
            ],
        )
        return document, views

    async def _mirror(self, name: str, storage: Storage, checks: Checks, now: float) -> MirrorView:
        history = await read_history(storage)
        runs = history.runs[-RUNS_SHOWN:] if history is not None else []
        upstream = history.upstream if history is not None else ""
        check = checks.upstreams.get(upstream.rstrip("/")) if upstream else None
        fresh = mirror_freshness(runs, check, now, self.thresholds)
        tree = checks.trees.get(name)
        entry = MirrorEntry(
            name=name,
            url=f"{self.base_url}/{name}/simple/",
            upstream=upstream,
            state=fresh.state,
            reason=fresh.reason,
            serial=fresh.serial,
            upstream_serial=fresh.upstream_serial,
            lag_serials=fresh.lag_serials,
            lag_seconds=fresh.lag_seconds,
            last_complete=rfc3339(fresh.last_complete),
            upstream_checked=rfc3339(check.checked) if check is not None else None,
            upstream_error=check.error if check is not None else None,
            tree_files=tree.files if tree is not None else None,
            tree_bytes=tree.bytes if tree is not None else None,
            runs=[
                RunEntry(
                    started=rfc3339(run.started) or "",
                    seconds=max(0.0, run.seconds),
                    ok=run.ok,
                    serial=run.serial,
                    upstream_serial=run.upstream_serial,
                    synced=run.synced,
                    deleted=run.deleted,
                    failed=run.failed,
                    files_downloaded=run.files_downloaded,
                    bytes_downloaded=run.bytes_downloaded,
                    partial=run.partial,
                    error=run.error,
                )
                for run in runs
            ],
        )
        return MirrorView(entry=entry, runs=list(runs))

    def _proxy(
        self, name: str, proxy: ProxySource, checks: Checks, counters: dict[str, int]
    ) -> ProxyEntry:
        def count(counter: str) -> int:
            return counters.get(f"{name}|{counter}", 0)

        check = checks.upstreams.get(proxy.url.rstrip("/"))
        fresh = proxy_freshness(offline=proxy.offline, check=check)
        requests, fetches = count("page_requests"), count("page_fetches")
        size = checks.caches.get(name)
        return ProxyEntry(
            name=name,
            url=f"{self.base_url}/{name}/simple/",
            upstream=proxy.url,
            state=fresh.state,
            reason=fresh.reason,
            offline=proxy.offline,
            page_requests=requests,
            page_fetches=fetches,
            stale_served=count("stale_served"),
            file_requests=count("file_requests"),
            file_fetches=count("file_fetches"),
            unavailable=count("unavailable"),
            hit_rate=hit_rate(max(0, requests - fetches), min(fetches, requests)),
            cache_bytes=size.bytes if size is not None else None,
            cache_files=size.files if size is not None else None,
            upstream_checked=rfc3339(check.checked) if check is not None else None,
            upstream_error=check.error if check is not None else None,
        )

    # -- checking -----------------------------------------------------------------------------

    def _http(self) -> HttpClient:
        if self._client is None:
            deadline = self.settings.check_deadline
            self._client = HttpClient(
                connections=8, connect_timeout=deadline, read_timeout=deadline
            )
        return self._client

    def _boundary(self, url: str) -> FetchBoundary:
        return FetchBoundary.for_upstream(
            url, allowed_networks=self.settings.allowed_networks, where="[status]"
        )

    async def check_once(self) -> Checks:
        """Check every upstream, proxy cache and peer now; write and return what was found."""
        now = self._clock()
        checks = Checks()
        deadline = self.settings.check_deadline
        upstreams: dict[str, FetchBoundary | None] = {}
        remeasure: dict[str, float | None] = {}
        for name, storage in self.mirrors.items():
            history = await read_history(storage)
            if history is not None and history.upstream:
                upstreams.setdefault(history.upstream.rstrip("/") + "/", None)
            newest = history.runs[-1].started if history is not None and history.runs else None
            measured = self._checks.trees.get(name)
            if measured is not None and measured.run == newest:
                checks.trees[name] = measured
            else:
                remeasure[name] = newest
        for proxy in self.proxies.values():
            if not proxy.offline:
                upstreams[proxy.url] = proxy.boundary
        client = self._http()

        async def upstream(url: str, boundary: FetchBoundary | None) -> None:
            try:
                fence = boundary or self._boundary(url)
            except ValueError as exc:
                checks.upstreams[url.rstrip("/")] = UpstreamCheck(checked=now, error=str(exc))
                return
            result = await check_upstream_serial(
                client, url, now, deadline=deadline, boundary=fence
            )
            checks.upstreams[url.rstrip("/")] = result

        known: dict[str, int] = {}

        async def peer(url: str) -> None:
            try:
                fence = self._boundary(url)
            except ValueError:
                fence = None
            checks.peers[url] = await check_peer(
                client,
                url,
                now,
                self.thresholds,
                deadline=deadline,
                boundary=fence,
                upstream_serials=known,
            )

        async with asyncio.TaskGroup() as group:
            for url, boundary in upstreams.items():
                group.create_task(upstream(url, boundary))
            for name, proxy in self.proxies.items():
                group.create_task(self._measure(name, proxy.storage, checks.caches, now))
            for name, newest in remeasure.items():
                group.create_task(
                    self._measure(name, self.mirrors[name], checks.trees, now, run=newest)
                )
        known.update({url: check.serial for url, check in checks.upstreams.items() if check.serial})
        async with asyncio.TaskGroup() as group:
            for url in self.settings.peers:
                group.create_task(peer(url))
        self._checks = checks
        self._document = None
        if self.directory is not None:
            await asyncio.to_thread(self._write_checks, checks)
        return checks

    async def _measure(
        self,
        name: str,
        storage: Storage,
        into: dict[str, CacheSize],
        now: float,
        *,
        run: float | None = None,
    ) -> None:
        """The files under ``web/packages`` of a proxy's cache or a mirror's tree, and their
        bytes, into ``into[name]`` (at most :data:`_COUNT_LIMIT` files counted)."""
        total = files = 0
        try:
            # One listing with sizes (S3: a ListObjectsV2 page per 1000 objects), not a stat
            # (an S3 HEAD) per file.
            async for _key, stat in storage.iter_stats("web/packages"):
                total += stat.size
                files += 1
                if files >= _COUNT_LIMIT:
                    break
        except Exception as exc:  # a store that cannot be listed is reported, not fatal
            log.warning("status: cannot measure the files of %r: %s", name, exc)
            return
        into[name] = CacheSize(bytes=total, files=files, checked=now, run=run)

    def _write_checks(self, checks: Checks) -> None:
        assert self.directory is not None
        private_directory(self.directory)
        target = self.directory / "checks.json"
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        # Private like everything under the data directory (what was checked, with whose egress).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(_encoder.encode(checks))
        tmp.replace(target)

    def _is_checker(self) -> bool:
        """Whether this process does the checks: the one that holds the checker lock."""
        if self.directory is None:
            return True
        if self._lock_file is not None:
            return True
        private_directory(self.directory)
        fd = os.open(self.directory / "checker.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        handle = os.fdopen(fd, "ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    async def _loop(self) -> None:
        while True:
            if await asyncio.to_thread(self._is_checker):
                try:
                    await self.check_once()
                except Exception:  # a check never takes the server down; said in the log
                    log.exception("status: the scheduled check failed")
            await asyncio.sleep(self.settings.check_interval)

    def start(self) -> None:
        """Start the scheduled checks (from the ASGI lifespan)."""
        if self._task is None and (self.mirrors or self.proxies or self.settings.peers):
            self._task = asyncio.create_task(self._loop())

    async def aclose(self) -> None:
        """Stop the checks, close the client, release the checker lock."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None and self._own_client:
            await self._client.close()
            self._client = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
