"""A TCP forwarder that a test can cut, slow down and restore: the network between headwater
and a component it depends on (PostgreSQL, an object store).

Stopping the machine's PostgreSQL would break every other test running on it; cutting the path
to it is what a node sees when the database host goes away, and it is reversible at once.

- :meth:`TcpGate.cut`: every open connection is reset and new ones are refused (the listening
  socket is closed: a connect fails at once, as to a host that is down).
- :meth:`TcpGate.restore`: connections are accepted again, on the same port.
- ``delay``: seconds added before each forwarded chunk (a slow network or server).
- ``requests``: the HTTP requests forwarded to the target so far, by method (a test counts what
  a client sent, e.g. whether an S3 client sent a HEAD per object).
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator

__all__ = ["TcpGate", "tcp_gate"]


class TcpGate:
    """Forward ``127.0.0.1:<port>`` to ``target`` (host, port) until cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.delay = 0.0
        #: Bytes forwarded in either direction so far (a test can see whether anything was asked).
        self.forwarded = 0
        #: HTTP requests forwarded to the target so far, by method.
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self.restore()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def restore(self) -> None:
        """Accept connections again (a no-op while open)."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Reset every open connection and refuse new ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                # SO_LINGER 0: close sends a RST, as a peer that vanished would.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._conns.update((client, upstream))
            requests = _RequestHeads(self.requests, self._lock)
            for a, b, heads in ((client, upstream, requests), (upstream, client, None)):
                threading.Thread(target=self._pump, args=(a, b, heads), daemon=True).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, heads: _RequestHeads | None
    ) -> None:
        try:
            while chunk := source.recv(1 << 16):
                if self.delay:
                    time.sleep(self.delay)
                sink.sendall(chunk)
                self.forwarded += len(chunk)
                if heads is not None:
                    heads.feed(chunk)
        except OSError:
            pass
        finally:
            for each in (source, sink):
                with contextlib.suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)
                each.close()  # the other direction's pump then ends too
            with self._lock:
                self._conns.discard(source)
                self._conns.discard(sink)


_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


class _RequestHeads:
    """Counts the HTTP/1.1 request heads in one connection's client bytes, skipping each body by
    its Content-Length (a chunked body is not parsed: none of the counted clients sends one)."""

    def __init__(self, into: Counter[str], lock: threading.Lock) -> None:
        self.into = into
        self.lock = lock
        self.pending = b""
        self.body_left = 0

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        while True:
            if self.body_left:
                taken = min(self.body_left, len(self.pending))
                self.pending, self.body_left = self.pending[taken:], self.body_left - taken
                if self.body_left:
                    return
            end = self.pending.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.pending = self.pending[:end], self.pending[end + 4 :]
            with self.lock:
                self.into[head.split(b" ", 1)[0].decode("latin-1")] += 1
            length = _LENGTH.search(head)
            self.body_left = int(length.group(1)) if length else 0


@contextlib.contextmanager
def tcp_gate(host: str, port: int) -> Iterator[TcpGate]:
    """A :class:`TcpGate` to ``host:port``, closed afterwards."""
    gate = TcpGate((host, port))
    try:
        yield gate
    finally:
        gate.close()
