"""The hot path's pages: a simple page (PEP 503/691) and PyPI's legacy JSON API, as bytes.

:class:`~headwater.server.app.IndexApp` routes a GET or HEAD of ``/<index>/simple/...`` to
:func:`send_page` and of ``/<index>/pypi/<project>/json`` to :func:`send_pypi_json`; both answer
in raw ASGI from the rendered page the source keeps in memory (see
:mod:`headwater.repository.base`). A page is negotiated by ``Accept`` and ``?format=`` (PEP 691,
standards.md items 51 and 53), gzipped when the client takes it, validated by its ETag, and
marked stale when the source serves it from cache past an upstream failure; a refusal is
:mod:`headwater.server.refusals`'s answer. The JSON API's rendering is kept per page version in a
byte-bounded LRU, so one rendering serves every client.
"""

from __future__ import annotations

from urllib.parse import unquote

import msgspec

from headwater.errors import printable
from headwater.repository.base import PageFormat, RenderedPage, ServedSource, SourceUnavailable
from headwater.repository.index import Refusal
from headwater.server import params
from headwater.server.lru import ByteBudgetLRU
from headwater.server.refusals import send_refusal
from headwater.server.responses import (
    NO_STORE,
    header,
    if_none_match,
    send_bytes,
    send_redirect,
    send_text,
    unavailable_text,
)
from headwater.server.types import Headers, Scope, Send
from headwater.simple.json import parse_project_page_json
from headwater.simple.negotiation import JSON_V1, NotAcceptable, select_content_type
from headwater.simple.pages import parse_project_list, render_project_list
from headwater.simple.pypi_json import render_pypi_json
from headwater.storage.base import StorageError

__all__ = ["PYPI_JSON_CACHE_BYTES", "PypiJsonCache", "send_page", "send_pypi_json"]

_VARY = b"Accept, Accept-Encoding"
_UNAVAILABLE_FIX = (
    "wait for the upstream to come back, or set offline = true on the proxy to serve only what "
    "it has cached; headwater never takes the project from another source instead"
)
#: Per process: the renderings of ``/pypi/<project>/json`` kept (least recently used dropped).
PYPI_JSON_CACHE_BYTES = 32 * 1024 * 1024

#: (index, project) -> (page etag, rendering): one rendering per page version.
PypiJsonCache = ByteBudgetLRU[tuple[str, str], tuple[str, RenderedPage]]


async def send_page(
    scope: Scope,
    send: Send,
    source: ServedSource,
    index: str,
    tail: list[str],
    prefix: str,
    fixed: str | None,
    head: bool,
    only: frozenset[str] | None = None,
    *,
    cache_control: bytes,
) -> tuple[int, int]:
    """A simple page (the project list when ``tail`` is ``[""]``) of ``index`` in the format the
    client asks (or the ``fixed`` one), with its validators; 301 to the canonical URL for other
    spellings, 404/406/409/503 with the reason. ``(status, body bytes sent)``."""
    query = scope.get("query_string") or b""
    suffix = "?" + query.decode("latin-1") if query else ""
    # tail: [""] for the root, [name, ""] for a project, [] / [name] when the slash is missing.
    if not tail:
        await send_redirect(send, f"{prefix}/simple/{suffix}", head=head)
        return (301, 0)
    project = None
    if tail != [""]:
        raw = tail[0]
        if len(tail) > 2 or (len(tail) == 2 and tail[1] != ""):
            await send_text(send, 404, f"no project at {scope['path'][:300]!r}", head=head)
            return (404, 0)
        try:
            project = params.project(raw)
        except params.BadParameter as exc:
            await send_text(send, 404, str(exc), head=head)
            return (404, 0)
        if project != raw or len(tail) == 1:
            # PEP 503: the normalized URL is canonical; other spellings redirect to it.
            await send_redirect(send, f"{prefix}/simple/{project}/{suffix}", head=head)
            return (301, 0)
    try:
        content_type = fixed or select_content_type(
            (header(scope, b"accept") or b"").decode("latin-1") or None,
            _format_param(query),
        )
    except NotAcceptable as exc:
        # The answer depends on Accept like the page does: a cache keyed on the URL alone
        # must not hand this 406 to the next client (standards.md item 53).
        await send_text(send, 406, str(exc), head=head, extra=[(b"vary", _VARY)])
        return (406, 0)
    fmt: PageFormat = "json" if content_type == JSON_V1 else "html"
    try:
        page = await source.page(project, fmt)
    except Refusal as exc:
        refused = exc.refused
        status = await send_refusal(
            scope,
            send,
            project_url=f"{prefix}/simple/{project}/",
            kind=refused.kind,
            status=refused.status,
            message=refused.message,
            fix=refused.fix,
            head=head,
        )
        return (status, 0)
    except (SourceUnavailable, StorageError) as exc:
        if project is None:
            await send_text(send, 503, unavailable_text(index, exc), head=head, extra=[NO_STORE])
            return (503, 0)
        status = await send_refusal(
            scope,
            send,
            project_url=f"{prefix}/simple/{project}/",
            kind="unavailable",
            status=503,
            message=f"index {index!r} cannot serve {project!r}: {unavailable_text(index, exc)}",
            fix=_UNAVAILABLE_FIX,
            head=head,
        )
        return (status, 0)
    if page is None:
        what = f"project {project!r}" if project else "a project list"
        await send_text(send, 404, f"index {index!r} has no {what}", head=head)
        return (404, 0)
    if only is not None and project is None:
        page = _only(page, content_type, only)
    headers: Headers = [
        (b"content-type", content_type.encode()),
        (b"vary", _VARY),
        (b"cache-control", cache_control),
        (b"access-control-allow-origin", b"*"),
        (b"access-control-expose-headers", b"X-PyPI-Last-Serial"),
    ]
    if page.serial is not None:
        headers.append((b"x-pypi-last-serial", str(page.serial).encode()))
    headers.extend(page.headers)
    if page.stale is not None:
        headers.append((b"warning", b'110 - "Response is Stale"'))
        headers.append((b"x-headwater-stale", _one_line(page.stale)))
    body = page.body
    etag = page.etag
    accept_encoding = header(scope, b"accept-encoding")
    if accept_encoding is not None and b"gzip" in accept_encoding:
        gzipped = page.gzipped()
        if gzipped is not None:
            body = gzipped
            # A different representation needs its own strong validator.
            etag = etag[:-1] + '-gz"'
            headers.append((b"content-encoding", b"gzip"))
    headers.append((b"etag", etag.encode()))
    if if_none_match(header(scope, b"if-none-match"), etag):
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return (304, 0)
    await send_bytes(send, 200, headers, body, head=head)
    return (200, 0 if head else len(body))


