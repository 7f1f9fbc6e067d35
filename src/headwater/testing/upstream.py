"""A PyPI-like HTTP/1.1 server on loopback, serving a :class:`~headwater.testing.corpus.Corpus`.

Three ways to run it::

    async with Upstream(corpus) as up:          # in the test's event loop
        ...  up.url
    with Upstream(corpus).running() as up:       # in a background thread, for sync tests
        ...  up.url
    headwater test-upstream --projects 2000      # as a process (see docs/test-upstream.md)

Routes, as on PyPI: ``/simple/`` and ``/simple/<project>/`` (PEP 691 negotiation, 406, 301 to
the normalized name, ``Vary: Accept``, ETag/304, ``X-PyPI-Last-Serial``), ``/pypi/<project>/json``
and ``/pypi/<project>/<version>/json``, files at ``/packages/<sha256 path>/<filename>`` and their
``.metadata`` (HEAD, single ``Range``). Switches (constructor or control API) turn off serials,
JSON, or ``.metadata`` to imitate simpler indexes. Rendered pages are cached per (project, format)
and checked against the project's serial, so mutations show at once and hits cost no rendering.

The control API (``/_upstream/...``, JSON) lets another process mutate the corpus, inject faults
(:mod:`headwater.testing.faults`) and read per-path request counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import ssl as ssl_module
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import httptools
import msgspec

from headwater.errors import InvalidInput
from headwater.simple.html import render_project_list_html, render_project_page_html
from headwater.simple.json import render_project_list_json, render_project_page_json
from headwater.simple.names import InvalidName, normalize_name
from headwater.simple.negotiation import (
    JSON_V1,
    TEXT_HTML,
    NotAcceptable,
    select_content_type,
)
from headwater.testing import faults as _faults
from headwater.testing.corpus import Corpus, CorpusError
from headwater.testing.faults import Fault, FaultInjector, FaultKind
from headwater.testing.pypi_json import project_json, release_json

__all__ = ["Upstream", "new_event_loop"]

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
# Item 62: PyPI caches API answers 10 minutes and files "forever".
_PAGE_CACHE = "max-age=600, public"
_FILE_CACHE = "max-age=365000000, immutable, public"
_JSON_API = "application/json"
_CONTROL = "/_upstream/"


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed (the ``fast`` extra), else asyncio's default."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the test extra
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


@dataclass(slots=True)
class _Entry:
    """A rendered body and what it was rendered from (the serial and the config generation)."""

    serial: int
    generation: int
    body: bytes
    etag: str
    header_serial: int | None
    responses: dict[str, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class _Reply:
    """What to send for one request, and the faults to apply while sending it."""

    data: bytes
    body_length: int = 0
    keep_alive: bool = True
    delay: float = 0.0
    reset: bool = False
    truncate: bool = False


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    # RFC 9110: If-None-Match uses weak comparison, so W/"x" matches "x".
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def _head(status: int, headers: list[tuple[str, str]], length: int, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    lines.append(f"Content-Length: {length}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Request:
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


class _Connection(asyncio.Protocol):
    """One client connection: httptools parses, the server answers, in request order."""

    def __init__(self, server: Upstream) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._queue: list[_Request] = []
        self._busy = False
        self._closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but implement it.
        self._transport = transport  # type: ignore[assignment]
        self._server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._send(_Reply(_head(400, [], 0, False), keep_alive=False))
        except httptools.HttpParserCallbackError as exc:
            # A bug in a handler (httptools wraps what a callback raised): a 500 that names it,
            # and the traceback in the log, never a silent 400 that reads as the client's fault.
            log.exception("test upstream: the handler failed", exc_info=exc.__context__ or exc)
            body = f"test upstream handler failed: {exc.__context__ or exc!r}".encode()[:2000]
            self._send(_Reply(_head(500, [], len(body), False) + body, len(body), keep_alive=False))
        except httptools.HttpParserError:
            self._send(_Reply(_head(400, [], 0, False), keep_alive=False))

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
        request = _Request(
            method, self._url, self._headers, b"".join(self._body), self._parser.should_keep_alive()
        )
        if self._busy:
            self._queue.append(request)
        else:
            self._process(request)

    def _process(self, request: _Request) -> None:
        reply = self._server._respond(request)
        reply.delay = max(reply.delay, self._server._link_delay(len(reply.data)))
        if reply.delay > 0:
            self._busy = True
            assert self._transport is not None
            self._transport.pause_reading()
            asyncio.get_running_loop().call_later(reply.delay, self._delayed, reply)
        else:
            self._send(reply)

    def _delayed(self, reply: _Reply) -> None:
        self._busy = False
        if self._closed or self._transport is None:
            return
        self._transport.resume_reading()
        self._send(reply)
        while self._queue and not self._busy and not self._closed:
            self._process(self._queue.pop(0))

    def _send(self, reply: _Reply) -> None:
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


class Upstream:
    """The test upstream server. See the module docstring.

    Args:
        corpus: what to serve.
        host, port: where to listen (port 0: a free port; read :attr:`url` after start).
        serials: serve PyPI's serials (``_last-serial``, ``<!--SERIAL n-->``, the header).
        json: serve PEP 691 JSON and the JSON API; ``False`` imitates an HTML-only index that
            answers ``text/html`` whatever the client accepts.
        metadata: serve PEP 658 ``.metadata`` files and announce them.
        faults: the fault injector to consult (a new empty one by default).
        ssl: serve HTTPS with this server-side context (:attr:`url` then starts ``https://``;
            a context with ``verify_mode = CERT_REQUIRED`` demands a client certificate).
        authorization: when given, every request but the control API must carry one of these
            ``Authorization`` values (``Basic ...``/``Bearer ...``), else 401: a private index.
        pypi_paths: file URLs by blake2b-256 as pypi.org's (what bandersnatch keeps on disk),
            instead of by sha256.
        bandwidth: bytes per second of one link every reply shares (None: as fast as loopback).
            Replies queue on the link in the order they are ready; each is sent whole when its
            last byte would have arrived (a client sees the same completion times as over a link
            of that speed, not the same arrival of each byte).
        latency: seconds added to every reply (a round trip to a remote upstream).
    """

    def __init__(
        self,
        corpus: Corpus,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        serials: bool = True,
        json: bool = True,
        metadata: bool = True,
        faults: FaultInjector | None = None,
        ssl: ssl_module.SSLContext | None = None,
        authorization: Collection[str] = (),
        pypi_paths: bool = False,
        bandwidth: float | None = None,
        latency: float = 0.0,
    ) -> None:
        if bandwidth is not None and bandwidth <= 0:
            raise ValueError(f"bandwidth must be positive bytes per second, not {bandwidth}")
        self.corpus = corpus
        self.bandwidth = bandwidth
        self.latency = latency
        self._link_free_at = 0.0  # when the shared link has sent what is queued on it
        self.pypi_paths = pypi_paths
        self.ssl = ssl
        self.authorization = frozenset(authorization)
        self.host = host
        self.port = port
        self.serials = serials
        self.json = json
        self.metadata = metadata
        self.faults = faults if faults is not None else FaultInjector()
        self._stats: Counter[str] = Counter()
        self._cache: dict[tuple[str, str, str], _Entry] = {}
        self._generation = 0
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    def _link_delay(self, size: int) -> float:
        """Seconds until a reply of ``size`` bytes, queued now, has crossed the link (plus the
        latency). Called on the server's event loop only."""
        if self.bandwidth is None:
            return self.latency
        now = time.monotonic()
        self._link_free_at = max(now, self._link_free_at) + size / self.bandwidth
        return self._link_free_at - now + self.latency

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``, no trailing slash); valid once started."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl is not None else 'http'}://{host}:{self.port}"

    @property
    def simple_url(self) -> str:
        """The index URL to give pip: ``{url}/simple/``."""
        return self.url + "/simple/"

    async def start(self) -> None:
        """Listen on the configured host and port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            self.host,
            self.port,
            reuse_address=True,
            backlog=1024,
            ssl=self.ssl,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is None:
            return
        self._server.close()
        for conn in list(self._connections):
            if conn._transport is not None:
                conn._transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def serve_forever(self, stop: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` is set (or forever)."""
        if self._server is None:
            await self.start()
        try:
            await (stop.wait() if stop is not None else asyncio.Event().wait())
        finally:
            await self.close()

    async def __aenter__(self) -> Upstream:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[Upstream]:
        """Serve from a background thread with its own event loop (uvloop when available)."""
        loop = new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # handed to the caller's thread below
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        thread = threading.Thread(target=serve, name="headwater-test-upstream", daemon=True)
        thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        self._thread_loop = loop
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            self._thread_loop = None

    # -- counters and switches ------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Requests served per path (query strings dropped; control API not counted)."""
        return dict(self._stats)

    def requests(self, path: str) -> int:
        """How many requests ``path`` has had."""
        return self._stats.get(path, 0)

    def reset_stats(self) -> None:
        """Set every counter back to zero."""
        self._stats.clear()

    def configure(
        self, *, serials: bool | None = None, json: bool | None = None, metadata: bool | None = None
    ) -> None:
        """Change switches at run time (cached pages are re-rendered)."""
        if serials is not None:
            self.serials = serials
        if json is not None:
            self.json = json
        if metadata is not None:
            self.metadata = metadata
        self._generation += 1

    def add_fault(self, kind: FaultKind | str, path: str = "*", **options: Any) -> Fault:
        """Shorthand for ``self.faults.add(Fault(kind=..., path=..., ...))``."""
        return self.faults.add(Fault.from_dict({"kind": str(kind), "path": path, **options}))

    # -- request handling -----------------------------------------------------------------------

    def _respond(self, request: _Request) -> _Reply:
        path = request.path
        if path.startswith(_CONTROL):
            return self._control(request)
        if self.authorization and request.headers.get("authorization") not in self.authorization:
            self._stats["401 " + path] += 1
            return self._simple(
                request,
                401,
                b"credentials required\n",
                "text/plain",
                (("WWW-Authenticate", 'Basic realm="upstream"'),),
            )
        self._stats[path] += 1
        fired = self.faults.select(path) if self.faults else []
        flags = {f.kind for f in fired}
        delay = sum(f.delay for f in fired if f.kind is FaultKind.DELAY)
        if FaultKind.RESET in flags:
            return _Reply(b"", delay=delay, reset=True)
        status_fault = next((f for f in fired if f.kind is FaultKind.STATUS), None)
        if status_fault is not None:
            reply = self._simple(
                request, status_fault.status, b"injected fault\n", "text/plain", extra=()
            )
        else:
            reply = self._route(request, flags)
        reply.delay = delay
        reply.truncate = FaultKind.TRUNCATE in flags and reply.body_length > 0
        return reply

    def _route(self, request: _Request, flags: set[FaultKind]) -> _Reply:
        if request.method not in ("GET", "HEAD"):
            return self._simple(request, 405, b"method not allowed\n", "text/plain")
        path = request.path
        if path == "/simple/":
            return self._root(request, flags)
        if path == "/simple":
            return self._redirect(request, "/simple/")
        if path.startswith("/simple/"):
            return self._project(request, path[len("/simple/") :], flags)
        if path.startswith("/pypi/"):
            return self._json_api(request, path[len("/pypi/") :].split("/"), flags)
        if path.startswith("/packages/"):
            return self._file(request, path, flags)
        return self._simple(request, 404, b"not found\n", "text/plain")

    # pages

    def _content_type(self, request: _Request) -> str:
        if not self.json:
            return TEXT_HTML  # an index that predates PEP 691 ignores Accept
        fmt = None
        for pair in request.query.split("&") if request.query else ():
            key, _, value = pair.partition("=")
            if key == "format":
                # unquote, not unquote_plus: the "+" in "v1+json" is literal (item 51).
                fmt = unquote(value)
        return select_content_type(request.headers.get("accept"), fmt)

    def _root(self, request: _Request, flags: set[FaultKind]) -> _Reply:
        try:
            ctype = self._content_type(request)
        except NotAcceptable as exc:
            return self._not_acceptable(request, exc)
        fmt = "json" if ctype == JSON_V1 else "html"
        serial = self.corpus.serial
        key = ("root", "", fmt)
        entry = self._cache.get(key)
        if entry is None or entry.serial != serial or entry.generation != self._generation:
            listing = self.corpus.project_list(serials=self.serials)
            body = (
                render_project_list_json(listing)
                if fmt == "json"
                else render_project_list_html(listing)
            )
            entry = self._store(key, serial, body, serial if self.serials else None)
        return self._page_reply(request, entry, ctype, flags, fmt == "json")

    def _project(self, request: _Request, rest: str, flags: set[FaultKind]) -> _Reply:
        raw, slash, tail = rest.partition("/")
        if tail:
            return self._simple(request, 404, b"not found\n", "text/plain")
        try:
            name = normalize_name(raw)
        except InvalidName:
            return self._simple(request, 404, b"not found\n", "text/plain")
        if name != raw or not slash:
            # Item 3 (PyPI: 301) and item 4 (redirect the slash-less form).
            return self._redirect(request, f"/simple/{name}/")
        serial = self.corpus.project_serial(name)
        if serial is None:
            return self._simple(request, 404, b"not found\n", "text/plain")
        try:
            ctype = self._content_type(request)
        except NotAcceptable as exc:
            return self._not_acceptable(request, exc)
        fmt = "json" if ctype == JSON_V1 else "html"
        stale = FaultKind.STALE in flags and self.corpus.previous_project(name) is not None
        key = ("stale" if stale else "page", name, fmt)
        entry = self._cache.get(key)
        if entry is None or entry.serial != serial or entry.generation != self._generation:
            build = self.corpus.previous_page if stale else self.corpus.project_page
            page = build(
                name,
                self.url,
                serials=self.serials,
                metadata=self.metadata,
                pypi_paths=self.pypi_paths,
            )
            if page is None:  # deleted between the serial check and now
                return self._simple(request, 404, b"not found\n", "text/plain")
            body = (
                render_project_page_json(page) if fmt == "json" else render_project_page_html(page)
            )
            header_serial = page.last_serial
            if stale and header_serial is None and self.serials:
                header_serial = serial - 1
            entry = self._store(key, serial, body, header_serial if self.serials else None)
        return self._page_reply(request, entry, ctype, flags, fmt == "json")

    def _json_api(self, request: _Request, parts: list[str], flags: set[FaultKind]) -> _Reply:
        if not self.json or len(parts) not in (2, 3) or parts[-1] != "json":
            return self._simple(request, 404, b"not found\n", "text/plain")
        try:
            name = normalize_name(parts[0])
        except InvalidName:
            return self._simple(request, 404, b"not found\n", "text/plain")
        if name != parts[0]:
            return self._redirect(request, "/pypi/" + "/".join([name, *parts[1:]]))
        serial = self.corpus.project_serial(name)
        if serial is None:
            return self._simple(request, 404, b"not found\n", "text/plain")
        version = parts[1] if len(parts) == 3 else ""
        stale = FaultKind.STALE in flags and self.corpus.previous_project(name) is not None
        key = ("stale-json" if stale else "json", name, version)
        entry = self._cache.get(key)
        if entry is None or entry.serial != serial or entry.generation != self._generation:
            project = self.corpus.previous_project(name) if stale else self.corpus.get(name)
            if project is None:
                return self._simple(request, 404, b"not found\n", "text/plain")
            options = {
                "serials": self.serials,
                "metadata": self.metadata,
                "pypi_paths": self.pypi_paths,
            }
            body = (
                release_json(project, version, self.url, **options)
                if version
                else project_json(project, self.url, **options)
            )
            if body is None:
                return self._simple(request, 404, b"not found\n", "text/plain")
            entry = self._store(key, serial, body, project.last_serial if self.serials else None)
        return self._page_reply(request, entry, _JSON_API, flags, True, vary=False)

    def _store(self, key: tuple[str, str, str], serial: int, body: bytes, hs: int | None) -> _Entry:
        entry = _Entry(serial, self._generation, body, _etag(body), hs)
        self._cache[key] = entry
        return entry

    def _page_reply(
        self,
        request: _Request,
        entry: _Entry,
        ctype: str,
        flags: set[FaultKind],
        is_json: bool,
        *,
        vary: bool = True,
    ) -> _Reply:
        head = request.method == "HEAD"
        plain = not (flags & {FaultKind.CORRUPT, FaultKind.MALFORMED})
        if _etag_matches(request.headers.get("if-none-match"), entry.etag) and plain:
            headers = self._page_headers(entry, ctype, vary)
            return _Reply(_head(304, headers, 0, request.keep_alive), keep_alive=request.keep_alive)
        if plain and request.keep_alive and not head:
            # The hot path: the whole response is cached bytes.
            data = entry.responses.get(ctype)
            if data is None:
                headers = self._page_headers(entry, ctype, vary)
                data = _head(200, headers, len(entry.body), True) + entry.body
                entry.responses[ctype] = data
            return _Reply(data, body_length=len(entry.body))
        body = entry.body
        if FaultKind.MALFORMED in flags:
            body = _faults.malformed(body, json=is_json)
        if FaultKind.CORRUPT in flags:
            body = _faults.corrupt(body)
        headers = self._page_headers(entry, ctype, vary)
        data = _head(200, headers, len(body), request.keep_alive)
        return _Reply(
            data if head else data + body,
            body_length=0 if head else len(body),
            keep_alive=request.keep_alive,
        )

    def _page_headers(self, entry: _Entry, ctype: str, vary: bool) -> list[tuple[str, str]]:
        headers = [("Content-Type", ctype), ("ETag", entry.etag), ("Cache-Control", _PAGE_CACHE)]
        if vary:
            headers.append(("Vary", "Accept"))  # item 53
        headers.append(("Access-Control-Allow-Origin", "*"))
        if entry.header_serial is not None:
            headers.append(("X-PyPI-Last-Serial", str(entry.header_serial)))  # item 59
        return headers

    # files

    def _file(self, request: _Request, path: str, flags: set[FaultKind]) -> _Reply:
        parts = path.split("/")
        # "", "packages", sha[:2], sha[2:4], sha[4:], filename
        if len(parts) != 6:
            return self._simple(request, 404, b"not found\n", "text/plain")
        filename = parts[5]
        want_metadata = filename.endswith(".metadata")
        want_provenance = filename.endswith(".provenance")
        dist = self.corpus.file(filename.removesuffix(".metadata").removesuffix(".provenance"))
        if (
            dist is None
            or dist.url_path(self.pypi_paths) != "/".join(parts[:5]) + "/" + dist.filename
        ):
            return self._simple(request, 404, b"not found\n", "text/plain")
        if want_provenance:
            if dist.provenance is None:
                return self._simple(request, 404, b"not found\n", "text/plain")
            return self._simple(
                request, 200, dist.provenance, "application/vnd.pypi.integrity.v1+json"
            )
        if want_metadata:
            if not self.metadata or dist.metadata is None:
                return self._simple(request, 404, b"not found\n", "text/plain")
            body, etag = dist.metadata, f'"{dist.metadata_sha256}"'
        else:
            body, etag = dist.body, f'"{dist.sha256}"'
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("ETag", etag),
            ("Cache-Control", _FILE_CACHE),
            ("Accept-Ranges", "bytes"),
            ("Access-Control-Allow-Origin", "*"),
        ]
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return _Reply(_head(304, headers, 0, request.keep_alive), keep_alive=request.keep_alive)
        if FaultKind.CORRUPT in flags:
            body = _faults.corrupt(body)
        status = 200
        range_header = request.headers.get("range")
        if range_header:
            span = _parse_range(range_header, len(body))
            if span is None:
                headers.append(("Content-Range", f"bytes */{len(body)}"))
                return self._raw(request, 416, headers, b"")
            start, end = span
            headers.append(("Content-Range", f"bytes {start}-{end}/{len(body)}"))
            body, status = body[start : end + 1], 206
        return self._raw(request, status, headers, body)

    # small responses

    def _raw(
        self, request: _Request, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> _Reply:
        head = _head(status, headers, len(body), request.keep_alive)
        if request.method == "HEAD":
            return _Reply(head, keep_alive=request.keep_alive)
        return _Reply(head + body, body_length=len(body), keep_alive=request.keep_alive)

    def _simple(
        self,
        request: _Request,
        status: int,
        body: bytes,
        ctype: str,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> _Reply:
        return self._raw(request, status, [("Content-Type", ctype), *extra], body)

    def _redirect(self, request: _Request, location: str) -> _Reply:
        if request.query:
            location += "?" + request.query
        return self._simple(
            request, 301, b"moved\n", "text/plain", (("Location", location), ("Vary", "Accept"))
        )

    def _not_acceptable(self, request: _Request, exc: NotAcceptable) -> _Reply:
        return self._simple(
            request, 406, str(exc).encode() + b"\n", "text/plain", (("Vary", "Accept"),)
        )

    # control API

    def _control(self, request: _Request) -> _Reply:
        try:
            status, payload = self._control_action(request)
        except (CorpusError, InvalidInput, msgspec.DecodeError, TypeError, KeyError) as exc:
            status, payload = 400, {"error": str(exc)}
        body = msgspec.json.encode(payload)
        return self._raw(request, status, [("Content-Type", _JSON_API)], body)

    def _control_action(self, request: _Request) -> tuple[int, Any]:
        action = request.path[len(_CONTROL) :].strip("/")
        method = request.method
        data: dict[str, Any] = msgspec.json.decode(request.body) if request.body else {}
        if action == "stats" and method == "GET":
            return 200, {"total": sum(self._stats.values()), "paths": self.stats}
        if action == "stats/reset" and method == "POST":
            self.reset_stats()
            return 200, {"total": 0, "paths": {}}
        if action == "state" and method == "GET":
            return 200, {"serial": self.corpus.serial, "url": self.url, **self._config()}
        if action == "config" and method == "POST":
            self.configure(
                **{k: bool(data[k]) for k in ("serials", "json", "metadata") if k in data}
            )
            return 200, self._config()
        if action == "mutate" and method == "POST":
            return 200, {"serial": self._mutate(data)}
        if action == "faults":
            if method == "GET":
                return 200, {"faults": [msgspec.to_builtins(f) for f in self.faults.faults]}
            if method == "POST":
                return 200, msgspec.to_builtins(self.faults.add(Fault.from_dict(data)))
            if method == "DELETE":
                self.faults.clear()
                return 200, {"faults": []}
        if action.startswith("faults/") and method == "DELETE":
            removed = self.faults.remove(int(action.removeprefix("faults/")))
            return (200 if removed else 404), {"removed": removed}
        return 404, {"error": f"no control action {method} {request.path}"}

    def _config(self) -> dict[str, bool]:
        return {"serials": self.serials, "json": self.json, "metadata": self.metadata}

    def _mutate(self, data: dict[str, Any]) -> int:
        op = data.pop("op", None)
        operations: dict[str, Callable[..., int]] = {
            "add_release": self.corpus.add_release,
            "add_file": self.corpus.add_file,
            "yank": self.corpus.yank,
            "unyank": self.corpus.unyank,
            "delete_file": self.corpus.delete_file,
            "delete_project": self.corpus.delete_project,
            "set_status": self.corpus.set_status,
        }
        if op not in operations:
            raise CorpusError(f"unknown mutation {op!r}; use one of {', '.join(operations)}")
        if "body" in data:  # add_file bodies travel as latin-1 text in JSON
            data["body"] = str(data["body"]).encode("latin-1")
        name = data.pop("project")
        return operations[op](name, **data)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
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
