"""Which ASGI server, and how much Starlette costs: one small JSON page, wrk, 64 connections.

Runs a bare ASGI app and the same response through a Starlette route under uvicorn (uvloop,
httptools) and granian, one process each, side by side, and prints requests/s and p99. This is the
measurement behind choosing granian and a raw ASGI hot path (docs/serve.md).

    .venv/bin/python bench/bench_asgi_servers.py [--seconds 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

APP = """
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"meta":{"api-version":"1.4"},"name":"foo","files":[' + b'{"filename":"foo-1.0-py3-none-any.whl","url":"../../packages/ab/cd/x/foo-1.0-py3-none-any.whl","hashes":{"sha256":"00"}},' * 20 + b'{}]}'
HEADERS = [(b"content-type", b"application/vnd.pypi.simple.v1+json"), (b"content-length", str(len(BODY)).encode()), (b"vary", b"Accept")]

async def raw(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})

async def page(request):
    return Response(BODY, media_type="application/vnd.pypi.simple.v1+json", headers={"vary": "Accept"})

star = Starlette(routes=[Route("/{index}/simple/{project}/", page)])
"""


def wrk(url: str, seconds: int) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{seconds}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (Debian package wrk)")
    work = Path("/tmp/headwater-bench-asgi")
    work.mkdir(exist_ok=True)
    (work / "asgi_bench_app.py").write_text(APP)
    bin_dir = Path(sys.executable).parent
    port = 18765
    servers = {
        "uvicorn raw": [str(bin_dir / "uvicorn"), "asgi_bench_app:raw", "--loop", "uvloop", "--http", "httptools"],
        "uvicorn starlette": [str(bin_dir / "uvicorn"), "asgi_bench_app:star", "--loop", "uvloop", "--http", "httptools"],
        "granian raw": [str(bin_dir / "granian"), "--interface", "asgi", "--loop", "uvloop", "asgi_bench_app:raw"],
        "granian starlette": [str(bin_dir / "granian"), "--interface", "asgi", "--loop", "uvloop", "asgi_bench_app:star"],
    }  # fmt: skip
    print(f"load average before: {os.getloadavg()}")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    for _ in range(args.runs):
        for name, command in servers.items():
            process = subprocess.Popen(
                [*command, "--port", str(port), "--log-level", "warning"],
                cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                time.sleep(2.5)
                results[name].append(wrk(f"http://127.0.0.1:{port}/i/simple/foo/", args.seconds))
            finally:
                process.terminate()
                process.wait()
            time.sleep(0.5)
    print(f"{'server':<20} {'req/s (median)':>15} {'p99 ms (median)':>16}")
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        p99 = statistics.median(p for _, p in runs)
        print(f"{name:<20} {rps:>15,.0f} {p99:>16.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
