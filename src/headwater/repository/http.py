"""A remote index over HTTP: the client side of the Simple API, with retries.

The only place headwater talks to an upstream. Requests send a descriptive User-Agent (PEP 381's
mirroring protocol asks for one) and the PEP 691 Accept header; answers are parsed by
:mod:`headwater.simple.pages` from their Content-Type. Transient failures (connection errors,
timeouts, truncated bodies, 5xx, 429, stale serials) are retried with exponential backoff and jitter;
a 404 is an answer, not a failure. Transport exceptions never escape: they become
:class:`~headwater.repository.errors.UpstreamError` with the URL and what to do.

Bounds, as a proxy has them (docs/proxy.md "Bounds"): each request (each attempt) has an overall
``deadline`` (plus 1 s per :data:`~headwater.repository._client.MIN_RATE` bytes received, so a
large file that keeps flowing is not cut); a page is read at most ``max_page_size`` bytes after
decompression (decoded in bounded pieces, so a gzip bomb is refused without ever being held); a
file is never read past the size its page promises, or past ``max_file_size`` when the page gives
none.

The transport is :class:`headwater.repository._client.HttpClient`, a lean keep-alive HTTP/1.1
client (see its module for why not aiohttp); :func:`client_session` creates and closes one.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TypeVar

import msgspec

from headwater import __version__
from headwater.errors import printable
from headwater.repository._client import (
    MIN_RATE,
    BodyTooLarge,
    ClientError,
    Deadline,
    HttpClient,
    Response,
)
from headwater.repository._egress import Egress
from headwater.repository._tunnel import unauthorized_hint
from headwater.repository.boundary import FetchBoundary
from headwater.repository.errors import (
    IntegrityError,
    StaleResponse,
    UpstreamError,
    UpstreamNotFound,
)
from headwater.simple.model import ProjectList, ProjectPage
from headwater.simple.names import NormalizedName
from headwater.simple.negotiation import CLIENT_ACCEPT
from headwater.simple.pages import parse_project_list, parse_project_page
from headwater.storage.base import Storage

__all__ = ["USER_AGENT", "Fetched", "HttpClient", "HttpRepository", "RetryPolicy", "client_session"]

USER_AGENT = f"headwater/{__version__} (+https://github.com/headwater-index/headwater)"
SERIAL_HEADER = "X-PyPI-Last-Serial"
# Files a page says are at most this big are read whole and written in one go; larger (or of
# unknown size) are streamed to storage chunk by chunk, so memory stays flat for any file.
_SMALL_FILE = 4 << 20
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: The default largest page (after decompression): the proxy's limit. PyPI's largest pages (its
#: root list, projects with tens of thousands of files) are tens of MiB.
MAX_PAGE_SIZE = 256 << 20
#: The default most bytes read of a file whose page gives no size (the proxy's default).
MAX_FILE_SIZE = 8 << 30
T = TypeVar("T")


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How hard to try. Delays grow ``backoff * 2**attempt`` up to ``max_backoff``, with jitter."""

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based); full jitter."""
        ceiling = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


class Fetched(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed page with the response facts a mirror keeps: ETag and serial header."""

    page: ProjectPage | None = None
    project_list: ProjectList | None = None
    etag: str | None = None
    serial: int | None = None
    not_modified: bool = False


_PAGE_HEADERS = {"Accept": CLIENT_ACCEPT, "User-Agent": USER_AGENT, "Accept-Encoding": "gzip"}
# Files are asked for as they are (RFC 9110: no Accept-Encoding would allow any coding) and read
# as sent, never decoded: their hashes are of the stored bytes, as pip reads them.
_FILE_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}


def _serial_header(headers: Mapping[str, str]) -> int | None:
    value = headers.get(SERIAL_HEADER.lower())  # the client's header names are lower case
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


