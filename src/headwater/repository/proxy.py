"""A caching proxy of a remote index: pages fetched on demand and revalidated, files kept forever.

What a proxy keeps in its storage (a directory per proxy; several worker processes share it)::

    web/packages/<aa>/<bb>/<rest>/<filename>[.metadata]   files, checked, content-addressed
    state/pages/<project>/page.json     the upstream page as last fetched (the model, as JSON)
    state/pages/<project>/meta.json     its upstream URL, ETag, when it was last confirmed, absence
    state/root/names.txt, meta.json     the upstream project list (one name a line;
                                        :mod:`headwater.repository._proxy_root`)
    web/packages/.../<filename>.provenance, state/pages/<project>/provenance.json,
    state/publishers/...                PEP 740 provenance and the publisher guard
                                        (:mod:`headwater.repository._proxy_provenance`)

**Pages.** A page is fetched the first time it is asked for (PEP 691 JSON preferred, HTML
accepted) and served in *served form*: rendered by headwater in JSON and HTML, with file URLs into
the proxy's own tree (``../../packages/<sha256 path>/<filename>``) and ``tracks`` set to the
upstream project URL (PEP 708 provenance), or kept as the upstream page has them when it tracks
another index (it extends that project; the proxy does too). Only files with a sha256 on the upstream page are
served: the others cannot be verified or content-addressed, so they are left off the page (and
logged). After ``ttl`` seconds the page is revalidated with its ETag (``If-None-Match``); a 304
only renews the clock. A 404/410 means the project is absent, and that answer is kept for the TTL
too. Concurrent requests for a page that must be fetched share one upstream request, whatever
format they asked for.

**Upstream failures.** A connection error, a timeout, a 5xx (after one quick retry), a URL outside
the fetch boundary (:mod:`headwater.repository.boundary`) or a page that cannot be read for any
reason is a failure: a cached page is then served *stale* (``RenderedPage.stale`` /
``SourceProject.stale`` say why, naming the upstream and the failure) and the upstream is tried
again after ``retry_interval`` seconds; with nothing cached, :class:`SourceUnavailable` is raised,
naming the upstream and the failure. A failure is never an empty page and never "absent": an index
must not hand the name to another source because this one is down (PEP 766).

**Offline.** The upstream is never contacted; cached pages are served as they are, anything not
cached is absent (pages) or missing (files).

**Files** are fetched on their first request, streamed to that client while they are written to
the cache, and kept (see :mod:`headwater.repository._proxy_files` for the streaming, the hash
checks and the size cap with least-recently-used eviction).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import msgspec

from headwater.errors import InvalidInput, printable
from headwater.policy.continuity import ContinuityRules
from headwater.repository._client import HttpClient, Resolver
from headwater.repository._egress import Egress
from headwater.repository._flight import SingleFlight
from headwater.repository._proxy_files import (
    VERIFY_FIRST,
    Downloads,
    LruCache,
    Target,
    find_target,
)
from headwater.repository._proxy_pages import (
    KEPT_MEMORY,
    PAGE_DECODER,
    Entry,
    KeptEntries,
    Meta,
    digest,
    meta_key,
    page_key,
    served_form,
)
from headwater.repository._proxy_provenance import ProxyGuard
from headwater.repository._proxy_root import (
    RootList,
    describe,
    parse_soon,
    read_meta,
    write_meta,
)
from headwater.repository._proxy_stats import ProxyStats
from headwater.repository._proxy_upstream import Lease, MemoryBudget, PageFetcher, count_entries
from headwater.repository.base import (
    FileRef,
    PageFormat,
    RenderedPage,
    SourceProject,
    SourceUnavailable,
)
from headwater.repository.boundary import FetchBoundary
from headwater.repository.errors import UpstreamError
from headwater.repository.http import RetryPolicy
from headwater.repository.tree import TreeSource
from headwater.simple.model import File
from headwater.simple.names import NormalizedName
from headwater.simple.pages import parse_project_page
from headwater.storage.base import NotFound, Storage, StorageError
from headwater.storage.layout import WEB

__all__ = ["ProxySource"]

log = logging.getLogger("headwater.proxy")

_MAX_ENTRIES = 10_000  # project pages kept in memory per process
#: The default most files one upstream page may list.
MAX_PAGE_FILES = 250_000
_SIZE_RECHECK = 5.0  # seconds between looking up, in the cache, sizes the upstream did not give
# One memory budget for the pages every proxy of this process is fetching (unless given one).
_PAGE_BUDGET = MemoryBudget()


class ProxySource:
    """A remote Simple API index at ``url``, fetched on demand and cached in ``storage``.

    Args:
        name: the source's name (in messages and logs).
        url: the upstream index URL (``https://pypi.org/simple/``).
        storage: where pages and files are kept (shared by the server's worker processes).
        ttl: seconds a page is served before it is revalidated with the upstream.
        max_size: cap in bytes on the cached files (least recently used evicted); None: no cap.
        offline: never contact the upstream; serve only what is cached.
        timeout: seconds to wait to connect, and for each next bytes of an answer.
        connections: at most this many upstream connections at once.
        retry_interval: after a failure, seconds before the upstream is tried again for the same
            page (a stale copy, or the failure, is served meanwhile).
        max_page_size: a page (after decompression) larger than this is refused as hostile.
        max_page_files: a page listing more files than this is refused as hostile.
        retry: how hard to try one request (default: twice, a quarter second apart).
        touch_interval: with ``max_size``, a served file's access time is recorded at most
            once per this many seconds per process.
        deadline: seconds one upstream request may take in all, plus 1 s per 32 KiB received
            (default: twice ``timeout``).
        allowed_hosts, allowed_networks: the fetch boundary besides the upstream's origin
            (:class:`~headwater.repository.boundary.FetchBoundary`).
        max_file_size: the most bytes read of a file whose page gives no size.
        page_budget: memory shared by the pages being fetched (default: one per process).
        kept_memory: memory the project pages kept between requests may hold (estimated).
        verify_first: cold files up to this size are verified before their first byte is sent;
            larger ones are streamed as they arrive, the last byte held back until verified.
        resolver: host name -> addresses (for tests; default: the system's resolver).
        clock: wall-clock time (for tests).
        egress: forward proxy, credentials and TLS trust for the upstream (default: the proxy
            environment variables, the system's CAs, no credentials).
        trusted_root: the Sigstore trust root PEP 740 provenance is verified against (default:
            the one shipped with headwater).
        publisher_rules: the publisher guard's rules per project (None: no guard).
        public_url: this proxy's public URL (pages list provenance when it is ``https://``).

    Raises:
        ValueError: ``url`` is not an http(s) URL, or a number is out of range.
    """

    kind = "proxy"
    local = False

    def __init__(
        self,
        name: str,
        url: str,
        storage: Storage,
        *,
        ttl: float = 600.0,
        max_size: int | None = None,
        offline: bool = False,
        timeout: float = 30.0,
        connections: int = 32,
        retry_interval: float = 10.0,
        max_page_size: int = 256 << 20,
        max_page_files: int = MAX_PAGE_FILES,
        retry: RetryPolicy | None = None,
        touch_interval: float = 300.0,
        deadline: float | None = None,
        allowed_hosts: list[str] | tuple[str, ...] = (),
        allowed_networks: list[str] | tuple[str, ...] = (),
        max_file_size: int = 8 << 30,
        page_budget: MemoryBudget | None = None,
        kept_memory: int = KEPT_MEMORY,
        verify_first: int = VERIFY_FIRST,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.time,
        egress: Egress | None = None,
        trusted_root: str | None = None,
        publisher_rules: Callable[[NormalizedName], ContinuityRules] | None = None,
        public_url: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(
                f"proxy {name!r}: upstream url {url!r} is not an http(s) URL; give the index URL, "
                "e.g. https://pypi.org/simple/"
            )
        if ttl < 0 or timeout <= 0 or connections < 1 or (max_size is not None and max_size < 0):
            raise InvalidInput(
                f"proxy {name!r}: ttl and max-size must be >= 0, timeout > 0, connections >= 1"
            )
        self.name = name
        self.url = url if url.endswith("/") else url + "/"
        self.storage = storage
        self.ttl = ttl
        self.max_size = max_size
        self.offline = offline
        self.timeout = timeout
        self.connections = connections
        self.retry_interval = retry_interval
        self.max_page_size = max_page_size
        self.max_page_files = max_page_files
        self.kept_memory = kept_memory
        self.deadline = deadline if deadline is not None else 2 * timeout
        try:
            self.boundary = FetchBoundary.for_upstream(
                self.url,
                allowed_hosts=allowed_hosts,
                allowed_networks=allowed_networks,
                where=f"[proxy.{name}]",
            )
        except ValueError as exc:
            raise InvalidInput(f"proxy {name!r}: {exc}") from exc
        self._retry = retry or RetryPolicy(attempts=2, backoff=0.25, max_backoff=1.0)
        self._clock = clock
        self._resolver = resolver
        self._client: HttpClient | None = None
        self._egress = egress
        self._budget = page_budget or _PAGE_BUDGET
        self._pages = PageFetcher(
            self._http,
            self.boundary,
            retry=self._retry,
            deadline=self.deadline,
            max_page_size=max_page_size,
            max_page_files=max_page_files,
        )
        self._files = TreeSource(name, storage, revalidate=1.0)
        self._lru = LruCache(name, storage, max_size=max_size, touch_interval=touch_interval)
        self._downloads = Downloads(
            name,
            storage,
            self._http,
            self.boundary,
            retry=self._retry,
            timeout=timeout,
            deadline=self.deadline,
            max_file_size=min(max_file_size, max_size) if max_size else max_file_size,
            on_stored=self._lru.stored,
            verify_first=verify_first,
        )
        self._entries = KeptEntries(max_bytes=kept_memory, max_count=_MAX_ENTRIES)
        self._failures: dict[NormalizedName, tuple[float, str]] = {}
        self._root = RootList(
            name,
            self.url,
            storage,
            self._pages,
            self._budget,
            offline=offline,
            retry_interval=retry_interval,
            usable=self._usable,
            clock=clock,
        )
        #: PEP 740 provenance and the publisher guard (docs/provenance.md, "Caching proxies").
        self.guard = ProxyGuard(
            name,
            storage,
            self._pages,
            trusted_root=trusted_root,
            rules=publisher_rules,
            public_url=public_url,
        )
        # Concurrent requests for a page that must be fetched share one fetch (any format).
        self._fetching: SingleFlight[NormalizedName, Entry] = SingleFlight()
        #: What this process served (the status page's hit rate and stale pages).
        self.stats = ProxyStats()

    def __repr__(self) -> str:
        return f"ProxySource({self.name!r}, {self.url!r})"

    def project_url(self, name: NormalizedName) -> str:
        """The upstream URL of a project's page (the URL this source's pages ``track``)."""
        return f"{self.url}{name}/"

    def _http(self) -> HttpClient:
        if self._client is None:
            self._client = HttpClient(
                connections=self.connections,
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                egress=self._egress,
                resolver=self._resolver,
            )
        return self._client

    # -- the served-source interface ------------------------------------------------------------

    async def page(self, project: NormalizedName | None, fmt: PageFormat) -> RenderedPage | None:
        """The root page or a project page in served form; None when absent.

        Raises:
            SourceUnavailable: the upstream failed and nothing usable is cached.
        """
        if project is None:
            return (await self._root.entry()).page(fmt)
        entry = await self._counted_entry(project)
        await self._fill_sizes(entry)
        return entry.page(fmt)

    async def project(self, name: NormalizedName) -> SourceProject:
        """What the upstream has for ``name`` (model in served form; ``url`` = upstream URL).

        Raises:
            SourceUnavailable: the upstream failed and nothing usable is cached.
        """
        entry = await self._counted_entry(name)
        await self._fill_sizes(entry)
        return SourceProject(
            entry.served,
            version=entry.version,
            stale=entry.stale,
            url=self.project_url(name),
        )

    async def project_names(self) -> list[NormalizedName]:
        """Every project on the upstream's root page (parsed once per TTL).

        Raises:
            SourceUnavailable: the upstream failed and no project list is cached.
        """
        return (await self._root.entry()).names

    async def file(self, path: str) -> FileRef | None:
        """The file at ``path`` below ``packages/``: from the cache, or fetched and streamed.

        Raises:
            SourceUnavailable: the file must be fetched and the upstream failed, or sent bytes
                that do not match the page (nothing was cached).
        """
        self.stats.file_requests += 1
        ref = await self._files.file(path)
        if ref is not None:
            await self._lru.touch(ref.key, ref.local_path)
            return ref
        if self.offline:
            return None
        target = await self._target(path)
        if target is None:
            return None
        self.stats.file_fetches += 1
        try:
            stream, size = await self._downloads.start(target)
        except UpstreamError as exc:
            self.stats.unavailable += 1
            raise SourceUnavailable(
                f"proxy {self.name!r}: cannot fetch {printable(target.url, 200)}: "
                f"{describe(exc)}; nothing was cached",
                source=self.name,
            ) from exc
        if stream is not None and size is not None:
            return FileRef(self.storage, target.key, size, self._clock(), None, stream=stream)
        return await self._files.file(path)

    async def check(self) -> None:
        """Ready when the cache storage takes a write and gives it back (an unreachable upstream
        does not make the proxy unready: it serves what it has cached)."""
        probe = f"state/health-probe-{os.getpid()}"
        await self.storage.write_bytes(probe, b"ok")
        if await self.storage.read_bytes(probe) != b"ok":
            raise StorageError(f"proxy {self.name!r}: storage gave back other bytes")

    async def aclose(self) -> None:
        """Cancel fetches in progress and close the upstream connections."""
        await self._fetching.aclose()
        await self._root.aclose()
        await self._downloads.aclose()
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- project pages --------------------------------------------------------------------------

    async def _counted_entry(self, name: NormalizedName) -> Entry:
        """The entry a page request is answered from, counted in :attr:`stats`."""
        self.stats.page_requests += 1
        entry = self._entries.get(name)
        if entry is None or not self._usable(entry.meta, entry.retry_at):
            try:
                entry = await self._entry(name)
            except SourceUnavailable:
                self.stats.unavailable += 1
                raise
        if entry.stale is not None:
            self.stats.stale_served += 1
        return entry

    async def _fill_sizes(self, entry: Entry) -> None:
        """PEP 700: ``size`` is mandatory from API 1.1. An upstream that gives none (an HTML-only
        index) leaves it unknown until the file is cached; then the cached file's size is the
        size (its sha256 was checked against the page). Looked up at most every
        ``_SIZE_RECHECK`` seconds, and only for files still without one; a page that still
        lacks a size claims API 1.0 (headwater.simple.versions)."""
        served = entry.served
        if served is None or all(file.size is not None for file in served.files):
            return
        now = self._clock()
        if now - entry.sized_at < _SIZE_RECHECK:
            return
        entry.sized_at = now
        files: list[File] = []
        filled = False
        for file in served.files:
            if file.size is None:
                key = f"{WEB}/packages/{file.url.removeprefix('../../packages/')}"
                stat = await self.storage.stat(key)
                if stat is not None:
                    file = msgspec.structs.replace(file, size=stat.size)
                    filled = True
            files.append(file)
        if filled:
            entry.served = msgspec.structs.replace(served, files=tuple(files))
            entry.rendered.clear()

    def _usable(self, meta: Meta, retry_at: float) -> bool:
        """Whether a cached answer may be served without asking the upstream now."""
        if self.offline:
            return True
        now = self._clock()
        return now - meta.checked < self.ttl or now < retry_at

    async def _entry(self, name: NormalizedName) -> Entry:
        return await self._fetching.run(name, lambda: self._refresh(name))

    async def _refresh(self, name: NormalizedName) -> Entry:
        entry = self._entries.get(name)
        if entry is not None and self._usable(entry.meta, entry.retry_at):
            return entry  # refreshed by the task that finished just before this one started
        # Another worker process may have fetched it since: look at the shared storage first.
        stored = await read_meta(self.storage, meta_key(name), self.name)
        if stored is not None and (entry is None or stored.checked > entry.meta.checked):
            entry = await self._load(name, stored, entry)
        if entry is not None and self._usable(entry.meta, float("-inf")):
            return self._keep(name, entry)
        if self.offline:
            absent = Meta(url=self.project_url(name), checked=0.0, absent=True)
            return self._keep(name, Entry(absent, None, {}))
        now = self._clock()
        failed = self._failures.get(name)
        if failed is not None and now < failed[0] and (entry is None or entry.served is None):
            raise SourceUnavailable(failed[1], source=self.name)
        url = self.project_url(name)
        etag = entry.meta.etag if entry is not None and entry.served is not None else None
        # The lease is held until the page is in served form: parsing, encoding and the served
        # form cost several times the bytes of a page of many small files (ENTRY_COST each).
        with self._budget.lease() as lease:
            return await self._fetched(name, entry, stored, url, etag, now, lease)

    async def _fetched(
        self,
        name: NormalizedName,
        entry: Entry | None,
        stored: Meta | None,
        url: str,
        etag: str | None,
        now: float,
        lease: Lease,
    ) -> Entry:
        """Fetch ``name``'s page within ``lease`` and keep it (or the stale copy on failure)."""
        self.stats.page_fetches += 1
        try:
            answer = await self._pages.get(url, etag, lease)
            if answer.status == 304 and entry is not None:
                meta = msgspec.structs.replace(entry.meta, checked=now)
                await write_meta(self.storage, meta_key(name), meta)
                entry.meta, entry.stale = meta, None
                if entry.guard_due:  # an acceptance, or a document fetched now, may let it in
                    await self._guarded(name, entry)
                return self._keep(name, entry)
            if answer.status in (304, 404):
                meta = Meta(url=url, checked=now, absent=True)
                if stored is not None:
                    # Known here before: tell the other workers it is gone. A name never
                    # seen is remembered in memory only (no directory per made-up name).
                    with contextlib.suppress(NotFound):
                        await self.storage.delete(page_key(name))
                    await write_meta(self.storage, meta_key(name), meta)
                return self._keep(name, Entry(meta, None, {}))
            page = await parse_soon(
                lambda: parse_project_page(
                    answer.body, answer.content_type, name=name, base_url=answer.url
                ),
                answer.body,
            )
            # Exactly, now (count_entries could not see keys spelt with escapes).
            self._pages.check_files(len(page.files), url)
            lease.take_entries(len(page.files), url)
        except Exception as exc:
            return self._failed(name, entry, url, exc)
        data = msgspec.json.encode(page)
        meta = Meta(url=url, checked=now, etag=answer.etag, digest=digest(data))
        served, files, left_off = served_form(page, url)
        if left_off:
            log.warning(
                "proxy %r: %d file(s) of %r left off the page: %s",
                self.name,
                len(left_off),
                name,
                printable("; ".join(left_off[:3]) + ("; ..." if len(left_off) > 3 else ""), 600),
            )
        fresh = Entry(meta, served, files)
        try:
            # Provenance records before the page: a reader of the new page finds them.
            await self._guarded(name, fresh)
        except Exception as exc:
            return self._failed(name, entry, url, exc)
        # The page before its meta: a reader that sees the new meta finds the new page.
        await self.storage.write_bytes(page_key(name), data)
        await write_meta(self.storage, meta_key(name), meta)
        del data
        self._failures.pop(name, None)
        return self._keep(name, fresh)

    async def _guarded(self, name: NormalizedName, entry: Entry) -> None:
        """Apply PEP 740 provenance and the publisher guard to ``entry`` (in place)."""
        await self.guard.update(name, entry, fetch=not self.offline)

    def _failed(self, name: NormalizedName, entry: Entry | None, url: str, exc: Exception) -> Entry:
        now = self._clock()
        what = describe(exc)
        if entry is not None and entry.served is not None:
            fetched = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.meta.checked))
            entry.stale = (
                f"proxy {self.name!r}: upstream {url} failed ({what}); serving the copy "
                f"confirmed at {fetched}"
            )
            entry.retry_at = now + self.retry_interval
            log.warning("%s", entry.stale)
            return self._keep(name, entry)
        message = (
            f"proxy {self.name!r}: upstream {url} failed ({what}) and nothing is cached for "
            f"{name!r}; refusing rather than answering 'absent' (check the upstream, or its URL "
            "in the configuration)"
        )
        self._failures[name] = (now + self.retry_interval, message)
        if len(self._failures) > _MAX_ENTRIES:
            self._failures.clear()
        raise SourceUnavailable(message, source=self.name) from exc

    def _keep(self, name: NormalizedName, entry: Entry) -> Entry:
        return self._entries.keep(name, entry)

    async def _load(self, name: NormalizedName, meta: Meta, entry: Entry | None) -> Entry | None:
        """The entry for what another process (or a previous run) stored."""
        if meta.absent:
            return Entry(meta, None, {})
        if entry is not None and entry.meta.digest == meta.digest and entry.served is not None:
            entry.meta, entry.stale = meta, None
            if entry.guard_due:  # revalidated by another server: judged again here too
                await self._guarded_or_kept(name, entry)
            return entry
        with self._budget.lease() as lease:
            try:
                data = await self.storage.read_bytes(page_key(name))
                # A page stored by another worker costs as much to parse here: the same budget.
                lease.take(len(data), meta.url)
                lease.take_entries(count_entries(data), meta.url)
                page = PAGE_DECODER.decode(data)
            except UpstreamError as exc:  # over the memory budget: refetching is refused too
                log.warning("proxy %r: %s", self.name, describe(exc))
                return entry
            except (NotFound, msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning(
                    "proxy %r: cached page of %r unreadable (%s); fetching again",
                    self.name,
                    name,
                    exc,
                )
                return entry
            served, files, _ = served_form(page, meta.url)
        loaded = Entry(msgspec.structs.replace(meta, digest=digest(data)), served, files)
        return loaded if await self._guarded_or_kept(name, loaded) else entry

    async def _guarded_or_kept(self, name: NormalizedName, entry: Entry) -> bool:
        """:meth:`_guarded`; False (logged) when it failed (the trust root cannot be read)."""
        try:
            await self._guarded(name, entry)
        except Exception as exc:
            log.warning("proxy %r: %r: %s", self.name, name, describe(exc))
            return False
        return True

    # -- files ---------------------------------------------------------------------------------

    async def _target(self, path: str) -> Target | None:
        """What to fetch for ``path`` (below packages/), from the page that lists it; None when
        no page of this proxy lists such a file (or the publisher guard holds it)."""

        def kept(project: NormalizedName) -> dict[str, File] | None:
            entry = self._entries.get(project)
            return entry.files if entry is not None else None

        async def fetched(project: NormalizedName) -> dict[str, File]:
            return (await self._entry(project)).files

        return await find_target(path, kept, fetched)
