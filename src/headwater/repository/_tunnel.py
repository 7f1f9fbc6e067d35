"""Talking to a forward proxy: the ``CONNECT`` tunnel, and what to tell the operator when the
proxy refuses or fails (:mod:`headwater.repository._egress` decides *whether* and *which* proxy).

Every message names the proxy without its password and says what to change; a reason phrase from
the network never reaches a message raw.
"""

from __future__ import annotations

import asyncio
import socket

from headwater.repository._egress import ProxyEndpoint

__all__ = ["ProxyRefused", "open_tunnel", "refusal", "unauthorized_hint", "unreachable"]


class ProxyRefused(Exception):
    """The forward proxy refused or failed a request (the client turns it into a ClientError).

    ``retryable``: a 5xx from the proxy may pass; a 407 or 403 will not until the config changes.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _printable(text: str, limit: int = 80) -> str:
    # A reason phrase comes from the network: it never reaches a message raw.
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text)
    return cleaned[:limit]


def refusal(proxy: ProxyEndpoint, status: int, reason: str, host: str, port: int) -> ProxyRefused:
    """What to tell the operator when ``proxy`` answers ``status`` for ``host:port``."""
    answer = f"HTTP {status} {_printable(reason)}".rstrip()
    target = f"{host}:{port}"
    # Any answer to CONNECT is the proxy's own; tinyproxy says 401 where RFC 9110 says 407.
    if status in (401, 407):
        if proxy.authorization is None:
            fix = (
                "it needs a user name and password: give them in the proxy URL "
                '(proxy = "http://USER@HOST:PORT" with proxy_password_env or proxy_password_file, '
                "or HTTPS_PROXY=http://USER:PASSWORD@HOST:PORT)"
            )
        else:
            fix = "it did not accept the user name and password given; correct them"
        return ProxyRefused(
            f"the forward proxy {proxy.display} refused to reach {target} ({answer}): {fix}",
            retryable=False,
        )
    if status == 403:
        return ProxyRefused(
            f"the forward proxy {proxy.display} refused to reach {target} ({answer}): its rules "
            "do not allow this destination or port; ask its administrator to allow it, or, if "
            'the upstream is reachable directly, add it to NO_PROXY or set proxy = "none"',
            retryable=False,
        )
    if status >= 500:
        return ProxyRefused(
            f"the forward proxy {proxy.display} could not reach {target} ({answer}): check the "
            "upstream URL, and that the proxy can resolve and reach that host",
            retryable=True,
        )
    return ProxyRefused(
        f"the forward proxy {proxy.display} answered CONNECT {target} with {answer}; a tunnel "
        "needs a 2xx answer",
        retryable=False,
    )


def unauthorized_hint(proxy: str | None) -> str:
    """What to add to an upstream's 401: which credentials to check. ``proxy`` is the display of
    the forward proxy that relayed the answer, if any (tinyproxy, for one, answers a relayed
    request with bad proxy credentials 401 instead of 407, so the 401 may be the proxy's)."""
    hint = (
        ": the upstream asks for credentials, or refused the ones given (see username, "
        "token_env or netrc in docs/configuration.md)"
    )
    if proxy is not None:
        hint += (
            f"; or the forward proxy {proxy} refused its own credentials (some proxies answer 401 "
            "instead of 407): check the user name and password of the proxy URL"
        )
    return hint


def unreachable(proxy: ProxyEndpoint, exc: BaseException) -> ProxyRefused:
    """The message for a proxy that cannot be connected to at all."""
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ProxyRefused(
        f"cannot connect to the forward proxy {proxy.display} ({_printable(detail, 200)}): check "
        "the proxy option or the HTTPS_PROXY/HTTP_PROXY variables, and that the proxy runs",
        retryable=True,
    )


_MAX_CONNECT_ANSWER = 64 << 10


async def open_tunnel(proxy: ProxyEndpoint, host: str, port: int) -> socket.socket:
    """A connected socket to ``proxy`` on which ``CONNECT host:port`` succeeded: the caller
    starts TLS with the origin over it. The caller bounds the time (``asyncio.timeout``).

    Raises:
        ProxyRefused: the proxy is unreachable, or answered anything but 2xx.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise unreachable(proxy, exc) from exc
    sock: socket.socket | None = None
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        candidate = socket.socket(family, kind, proto)
        candidate.setblocking(False)
        try:
            await loop.sock_connect(candidate, address)
        except OSError as exc:
            candidate.close()
            error = exc
            continue
        except BaseException:
            candidate.close()
            raise
        sock = candidate
        break
    if sock is None:
        raise unreachable(proxy, error or OSError("no address"))
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"]
        if proxy.authorization is not None:
            lines.append(f"Proxy-Authorization: {proxy.authorization.reveal()}\r\n")
        lines.append("\r\n")
        await loop.sock_sendall(sock, "".join(lines).encode("latin-1"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ProxyRefused(
                    f"the forward proxy {proxy.display} closed the connection instead of "
                    f"answering CONNECT {authority}",
                    retryable=True,
                )
            answer += chunk
            if len(answer) > _MAX_CONNECT_ANSWER:
                raise ProxyRefused(
                    f"the forward proxy {proxy.display} sent an oversized answer to CONNECT",
                    retryable=False,
                )
        head, _, rest = answer.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        version, _, status_reason = status_line.partition(" ")
        code, _, reason = status_reason.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ProxyRefused(
                f"the forward proxy {proxy.display} answered CONNECT with something that is not "
                f"HTTP ({_printable(status_line)!r})",
                retryable=False,
            )
        status = int(code)
        if not 200 <= status < 300:
            raise refusal(proxy, status, reason, host, port)
        if rest:
            # Nothing may come before our TLS ClientHello: bytes here are not the origin's.
            raise ProxyRefused(
                f"the forward proxy {proxy.display} sent data after its CONNECT answer",
                retryable=False,
            )
    except OSError as exc:
        sock.close()
        raise unreachable(proxy, exc) from exc
    except BaseException:
        sock.close()
        raise
    return sock
