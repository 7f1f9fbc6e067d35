"""A proxy's project list (the upstream's root page), and the helpers its pages share with it.

The list is fetched like a project page (revalidated after ``ttl`` with its ETag, one fetch at a
time, a stale copy served when the upstream fails, the failure refused rather than answered as an
empty list) and kept as ``state/root/names.txt`` and ``meta.json``, one normalized name a line.
Offline and never fetched, it is the projects whose pages are cached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import msgspec

from headwater.errors import InvalidInput, printable
from headwater.repository._flight import SingleFlight
from headwater.repository._proxy_pages import META, ROOT_META, ROOT_NAMES, Meta, Root, digest
from headwater.repository._proxy_upstream import MemoryBudget, PageFetcher
from headwater.repository.base import SourceUnavailable
from headwater.repository.errors import UpstreamError
from headwater.simple.names import NormalizedName, is_normalized
from headwater.simple.pages import parse_project_list
from headwater.storage.base import NotFound, Storage, StorageError

__all__ = ["RootList", "describe", "parse_soon", "read_meta", "write_meta"]

log = logging.getLogger("headwater.proxy")
T = TypeVar("T")
_PARSE_IN_THREAD = 256 << 10  # pages larger than this are parsed off the event loop


async def parse_soon(parse: Callable[[], T], body: bytes) -> T:
    """``parse()``, off the event loop when ``body`` is large."""
    if len(body) > _PARSE_IN_THREAD:
        return await asyncio.to_thread(parse)
    return parse()


async def read_meta(storage: Storage, key: str, name: str) -> Meta | None:
    """The :class:`Meta` at ``key`` (None when absent or unreadable; logged for proxy ``name``)."""
    try:
        return META.decode(await storage.read_bytes(key))
    except NotFound:
        return None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("proxy %r: %s is unreadable (%s); ignoring it", name, key, exc)
        return None


async def write_meta(storage: Storage, key: str, meta: Meta) -> None:
    await storage.write_bytes(key, msgspec.json.encode(meta))


def describe(exc: Exception) -> str:
    """One line about a failure, safe for a header and a log line (upstream text escaped)."""
    if isinstance(exc, (UpstreamError, InvalidInput, StorageError)):
        text = " ".join(str(exc).split())
        return printable(text) if text else type(exc).__name__
    # Anything else is a failure nobody planned for (a parser's RecursionError, ...): its text
    # may quote the page, so only its type is said.
    return f"unexpected {type(exc).__name__} while reading the upstream's answer"


class RootList:
    """The project list of proxy ``name`` of ``url`` (see the module docstring)."""

    def __init__(
        self,
        name: str,
        url: str,
        storage: Storage,
        pages: PageFetcher,
        budget: MemoryBudget,
        *,
        offline: bool,
        retry_interval: float,
        usable: Callable[[Meta, float], bool],
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.url = url
        self.storage = storage
        self.offline = offline
        self.retry_interval = retry_interval
        self._pages = pages
        self._budget = budget
        self._usable = usable
        self._clock = clock
        self._root: Root | None = None
        self._failure: tuple[float, str] | None = None
        self._fetching: SingleFlight[None, Root] = SingleFlight()

    async def aclose(self) -> None:
        await self._fetching.aclose()

    async def entry(self) -> Root:
        """The list, fetched or revalidated when due.

        Raises:
            SourceUnavailable: the upstream failed and no project list is cached.
        """
        root = self._root
        if root is not None and self._usable(root.meta, root.retry_at):
            return root
        return await self._fetching.run(None, self._refresh)

    async def _refresh(self) -> Root:
        root = self._root
        if root is not None and self._usable(root.meta, root.retry_at):
            return root
        stored = await read_meta(self.storage, ROOT_META, self.name)
        if stored is not None and (root is None or stored.checked > root.meta.checked):
            root = await self._load(stored) or root
        if root is not None and self._usable(root.meta, float("-inf")):
            self._root = root
            return root
        if self.offline:
            # Never fetched: the projects that are cached are all this proxy can serve.
            self._root = Root(Meta(url=self.url, checked=0.0), await self._cached_names())
            return self._root
        now = self._clock()
        failed = self._failure
        if failed is not None and now < failed[0] and root is None:
            raise SourceUnavailable(failed[1], source=self.name)
        etag = root.meta.etag if root is not None and not root.meta.absent else None
        try:
            with self._budget.lease() as lease:
                answer = await self._pages.get(self.url, etag, lease)
                if answer.status == 304 and root is not None:
                    meta = msgspec.structs.replace(root.meta, checked=now)
                    await write_meta(self.storage, ROOT_META, meta)
                    root.meta, root.stale = meta, None
                    self._root = root
                    return root
                if answer.status in (304, 404):
                    self._root = Root(Meta(url=self.url, checked=now, absent=True), [])
                    await write_meta(self.storage, ROOT_META, self._root.meta)
                    return self._root
                listing = await parse_soon(
                    lambda: parse_project_list(
                        answer.body, answer.content_type, base_url=answer.url
                    ),
                    answer.body,
                )
        except Exception as exc:
            return self._failed(root, exc)
        if listing.rejected:
            log.warning(
                "proxy %r: %d invalid name(s) left off the project list of %s (first: %r)",
                self.name,
                len(listing.rejected),
                self.url,
                listing.rejected[0].value[:100],
            )
        names = list(dict.fromkeys(entry.normalized for entry in listing.projects))
        data = "\n".join(names).encode()
        meta = Meta(url=self.url, checked=now, etag=answer.etag, digest=digest(data))
        await self.storage.write_bytes(ROOT_NAMES, data)
        await write_meta(self.storage, ROOT_META, meta)
        self._failure = None
        self._root = Root(meta, names)
        return self._root

    def _failed(self, root: Root | None, exc: Exception) -> Root:
        now = self._clock()
        what = describe(exc)
        if root is not None and not root.meta.absent:
            fetched = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(root.meta.checked))
            root.stale = (
                f"proxy {self.name!r}: upstream {self.url} failed ({what}); serving the project "
                f"list confirmed at {fetched}"
            )
            root.retry_at = now + self.retry_interval
            log.warning("%s", root.stale)
            self._root = root
            return root
        message = (
            f"proxy {self.name!r}: upstream {self.url} failed ({what}) and no project list is "
            "cached (check the upstream, or its URL in the configuration)"
        )
        self._failure = (now + self.retry_interval, message)
        raise SourceUnavailable(message, source=self.name) from exc

    async def _load(self, meta: Meta) -> Root | None:
        if meta.absent:
            return Root(meta, [])
        if self._root is not None and self._root.meta.digest == meta.digest:
            self._root.meta, self._root.stale = meta, None
            return self._root
        try:
            data = await self.storage.read_bytes(ROOT_NAMES)
        except NotFound:
            return None
        names = [
            NormalizedName(n)
            for n in data.decode("utf-8", "replace").split("\n")
            if is_normalized(n)
        ]
        return Root(msgspec.structs.replace(meta, digest=digest(data)), names)

    async def _cached_names(self) -> list[NormalizedName]:
        names: set[NormalizedName] = set()
        async for key in self.storage.iter_keys("state/pages"):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == "page.json" and is_normalized(parts[2]):
                names.add(NormalizedName(parts[2]))
        return sorted(names)