async def send_pypi_json(
    scope: Scope,
    send: Send,
    source: ServedSource,
    index: str,
    tail: list[str],
    prefix: str,
    head: bool,
    *,
    cache_control: bytes,
    base_url: str,
    cache: PypiJsonCache,
) -> tuple[int, int]:
    """``/<index>/pypi/<project>/json``: PyPI's legacy JSON API, which bandersnatch reads
    to mirror an index; made from the JSON page and kept in ``cache`` until the page changes."""
    if len(tail) not in (2, 3) or tail[1] != "json" or tail[2:] not in ([], [""]):
        await send_text(send, 404, f"no such URL: {scope['path'][:300]}", head=head)
        return (404, 0)
    try:
        project = params.project(tail[0])
    except params.BadParameter as exc:
        await send_text(send, 404, str(exc), head=head)
        return (404, 0)
    try:
        page = await source.page(project, "json")
    except Refusal as exc:
        refused = exc.refused
        text = f"{refused.message}\nTo resolve: {refused.fix}"
        await send_text(send, refused.status, text, head=head, extra=[NO_STORE])
        return (refused.status, 0)
    except (SourceUnavailable, StorageError) as exc:
        await send_text(send, 503, unavailable_text(index, exc), head=head, extra=[NO_STORE])
        return (503, 0)
    if page is None:
        await send_text(send, 404, f"index {index!r} has no project {project!r}", head=head)
        return (404, 0)
    # File URLs are absolute only with base_url (the operator's statement of this server's
    # address). Without it they are path-absolute (/INDEX/packages/...), resolved by the
    # client against the URL it asked, as the simple pages' relative links are: the Host
    # header never reaches the body, so one rendering per page version serves every client
    # and the response is safe to cache publicly.
    key = (index, project)
    cached = cache.get(key)
    if cached is None or cached[0] != page.etag:
        model = parse_project_page_json(page.body)
        body = render_pypi_json(model, page_url=f"{base_url}{prefix}/simple/{project}/")
        cached = (page.etag, RenderedPage(body, serial=page.serial))
        cache.put(key, cached, len(body))
    rendered = cached[1]
    headers: Headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", cache_control),
        (b"access-control-allow-origin", b"*"),
        (b"etag", rendered.etag.encode()),
    ]
    if rendered.serial is not None:
        headers.append((b"x-pypi-last-serial", str(rendered.serial).encode()))
    await send_bytes(send, 200, headers, rendered.body, head=head)
    return (200, 0 if head else len(rendered.body))


def _only(page: RenderedPage, content_type: str, only: frozenset[str]) -> RenderedPage:
    """The project list ``page`` showing only the projects in ``only`` (a token limited to them)."""
    listing = parse_project_list(page.body, content_type)
    kept = tuple(entry for entry in listing.projects if entry.normalized in only)
    body = render_project_list(msgspec.structs.replace(listing, projects=kept), content_type)
    return RenderedPage(body, serial=page.serial, headers=page.headers, stale=page.stale)


def _one_line(text: str) -> bytes:
    """``text`` as a header value: one line of latin-1, control characters escaped."""
    return printable(" ".join(text.split()), 1000).encode("latin-1", "replace")


def _format_param(query: bytes) -> str | None:
    """The ``?format=`` parameter (item 51), if any."""
    if b"format=" not in query:
        return None
    # A literal "+" is kept (not read as a space): the spec's own example is
    # ?format=application/vnd.pypi.simple.v1+json, unencoded.
    for pair in query.decode("latin-1").split("&"):
        key, _, value = pair.partition("=")
        if key == "format":
            return unquote(value)
    return None
