"""A forward proxy that sends every request to one address, whatever host it names: how tests
reach names that no resolver here knows (``BUCKET.s3.headwater.test``, a virtual-hosted bucket of
the test SeaweedFS) with the real clients, which take the proxy from ``HTTP_PROXY``.

It rewrites each request's absolute-form target to origin form, keeps its ``Host`` header (the
server reads the bucket from it), asks for ``Connection: close`` and then copies bytes both ways.
Every host it was asked for is recorded in :attr:`HostProxy.hosts`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["HostProxy", "host_proxy"]


@dataclass
class HostProxy:
    target: tuple[str, int]
    server: socket.socket
    hosts: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.getsockname()[:2]
        return f"http://{host}:{port}"

    def serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(client,), daemon=True).start()

    def _one(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            first, *headers = head.split(b"\r\n")
            method, target, version = first.split(b" ", 2)
            parts = urlsplit(target.decode("ascii"))
            self.hosts.append(parts.netloc)
            origin = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            kept = [h for h in headers if not h.lower().startswith((b"connection:", b"proxy-"))]
            request = b"\r\n".join(
                [b" ".join([method, origin.encode("ascii"), version]), *kept, b"Connection: close"]
            )
            with socket.create_connection(self.target, timeout=60) as upstream:
                upstream.sendall(request + b"\r\n\r\n" + rest)
                pump = threading.Thread(target=_copy, args=(client, upstream), daemon=True)
                pump.start()
                _copy(upstream, client)
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                pump.join(5)


def _copy(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)


@contextlib.contextmanager
def host_proxy(target: tuple[str, int]) -> Iterator[HostProxy]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    proxy = HostProxy(target, server)
    thread = threading.Thread(target=proxy.serve, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress
        server.close()
        thread.join(5)
