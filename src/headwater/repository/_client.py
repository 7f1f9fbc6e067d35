"""A lean HTTP/1.1 client for upstream fetches: GET only, keep-alive pool, httptools parser.

Why not aiohttp: a mirror sends thousands of small GETs to one host, and on one core aiohttp's
per-request machinery (about a third of a full sync's CPU in a py-spy profile) cost more than the
pages and files themselves. This client does one ``transport.write`` per request, parses with
httptools (the C parser uvicorn uses, already a dependency for the test upstream) straight from
``data_received``, and keeps idle connections per origin for reuse.

Where it may connect is not its own decision: every request (each redirect hop too) passes the
caller's :class:`~headwater.repository.boundary.FetchBoundary` (scheme and origin), and every new
connection resolves the host itself, has every address checked by the boundary, and connects to
the address it checked (so a second DNS answer cannot swap it). Without a boundary only the
scheme is checked. A refusal is :class:`~headwater.repository.errors.FetchRefused`, never sent.

What it keeps of a full client: connect and per-read timeouts; Content-Length, chunked and
read-until-close bodies; a body cut short is an error, never a short answer; gzip/deflate
``Content-Encoding`` decoded in pieces of at most 256 KiB, and a reader's ``limit`` counted at the
decoded size, so a gzip bomb never exists whole (or not decoded, for files:
``iter_chunks(decode=False)``); redirects followed
(at most 10); an optional overall deadline per request; TLS through :mod:`ssl` for ``https``
upstreams; back-pressure (reading pauses while 1 MiB is unconsumed). A request on a reused
keep-alive connection that the server had already closed (no byte of the answer received) is sent
once more on a new connection, as browsers and urllib3 do; every other failure is raised as
:class:`ClientError` for the caller's retry policy. Cookies and request bodies are not needed by a
mirror and not supported.

Forward proxies, upstream credentials and per-source TLS trust come from an
:class:`~headwater.repository._egress.Egress`, asked once per origin; the answer (connect directly,
through a proxy in absolute form, or through a CONNECT tunnel; which header lines to add) is kept
in a :class:`_Route`, so a request costs one dictionary lookup more than a bare GET. Credentials
are attached per origin, never carried across a redirect: a redirect to another origin gets none
(and loses any ``Authorization``, ``Proxy-Authorization`` or ``Cookie`` the caller passed).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import re
import socket
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from typing import cast
from urllib.parse import urljoin, urlsplit

import httptools

from headwater.errors import printable
from headwater.repository._egress import Egress, ProxyEndpoint
from headwater.repository._tunnel import ProxyRefused, open_tunnel, refusal, unreachable
from headwater.repository.boundary import FetchBoundary, refuse_scheme
from headwater.repository.errors import FetchRefused

__all__ = [
    "MIN_RATE",
    "BodyTooLarge",
    "ClientError",
    "ClientTimeout",
    "Deadline",
    "HttpClient",
    "ProxyError",
    "Resolver",
    "Response",
]

_HIGH_WATER = 1 << 20  # pause reading when this much body is buffered and unconsumed
# The most a compressed body's decoder produces at once (a gzip bomb never exists whole).
_PIECE = 256 << 10
_MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Caller headers that are credentials: never sent on to another origin after a redirect.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class ClientError(Exception):
    """A request failed in transport (connect, reset, timeout, cut-short or invalid answer).

    ``retryable``: whether the same request may succeed if sent again (True but for a forward
    proxy's refusal, :class:`ProxyError`); every retry loop asks it rather than the type."""

    retryable = True


class ClientTimeout(ClientError):
    """Connecting, or waiting for the next bytes of an answer, took longer than allowed."""


class ProxyError(ClientError):
    """The forward proxy refused or failed the request; the message names it (never its password)
    and the fix. ``retryable`` is False when only a config change can help (407, 403)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class BodyTooLarge(ClientError):
    """The body (decoded, when decoding) passed the ``limit`` its reader set; the connection is
    closed, the rest never read. Not retryable: the same request gets the same answer."""

    retryable = False

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than the {limit} bytes allowed; not read further")
        self.limit = limit


class _Stale(ClientError):
    """A reused idle connection was closed by the server before it answered (safe to resend)."""


Origin = tuple[str, str, int]  # scheme, host, port
#: Host and port -> the addresses to connect to (``loop.getaddrinfo`` unless a test injects one).
Resolver = Callable[[str, int], Awaitable[list[str]]]
# A request header value with a control character is not sent (it could split the request).
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; parses answers as bytes arrive and hands them to one reader."""

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop, key: object) -> None:
        self.origin = origin
        self.key = key  # the idle pool it returns to: origin and the boundary that allowed it
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.closed = False
        self.reused = False
        self._reset_message()

    def _reset_message(self) -> None:
        self.status = 0
        self.reason = ""
        self.header_list: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.headers_done = False
        self.complete = False
        self.received_any = False
        self.error: ClientError | None = None
        self.keep_alive = False

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, but not necessarily an asyncio.Transport subclass: uvloop's is not.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ClientError("the server switched protocols unasked"))
        except httptools.HttpParserError as exc:
            self._fail(ClientError(f"the server sent an invalid HTTP answer ({exc})"))
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost does the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            if self.headers_done and self._until_close():
                self.complete = True  # PEP-less HTTP/1.0 style: the body ends with the connection
            elif not self.received_any:
                if isinstance(exc, ConnectionResetError) or (
                    isinstance(exc, OSError) and exc.errno == errno.ECONNRESET
                ):
                    message = "connection failed (the connection was reset by the server)"
                else:
                    message = "the server closed the connection"
                self.error = _Stale(message) if self.reused else ClientError(message)
            elif self.headers_done:
                self.error = ClientError("the response body was cut short (connection closed)")
            else:
                self.error = ClientError("the server closed the connection mid-answer")
        self._wake()

    def pause_writing(self) -> None:  # requests are tiny; nothing to throttle
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ------------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        # Upstream text: it reaches messages, logs and (through them) headers only escaped.
        self.reason = printable(status.decode("latin-1"), 100)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_list.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()

    # -- for the reader -----------------------------------------------------------------------

    def _until_close(self) -> bool:
        for name, value in self.header_list:
            lowered = name.lower()
            if lowered == b"content-length" or (
                lowered == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                return False
        return True

    def _fail(self, error: ClientError) -> None:
        if self.error is None:
            self.error = error
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, seconds: float, why: str = "timed out") -> None:
        """Wait for the parser to make progress (or the connection to end), at most ``seconds``
        (then the connection fails with ``ClientTimeout(why)``). (One timer per wait, not
        ``asyncio.timeout``: this runs for every chunk of every answer.)"""
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(max(seconds, 0.0), self._time_out, waiter, why)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _time_out(self, waiter: asyncio.Future[None], why: str) -> None:
        if not waiter.done():
            self.error = ClientTimeout(why)
            waiter.set_result(None)
            if self.transport is not None:
                self.transport.abort()

    def take(self) -> bytes:
        """Everything buffered so far, and resume reading if it was paused."""
        data = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()
        return data

    def send(self, request: bytes) -> None:
        self._reset_message()
        assert self.transport is not None
        self.transport.write(request)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


