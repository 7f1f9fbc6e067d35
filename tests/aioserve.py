"""A loopback aiohttp server for tests that need an upstream which misbehaves in ways the test
upstream does not (hostile pages, a body that stalls mid-file)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def aiohttp_serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; its ``/simple/`` URL. Stopped on exit."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/simple/"
    finally:
        await runner.cleanup()
