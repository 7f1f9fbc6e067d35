"""The wire level of the upstream client: one HTTP/1.1 connection (parsed as bytes arrive by
httptools), one answer read from it (:class:`Response`: bodies, decoding in bounded pieces,
limits), the overall :class:`Deadline`, and the client's errors. :mod:`headwater.repository._client`
builds requests, pools these connections and follows redirects; it re-exports what callers use.
"""

from __future__ import annotations

import asyncio
import errno
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, cast

import httptools

from headwater.errors import printable

if TYPE_CHECKING:
    from headwater.repository._client import HttpClient

__all__ = [
    "MIN_RATE",
    "BodyTooLarge",
    "ClientError",
    "ClientTimeout",
    "Connection",
    "Deadline",
    "Origin",
    "ProxyError",
    "Response",
    "Stale",
]

Origin = tuple[str, str, int]  # scheme, host, port
_HIGH_WATER = 1 << 20  # pause reading when this much body is buffered and unconsumed
# The most a compressed body's decoder produces at once (a gzip bomb never exists whole).
_PIECE = 256 << 10


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


class Stale(ClientError):
    """A reused idle connection was closed by the server before it answered (safe to resend)."""


#: Host and port -> the addresses to connect to (``loop.getaddrinfo`` unless a test injects one).
# A request header value with a control character is not sent (it could split the request).


class Connection(asyncio.Protocol):
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
                self.error = Stale(message) if self.reused else ClientError(message)
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
        conn: Connection,
        url: str,
        read_timeout: float,
        deadline: Deadline | None = None,
    ):
        self._client = client
        self._conn: Connection | None = conn
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
