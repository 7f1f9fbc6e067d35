"""The wire under the test upstream: one HTTP/1.1 connection, parsed by httptools.

:class:`Connection` reads requests off a connection, hands each to a ``respond`` function and
writes its :class:`Reply` back in request order, with the faults a reply carries applied while
sending: a delay (later requests on the connection wait their turn), a reset (RST, not a clean
close) or a truncated body. A handler that raises is a 500 naming the error, never a 400 that
reads as the client's fault. Also the small HTTP pieces the server's routes build replies from:
the status line and headers, ETags and ``If-None-Match``, one ``Range``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

import httptools

__all__ = [
    "Connection",
    "Reply",
    "Request",
    "etag_matches",
    "etag_of",
    "parse_range",
    "raw_reply",
    "response_head",
    "simple_reply",
]

# The server's logger: a failing handler is the test upstream's failure.
log = logging.getLogger("headwater.testing.upstream")

_REASONS = {
    200: "OK",
    206: "Partial Content",
    301: "Moved Permanently",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    416: "Range Not Satisfiable",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(slots=True)
class Reply:
    """What to send for one request, and the faults to apply while sending it."""

    data: bytes
    body_length: int = 0
    keep_alive: bool = True
    delay: float = 0.0
    reset: bool = False
    truncate: bool = False


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    # RFC 9110: If-None-Match uses weak comparison, so W/"x" matches "x".
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def response_head(
    status: int, headers: list[tuple[str, str]], length: int, keep_alive: bool
) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    lines.append(f"Content-Length: {length}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def raw_reply(request: Request, status: int, headers: list[tuple[str, str]], body: bytes) -> Reply:
    """A complete response to ``request`` (for HEAD, its headers only)."""
    head = response_head(status, headers, len(body), request.keep_alive)
    if request.method == "HEAD":
        return Reply(head, keep_alive=request.keep_alive)
    return Reply(head + body, body_length=len(body), keep_alive=request.keep_alive)


def simple_reply(
    request: Request,
    status: int,
    body: bytes,
    ctype: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> Reply:
    """:func:`raw_reply` with a Content-Type and ``extra`` headers."""
    return raw_reply(request, status, [("Content-Type", ctype), *extra], body)


class Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query", "raw_path")

    def __init__(
        self, method: str, url: bytes, headers: dict[str, str], body: bytes, keep_alive: bool
    ) -> None:
        parsed = httptools.parse_url(url)
        self.method = method
        self.raw_path = parsed.path.decode("latin-1")
        self.path = unquote(self.raw_path)
        self.query = parsed.query.decode("latin-1") if parsed.query else ""
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class Connection(asyncio.Protocol):
    """One client connection: httptools parses, ``respond`` answers, in request order."""

    def __init__(self, respond: Callable[[Request], Reply], connections: set[Connection]) -> None:
        self._respond = respond
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._queue: list[Request] = []
        self._busy = False
        self._closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but implement it.
        self._transport = transport  # type: ignore[assignment]
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._send(Reply(response_head(400, [], 0, False), keep_alive=False))
        except httptools.HttpParserCallbackError as exc:
            # A bug in a handler (httptools wraps what a callback raised): a 500 that names it,
            # and the traceback in the log, never a silent 400 that reads as the client's fault.
            log.exception("test upstream: the handler failed", exc_info=exc.__context__ or exc)
            body = f"test upstream handler failed: {exc.__context__ or exc!r}".encode()[:2000]
            self._send(
                Reply(response_head(500, [], len(body), False) + body, len(body), keep_alive=False)
            )
        except httptools.HttpParserError:
            self._send(Reply(response_head(400, [], 0, False), keep_alive=False))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method().decode("latin-1")
        request = Request(
            method, self._url, self._headers, b"".join(self._body), self._parser.should_keep_alive()
        )
        if self._busy:
            self._queue.append(request)
        else:
            self._process(request)

    def _process(self, request: Request) -> None:
        reply = self._respond(request)
        if reply.delay > 0:
            self._busy = True
            assert self._transport is not None
            self._transport.pause_reading()
            asyncio.get_running_loop().call_later(reply.delay, self._delayed, reply)
        else:
            self._send(reply)

    def _delayed(self, reply: Reply) -> None:
        self._busy = False
        if self._closed or self._transport is None:
            return
        self._transport.resume_reading()
        self._send(reply)
        while self._queue and not self._busy and not self._closed:
            self._process(self._queue.pop(0))

    def _send(self, reply: Reply) -> None:
        transport = self._transport
        if transport is None or self._closed:
            return
        if reply.reset:
            # SO_LINGER with a zero timeout makes close() send RST: the client sees a reset
            # connection, not a clean end of stream.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            self._closed = True
            return
        if reply.truncate:
            # Headers promise the whole body; half of it arrives, then the connection ends.
            cut = len(reply.data) - reply.body_length // 2 - (reply.body_length % 2)
            transport.write(reply.data[: max(cut, 0)])
            transport.close()
            self._closed = True
            return
        transport.write(reply.data)
        if not reply.keep_alive:
            transport.close()
            self._closed = True


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as inclusive (start, end); ``None`` if unsatisfiable or unsupported."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:  # "-N": the last N bytes
            length = int(last)
            if length <= 0 or size == 0:
                return None
            return max(size - length, 0), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)
