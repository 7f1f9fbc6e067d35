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
(:mod:`headwater.testing.faults`) and read per-path request counters
(:mod:`headwater.testing._control`). The HTTP/1.1 connection under it (parsing, ordering,
delays, resets and truncation) is :mod:`headwater.testing._http1`; this module is the server,
its routes and what they serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote

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
from headwater.testing._control import CONTROL, control
from headwater.testing._http1 import (
    Connection,
    Reply,
    Request,
    etag_matches,
    etag_of,
    parse_range,
    raw_reply,
    response_head,
    simple_reply,
)
from headwater.testing.corpus import Corpus
from headwater.testing.faults import Fault, FaultInjector, FaultKind
from headwater.testing.pypi_json import project_json, release_json

__all__ = ["Upstream", "new_event_loop"]

# Item 62: PyPI caches API answers 10 minutes and files "forever".
_PAGE_CACHE = "max-age=600, public"
_FILE_CACHE = "max-age=365000000, immutable, public"
_JSON_API = "application/json"


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
        self._connections: set[Connection] = set()
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
            lambda: Connection(self._respond, self._connections),
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

    def _respond(self, request: Request) -> Reply:
        """The reply to ``request``, held back as long as the modelled link would take."""
        reply = self._answer(request)
        reply.delay = max(reply.delay, self._link_delay(len(reply.data)))
        return reply

    def _answer(self, request: Request) -> Reply:
        path = request.path
        if path.startswith(CONTROL):
            return control(self, request)
        if self.authorization and request.headers.get("authorization") not in self.authorization:
            self._stats["401 " + path] += 1
            return simple_reply(
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
            return Reply(b"", delay=delay, reset=True)
        status_fault = next((f for f in fired if f.kind is FaultKind.STATUS), None)
        if status_fault is not None:
            reply = simple_reply(
                request, status_fault.status, b"injected fault\n", "text/plain", extra=()
            )
        else:
            reply = self._route(request, flags)
        reply.delay = delay
        reply.truncate = FaultKind.TRUNCATE in flags and reply.body_length > 0
        return reply

    def _route(self, request: Request, flags: set[FaultKind]) -> Reply:
        if request.method not in ("GET", "HEAD"):
            return simple_reply(request, 405, b"method not allowed\n", "text/plain")
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
        return simple_reply(request, 404, b"not found\n", "text/plain")

    # pages

    def _content_type(self, request: Request) -> str:
        if not self.json:
            return TEXT_HTML  # an index that predates PEP 691 ignores Accept
        fmt = None
        for pair in request.query.split("&") if request.query else ():
            key, _, value = pair.partition("=")
            if key == "format":
                # unquote, not unquote_plus: the "+" in "v1+json" is literal (item 51).
                fmt = unquote(value)
        return select_content_type(request.headers.get("accept"), fmt)

    def _root(self, request: Request, flags: set[FaultKind]) -> Reply:
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

    def _project(self, request: Request, rest: str, flags: set[FaultKind]) -> Reply:
        raw, slash, tail = rest.partition("/")
        if tail:
            return simple_reply(request, 404, b"not found\n", "text/plain")
        try:
            name = normalize_name(raw)
        except InvalidName:
            return simple_reply(request, 404, b"not found\n", "text/plain")
        if name != raw or not slash:
            # Item 3 (PyPI: 301) and item 4 (redirect the slash-less form).
            return self._redirect(request, f"/simple/{name}/")
        serial = self.corpus.project_serial(name)
        if serial is None:
            return simple_reply(request, 404, b"not found\n", "text/plain")
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
                return simple_reply(request, 404, b"not found\n", "text/plain")
            body = (
                render_project_page_json(page) if fmt == "json" else render_project_page_html(page)
            )
            header_serial = page.last_serial
            if stale and header_serial is None and self.serials:
                header_serial = serial - 1
            entry = self._store(key, serial, body, header_serial if self.serials else None)
        return self._page_reply(request, entry, ctype, flags, fmt == "json")

    def _json_api(self, request: Request, parts: list[str], flags: set[FaultKind]) -> Reply:
        if not self.json or len(parts) not in (2, 3) or parts[-1] != "json":
            return simple_reply(request, 404, b"not found\n", "text/plain")
        try:
            name = normalize_name(parts[0])
        except InvalidName:
            return simple_reply(request, 404, b"not found\n", "text/plain")
        if name != parts[0]:
            return self._redirect(request, "/pypi/" + "/".join([name, *parts[1:]]))
        serial = self.corpus.project_serial(name)
        if serial is None:
            return simple_reply(request, 404, b"not found\n", "text/plain")
        version = parts[1] if len(parts) == 3 else ""
        stale = FaultKind.STALE in flags and self.corpus.previous_project(name) is not None
        key = ("stale-json" if stale else "json", name, version)
        entry = self._cache.get(key)
        if entry is None or entry.serial != serial or entry.generation != self._generation:
            project = self.corpus.previous_project(name) if stale else self.corpus.get(name)
            if project is None:
                return simple_reply(request, 404, b"not found\n", "text/plain")
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
                return simple_reply(request, 404, b"not found\n", "text/plain")
            entry = self._store(key, serial, body, project.last_serial if self.serials else None)
        return self._page_reply(request, entry, _JSON_API, flags, True, vary=False)

    def _store(self, key: tuple[str, str, str], serial: int, body: bytes, hs: int | None) -> _Entry:
        entry = _Entry(serial, self._generation, body, etag_of(body), hs)
        self._cache[key] = entry
        return entry

    def _page_reply(
        self,
        request: Request,
        entry: _Entry,
        ctype: str,
        flags: set[FaultKind],
        is_json: bool,
        *,
        vary: bool = True,
    ) -> Reply:
        head = request.method == "HEAD"
        plain = not (flags & {FaultKind.CORRUPT, FaultKind.MALFORMED})
        if etag_matches(request.headers.get("if-none-match"), entry.etag) and plain:
            headers = self._page_headers(entry, ctype, vary)
            return Reply(
                response_head(304, headers, 0, request.keep_alive), keep_alive=request.keep_alive
            )
        if plain and request.keep_alive and not head:
            # The hot path: the whole response is cached bytes.
            data = entry.responses.get(ctype)
            if data is None:
                headers = self._page_headers(entry, ctype, vary)
                data = response_head(200, headers, len(entry.body), True) + entry.body
                entry.responses[ctype] = data
            return Reply(data, body_length=len(entry.body))
        body = entry.body
        if FaultKind.MALFORMED in flags:
            body = _faults.malformed(body, json=is_json)
        if FaultKind.CORRUPT in flags:
            body = _faults.corrupt(body)
        headers = self._page_headers(entry, ctype, vary)
        data = response_head(200, headers, len(body), request.keep_alive)
        return Reply(
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

    def _file(self, request: Request, path: str, flags: set[FaultKind]) -> Reply:
        parts = path.split("/")
        # "", "packages", sha[:2], sha[2:4], sha[4:], filename
        if len(parts) != 6:
            return simple_reply(request, 404, b"not found\n", "text/plain")
        filename = parts[5]
        want_metadata = filename.endswith(".metadata")
        want_provenance = filename.endswith(".provenance")
        dist = self.corpus.file(filename.removesuffix(".metadata").removesuffix(".provenance"))
        if (
            dist is None
            or dist.url_path(self.pypi_paths) != "/".join(parts[:5]) + "/" + dist.filename
        ):
            return simple_reply(request, 404, b"not found\n", "text/plain")
        if want_provenance:
            if dist.provenance is None:
                return simple_reply(request, 404, b"not found\n", "text/plain")
            return simple_reply(
                request, 200, dist.provenance, "application/vnd.pypi.integrity.v1+json"
            )
        if want_metadata:
            if not self.metadata or dist.metadata is None:
                return simple_reply(request, 404, b"not found\n", "text/plain")
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
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Reply(
                response_head(304, headers, 0, request.keep_alive), keep_alive=request.keep_alive
            )
        if FaultKind.CORRUPT in flags:
            body = _faults.corrupt(body)
        status = 200
        range_header = request.headers.get("range")
        if range_header:
            span = parse_range(range_header, len(body))
            if span is None:
                headers.append(("Content-Range", f"bytes */{len(body)}"))
                return raw_reply(request, 416, headers, b"")
            start, end = span
            headers.append(("Content-Range", f"bytes {start}-{end}/{len(body)}"))
            body, status = body[start : end + 1], 206
        return raw_reply(request, status, headers, body)

    def _redirect(self, request: Request, location: str) -> Reply:
        if request.query:
            location += "?" + request.query
        return simple_reply(
            request, 301, b"moved\n", "text/plain", (("Location", location), ("Vary", "Accept"))
        )

    def _not_acceptable(self, request: Request, exc: NotAcceptable) -> Reply:
        return simple_reply(
            request, 406, str(exc).encode() + b"\n", "text/plain", (("Vary", "Accept"),)
        )
