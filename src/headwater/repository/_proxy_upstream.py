"""How a proxy asks its upstream for a page: inside its fetch boundary, under an overall deadline,
and within a memory budget shared by every page being fetched in the process.

**Deadline.** ``timeout`` bounds each wait for bytes; ``deadline`` bounds the whole request
(connecting, redirects, headers and body) plus one second per :data:`MIN_RATE` bytes received,
so an upstream that drips a byte a second is cut off after about ``deadline`` seconds while a
large page or file that keeps flowing is not.

**Memory budget.** A page is read whole and parsed; a hostile upstream can send pages up to the
proxy's ``max_page_size`` each, and many at once. Every page being fetched takes its memory from
one :class:`MemoryBudget` per process, and gives it back once its served form is made:

- while it arrives, three times the bytes received (the chunks, the joined body, a copy);
- once it has arrived, :data:`ENTRY_COST` per file entry it lists (:func:`count_entries`,
  counted on the bytes before parsing, and again exactly after), for what its bytes do not
  show: a page of many small entries parses into objects several times its size, and is then
  encoded, put in served form and rendered. Measured on a dense page (70,000 entries of 180
  bytes): 0.8 KiB per entry to parse, 0.4 to encode, 0.75 for the served form, 0.5-0.7 per
  rendering; a worker grew 2.2 KiB per entry at its peak (bytes included).

A page that would take the budget past its limit is refused at once (never waited for: two pages
waiting for each other's bytes would wait forever), and the proxy serves its stale copy or
refuses, as for any failure. A page listing more than the proxy's ``max_page_files`` is refused
whatever the budget.

Memory freed by Python is not always given back to the system: a page arrives in thousands of
socket-sized chunks that glibc's allocator keeps in its heap after they are freed, so a burst of
huge pages left a worker hundreds of MiB larger for good. When a lease of more than 32 MiB ends,
the heap is trimmed (``malloc_trim``; glibc only, elsewhere nothing is done).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import msgspec

from headwater.errors import printable
from headwater.repository._client import MIN_RATE, ClientError, Deadline, HttpClient
from headwater.repository._tunnel import unauthorized_hint
from headwater.repository.boundary import FetchBoundary
from headwater.repository.errors import UpstreamError
from headwater.repository.http import USER_AGENT, RetryPolicy
from headwater.simple.negotiation import CLIENT_ACCEPT

__all__ = [
    "ENTRY_COST",
    "MIN_RATE",
    "PAGE_MEMORY",
    "Answer",
    "Lease",
    "MemoryBudget",
    "PageFetcher",
    "count_entries",
]

#: The default memory budget of the pages being fetched at once, per process.
PAGE_MEMORY = 768 << 20
_PAGE_HEADERS = {"Accept": CLIENT_ACCEPT, "User-Agent": USER_AGENT, "Accept-Encoding": "gzip"}
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_COPIES = 3  # a page's bytes are held about three times: chunks, joined body, parsed model
#: Bytes of memory one file entry of a page costs from parsing to serving, besides its bytes
#: (see the module docstring for the measurement; rounded up).
ENTRY_COST = 3 << 10
T = TypeVar("T")
_TRIM_AFTER = 32 << 20  # a lease this large gives its memory back to the system when it ends


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_TRIM = _malloc_trim()


class MemoryBudget:
    """Bytes that pages being fetched may hold at once (see the module docstring)."""

    def __init__(self, limit: int = PAGE_MEMORY) -> None:
        self.limit = limit
        self.used = 0

    @contextlib.contextmanager
    def lease(self) -> Iterator[Lease]:
        """A share of the budget for one page, given back on exit."""
        lease = Lease(self)
        try:
            yield lease
        finally:
            self.used -= lease.held
            large = lease.held > _TRIM_AFTER
            lease.held = 0
            if large and _TRIM is not None:
                # The chunks are garbage by now; give their pages back to the system.
                _TRIM(0)


class Lease:
    """What one page holds of a :class:`MemoryBudget`."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.held = 0
        #: File entries already paid for (:meth:`take_entries`).
        self.entries = 0

    def take(self, size: int, url: str, what: str = "") -> None:
        """Hold ``size`` more bytes (``what``: why, for the refusal).

        Raises:
            UpstreamError: the budget has not that much left (not retryable: nothing was kept).
        """
        budget = self.budget
        if budget.used + size > budget.limit:
            raise UpstreamError(
                f"{printable(url, 200)}: the pages being fetched from upstreams hold "
                f"{budget.used >> 20} MiB of the {budget.limit >> 20} MiB memory budget"
                f"{what}; refused this page for now (a hostile upstream sending huge pages, or "
                "many large pages at once)",
                url=url,
            )
        budget.used += size
        self.held += size

    def take_entries(self, entries: int, url: str) -> None:
        """Pay :data:`ENTRY_COST` for each of ``entries`` file entries not yet paid for."""
        more = entries - self.entries
        if more > 0:
            self.take(
                more * ENTRY_COST,
                url,
                f"; this page lists {entries} files, about "
                f"{(entries * ENTRY_COST) >> 20} MiB once parsed",
            )
            self.entries = entries


def count_entries(body: bytes) -> int:
    """How many file entries a page lists, counted on its bytes before it is parsed: the
    ``"filename"`` keys of a JSON page, the ``<a`` tags of an HTML one (whichever is more).
    Either can count a few too many (the text inside a value), never fewer for a page written
    plainly; a JSON page that spells its keys with escapes is counted exactly after parsing."""
    return max(body.count(b'"filename"'), body.count(b"<a") + body.count(b"<A"))


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    status: int  # 200, 304 or 404 (404 stands for 410 too)
    body: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    url: str = ""


