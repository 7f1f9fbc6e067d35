"""Pieces of the route fuzzer (tests/server/test_fuzz_routes.py): raw HTTP/1.1 over a socket, the
route table of a built app, and the malformed inputs.

Requests are written byte by byte (no client library normalises a path, drops a header or
refuses a value), so anything the server's HTTP parser accepts reaches the application.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.routing import Route

from headwater.server.app import IndexApp
from headwater.server.routes import ROUTES


@dataclass(frozen=True)
class RouteSpec:
    """One URL shape of the server: ``template`` with ``{placeholders}``, the methods it answers."""

    template: str
    methods: tuple[str, ...]
    hot: bool  # answered by IndexApp's raw-ASGI hot path (else by the Starlette app)

    @property
    def placeholders(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.template)


def route_table(app: IndexApp) -> list[RouteSpec]:
    """Every route of the server: :data:`headwater.server.routes.ROUTES` (the hot path's shapes
    and the Starlette routes, the table the authorization matrix holds against the app), plus any
    route of ``app``'s Starlette application the table lacks."""
    specs: dict[str, RouteSpec] = {}

    def add(template: str, methods: Iterable[str], hot: bool) -> None:
        old = specs.get(template)
        merged = {*methods, *(old.methods if old else ())}
        specs[template] = RouteSpec(template, tuple(sorted(merged)), hot or bool(old and old.hot))

    for route in ROUTES:
        add(route.path, route.methods, route.layer == "fast")
    rest = app.rest
    assert rest is not None
    for route in rest.routes:  # type: ignore[attr-defined]
        assert isinstance(route, Route), route
        add(route.path, route.methods or ("GET",), False)
    return sorted(specs.values(), key=lambda s: s.template)


# -- raw HTTP ------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: str = ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


@dataclass
class Request:
    method: str
    target: bytes  # path and query, as sent
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    #: Send this many body bytes of zeros after ``body`` (for huge bodies without holding them).
    zeros: int = 0
    #: Content-Length to declare (None: the true length; -1: none, body sent as is).
    content_length: int | None = None
    host: bytes | None = b"127.0.0.1"

    def head(self) -> bytes:
        lines = [self.method.encode("latin-1") + b" " + self.target + b" HTTP/1.1"]
        if self.host is not None:
            lines.append(b"Host: " + self.host)
        lines += [k + b": " + v for k, v in self.headers]
        length = len(self.body) + self.zeros if self.content_length is None else self.content_length
        if length >= 0 and (length or self.method not in ("GET", "HEAD")):
            lines.append(b"Content-Length: " + str(length).encode())
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def describe(self) -> str:
        heads = ", ".join(f"{k.decode('latin-1')}: {v[:80]!r}" for k, v in self.headers)
        return (
            f"{self.method} {self.target[:300]!r} [{heads}] host={(self.host or b'')[:80]!r} "
            f"body={self.body[:120]!r}{f' +{self.zeros} zeros' if self.zeros else ''} "
            f"({len(self.body) + self.zeros} bytes, declared {self.content_length})"
        )


