"""The ASGI application: every index's pages and files, plus health, metrics and uploads.

URLs (``<index>`` is a configured mirror or hosted index; the default index is also served
without the prefix)::

    /<index>/simple/                    the project list (PEP 503/691)
    /<index>/simple/<project>/          a project page
    /<index>/packages/<aa>/<bb>/<rest>/<filename>[.metadata]
    /<index>/v1+json/simple/...         the same pages with a fixed format (endpoint configuration)
    /<index>/v1+html/simple/...
    /<index>/pypi/<project>/json        PyPI's legacy JSON API (what bandersnatch reads)
    /<index>/legacy/                    uploads (hosted indexes; twine's legacy API)
    /health, /health/live, /health/ready, /metrics

Page and file GETs are the hot path: they are answered in raw ASGI with the page bytes cached in
memory (see :mod:`headwater.repository.base`). This module routes them, guards the reads of a
private index (authz), and answers files itself; the pages and the JSON API are
:mod:`headwater.server.simple_pages`. Everything else goes to a Starlette application
(``rest``), which is where uploads and the management API live.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from headwater.config.settings import ServeSettings
from headwater.repository.base import ServedSource, SourceUnavailable
from headwater.server.authz import (
    NO_CREDENTIALS,
    Action,
    Credentials,
    Decision,
    Denied,
    Target,
    decide,
)
from headwater.server.edge import guarded
from headwater.server.files import send_file
from headwater.server.held_files import held_file
from headwater.server.integrity import integrity
from headwater.server.lru import ByteBudgetLRU
from headwater.server.metrics import Metrics
from headwater.server.responses import (
    NO_STORE,
    header,
    send_bytes,
    send_redirect,
    send_text,
    unavailable_text,
)
from headwater.server.simple_pages import (
    PYPI_JSON_CACHE_BYTES,
    PypiJsonCache,
    send_page,
    send_pypi_json,
)
from headwater.server.types import ASGIApp, Headers, Message, Receive, Scope, Send
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.names import is_valid_name, normalize_name
from headwater.storage.base import StorageError

__all__ = ["IndexApp"]

_FIXED_FORMATS = {
    "v1+json": "application/vnd.pypi.simple.v1+json",
    "v1+html": "application/vnd.pypi.simple.v1+html",
}
_GET_HEAD = frozenset({"GET", "HEAD"})
#: "_": trusted publishing's /<index>/_/oidc/... (answered by ``rest``).
_SECTIONS = frozenset(
    {"", "simple", "packages", "pypi", "legacy", "_", "integrity", "held", *_FIXED_FORMATS}
)
#: PEP 752's endpoints, answered by ``rest``; the default index's are at the root too.
_NAMESPACE_SECTIONS = ("namespaces", "namespace")
#: The sections of the default index that are also served at the root (``/simple/``...).
_DEFAULT_SECTIONS = (
    "simple",
    "packages",
    "pypi",
    "integrity",
    "held",
    *_FIXED_FORMATS,
    *_NAMESPACE_SECTIONS,
)


class IndexApp:
    """The whole server as one ASGI callable.

    ``sources`` maps index names to what serves them; ``default`` is the one also served at
    ``/simple/``. ``rest`` answers every request the hot path does not (a Starlette app);
    ``on_startup`` / ``on_shutdown`` run in the ASGI lifespan of each worker process.
    """

    def __init__(
        self,
        settings: ServeSettings,
        sources: Mapping[str, ServedSource],
        *,
        default: str | None,
        rest: ASGIApp | None = None,
        metrics: Metrics | None = None,
        page_max_age: Mapping[str, int] | None = None,
        on_startup: list[Any] | None = None,
        on_shutdown: list[Any] | None = None,
        private: Mapping[str, frozenset[str]] | None = None,
        credentials: Callable[[Scope], Awaitable[Credentials]] | None = None,
        landing: bool = True,
    ) -> None:
        self.settings = settings
        self.sources = dict(sources)
        self.default = default
        self.rest = rest
        self.metrics = metrics or Metrics()
        # Private indexes: index -> its private sources (a composed index's; empty for a hosted
        # one). Reading them needs a token, asked of authz.decide with ``credentials``.
        self._private = dict(private or {})
        self._credentials = credentials
        # False when the browser interface is mounted: ``rest`` answers ``/`` with its home.
        self._plain_landing = landing
        self._cache_control = {
            name: (
                f"max-age={(page_max_age or {}).get(name, settings.page_max_age)}, "
                # A shared cache must never keep what a token was needed to read.
                + ("private" if name in self._private else "public")
            ).encode()
            for name in self.sources
        }
        self._legacy_hosts = frozenset(h.lower() for h in settings.legacy_hosts)
        self._base_url = (settings.base_url or "").rstrip("/")
        self._hsts = settings.tls_certificate is not None
        self._on_startup = on_startup or []
        self._on_shutdown = on_shutdown or []
        self._flusher: asyncio.Task[None] | None = None
        self._pypi_cache: PypiJsonCache = ByteBudgetLRU(PYPI_JSON_CACHE_BYTES)

    # -- ASGI entry ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            # Every response gets nosniff (and HSTS with TLS); an escaped exception is one log
            # line and a plain 500 (see server/edge.py).
            await guarded(self._http, scope, receive, send, hsts=self._hsts)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self._on_startup:
                        await hook()
                    self._flusher = asyncio.create_task(self._flush_metrics())
                except Exception as exc:  # the server prints this and does not start
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._flusher is not None:
                    self._flusher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._flusher
                for hook in self._on_shutdown:
                    with contextlib.suppress(Exception):
                        await hook()
                await asyncio.to_thread(self.metrics.flush)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _flush_metrics(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self.metrics.flush)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method = scope["method"]
        head = method == "HEAD"
        if self._legacy_hosts:
            host = (header(scope, b"host") or b"").decode("latin-1").rsplit(":", 1)[0].lower()
            if host in self._legacy_hosts:
                await self._to_canonical(scope, send, head=head)
                self.metrics.observe("-", "redirect", 301, time.perf_counter() - started, 0)
                return
        if method in _GET_HEAD:
            answered = await self._fast(scope, send, head)
            if answered is not None:
                index, what, status, sent = answered
                self.metrics.observe(index, what, status, time.perf_counter() - started, sent)
                return
        await self._slow(scope, receive, send, started)

    async def _slow(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        status = 500
        sent = 0

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        path: str = scope["path"]
        first = path.split("/", 2)[1] if path.count("/") >= 1 else ""
        if first in _NAMESPACE_SECTIONS and self.default is not None:
            # /namespaces of the default index is /<default>/namespaces (its read guard ran in
            # _fast, as for its pages).
            path = f"/{self.default}{path}"
            scope = {**scope, "path": path, "raw_path": path.encode()}
            first = self.default
        index = first if first in self.sources else "-"
        what = "upload" if path.endswith(("/legacy/", "/legacy")) else "api"
        if first in ("health", "metrics"):
            what = first
        try:
            if self.rest is None:
                await send_text(counting_send, 404, f"{path[:200]} not found")
            else:
                await self.rest(scope, receive, counting_send)
        finally:
            self.metrics.observe(index, what, status, time.perf_counter() - started, sent)

    async def _to_canonical(self, scope: Scope, send: Send, *, head: bool) -> None:
        location = self._base_url + quote(scope["path"], safe="/:@!$&'()*+,;=-._~")
        if scope.get("query_string"):
            location += "?" + scope["query_string"].decode("latin-1")
        # 301 for reads as PEP 449's hosts did; 308 keeps the method and body of anything else.
        status = 301 if scope["method"] in _GET_HEAD else 308
        await send_redirect(send, location, status=status, head=head)

    # -- the hot path -------------------------------------------------------------------------

    async def _fast(self, scope: Scope, send: Send, head: bool) -> tuple[str, str, int, int] | None:
        """Answer page and file GET/HEADs; None when the request is not one (``rest`` answers)."""
        path: str = scope["path"]
        parts = path.split("/")
        # parts[0] is "" (the path starts with "/").
        if len(parts) < 2:
            return None
        if parts[1] in self.sources and not (
            # /pypi/<project>/json of the default index, when an index is also called "pypi":
            # a second segment that is none of an index's sections is a project name.
            parts[1] == "pypi"
            and self.default is not None
            and len(parts) > 2
            and parts[2] not in _SECTIONS
        ):
            index, rest_at = parts[1], 2
        elif self.default is not None and parts[1] in _DEFAULT_SECTIONS:
            index, rest_at = self.default, 1
        elif path == "/" and self._plain_landing:
            return ("-", "other", *await self._landing(send, head))
        else:
            return None
        source = self.sources[index]
        section = parts[rest_at] if len(parts) > rest_at else ""
        fixed: str | None = None
        if section in _FIXED_FORMATS:
            fixed = _FIXED_FORMATS[section]
            rest_at += 1
            section = parts[rest_at] if len(parts) > rest_at else ""
        prefix = "/".join(parts[:rest_at])
        only: frozenset[str] | None = None
        if index in self._private:
            wanted = _read_target(section, fixed, parts[rest_at + 1 :], rest_at, len(parts))
            if wanted is not None:
                # routes.ROUTES: these are the hot path's "list" and "read" routes.
                decision = await self._authorize(scope, index, *wanted)
                if isinstance(decision, Denied):
                    await _send_denied(send, decision, head)
                    return (index, "page", decision.status, 0)
                only = decision.only
            # Every answer of a private index, whatever its section: files and provenance say
            # "public" where the index is public (files.FILE_CACHE_CONTROL, integrity's), and a
            # shared cache must never keep what a token was needed to read.
            send = _privately(send)
        if section == "simple":
            status, sent = await send_page(
                scope,
                send,
                source,
                index,
                parts[rest_at + 1 :],
                prefix,
                fixed,
                head,
                only,
                cache_control=self._cache_control[index],
            )
            return (index, "page", status, sent)
        if section == "pypi" and fixed is None:
            tail = parts[rest_at + 1 :]
            status, sent = await send_pypi_json(
                scope,
                send,
                source,
                index,
                tail,
                prefix,
                head,
                cache_control=self._cache_control[index],
                base_url=self._base_url,
                cache=self._pypi_cache,
            )
            return (index, "page", status, sent)
        if section == "integrity" and fixed is None:
            tail = parts[rest_at + 1 :]
            return (index, "file", await integrity(scope, send, source, index, tail, head), 0)
        if section == "held" and fixed is None:
            tail = parts[rest_at + 1 :]
            # Its own kind: a 409 here is someone asking for a release the guard holds.
            return (index, "held", await held_file(scope, send, source, index, tail, head), 0)
        if section == "packages":
            try:
                ref = await source.file("/".join(parts[rest_at + 1 :]))
            except (SourceUnavailable, StorageError) as exc:
                await send_text(
                    send, 503, unavailable_text(index, exc), head=head, extra=[NO_STORE]
                )
                return (index, "file", 503, 0)
            if ref is None:
                await send_text(send, 404, f"no file {path[:300]} in index {index!r}", head=head)
                return (index, "file", 404, 0)
            return (index, "file", 200, await send_file(scope, send, ref, head=head))
        if section == "" and rest_at == 2 and len(parts) <= 3:
            await send_redirect(send, f"/{index}/simple/", head=head)
            return (index, "page", 301, 0)
        return None

    async def _authorize(
        self, scope: Scope, index: str, action: Action, project: str | None, filename: str | None
    ) -> Decision:
        """authz.decide's answer for a read of the private ``index``."""
        credentials = NO_CREDENTIALS
        if self._credentials is not None:
            credentials = await self._credentials(scope)
        token = credentials.token
        if filename is not None and token is not None and token.projects is not None:
            # Whose file it is matters only to a token limited to projects (for any other the
            # answer does not depend on the project), and parsing a filename costs.
            project = _file_project(filename)
        target = Target(
            index=index, private=True, private_sources=self._private[index], project=project
        )
        return decide(credentials, target, action)

    async def _landing(self, send: Send, head: bool) -> tuple[int, int]:
        """``/``: which indexes this server has and how to point pip and uv at them."""
        items = "".join(
            f'<li><a href="/{html.escape(name)}/simple/">{html.escape(name)}</a> '
            f"({html.escape(source.kind)})</li>"
            for name, source in sorted(self.sources.items())
        )
        body = (
            "<!DOCTYPE html><html><head><title>headwater</title></head><body>"
            f"<h1>headwater</h1><p>Indexes:</p><ul>{items}</ul>"
            "<p>pip install --index-url http://HOST/INDEX/simple/ NAME<br>"
            "uv pip install --index-url http://HOST/INDEX/simple/ NAME</p></body></html>"
        ).encode()
        headers: Headers = [(b"content-type", b"text/html; charset=utf-8")]
        await send_bytes(send, 200, headers, body, head=head)
        return (200, len(body))