#: Bytes per second an upstream answer must average to be allowed past its deadline (the
#: ``min_rate`` that the proxy and the mirror give their :class:`Deadline`).
MIN_RATE = 32 << 10


class Deadline:
    """An overall deadline of one request: ``seconds`` from its start, plus one second for every
    ``min_rate`` bytes of body received (so a large file may take as long as it keeps flowing,
    while an upstream that drips a byte a second is cut off after about ``seconds``)."""

    def __init__(self, seconds: float, min_rate: float | None = None) -> None:
        self.seconds = seconds
        self.min_rate = min_rate
        self.start = asyncio.get_running_loop().time()

    def wait(self, read_timeout: float, received: int = 0) -> tuple[float, str]:
        """How long the next wait may last, and what to say if it runs out."""
        allowed = self.start + self.seconds - asyncio.get_running_loop().time()
        if self.min_rate:
            allowed += received / self.min_rate
        if allowed < read_timeout:
            rate = f" plus 1 s per {self.min_rate:.0f} bytes" if self.min_rate else ""
            return allowed, f"took longer than its deadline ({self.seconds:g} s{rate})"
        return read_timeout, "timed out"


class Response:
    """An answer whose headers have arrived; read the body with :meth:`read` or :meth:`iter_chunks`
    and release the connection with :meth:`close` (``async with`` does both)."""

    def __init__(
        self,
        client: HttpClient,
        conn: _Connection,
        url: str,
        read_timeout: float,
        deadline: Deadline | None = None,
    ):
        self._client = client
        self._conn: _Connection | None = conn
        self._deadline = deadline
        #: Body bytes received so far, as sent (before any decoding).
        self.received = 0
        self.url = url
        self.status = conn.status
        self.reason = conn.reason
        self._decoder: zlib._Decompress | None = None
        self.headers: dict[str, str] = {}
        for name, value in conn.header_list:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            # Repeated headers fold into one, as RFC 9110 5.3 allows for list-valued fields.
            self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text
        encoding = self.headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        self._read_timeout = read_timeout
        #: The forward proxy that relayed this answer in absolute form (its ``display``), or
        #: None: a 401 may then be the proxy's own (tinyproxy answers 401 for bad credentials).
        self.proxy: str | None = None

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _wait(self) -> tuple[float, str]:
        if self._deadline is None:
            return self._read_timeout, "timed out"
        return self._deadline.wait(self._read_timeout, self.received)

    async def iter_chunks(
        self, *, decode: bool = True, limit: int | None = None
    ) -> AsyncIterator[bytes]:
        """The body as it arrives: decoded per its ``Content-Encoding``, or with
        ``decode=False`` as sent (a file's hash is of the bytes as stored; pip does not decode
        them either, and an encoding nobody asked for then cannot expand them).

        Compressed bodies are decoded in pieces of at most 256 KiB: a few hundred KB of gzip
        can expand to gigabytes, and nothing may hold more than a piece before the caller has
        counted it. With ``limit``, a body of more than ``limit`` bytes (as yielded: decoded
        when decoding) raises :class:`BodyTooLarge` before a byte past the limit is yielded.

        Raises:
            ClientError: the connection failed or the body was cut short.
            ClientTimeout: no bytes arrived within the read timeout, or the deadline passed.
            BodyTooLarge: the body passed ``limit``.
        """
        conn = self._conn
        if conn is None:
            return
        decoder = self._decoder if decode else None
        total = 0
        while True:
            if conn.chunks:
                data = conn.take()
                self.received += len(data)
                pieces = self._decode(data) if decoder is not None else (data,)
                for piece in pieces:
                    total += len(piece)
                    if limit is not None and total > limit:
                        self.close()
                        raise BodyTooLarge(limit)
                    if piece:
                        yield piece
                continue
            if conn.complete:
                break
            if conn.error is not None:
                raise conn.error
            await conn.wait(*self._wait())
        if decoder is not None:
            # Everything fed was decoded (the pieces drain unconsumed_tail): only a small
            # remainder of the last block can be left for flush().
            tail = decoder.flush()
            if not decoder.eof:
                raise ClientError("the response body was cut short (incomplete compressed data)")
            total += len(tail)
            if limit is not None and total > limit:
                self.close()
                raise BodyTooLarge(limit)
            if tail:
                yield tail
        self._release()

    async def read(self, *, limit: int | None = None) -> bytes:
        """The whole body, decoded; with ``limit``, at most that many bytes after decoding (see
        :meth:`iter_chunks` for errors)."""
        conn = self._conn
        if conn is not None and self._decoder is None:
            # Fast path: let the body accumulate in the connection and join it once (taking it
            # early only when reading paused, so a large body cannot stall the connection).
            parts: list[bytes] = []
            while not conn.complete:
                if conn.error is not None:
                    raise conn.error
                if conn.buffered > _HIGH_WATER:
                    parts.append(conn.take())
                    self.received += len(parts[-1])
                if limit is not None and self.received + conn.buffered > limit:
                    parts.clear()
                    self.close()
                    raise BodyTooLarge(limit)
                await conn.wait(*self._wait())
            if conn.chunks:
                parts.append(conn.take())
                self.received += len(parts[-1])
            if limit is not None and self.received > limit:
                parts.clear()
                self.close()
                raise BodyTooLarge(limit)
            self._release()
            return parts[0] if len(parts) == 1 else b"".join(parts)
        return b"".join([chunk async for chunk in self.iter_chunks(limit=limit)])

    def _decode(self, data: bytes) -> Iterator[bytes]:
        """``data`` decoded, in pieces of at most :data:`_PIECE` bytes."""
        decoder = self._decoder
        assert decoder is not None
        try:
            while data:
                piece = decoder.decompress(data, _PIECE)
                data = decoder.unconsumed_tail
                yield piece
        except zlib.error as exc:
            raise ClientError(f"the compressed body is corrupt ({exc})") from exc

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._release(conn)

    def close(self) -> None:
        """Give the connection back (reusable only if the whole answer was read)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            if not conn.complete:
                conn.close()  # unread body: the connection is in an unknown state
            self._client._release(conn)


# Anything urlsplit would strip or that must never reach a request line.
_NOT_PLAIN = re.compile(r"[\x00-\x20\x7f?#@\\]")


@functools.lru_cache(maxsize=64)
def _origin(prefix: str) -> tuple[Origin, str]:
    """The pool key and Host header of ``scheme://netloc`` (parsed once per upstream)."""
    parts = urlsplit(prefix)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{prefix!r} is not an http or https URL")
    port = parts.port or (443 if scheme == "https" else 80)
    return (scheme, parts.hostname, port), parts.netloc.rsplit("@", 1)[-1]