class PageFetcher:
    """GETs of one proxy's pages (see the module docstring)."""

    def __init__(
        self,
        client: Callable[[], HttpClient],
        boundary: FetchBoundary,
        *,
        retry: RetryPolicy,
        deadline: float,
        max_page_size: int,
        max_page_files: int | None = None,
    ) -> None:
        self._client = client
        self.boundary = boundary
        self._retry = retry
        self.deadline = deadline
        self.max_page_size = max_page_size
        self.max_page_files = max_page_files

    def check_files(self, entries: int, url: str) -> None:
        """Refuse a page listing more than ``max_page_files`` files.

        Raises:
            UpstreamError: it does (not retryable).
        """
        if self.max_page_files is not None and entries > self.max_page_files:
            raise UpstreamError(
                f"the page lists {entries} files, over the proxy's limit of "
                f"{self.max_page_files}; refused as hostile (raise max_page_files if the "
                "upstream really serves such pages)",
                url=url,
            )

    async def get(self, url: str, etag: str | None, lease: Lease) -> Answer:
        """GET a page (conditionally with ``etag``), retried per the retry policy.

        Raises:
            UpstreamError: connection failure, timeout, an unexpected status, an oversized page,
                the memory budget, or a URL outside the boundary (FetchRefused).
        """
        headers = {**_PAGE_HEADERS, "If-None-Match": etag} if etag else _PAGE_HEADERS
        return await self._retried(url, lambda deadline: self._once(url, headers, lease, deadline))

    async def document(self, url: str, *, limit: int, accept: str) -> bytes:
        """A small document a page links without a digest (a PEP 740 provenance document): at
        most ``limit`` bytes, read whole, inside the boundary and under the deadline, retried as
        a page is; the caller verifies what it says.

        Raises:
            UpstreamError: as for pages; a 404, and a document over ``limit``, too.
        """
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        return await self._retried(
            url, lambda deadline: self._document_once(url, headers, limit, deadline)
        )

    async def _retried(self, url: str, once: Callable[[Deadline], Awaitable[T]]) -> T:
        # One deadline for every attempt: the client waiting for this answer waits for all.
        deadline = Deadline(self.deadline, MIN_RATE)
        last: UpstreamError | None = None
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return await once(deadline)
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                last = exc
            except (ClientError, TimeoutError) as exc:
                # A forward proxy refusing (407, 403) answers the same to a second attempt.
                retryable = getattr(exc, "retryable", True)
                last = UpstreamError(
                    printable(f"{exc or 'timed out'}"), url=url, retryable=retryable
                )
                last.__cause__ = exc
                if not retryable:
                    raise last from exc
            if attempt < self._retry.attempts and deadline.wait(1.0)[0] > 0:
                await asyncio.sleep(self._retry.delay(attempt))
            else:
                break
        assert last is not None
        raise last

    async def _document_once(
        self, url: str, headers: dict[str, str], limit: int, deadline: Deadline
    ) -> bytes:
        response = await self._client().get(url, headers, boundary=self.boundary, deadline=deadline)
        async with response as resp:
            if resp.status != 200:
                raise UpstreamError(
                    f"HTTP {resp.status} {resp.reason}".rstrip(),
                    url=url,
                    status=resp.status,
                    retryable=resp.status in _RETRY_STATUS,
                )
            chunks: list[bytes] = []
            total = 0
            async for chunk in resp.iter_chunks():
                total += len(chunk)
                if total > limit:
                    raise UpstreamError(f"the document is over {limit} bytes; not read", url=url)
                chunks.append(chunk)
            return b"".join(chunks)

    async def _once(
        self, url: str, headers: dict[str, str], lease: Lease, deadline: Deadline
    ) -> Answer:
        response = await self._client().get(url, headers, boundary=self.boundary, deadline=deadline)
        async with response as resp:
            if resp.status == 304:
                return Answer(status=304, etag=_etag(resp.headers.get("etag")))
            if resp.status in (404, 410):
                return Answer(status=404)
            if resp.status != 200:
                hint = unauthorized_hint(resp.proxy) if resp.status == 401 else ""
                raise UpstreamError(
                    f"HTTP {resp.status} {resp.reason}".rstrip() + hint,
                    url=url,
                    status=resp.status,
                    retryable=resp.status in _RETRY_STATUS,
                )
            cap = self.max_page_size
            declared = resp.headers.get("content-length", "")
            if (
                declared.isdigit()
                and int(declared) > cap
                and "content-encoding" not in resp.headers
            ):
                raise UpstreamError(_too_large(declared, cap), url=url)
            chunks: list[bytes] = []
            total = 0
            try:
                async for chunk in resp.iter_chunks():
                    total += len(chunk)
                    if total > cap:  # counted after decompression: a gzip bomb stops here too
                        raise UpstreamError(_too_large(f"more than {cap}", cap), url=url)
                    lease.take(len(chunk) * _COPIES, url)
                    chunks.append(chunk)
            except BaseException:
                # The error's traceback keeps this frame alive (with the chunks) as long as
                # someone holds the error: let the chunks go now.
                chunks.clear()
                raise
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            # What parsing and serving it will cost, before the parse: refused now if too much.
            entries = count_entries(body)
            self.check_files(entries, url)
            lease.take_entries(entries, url)
            return Answer(
                status=200,
                body=body,
                content_type=resp.headers.get("content-type"),
                etag=_etag(resp.headers.get("etag")),
                url=resp.url,
            )


def _etag(value: str | None) -> str | None:
    """An upstream ETag worth keeping: one that can be sent back as it is (printable, short)."""
    if value is None or len(value) > 200 or printable(value) != value:
        return None
    return value


def _too_large(size: str, cap: int) -> str:
    return (
        f"the page is {size} bytes, over the proxy's limit of {cap}; refused as hostile "
        "(raise max_page_size if the upstream really serves such pages)"
    )