def _read_target(
    section: str, fixed: str | None, tail: list[str], rest_at: int, length: int
) -> tuple[Action, str | None, str | None] | None:
    """The authz action, project and (for a file) filename of a hot-path request (see
    routes.ROUTES), or None when the hot path does not answer it (``rest`` does, and asks)."""
    if section == "simple":
        if tail in ([], [""]):
            return ("list", None, None)
        return ("read", _project_of(tail[0]), None)
    if section == "pypi" and fixed is None:
        return ("read", _project_of(tail[0]) if tail else None, None)
    if section == "packages":
        filename = (tail[-1] if tail else "").removesuffix(".metadata").removesuffix(".provenance")
        return ("read", None, filename)
    if section in ("integrity", "held") and fixed is None:
        return ("read", _project_of(tail[0]) if tail else None, None)
    if section == "" and rest_at == 2 and length <= 3:
        return ("list", None, None)
    return None


def _file_project(filename: str) -> str | None:
    """The project a file's name names; None when it names none (then the read is index-wide,
    which a token limited to projects may not do)."""
    try:
        return parse_filename(filename).name
    except (InvalidFilename, ValueError):
        return None


def _project_of(raw: str) -> str:
    # An invalid name is kept as it is: it is in no token's list of (normalized) projects.
    return normalize_name(raw) if is_valid_name(raw) else raw


async def _send_denied(send: Send, denied: Denied, head: bool) -> None:
    extra: Headers = [NO_STORE]
    if denied.challenge is not None:
        extra.append((b"www-authenticate", f'Basic realm="{denied.challenge}"'.encode()))
    await send_text(send, denied.status, denied.message, head=head, extra=extra)


def _privately(send: Send) -> Send:
    """``send`` with every ``Cache-Control: ... public`` made ``private``: what a token was
    needed to read must not be kept by a shared cache (a CDN, a proxy) for others."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                (key, value.replace(b"public", b"private") if key == b"cache-control" else value)
                for key, value in message.get("headers", [])
            ]
        await send(message)

    return wrapped
