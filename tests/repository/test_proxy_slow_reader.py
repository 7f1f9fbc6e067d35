"""A client that reads a large cold file steadily, but slower than the upstream sends it, gets the
whole file.

Found by redteam2 (black-box, `headwater serve` with `timeout = 3`): eight clients reading
40 MiB cold files at 1 MB/s (curl --limit-rate 1M) from an upstream sending 2.5 MB/s; three got
a 200 cut short at 23-37 MiB, and the log said `500 for GET ...` with a traceback ("this reader
was dropped after taking no bytes for 3 s"). The reader was taking bytes all along: the proxy
hands the reader whatever the connection has buffered as one chunk, and drops it when a chunk
waits `timeout` seconds to be taken, so how slow a client may be depends on the chunk sizes
(chunks are ~1.2 MiB: with the default `timeout = 30` clients under ~40 KB/s are cut, with
`timeout = 5` under ~250 KB/s). The test scales that down to stay fast: `timeout = 0.5` and a
client reading a steady 1 MiB/s (the same ratio as 100 KiB/s with `timeout = 5`). It also shows
the message is wrong: the reader was taking bytes, and "0 s" is printed for 0.5 s."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable
from pathlib import Path

from headwater.repository.errors import UpstreamError
from headwater.simple.names import normalize_name
from tests.repository.rawupstream import answer, raw_upstream
from tests.repository.test_proxy_bounds import dist, page, path_of, proxy_of

MIB = 1 << 20
BODY = bytes(range(256)) * (18 * MIB // 256)  # over 16 MiB: streamed while it is cached
READ_RATE = MIB  # bytes per second the client reads, steadily (far above 32 KiB/s)


def test_a_steady_slow_reader_gets_the_whole_cold_file(tmp_path: Path) -> None:
    def script(path: str) -> Iterable[tuple[bytes, float]]:
        if path.startswith("/simple/"):
            return answer(page([dist(BODY, size=len(BODY))]))
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
        return [(head, 0.0)] + [(BODY[i : i + 4 * MIB], 0.0) for i in range(0, len(BODY), 4 * MIB)]

    async def t() -> tuple[bytes, list[int], str]:
        async with raw_upstream(script) as up:
            proxy = proxy_of(up.url, tmp_path, timeout=0.5)
            sizes: list[int] = []
            got = bytearray()
            error = ""
            try:
                assert await proxy.page(normalize_name("victim"), "json") is not None
                ref = await proxy.file(path_of(BODY))
                assert ref is not None and ref.stream is not None
                started = time.monotonic()
                try:
                    async for chunk in ref.stream:
                        sizes.append(len(chunk))
                        got += chunk
                        # The client drains at READ_RATE: sleep until it has caught up.
                        await asyncio.sleep(
                            max(0.0, started + len(got) / READ_RATE - time.monotonic())
                        )
                except UpstreamError as exc:
                    error = str(exc)
            finally:
                await proxy.aclose()
            return bytes(got), sizes, error

    got, sizes, error = asyncio.run(t())
    print("chunks", len(sizes), "largest", max(sizes), "received", len(got), error)
    assert not error, (error, len(got), max(sizes))
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(BODY).hexdigest()
