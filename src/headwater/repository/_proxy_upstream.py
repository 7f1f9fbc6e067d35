"""How a proxy asks its upstream for a page: inside its fetch boundary, under an overall deadline,
and within a memory budget shared by every page being fetched in the process.

**Deadline.** ``timeout`` bounds each wait for bytes; ``deadline`` bounds the whole request
(connecting, redirects, headers and body) plus one second per :data:`MIN_RATE` bytes received,
so an upstream that drips a byte a second is cut off after about ``deadline`` seconds while a
large page or file that keeps flowing is not.

**Memory budget.** A page is read whole and parsed; a hostile upstream can send pages up to the
proxy's ``max_page_size`` each, and many at once. Every page being fetched takes its bytes from
one :class:`MemoryBudget` per process (three times the bytes received: the chunks, the joined
body, and the parsed model), and gives them back when it is parsed. A page that would take the
budget past its limit is refused at once (never waited for: two pages waiting for each other's
bytes would wait forever), and the proxy serves its stale copy or refuses, as for any failure.

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
from collections.abc import Callable, Iterator

import msgspec

from headwater.errors import printable
from headwater.repository._client import MIN_RATE, ClientError, Deadline, HttpClient
from headwater.repository._egress import unauthorized_hint
from headwater.repository.boundary import FetchBoundary
from headwater.repository.errors import UpstreamError
from headwater.repository.http import USER_AGENT, RetryPolicy
from headwater.simple.negotiation import CLIENT_ACCEPT

__all__ = ["MIN_RATE", "PAGE_MEMORY", "Answer", "Lease", "MemoryBudget", "PageFetcher"]

#: The default memory budget of the pages being fetched at once, per process.
PAGE_MEMORY = 768 << 20
_PAGE_HEADERS = {"Accept": CLIENT_ACCEPT, "User-Agent": USER_AGENT, "Accept-Encoding": "gzip"}
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_COPIES = 3  # a page's bytes are held about three times: chunks, joined body, parsed model
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

    def take(self, size: int, url: str) -> None:
        """Hold ``size`` more bytes.

        Raises:
            UpstreamError: the budget has not that much left (not retryable: nothing was kept).
        """
        budget = self.budget
        if budget.used + size > budget.limit:
            raise UpstreamError(
                f"{printable(url, 200)}: the pages being fetched from upstreams hold "
                f"{budget.used >> 20} MiB of the {budget.limit >> 20} MiB memory budget; refused "
                "this page for now (a hostile upstream sending huge pages, or many large pages "
                "at once)",
                url=url,
            )
        budget.used += size
        self.held += size


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
    ) -> None:
        self._client = client
        self.boundary = boundary
        self._retry = retry
        self.deadline = deadline
        self.max_page_size = max_page_size

    async def get(self, url: str, etag: str | None, lease: Lease) -> Answer:
        """GET a page (conditionally with ``etag``), retried per the retry policy.

        Raises:
            UpstreamError: connection failure, timeout, an unexpected status, an oversized page,
                the memory budget, or a URL outside the boundary (FetchRefused).
        """
        headers = {**_PAGE_HEADERS, "If-None-Match": etag} if etag else _PAGE_HEADERS
        # One deadline for every attempt: the client waiting for this page waits for all of them.
        deadline = Deadline(self.deadline, MIN_RATE)
        last: UpstreamError | None = None
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return await self._once(url, headers, lease, deadline)
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
            return Answer(
                status=200,
                body=chunks[0] if len(chunks) == 1 else b"".join(chunks),
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
