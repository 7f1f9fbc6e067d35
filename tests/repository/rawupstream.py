"""An upstream on loopback that answers with whatever bytes a test scripts, as slowly as it likes:
reason phrases with control bytes, bodies longer than promised, drips, unasked encodings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

#: path -> the answer as (bytes to write, seconds to wait after) pairs.
ScriptFn = Callable[[str], Iterable[tuple[bytes, float]]]


class RawUpstream:
    """Counts what it managed to write per path (``written``) and the requests (``hits``)."""

    def __init__(self, script: ScriptFn) -> None:
        self.script = script
        self.written: dict[str, int] = {}
        self.hits: list[str] = []
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode("latin-1")
                self.hits.append(path)
                for data, pause in self.script(path):
                    writer.write(data)
                    await writer.drain()
                    self.written[path] = self.written.get(path, 0) + len(data)
                    if pause:
                        await asyncio.sleep(pause)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_upstream(
    script: ScriptFn,
) -> AsyncIterator[RawUpstream]:
    """Serve ``script`` on a free loopback port; ``.url`` is its ``/simple/`` URL."""
    upstream = RawUpstream(script)
    server = await asyncio.start_server(upstream._serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream.url = f"http://127.0.0.1:{port}/simple/"
    try:
        yield upstream
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


def answer(
    body: bytes,
    *,
    status: str = "200 OK",
    content_type: str = "application/vnd.pypi.simple.v1+json",
    headers: dict[str, str] | None = None,
    length: bool = True,
) -> list[tuple[bytes, float]]:
    """A whole answer in one write (``length=False``: read until the connection closes)."""
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}"]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    else:
        lines.append("Connection: close")
    lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return [(head + body, 0.0)]


def chunked(
    parts: Iterable[tuple[bytes, float]],
    *,
    content_type: str = "application/octet-stream",
    headers: dict[str, str] | None = None,
) -> Iterator[tuple[bytes, float]]:
    """A chunked answer, one chunk per part (each followed by its pause)."""
    lines = ["HTTP/1.1 200 OK", f"Content-Type: {content_type}", "Transfer-Encoding: chunked"]
    lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
    yield ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), 0.0
    for data, pause in parts:
        yield f"{len(data):x}\r\n".encode() + data + b"\r\n", pause
    yield b"0\r\n\r\n", 0.0


def worker_figures(
    worker: str,
    script: ScriptFn,
    *args: str,
    pythonpath: str | None = None,
    timeout: float = 120,
) -> dict[str, object]:
    """Serve ``script`` as the upstream, run the Python source ``worker`` in a process of its own
    with the upstream's URL and ``args`` as its arguments, and return the JSON object it prints
    (a memory test's figures: a fresh process, so its peak RSS is the proxy's alone)."""

    async def run() -> dict[str, object]:
        async with raw_upstream(script) as up:
            env = None if pythonpath is None else {**os.environ, "PYTHONPATH": pythonpath}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", worker, up.url, *args,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
            assert proc.returncode == 0, err.decode()[-2000:]
            return dict(json.loads(out))

    return asyncio.run(run())