def _origin_of(url: str) -> Origin | None:
    """The origin of ``url``, or None when it is not an http(s) URL (only for comparisons)."""
    try:
        return _request_target(url)[0]
    except ValueError:
        return None


def _request_target(url: str) -> tuple[Origin, str, str]:
    """Origin, Host header and request target (path and query, no fragment) of ``url``.

    A mirror asks one upstream for thousands of paths: the ``scheme://netloc`` part is parsed
    once (cached), the path is taken as it is. A URL with anything unusual before its path
    (userinfo, a query without a path, spaces or control characters) goes through ``urlsplit``
    whole, as before.
    """
    slash = url.find("/", url.find("://") + 3) if "://" in url else -1
    if slash > 0 and not _NOT_PLAIN.search(url, 0, slash):
        origin, host = _origin(url[:slash])
        target = url[slash:].partition("#")[0]
        if not _NOT_PLAIN.search(target.replace("?", "", 1)):
            return origin, host, target
    parts = urlsplit(url)
    origin, host = _origin(f"{parts.scheme}://{parts.netloc}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return origin, host, target


class _Route:
    """How requests to one origin go out, decided once: ``proxy`` (None: direct), ``tunnel``
    (CONNECT, for https through a proxy), ``absolute`` (http through a proxy: absolute-form
    request target), and ``extra``, the header lines every request to the origin carries."""

    __slots__ = ("absolute", "extra", "proxy", "tunnel")

    def __init__(self, proxy: ProxyEndpoint | None, scheme: str, extra: str) -> None:
        self.proxy = proxy
        self.tunnel = proxy is not None and scheme == "https"
        self.absolute = proxy is not None and scheme == "http"
        self.extra = extra


class HttpClient:
    """A pool of keep-alive connections, at most ``connections`` in use at once.

    ``connect_timeout`` bounds connecting (TCP, a proxy's CONNECT, and TLS); ``read_timeout``
    bounds every wait for the next bytes of an answer (not the whole answer, so large files may
    take as long as they need while data flows). ``egress`` says how to reach upstreams (forward
    proxy, credentials, TLS trust); the default follows the proxy environment variables.
    """

    def __init__(
        self,
        *,
        connections: int = 64,
        connect_timeout: float = 60.0,
        read_timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        egress: Egress | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self._limit = asyncio.Semaphore(connections)
        self._egress = egress if egress is not None else Egress()
        self._routes: dict[Origin, _Route] = {}
        self._idle: dict[object, list[_Connection]] = {}
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._ssl = ssl_context or self._egress.ssl_context
        self._resolve = resolver or _getaddrinfo
        self._closed = False

    async def get(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        boundary: FetchBoundary | None = None,
        deadline: Deadline | None = None,
    ) -> Response:
        """Send a GET (following redirects) and return once the final answer's headers are in.

        ``boundary`` decides every URL (each redirect too) and every address connected to;
        ``deadline`` bounds the whole exchange, redirects and body included.

        Raises:
            FetchRefused: a URL or an address is outside ``boundary``, or not http(s) (never
                sent). ClientError, ClientTimeout: as the name says.
        """
        for _ in range(_MAX_REDIRECTS + 1):
            response = await self._get_once(url, headers, boundary, deadline)
            if response.status not in _REDIRECTS or "location" not in response.headers:
                return response
            location = urljoin(url, response.headers["location"])
            response.close()  # a redirect's body is never wanted; the connection is dropped
            if _CREDENTIAL_HEADERS.intersection(map(str.lower, headers)) and _origin_of(
                location
            ) != _origin_of(url):
                # Credentials the caller gave are for this origin only (RFC 9110 15.4).
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            url = location
        raise ClientError(f"more than {_MAX_REDIRECTS} redirects")

    async def _get_once(
        self,
        url: str,
        headers: Mapping[str, str],
        boundary: FetchBoundary | None,
        deadline: Deadline | None,
    ) -> Response:
        try:
            origin, host, target = _request_target(url)
        except ValueError:
            raise refuse_scheme(url) from None
        if _BAD_VALUE.search(target) or " " in target or _BAD_VALUE.search(host):
            raise FetchRefused(
                f"refused to fetch {printable(url, 200)}: the URL has spaces or control "
                "characters; nothing was sent",
                url=url,
            )
        if boundary is not None:
            # Through a forward proxy too: the proxy resolves the host, the origin is ours to check.
            boundary.check_origin(url, *origin)
        route = self._routes.get(origin) or self._route(origin)
        if route.absolute:
            target = f"http://{host}{target}"  # RFC 9112 3.2.2: absolute-form to a proxy
        lines = [f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{route.extra}"]
        lines.extend(
            f"{name}: {value}\r\n"
            for name, value in headers.items()
            if not _BAD_VALUE.search(value)
        )
        lines.append("\r\n")
        request = "".join(lines).encode("latin-1", "replace")
        await self._limit.acquire()
        try:
            for _ in range(2):  # a second try only for a stale reused connection
                conn = await self._connection(origin, route, boundary, url, deadline)
                conn.send(request)
                try:
                    while not conn.headers_done:
                        if conn.error is not None:
                            raise conn.error
                        if deadline is None:
                            await conn.wait(self._read_timeout)
                        else:
                            await conn.wait(*deadline.wait(self._read_timeout))
                except _Stale:
                    conn.close()
                    continue
                except BaseException:
                    conn.close()
                    raise
                if conn.status == 407 and route.absolute:
                    assert route.proxy is not None
                    conn.close()
                    refused = refusal(route.proxy, 407, conn.reason, origin[1], origin[2])
                    raise ProxyError(str(refused), retryable=refused.retryable)
                response = Response(self, conn, url, self._read_timeout, deadline)
                if route.absolute:
                    assert route.proxy is not None
                    response.proxy = route.proxy.display
                return response
            raise ClientError("the server closed the connection")
        except BaseException:
            self._limit.release()
            raise

    def _route(self, origin: Origin) -> _Route:
        """Decide, once per origin, how its requests go out (see :class:`_Route`)."""
        try:
            proxy = self._egress.proxy_for(origin)
        except ValueError as exc:  # a malformed proxy variable: say which, never its password
            raise ClientError(str(exc)) from exc
        extra = ""
        authorization = self._egress.authorization_for(origin)
        if authorization is not None:
            extra += f"Authorization: {authorization.reveal()}\r\n"
        if proxy is not None and origin[0] == "http" and proxy.authorization is not None:
            extra += f"Proxy-Authorization: {proxy.authorization.reveal()}\r\n"
        route = self._routes[origin] = _Route(proxy, origin[0], extra)
        return route

    async def _connection(
        self,
        origin: Origin,
        route: _Route,
        boundary: FetchBoundary | None,
        url: str,
        deadline: Deadline | None,
    ) -> _Connection:
        key = (origin, boundary)  # a connection is reused only under the boundary that allowed it
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                conn.reused = True
                return conn
        loop = asyncio.get_running_loop()
        scheme, host, port = origin
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                # Built once per client: loading the system trust store costs milliseconds.
                self._ssl = ssl.create_default_context()
            context = self._ssl
        proxy = route.proxy
        limit = self._connect_timeout
        if deadline is not None:
            limit = deadline.wait(limit)[0]
        try:
            async with asyncio.timeout(limit):
                if proxy is None:
                    conn = await self._connect_direct(origin, key, context, boundary, url)
                elif route.tunnel:
                    sock = await open_tunnel(proxy, host, port)
                    try:
                        _, conn = await loop.create_connection(
                            lambda: _Connection(origin, loop, key),
                            sock=sock,
                            ssl=context,
                            server_hostname=host,
                        )
                    except BaseException:
                        sock.close()
                        raise
                else:
                    try:
                        _, conn = await loop.create_connection(
                            lambda: _Connection(origin, loop, key), proxy.host, proxy.port
                        )
                    except OSError as exc:
                        raise unreachable(proxy, exc) from exc
        except TimeoutError as exc:
            via = f" through the forward proxy {proxy.display}" if proxy is not None else ""
            raise ClientTimeout(f"timed out connecting to {host}:{port}{via}") from exc
        except ProxyRefused as exc:
            raise ProxyError(str(exc), retryable=exc.retryable) from exc
        except ssl.SSLCertVerificationError as exc:
            raise ClientError(
                f"connection failed ({exc}): if the upstream uses a private CA, or a proxy "
                "intercepts TLS, give that CA's certificate as ca_bundle"
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            raise ClientError(f"connection failed ({exc})") from exc
        return conn

    async def _connect_direct(
        self,
        origin: Origin,
        key: object,
        context: ssl.SSLContext | None,
        boundary: FetchBoundary | None,
        url: str,
    ) -> _Connection:
        """Resolve the host here, have every address checked, and connect to a checked one."""
        loop = asyncio.get_running_loop()
        _, host, port = origin
        addresses = await self._resolve(host, port)
        if not addresses:
            raise ClientError(f"connection failed ({printable(host, 100)} has no address)")
        if boundary is not None:
            # Every address, not just the first: a name that also points inside the network is
            # refused whole.
            boundary.check_addresses(url, host, port, addresses)
        failure: OSError | ssl.SSLError | None = None
        for address in addresses:
            try:
                # The checked address itself: no second resolution can swap it.
                _, conn = await loop.create_connection(
                    lambda: _Connection(origin, loop, key),
                    address,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
            except (OSError, ssl.SSLError) as exc:
                failure = exc
                if isinstance(exc, ssl.SSLError):
                    break  # a certificate problem is the same at every address
                continue
            return conn
        assert failure is not None
        raise failure

    def _release(self, conn: _Connection) -> None:
        self._limit.release()
        if conn.complete and conn.keep_alive and not conn.closed and not self._closed:
            self._idle.setdefault(conn.key, []).append(conn)
        else:
            conn.close()

    async def close(self) -> None:
        """Close every idle connection; connections in use close when released."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                # Abort, not close: a TLS close waits for the peer's close_notify (longer still
                # through a proxy's tunnel), and the loop may be gone before it comes. Nothing is
                # lost: every answer on an idle connection was read to its end.
                conn.closed = True
                if conn.transport is not None:
                    conn.transport.abort()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing


async def _getaddrinfo(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (IPv6 and IPv4, in the resolver's order, without repeats)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as exc:
        message = f"connection failed (cannot resolve {printable(host, 100)}: {exc})"
        raise ClientError(message) from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
