"""A lean HTTP/1.1 client for upstream fetches: GET only, keep-alive pool, httptools parser.

This module builds requests, pools connections, follows redirects and applies the boundary and
the egress settings; the wire level (one connection, one answer and its body, the deadline, the
errors) is :mod:`headwater.repository._wire`, whose names callers import from here.

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
import functools
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urljoin, urlsplit

from headwater.errors import printable
from headwater.repository._egress import Egress, ProxyEndpoint
from headwater.repository._tunnel import ProxyRefused, open_tunnel, refusal, unreachable
from headwater.repository._wire import (
    MIN_RATE,
    BodyTooLarge,
    ClientError,
    ClientTimeout,
    Connection,
    Deadline,
    Origin,
    ProxyError,
    Response,
    Stale,
)
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

Resolver = Callable[[str, int], Awaitable[list[str]]]
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Caller headers that are credentials: never sent on to another origin after a redirect.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


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
        self._idle: dict[object, list[Connection]] = {}
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
            response.close()  # a redirect's body is never wanted; the connection is dropped
            location = _redirect_target(url, response.headers["location"])
            if _CREDENTIAL_HEADERS.intersection(map(str.lower, headers)) and _origin_of(
                location
            ) != _origin_of(url):
                # Credentials the caller gave are for this origin only (RFC 9110 15.4).
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            url = location
        raise ClientError(
            f"more than {_MAX_REDIRECTS} redirects, the last to {printable(url, 200)}"
        )

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
                except Stale:
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
    ) -> Connection:
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
                            lambda: Connection(origin, loop, key),
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
                            lambda: Connection(origin, loop, key), proxy.host, proxy.port
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
    ) -> Connection:
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
                    lambda: Connection(origin, loop, key),
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

    def _release(self, conn: Connection) -> None:
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


def _redirect_target(url: str, location: str) -> str:
    """Where a redirect from ``url`` to ``location`` leads (the next request checks its scheme,
    origin and boundary as it does every URL's).

    Raises:
        ClientError: ``location`` cannot be parsed (an unclosed IPv6 bracket), naming both.
    """
    try:
        return urljoin(url, location)
    except ValueError:
        raise ClientError(
            f"{printable(url, 200)} redirected to {printable(location, 200)!r}, which is not a URL"
        ) from None