class HttpRepository:
    """A remote Simple API index at ``base_url`` (e.g. ``https://pypi.org/simple/``).

    The session (an :class:`HttpClient`) is passed in: whoever creates it closes it (the engine's
    lifespan), so one pool serves every request of a sync. Every request stays inside
    ``boundary``, redirects included (see :mod:`headwater.repository.boundary`). The default is
    the upstream's own origin and its known file host, with the upstream's name allowed at any
    address (a URL given on a command line); ``headwater mirror`` and ``verify`` pass the strict
    boundary of their ``[mirror.NAME]``.

    ``deadline``: seconds each request (each attempt, body included) may take in all, plus 1 s
    per :data:`~headwater.repository._client.MIN_RATE` bytes received; None: only the session's
    per-read timeout. ``max_page_size``: the most bytes of a page after decompression.
    ``max_file_size``: the most bytes read of a file whose page gives no size.
    """

    def __init__(
        self,
        base_url: str,
        session: HttpClient,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        boundary: FetchBoundary | None = None,
        deadline: float | None = None,
        max_page_size: int = MAX_PAGE_SIZE,
        max_file_size: int = MAX_FILE_SIZE,
    ) -> None:
        self.deadline = deadline
        self.max_page_size = max_page_size
        self.max_file_size = max_file_size
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.session = session
        self.boundary = boundary or FetchBoundary.for_upstream(
            self.base_url, trust_upstream_addresses=True
        )
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HttpRepository({self.base_url!r})"

    def _deadline(self) -> Deadline | None:
        """A fresh deadline for one attempt (None without ``deadline``)."""
        return None if self.deadline is None else Deadline(self.deadline, MIN_RATE)

    async def _get(self, url: str, headers: Mapping[str, str]) -> Response:
        return await self.session.get(
            url, headers, boundary=self.boundary, deadline=self._deadline()
        )

    async def _read_page(self, resp: Response, url: str) -> bytes:
        """The page's body, decoded, refused past ``max_page_size`` (never held whole)."""
        try:
            return await resp.read(limit=self.max_page_size)
        except BodyTooLarge as exc:
            raise UpstreamError(
                f"{printable(url)}: the page is larger than {self.max_page_size} bytes "
                "(decompressed); refused as hostile, nothing of it kept (raise max_page_size "
                "in the [mirror.NAME] table if the upstream really serves such pages)",
                url=url,
                retryable=False,
            ) from exc

    def project_url(self, name: NormalizedName) -> str:
        """The URL of a project's page (always the normalized form: clients MUST NOT rely on
        redirects, item 2)."""
        return f"{self.base_url}{name}/"

    async def _with_retries(self, url: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        last: UpstreamError | None = None
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return await attempt_once()
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                last = exc
            except (ClientError, TimeoutError) as exc:
                # A proxy refusing credentials or a destination answers the same next time.
                retryable = getattr(exc, "retryable", True)
                last = UpstreamError(_describe(exc, url), url=url, retryable=retryable)
                last.__cause__ = exc
                if not retryable:
                    raise last from exc
            if attempt < self.retry.attempts:
                await self._sleep(self.retry.delay(attempt))
        assert last is not None
        raise type(last)(
            f"{last} (gave up after {self.retry.attempts} attempts)",
            url=url,
            status=last.status,
            retryable=True,
        ) from last

    async def project_list(self, *, etag: str | None = None) -> Fetched:
        """Fetch and parse the root page. With ``etag``, a 304 gives ``Fetched(not_modified=True)``.

        Raises:
            UpstreamError: after retries; InvalidPage: the page is malformed (not retried).
        """
        url = self.base_url

        async def once() -> Fetched:
            headers = {**_PAGE_HEADERS, "If-None-Match": etag} if etag else _PAGE_HEADERS
            async with await self._get(url, headers) as resp:
                if resp.status == 304:
                    return Fetched(
                        not_modified=True, etag=etag, serial=_serial_header(resp.headers)
                    )
                _check_status(resp, url, "the project list")
                body = await self._read_page(resp, url)
                parsed = parse_project_list(
                    body, resp.headers.get("content-type"), base_url=resp.url
                )
                return Fetched(
                    project_list=parsed,
                    etag=resp.headers.get("etag"),
                    serial=_serial_header(resp.headers),
                )

        return await self._with_retries(url, once)

    async def project_page(
        self, name: NormalizedName, *, min_serial: int | None = None, etag: str | None = None
    ) -> Fetched:
        """Fetch and parse one project's page.

        ``min_serial`` is the serial the project list gave: an answer whose serial (header, or the
        page's ``_last-serial``) is lower is a stale cache copy, retried with backoff and never
        returned. With ``etag``, a 304 gives ``Fetched(not_modified=True)``.

        Raises:
            UpstreamNotFound: 404/410 (the project is gone). StaleResponse: still stale after
            retries. UpstreamError: other failures after retries. InvalidPage: malformed page.
        """
        url = self.project_url(name)

        async def once() -> Fetched:
            headers = {**_PAGE_HEADERS, "If-None-Match": etag} if etag else _PAGE_HEADERS
            async with await self._get(url, headers) as resp:
                serial = _serial_header(resp.headers)
                if resp.status == 304:
                    return Fetched(not_modified=True, etag=etag, serial=serial)
                _check_status(resp, url, f"project {name!r}")
                body = await self._read_page(resp, url)
                page = parse_project_page(
                    body, resp.headers.get("content-type"), name=name, base_url=resp.url
                )
                seen = serial if serial is not None else page.last_serial
                if min_serial is not None and seen is not None and seen < min_serial:
                    raise StaleResponse(
                        f"{printable(url)} answered with serial {seen}, older than the "
                        f"{min_serial} the index "
                        "listed (a stale cache copy); not storing it",
                        url=url,
                        retryable=True,
                    )
                return Fetched(page=page, etag=resp.headers.get("etag"), serial=seen)

        return await self._with_retries(url, once)

    def small_enough(self, size: int | None) -> bool:
        """Whether a file of ``size`` (as its page promises) may be read whole with
        :meth:`fetch_bytes` rather than streamed to storage."""
        return size is not None and size <= _SMALL_FILE

    async def fetch_bytes(self, url: str, *, sha256: str | None, size: int) -> bytes:
        """Download a small file (see :meth:`small_enough`) into memory, checked against ``size``
        and ``sha256``; the caller writes it (e.g. together with its ``.metadata``, in one
        storage call). Never holds more than ``size`` bytes, whatever the server sends.

        Raises:
            IntegrityError: the bytes do not match (after retries).
            UpstreamNotFound, UpstreamError: as for pages.
        """
        return await self._with_retries(
            url, lambda: self._fetch_small(url, sha256=sha256, size=size)
        )

    async def fetch_document(self, url: str, *, limit: int, accept: str) -> bytes:
        """A small document the page links without a digest (a PEP 740 provenance document):
        at most ``limit`` bytes, read whole; the caller verifies what it says.

        Raises:
            IntegrityError: it is larger than ``limit``.
            UpstreamNotFound, UpstreamError: as for pages.
        """
        return await self._with_retries(url, lambda: self._fetch_document(url, limit, accept))

    async def _fetch_document(self, url: str, limit: int, accept: str) -> bytes:
        async with await self._get(url, {**_FILE_HEADERS, "Accept": accept}) as resp:
            _check_status(resp, url, "document")
            chunks: list[bytes] = []
            received = 0
            async for chunk in resp.iter_chunks(decode=False):
                received += len(chunk)
                if received > limit:
                    raise IntegrityError(
                        f"{printable(url)} is larger than {limit} bytes; not read", url=url
                    )
                chunks.append(chunk)
        return b"".join(chunks)

    async def _fetch_small(self, url: str, *, sha256: str | None, size: int) -> bytes:
        async with await self._get(url, _FILE_HEADERS) as resp:
            _check_status(resp, url, "file")
            chunks: list[bytes] = []
            received = 0
            async for chunk in resp.iter_chunks(decode=False):
                received += len(chunk)
                if received > size:  # never hold more than promised, whatever is sent
                    raise IntegrityError(
                        f"{printable(url)} is larger than the {size} bytes its page "
                        "promised; discarded",
                        url=url,
                        retryable=True,
                    )
                chunks.append(chunk)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if len(body) != size:
            raise IntegrityError(
                f"{printable(url)} has {len(body)} bytes, its page promised {size}; discarded",
                url=url,
                retryable=True,
            )
        if sha256 is not None:
            digest = hashlib.sha256(body).hexdigest()
            if digest != sha256:
                raise IntegrityError(
                    f"{printable(url)} has sha256 {digest}, its page promised {sha256}; discarded",
                    url=url,
                    retryable=True,
                )
        return body

    async def fetch_verified(
        self,
        url: str,
        *,
        sha256: str | None,
        size: int | None,
        storage: Storage,
        key: str,
    ) -> tuple[int, bytes | None]:
        """Download ``url`` to ``key`` in ``storage``, checking size and sha256 before it is
        published (an atomic write that a mismatch discards, so nothing unverified is ever
        visible). Returns the size, and the bytes themselves when the file was small enough to
        be read whole (files the page says are at most 4 MiB: one write instead of a stream).

        Raises:
            IntegrityError: the bytes do not match (after retries: a CDN may serve a bad copy once).
            UpstreamNotFound, UpstreamError: as for pages.
        """

        def check(received: int, digest: str | None) -> None:
            if size is not None and received != size:
                raise IntegrityError(
                    f"{printable(url)} has {received} bytes, its page promised {size}; discarded",
                    url=url,
                    retryable=True,
                )
            if sha256 is not None and digest != sha256:
                raise IntegrityError(
                    f"{printable(url)} has sha256 {digest}, its page promised {sha256}; discarded",
                    url=url,
                    retryable=True,
                )

        # A file is never read past its promised size, nor past max_file_size without one.
        bound = size if size is not None else self.max_file_size

        def too_large() -> IntegrityError:
            if size is None:
                return IntegrityError(
                    f"{printable(url)} is larger than {bound} bytes, the most read of a file "
                    "whose page gives no size (max_file_size, or the filters' max_size); "
                    "discarded",
                    url=url,
                    retryable=False,
                )
            return IntegrityError(
                f"{printable(url)} is larger than the {size} bytes its page promised; discarded",
                url=url,
                retryable=True,
            )

        async def small() -> tuple[int, bytes | None]:
            assert size is not None
            body = await self._fetch_small(url, sha256=sha256, size=size)
            await storage.write_bytes(key, body)
            return len(body), body

        async def streamed() -> tuple[int, bytes | None]:
            digest = hashlib.sha256()
            received = 0
            async with await self._get(url, _FILE_HEADERS) as resp:
                _check_status(resp, url, "file")
                async with storage.writer(key) as writer:
                    async for chunk in resp.iter_chunks(decode=False):
                        received += len(chunk)
                        if received > bound:
                            raise too_large()
                        digest.update(chunk)
                        await writer.write(chunk)
                    check(received, digest.hexdigest())
            return received, None

        return await self._with_retries(
            url, small if size is not None and size <= _SMALL_FILE else streamed
        )


def _check_status(resp: Response, url: str, what: str) -> None:
    if resp.status == 200:
        return
    if resp.status in (404, 410):
        raise UpstreamNotFound(
            f"{printable(url)}: {what} not found (HTTP {resp.status})", url=url, status=resp.status
        )
    retryable = resp.status in _RETRY_STATUS
    hint = unauthorized_hint(resp.proxy) if resp.status == 401 else ""
    raise UpstreamError(
        f"{printable(url)}: HTTP {resp.status} {resp.reason or ''} for {what}".rstrip() + hint,
        url=url,
        status=resp.status,
        retryable=retryable,
    )


def _describe(exc: BaseException, url: str) -> str:
    if isinstance(exc, TimeoutError):
        return f"{printable(url)}: timed out"
    if isinstance(exc, ClientError):
        return f"{printable(url)}: {printable(str(exc))}"
    return f"{printable(url)}: {type(exc).__name__}: {printable(str(exc))}"


@asynccontextmanager
async def client_session(
    *, connections: int = 64, read_timeout: float = 60.0, egress: Egress | None = None
) -> AsyncIterator[HttpClient]:
    """An HTTP client sized for a sync: one pool of ``connections``; ``read_timeout`` bounds
    connecting and every wait for the next bytes of an answer; ``egress`` says how to reach the
    upstream (proxy, credentials, TLS; default: the proxy environment variables). Closed on exit."""
    client = HttpClient(
        connections=connections,
        connect_timeout=read_timeout,
        read_timeout=read_timeout,
        egress=egress,
    )
    try:
        yield client
    finally:
        await client.close()
