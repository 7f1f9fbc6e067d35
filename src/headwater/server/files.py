"""Serving distribution files and ``.metadata``: HEAD, conditional GET, single byte ranges.

Files are content-addressed and never change once written, so they are cached as immutable. When
the storage is a local directory and the ASGI server offers the ``http.response.pathsend``
extension (granian does), the server sends the file itself, without copying it through Python;
otherwise the bytes are streamed from storage in chunks, so memory stays flat for any file size.

A file a proxy is still downloading (``FileRef.stream``) is sent as its bytes arrive, always whole
(200, no Range: the bytes before a range's start are not there yet). If the stream fails part-way
(the bytes did not match the hash on the page), the error propagates and the ASGI server drops the
connection: the client sees a body shorter than its Content-Length, never a complete wrong file.
"""

from __future__ import annotations

import hashlib
import re

from headwater.repository.base import FileRef
from headwater.server.responses import header, if_none_match, send_text
from headwater.server.types import Headers, Scope, Send
from headwater.storage.base import RedirectingStorage
from headwater.storage.layout import tree_content_type

__all__ = ["FILE_CACHE_CONTROL", "MAX_RANGE_LENGTH", "parse_range", "send_file"]

#: A year, immutable: the URL names the content's hash, so the bytes behind it never change.
FILE_CACHE_CONTROL = b"max-age=31536000, immutable, public"
# ASCII digits only (``\d`` would take any Unicode digit), at most 19 of them: every position in
# a file fits in a signed 64-bit integer, and int() never meets Python's 4,300-digit limit.
_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})\Z", re.ASCII)
#: A Range value longer than this is ignored whole (one range of two 19-digit numbers is 45).
MAX_RANGE_LENGTH = 200


def parse_range(value: str, size: int) -> tuple[int, int] | bool | None:
    """Interpret a Range header for a file of ``size`` bytes (RFC 9110 14.2).

    Returns ``(start, end)`` (end exclusive) for one satisfiable range, ``None`` to ignore the
    header and send the whole file (several ranges, or a unit we do not know: ignoring is allowed),
    or ``False`` when the range cannot be satisfied (the caller answers 416).

    Total: any string gets one of those answers. RFC 9110 14.2 lets a server ignore a Range it
    does not want to answer; values over :data:`MAX_RANGE_LENGTH` characters and positions of 20
    or more digits (past any file's size) are ignored that way.
    """
    if len(value) > MAX_RANGE_LENGTH:
        return None
    found = _RANGE.match(value.strip())
    if found is None:
        return None
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0 or size == 0:  # RFC 9110 14.1.2: nothing to select in an empty file
            return False
        return (max(0, size - length), size)
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if start >= size or (last and int(last) < start):
        return False
    return (start, end)


def _content_type(key: str) -> bytes:
    # The same table a bucket's objects get (a CDN in front of a mirror's bucket agrees with us).
    return tree_content_type(key).encode()


async def send_file(scope: Scope, send: Send, ref: FileRef, *, head: bool) -> int:
    """Answer a GET or HEAD for ``ref``; returns the number of body bytes sent.

    Raises:
        Exception: whatever ``ref.stream`` raises part-way (after the response started; the
            server then aborts the connection).
    """
    stream = ref.stream
    if stream is None:
        return await _send_file(scope, send, ref, head=head)
    try:
        return await _send_file(scope, send, ref, head=head)
    finally:
        # Always let go of a stream (a HEAD, a 304 or a failed send read none or part of it): the
        # download behind it then carries on into the cache without this reader.
        await stream.aclose()


async def _send_redirect(send: Send, location: str, max_age: int) -> None:
    # 307 keeps the method (a HEAD stays a HEAD); pip, uv and browsers follow it.
    cache = f"max-age={max_age}, public".encode() if max_age else b"no-store, private"
    await send(
        {
            "type": "http.response.start",
            "status": 307,
            "headers": [
                (b"location", location.encode("ascii")),
                (b"cache-control", cache),
                (b"content-length", b"0"),
                (b"access-control-allow-origin", b"*"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _send_file(scope: Scope, send: Send, ref: FileRef, *, head: bool) -> int:
    etag = '"' + hashlib.blake2b(ref.key.encode(), digest_size=12).hexdigest() + '"'
    headers: Headers = [
        (b"content-type", _content_type(ref.key)),
        (b"etag", etag.encode()),
        (b"cache-control", FILE_CACHE_CONTROL),
        (b"accept-ranges", b"bytes"),
        (b"access-control-allow-origin", b"*"),
    ]
    if if_none_match(header(scope, b"if-none-match"), etag):
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return 0
    if (
        ref.stream is None
        and isinstance(ref.storage, RedirectingStorage)
        and ref.storage.redirects_files
    ):
        # Object storage configured to serve files itself (files = "redirect-presigned", or
        # files_base_url), as PyPI sends files to its file host. The route authorized this
        # request before it got here, so handing out a presigned URL (a capability) is safe.
        target = await ref.storage.file_url(ref.key)
        if target is not None:
            await _send_redirect(send, *target)
            return 0
    span: tuple[int, int] | None = None
    requested = header(scope, b"range")
    if_range = header(scope, b"if-range")
    if (
        requested is not None
        and ref.stream is None
        and (if_range is None or if_range.decode("latin-1") == etag)
    ):
        parsed = parse_range(requested.decode("latin-1"), ref.size)
        if parsed is False:
            await send_text(
                send,
                416,
                f"range {requested.decode('latin-1')[:100]!r} is outside the file ({ref.size} bytes)",
                head=head,
                extra=[(b"content-range", f"bytes */{ref.size}".encode())],
            )
            return 0
        if isinstance(parsed, tuple):
            span = parsed
    status = 200
    start, end = 0, ref.size
    if span is not None:
        start, end = span
        status = 206
        headers.append((b"content-range", f"bytes {start}-{end - 1}/{ref.size}".encode()))
    headers.append((b"content-length", str(end - start).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if head:
        await send({"type": "http.response.body", "body": b""})
        return 0
    if ref.body is not None:
        await send({"type": "http.response.body", "body": ref.body[start:end]})
        return end - start
    sent = 0
    if ref.stream is not None:
        async for chunk in ref.stream:
            sent += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return sent
    extensions = scope.get("extensions") or {}
    if span is None and ref.local_path is not None and "http.response.pathsend" in extensions:
        await send({"type": "http.response.pathsend", "path": str(ref.local_path)})
        return ref.size
    async for chunk in ref.storage.open_read(ref.key, start=start, end=end, chunk_size=1 << 18):
        sent += len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
    return sent
