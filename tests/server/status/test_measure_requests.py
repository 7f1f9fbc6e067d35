"""Measuring a tree or a proxy's cache in a bucket costs its listing, not a request per object:
the requests the storage sends to a real SeaweedFS are counted by a TCP relay in between."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import re
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from headwater.config.status import StatusSettings
from headwater.server.metrics import Metrics
from headwater.server.status.service import StatusService
from headwater.storage.open import aclose_storage
from headwater.storage.s3 import S3Storage
from tests.seaweed import SeaweedServer, s3_location

_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class CountingRelay:
    """A TCP relay to ``target`` that counts the HTTP requests passing through, by method."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.methods: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._spawn(self._accept)

    def stop(self) -> None:
        self._listener.close()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._spawn(self._requests, client, server)
            self._spawn(self._pump, server, client)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _requests(self, client: socket.socket, server: socket.socket) -> None:
        """Relay the client's bytes, counting each request head (bodies skipped by length)."""
        pending = b""
        body_left = 0
        with contextlib.suppress(OSError):
            while data := client.recv(1 << 16):
                server.sendall(data)
                pending += data
                while True:
                    if body_left:
                        taken = min(body_left, len(pending))
                        pending, body_left = pending[taken:], body_left - taken
                        if body_left:
                            break
                    end = pending.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, pending = pending[:end], pending[end + 4 :]
                    with self._lock:
                        self.methods[head.split(b" ", 1)[0].decode()] += 1
                    length = _LENGTH.search(head)
                    body_left = int(length.group(1)) if length else 0
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def relayed(seaweed: SeaweedServer) -> Iterator[tuple[SeaweedServer, CountingRelay]]:
    host, port = seaweed.endpoint.removeprefix("http://").rsplit(":", 1)
    relay = CountingRelay((host, int(port)))
    relay.start()
    try:
        yield dataclasses.replace(seaweed, endpoint=f"http://127.0.0.1:{relay.port}"), relay
    finally:
        relay.stop()


def test_measuring_a_bucket_sends_no_request_per_object(
    seaweed: SeaweedServer, s3_bucket: str, tmp_path: Path
) -> None:
    """A mirror tree of N files in a bucket is measured with its listing (ListObjectsV2: one GET
    per 1000 objects) and no HEAD per object (before: N HEADs; on a full mirror millions of
    requests after every run). The listing's sizes are the objects' sizes."""
    count = 130
    client = seaweed.client()
    sizes = {f"tree/web/packages/{i % 7:02x}/{i}/p-{i}.tar.gz": 100 + i for i in range(count)}
    for key, size in sizes.items():
        client.put_object(Bucket=s3_bucket, Key=key, Body=b"x" * size)
    client.put_object(Bucket=s3_bucket, Key="tree/web/simple/p/index.html", Body=b"not a file")
    client.put_object(Bucket=s3_bucket, Key="tree/web/packages-not/x", Body=b"not under it")

    with relayed(seaweed) as (through, relay):
        storage = S3Storage(s3_location(through, s3_bucket, "tree/"))

        async def go() -> None:
            service = StatusService(
                mirrors={"pypi": storage},
                proxies={},
                settings=StatusSettings(),
                metrics=Metrics(),
                base_url="http://h",
                directory=tmp_path / "status",
            )
            try:
                before = relay.methods.copy()
                checks = await service.check_once()
                measured = relay.methods - before
            finally:
                await service.aclose()
                await aclose_storage(storage)
            tree = checks.trees["pypi"]
            assert (tree.files, tree.bytes) == (count, sum(sizes.values()))
            # The history read is one GET, the listing one more; nothing per object.
            assert measured == Counter({"GET": 1 + math.ceil(count / 1000)}), measured

        asyncio.run(go())
