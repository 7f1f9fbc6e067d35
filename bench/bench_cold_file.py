"""What verifying a cold file before its first byte costs: time to first byte and to the last
byte, streamed (``verify_first=0``) against verified first, for a proxy of an upstream on loopback
sending at a fixed rate (a CDN connection's speed, not loopback's).

    PYTHONPATH=. .venv/bin/python bench/bench_cold_file.py [--rate MBPS] [--sizes 1,4,16]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import tempfile
import time
from pathlib import Path

import msgspec
from aiohttp import web
from tests.aioserve import aiohttp_serving

from headwater.repository.http import RetryPolicy
from headwater.repository.proxy import ProxySource
from headwater.simple.names import normalize_name
from headwater.storage import FileStorage
from headwater.storage.layout import file_url_from_project_page


async def one(size: int, rate: float, verify_first: int) -> tuple[float, float]:
    body = os.urandom(size)
    sha = hashlib.sha256(body).hexdigest()
    name = "bench-1.0.tar.gz"
    page = msgspec.json.encode(
        {
            "meta": {"api-version": "1.1"},
            "name": "bench",
            "files": [
                {"filename": name, "url": f"/f/{name}", "hashes": {"sha256": sha}, "size": size}
            ],
        }
    )
    step = 64 << 10

    async def project(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="application/vnd.pypi.simple.v1+json")

    async def file(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(headers={"Content-Length": str(size)})
        await answer.prepare(request)
        for i in range(0, size, step):
            await answer.write(body[i : i + step])
            await asyncio.sleep(step / rate)
        return answer

    app = web.Application()
    app.router.add_get("/simple/bench/", project)
    app.router.add_get(f"/f/{name}", file)
    async with aiohttp_serving(app) as url:
        root = Path(tempfile.mkdtemp())
        proxy = ProxySource(
            "b", url, FileStorage(root), retry=RetryPolicy(attempts=1), verify_first=verify_first
        )
        try:
            await proxy.page(normalize_name("bench"), "json")
            path = file_url_from_project_page(sha, name).removeprefix("../../packages/")
            started = time.monotonic()
            ref = await proxy.file(path)
            assert ref is not None
            first = None
            if ref.stream is not None:
                async for _ in ref.stream:
                    first = first or time.monotonic()
            else:
                async for _ in ref.storage.open_read(ref.key):
                    first = first or time.monotonic()
            assert first is not None
            return first - started, time.monotonic() - started
        finally:
            await proxy.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=20.0, help="upstream MB/s (default 20)")
    parser.add_argument("--sizes", default="1,4,16", help="file sizes in MiB")
    args = parser.parse_args()
    rate = args.rate * 1e6
    print(f"upstream at {args.rate:g} MB/s; seconds to first byte / last byte")
    print(f"{'size':>8} {'streamed':>20} {'verified first':>20}")
    for mib in (int(s) for s in args.sizes.split(",")):
        streamed = asyncio.run(one(mib << 20, rate, 0))
        verified = asyncio.run(one(mib << 20, rate, 1 << 40))
        print(
            f"{mib:>5} MiB {streamed[0]:>9.3f} / {streamed[1]:>7.3f} "
            f"{verified[0]:>9.3f} / {verified[1]:>7.3f}"
        )


if __name__ == "__main__":
    main()