def exchange(port: int, request: Request, *, timeout: float = 20.0) -> Answer | None:
    """Send ``request``; the answer, or None when the server closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(request.head() + request.body)
            left = request.zeros
            chunk = bytes(1 << 20)
            while left > 0:
                sock.sendall(chunk[: min(left, len(chunk))])
                left -= len(chunk)
            if request.content_length is not None:
                # A body shorter than declared: end it, or the server waits for the rest (hyper
                # treats a half-closed connection as closed, so only here).
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the server answered early (e.g. 413) and closed: read what it sent
        response = http.client.HTTPResponse(sock, method=request.method)
        try:
            response.begin()
            body = response.read()
        except (http.client.HTTPException, ConnectionResetError, TimeoutError):
            return None
        headers = [(k, v) for k, v in response.getheaders()]
        return Answer(response.status, headers, body)


def basic(user: bytes, password: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user + b":" + password)


# -- malformed inputs ----------------------------------------------------------------------------

#: Path segments: invalid names, traversal, encodings that do not decode, overlong ones.
BAD_SEGMENTS: tuple[bytes, ...] = (
    b"-",
    b"_",
    b".",
    b"..",
    b"%2e%2e",
    b"..%2f..%2fetc%2fpasswd",
    b"%00",
    b"a%00b",
    b"%ff%fe",
    b"%C3%A9",
    b"%zz",
    b"%",
    b"%25",
    b"%2F",
    b"a;b",
    b"%0d%0aX-Injected:%201",
    b"%3Cscript%3E",
    b"x" * 300,
    b"a" * 20_000,
    b"9" * 5000,
    b"-a-",
    b"a__b",
    b"~",
    b"%F0%9F%98%80",
    b"\xc3\xa9",  # raw UTF-8 in the request line
    b"\xff",
    b"1.0",
    b"1!2.3+local",
    b"v" * 70,
)

_DIGITS = b"9" * 5000
RANGE_VALUES: tuple[bytes, ...] = (
    b"bytes=" + _DIGITS + b"-",
    b"bytes=-" + _DIGITS,
    b"bytes=0-" + _DIGITS,
    b"bytes=" + _DIGITS + b"-" + _DIGITS,
    b"bytes=5-1",
    b"bytes=-0",
    b"bytes=0-0," * 2000,
    b"bytes=",
    b"bytes=-",
    b"items=1-2",
    b"bytes=\xff-",
    b"bytes=0x10-",
    b"bytes=\xd9\xa3-",  # an Arabic-Indic digit in UTF-8
    b"bytes=1_000-",
    b"bytes= 1 - 2 ",
    b"bytes=18446744073709551616-",
)

HEADER_VALUES: dict[bytes, tuple[bytes, ...]] = {
    b"Range": RANGE_VALUES,
    b"If-Range": (b'"x"', b"\xff" * 10, b"W/" + b'"' * 3000),
    b"Accept": (
        b"",
        b"*/*;q=2",
        b"application/vnd.pypi.simple.v1+json;q=abc",
        b"application/vnd.pypi.simple.v1+json;q=nan",
        b"x" * 20_000,
        b", , ,;;;=",
        b"text/html;q=0, */*;q=0",
        b"\xff\xfe/\xff",
        b"application/vnd.pypi.simple.v9+json",
        b"a/b;" * 3000,
    ),
    b"Accept-Encoding": (b"gzip;q=0", b"x" * 8000, b"gzip, \xff", b"*"),
    b"If-None-Match": (b"*", b"W/", b'"' * 5000, b"\xff\xfe", b'"a",' * 2000),
    b"Authorization": (
        b"",
        b"Basic",
        b"Basic !!!",
        b"Basic ====",
        b"Basic " + base64.b64encode(b"no-colon"),
        basic(b"__token__", b"x" * 5000),
        basic(b"__token__", b"\xff\xfe\x00"),
        basic(b"\xff", b"\xff"),
        basic(b"admin", b"admin"),
        b"Basic " + b"A" * 20_000,
        b"Bearer ",
        b"Bearer \xff\xff",
        b"Bearer " + b"x" * 5000,
        b"Digest username=x",
        b"\xff\xfe",
    ),
    b"Content-Type": (
        b"application/json; charset=utf-16",
        b"multipart/form-data",
        b"multipart/form-data; boundary=",
        b"multipart/form-data; boundary=" + b"a" * 5000,
        b"multipart/form-data; boundary=x",
        b"application/x-www-form-urlencoded",
        b"\xff",
    ),
    b"User-Agent": (b"pip/" + b"\xff" * 10, b"pip/26.0", b"x" * 10_000),
    b"Cookie": (b"a=" + b"b" * 5000, b"\xff"),
    b"X-Forwarded-For": (b"\xff", b"1.2.3.4, " * 500),
}

HOSTS: tuple[bytes | None, ...] = (
    None,  # no Host header at all
    b"",
    b"a" * 5000,
    b"evil.example",
    b"evil.example:99999",
    b"[::1",
    b"\xff\xfe",
    b"127.0.0.1, evil.example",
    b'"><script>',
)

QUERIES: tuple[bytes, ...] = (
    b"format=",
    b"format=%ff",
    b"format=application/vnd.pypi.simple.v1+json&format=text/html",
    b"format=" + b"x" * 10_000,
    b"a" * 20_000,
    b"&&&==&=",
    b"%zz=%",
    b"headwater-refused=" + b"x" * 3000,
    b"headwater-refused=%0d%0aX: 1&fix=%ff",
    b"\xff\xfe=\xff",
    b"format=text%2Fhtml%00",
)


def _deep(n: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    return open_ * n + close * n


BODIES: tuple[bytes, ...] = (
    b"",
    _deep(100_000),
    b'{"version":' * 100_000 + b"1" + b"}" * 100_000,
    b'{"urls":' + _deep(50_000) + b"}",
    b'{"version": {"a": 1}}',
    b'{"filename": 1}',
    b'{"filename": ["a"], "version": null}',
    b'{"reason": {"x": 1}, "version": "1.0"}',
    b'{"urls": "https://x"}',
    b'{"urls": [1, null]}',
    b'{"status": []}',
    b'{"status": "active", "reason": 7}',
    b"[]",
    b'"x"',
    b"1",
    b"null",
    b"true",
    b"NaN",
    b'{"version": 1' + b"0" * 5000 + b"}",
    b'{"version": "\xff\xfe"}',
    b'{"version": "1.0"',  # truncated
    b"\x00" * 64,
    b'{"a":1,"a":2,"version":"1.0"}',
    b'--x\r\nContent-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n--x',
    b'--x\r\nContent-Disposition: form-data; name="content"; filename="a.whl"\r\n\r\nPK',
    b"--" + b"x" * 5000,
)

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO", "get")


# -- the server's worker processes -----------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (the server's workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def workers_rss(pid: int) -> dict[int, float]:
    """RSS of each process below the server process ``pid``, MiB."""
    out: dict[int, float] = {}
    for child in descendants(pid):
        try:
            out[child] = rss_mib(child)
        except OSError:
            continue
    return out


def percent(segment: bytes) -> bytes:
    """``segment`` with bytes outside the URL's unreserved set percent-encoded (to make an
    arbitrary hypothesis string a path segment the server's parser accepts)."""
    keep = re.compile(rb"[A-Za-z0-9._~!$&'()*+,;=:@%-]")
    return b"".join(bytes([b]) if keep.match(bytes([b])) else b"%%%02X" % b for b in segment)
