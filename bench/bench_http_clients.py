"""Benchmark async HTTP clients for headwater's upstream fetching.

What it measures: how fast, how reliably and in how much memory one Python process can pull many
files from an upstream with a fixed number of requests in flight - the mirror's job (hundreds of
concurrent downloads) and the proxy's (many small simple pages on demand).

Setup: a private nginx, run in the foreground on a loopback port with its own config in a temp
directory, serves generated files (the server must not be the bottleneck: its CPU time is recorded
beside every run). Each client runs in its own fresh subprocess (so peak RSS is the client's own) with
exactly ``concurrency`` worker tasks sharing one connection pool whose limit is ``concurrency``.
Small bodies (~2 KB, like a simple page) are read whole; large bodies (1 MiB, like a wheel) are
streamed in 64 KiB chunks into ``hashlib.sha256`` and checked against the expected digest, as the
mirror does.

Usage (from the repository root)::

    .venv/bin/python bench/bench_http_clients.py all --runs 3 --out bench/results/http.json
    # niquests replaces urllib3 via a .pth hook when installed, so it lives in its own venv:
    .venv/bin/python bench/bench_http_clients.py all --python niquests=/tmp/niq-venv/bin/python

    # one client, one workload, against an already running server:
    .venv/bin/python bench/bench_http_clients.py one --client aiohttp --workload small \
        --concurrency 100 --base-url http://127.0.0.1:8089 --manifest /tmp/x/manifest.json

Only the standard library and the client under test are imported in the child.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CLIENTS", "WORKLOADS", "RunResult", "main"]

CLIENTS = ("aiohttp", "httpx", "niquests")
#: name -> (number of requests, body size, distinct files served, streamed+hashed)
WORKLOADS: dict[str, tuple[int, int, int, bool]] = {
    "small": (20_000, 2 * 1024, 20_000, False),
    "large": (2_000, 1024 * 1024, 200, True),
}
CONCURRENCIES = (100, 300, 500)
CHUNK = 64 * 1024

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
# Stay under the process's open-file limit (ulimit -n) or nginx answers 500 / stops accepting.
worker_rlimit_nofile 16384;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    client_body_temp_path {root}/tmp_body;
    proxy_temp_path {root}/tmp_proxy;
    fastcgi_temp_path {root}/tmp_fcgi;
    uwsgi_temp_path {root}/tmp_uwsgi;
    scgi_temp_path {root}/tmp_scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root}/www;
    }}
}}
"""


@dataclass
class RunResult:
    """One client run: timings in seconds, latencies in milliseconds, RSS in MiB."""

    client: str
    version: str
    workload: str
    concurrency: int
    requests: int
    errors: int
    wall_s: float
    rps: float
    mib_per_s: float
    p50_ms: float
    p99_ms: float
    rss_after_import_mib: float
    peak_rss_mib: float
    completed: int = 0
    first_error: str | None = None
    server_cpu_pct: float | None = None
    loadavg: float | None = None


# --------------------------------------------------------------------------------------- server


def make_files(root: str) -> dict[str, Any]:
    """Write the served files under ``root/www`` and return the manifest (paths and digests)."""
    manifest: dict[str, Any] = {}
    for workload, (_, size, distinct, _) in WORKLOADS.items():
        directory = os.path.join(root, "www", workload)
        os.makedirs(directory, exist_ok=True)
        entries = []
        for i in range(distinct):
            # Distinct content per file so a client that mixes up responses fails the hash check.
            seed = hashlib.sha256(f"{workload}-{i}".encode()).digest()
            body = (seed * (size // len(seed) + 1))[:size]
            name = f"{i:05d}.bin"
            with open(os.path.join(directory, name), "wb") as fh:
                fh.write(body)
            entries.append([f"/{workload}/{name}", hashlib.sha256(body).hexdigest(), size])
        manifest[workload] = entries
    with open(os.path.join(root, "manifest.json"), "w") as fh:
        json.dump(manifest, fh)
    return manifest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_nginx(root: str, port: int) -> subprocess.Popen[bytes]:
    """Start nginx in the foreground with a private config; wait until it accepts connections.

    Raises:
        RuntimeError: nginx is not installed or did not start (its error log is in the message).
    """
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise RuntimeError("nginx not found: install it (apt-get install -y nginx) and retry")
    for sub in ("tmp_body", "tmp_proxy", "tmp_fcgi", "tmp_uwsgi", "tmp_scgi"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as fh:
        fh.write(NGINX_CONF.format(root=root, port=port))
    # The worker drops to "nobody" when started as root; it must be able to read the tree.
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, 0o755)
    proc = subprocess.Popen([nginx, "-p", root, "-c", conf], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    log = ""
    if os.path.exists(os.path.join(root, "error.log")):
        with open(os.path.join(root, "error.log")) as fh:
            log = fh.read()
    raise RuntimeError(f"nginx did not start on port {port}: {log[-2000:]}")


def process_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of ``pid`` and its reaped children (nginx master + worker)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            pids += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return total


# --------------------------------------------------------------------------------------- client


def hwm_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


Fetch = Callable[[str, str | None, int], Awaitable[None]]


class Mismatch(Exception):
    """A body had the wrong length or digest."""


def check(body_len: int, digest: str | None, expected: str | None, size: int) -> None:
    if body_len != size:
        raise Mismatch(f"got {body_len} bytes, expected {size}")
    if expected is not None and digest != expected:
        raise Mismatch("sha256 mismatch")


async def run_client(
    client: str,
    workload: str,
    concurrency: int,
    base_url: str,
    manifest: dict[str, Any],
    time_limit: float | None = None,
) -> RunResult:
    """Drive ``client`` with ``concurrency`` workers over one pool; return the measurements.

    With ``time_limit`` (seconds) workers stop starting requests once it has passed, so a very slow
    client is measured over part of the workload (``completed`` < ``requests``) instead of holding
    up the whole matrix; its requests/s and latencies are still what it achieved.
    """
    total, _, _, stream = WORKLOADS[workload]
    entries = manifest[workload]
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    next_index = 0
    deadline: float | None = None

    async def worker(fetch: Fetch) -> None:
        nonlocal errors, first_error, next_index
        while next_index < total:
            if deadline is not None and time.perf_counter() > deadline:
                return
            path, digest, size = entries[next_index % len(entries)]
            next_index += 1
            start = time.perf_counter()
            try:
                await fetch(base_url + path, digest if stream else None, size)
            except Exception as exc:
                errors += 1
                if first_error is None:
                    first_error = f"{type(exc).__name__}: {exc}"[:300]
                continue
            latencies.append(time.perf_counter() - start)

    async def drive(fetch: Fetch) -> float:
        nonlocal deadline
        start = time.perf_counter()
        deadline = None if time_limit is None else start + time_limit
        async with asyncio.TaskGroup() as tg:
            for _ in range(concurrency):
                tg.create_task(worker(fetch))
        return time.perf_counter() - start

    version: str
    if client == "aiohttp":
        import aiohttp

        version = aiohttp.__version__
        connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def fetch_aiohttp(url: str, expected: str | None, size: int) -> None:
                async with session.get(url) as resp:
                    resp.raise_for_status()
                    if expected is None:
                        body = await resp.read()
                        check(len(body), None, None, size)
                        return
                    h = hashlib.sha256()
                    n = 0
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        h.update(chunk)
                        n += len(chunk)
                    check(n, h.hexdigest(), expected, size)

            rss0 = rss_mib()
            wall = await drive(fetch_aiohttp)
    elif client == "httpx":
        import httpx

        version = httpx.__version__
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=300) as hx:

            async def fetch_httpx(url: str, expected: str | None, size: int) -> None:
                if expected is None:
                    resp = await hx.get(url)
                    resp.raise_for_status()
                    check(len(resp.content), None, None, size)
                    return
                async with hx.stream("GET", url) as resp:
                    resp.raise_for_status()
                    h = hashlib.sha256()
                    n = 0
                    async for chunk in resp.aiter_bytes(CHUNK):
                        h.update(chunk)
                        n += len(chunk)
                    check(n, h.hexdigest(), expected, size)

            rss0 = rss_mib()
            wall = await drive(fetch_httpx)
    elif client == "niquests":
        import niquests  # type: ignore[import-not-found, unused-ignore]

        version = niquests.__version__
        async with niquests.AsyncSession(
            pool_connections=1, pool_maxsize=concurrency, disable_http2=True, disable_http3=True
        ) as nq:

            async def fetch_niquests(url: str, expected: str | None, size: int) -> None:
                if expected is None:
                    resp = await nq.get(url, timeout=300)
                    resp.raise_for_status()
                    check(len(resp.content or b""), None, None, size)
                    return
                resp = await nq.get(url, stream=True, timeout=300)
                resp.raise_for_status()
                h = hashlib.sha256()
                n = 0
                async for chunk in await resp.iter_content(CHUNK):
                    h.update(chunk)
                    n += len(chunk)
                check(n, h.hexdigest(), expected, size)

            rss0 = rss_mib()
            wall = await drive(fetch_niquests)
    else:
        raise ValueError(f"unknown client {client!r}; choose one of {', '.join(CLIENTS)}")

    # VmHWM, not getrusage's ru_maxrss: that survives execve and would start at the parent's RSS.
    peak = hwm_mib()
    lat = sorted(latencies)
    ok = len(lat)
    size = WORKLOADS[workload][1]
    return RunResult(
        client=client,
        version=version,
        workload=workload,
        concurrency=concurrency,
        requests=total,
        completed=ok + errors,
        errors=errors,
        wall_s=round(wall, 3),
        rps=round(ok / wall, 1),
        mib_per_s=round(ok * size / wall / 2**20, 1),
        p50_ms=round(lat[ok // 2] * 1000, 2) if ok else float("nan"),
        p99_ms=round(lat[min(ok - 1, int(ok * 0.99))] * 1000, 2) if ok else float("nan"),
        rss_after_import_mib=round(rss0, 1),
        peak_rss_mib=round(peak, 1),
        first_error=first_error,
    )


# ----------------------------------------------------------------------------------- orchestrate


def median_result(runs: list[RunResult]) -> dict[str, Any]:
    """Median of each numeric field over runs (errors: the maximum, never hidden)."""
    out = asdict(runs[0])
    for key in (
        "wall_s",
        "rps",
        "mib_per_s",
        "p50_ms",
        "p99_ms",
        "peak_rss_mib",
        "rss_after_import_mib",
        "server_cpu_pct",
        "loadavg",
    ):
        values = [getattr(r, key) for r in runs if getattr(r, key) is not None]
        out[key] = round(statistics.median(values), 2) if values else None
    out["errors"] = max(r.errors for r in runs)
    out["completed"] = min(r.completed for r in runs)
    out["first_error"] = next((r.first_error for r in runs if r.first_error), None)
    out["runs"] = len(runs)
    return out


def run_child(
    args: argparse.Namespace,
    python: str,
    client: str,
    workload: str,
    concurrency: int,
    base_url: str,
    manifest: str,
    nginx_pid: int,
) -> RunResult | None:
    """Run one measurement in a fresh interpreter; None (and the error printed) if it failed."""
    cpu0 = process_cpu_seconds(nginx_pid)
    load0 = os.getloadavg()[0]
    command = [
        python,
        __file__,
        "one",
        "--client",
        client,
        "--workload",
        workload,
        "--concurrency",
        str(concurrency),
        "--base-url",
        base_url,
        "--manifest",
        manifest,
    ]
    if args.uvloop:
        command.append("--uvloop")
    if args.time_limit:
        command += ["--time-limit", str(args.time_limit)]
    child = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    cpu = process_cpu_seconds(nginx_pid) - cpu0
    if child.returncode != 0:
        print(f"{client} {workload} c={concurrency} FAILED:\n{child.stderr}", file=sys.stderr)
        return None
    run = RunResult(**json.loads(child.stdout))
    run.server_cpu_pct = round(100 * cpu / run.wall_s, 1)
    # The 1-minute load average before and after: other work on the machine shows up here.
    run.loadavg = round(max(load0, os.getloadavg()[0]), 2)
    return run


def run_all(args: argparse.Namespace) -> int:
    pythons = dict.fromkeys(CLIENTS, sys.executable)
    for item in args.python or []:
        name, _, path = item.partition("=")
        pythons[name] = path
    root = tempfile.mkdtemp(prefix="hw-bench-http-")
    port = free_port()
    print(f"generating files in {root} ...", file=sys.stderr)
    make_files(root)
    nginx = start_nginx(root, port)
    base_url = f"http://127.0.0.1:{port}"
    results: list[dict[str, Any]] = []
    try:
        for workload in args.workloads:
            for concurrency in args.concurrency:
                # Interleave clients run by run, so load from anything else on the machine
                # falls on every client alike rather than on whichever ran at the time.
                by_client: dict[str, list[RunResult]] = {c: [] for c in args.clients}
                for _ in range(args.runs):
                    for client in args.clients:
                        run = run_child(
                            args,
                            pythons[client],
                            client,
                            workload,
                            concurrency,
                            base_url,
                            os.path.join(root, "manifest.json"),
                            nginx.pid,
                        )
                        if run is not None:
                            by_client[client].append(run)
                for runs in by_client.values():
                    if runs:
                        med = median_result(runs)
                        results.append(med)
                        print(json.dumps(med), file=sys.stderr)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(10)
        except subprocess.TimeoutExpired:
            nginx.kill()
        shutil.rmtree(root, ignore_errors=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)
    print(markdown_table(results))
    return 0


def markdown_table(results: list[dict[str, Any]]) -> str:
    head = (
        "| workload | conc | client | done | wall s | req/s | MiB/s | p50 ms | p99 ms | errors "
        "| peak RSS MiB | nginx CPU % |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in results:
        lines.append(
            f"| {r['workload']} | {r['concurrency']} | {r['client']} {r['version']} "
            f"| {r['completed']}/{r['requests']} "
            f"| {r['wall_s']} | {r['rps']:.0f} | {r['mib_per_s']:.0f} | {r['p50_ms']} "
            f"| {r['p99_ms']} | {r['errors']} | {r['peak_rss_mib']} | {r['server_cpu_pct']} |"
        )
    return "\n".join(lines)


# A request as pip sends it for a simple page (headers trimmed to the usual set).
PIP_REQUEST = (
    b"GET /simple/requests/ HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8080\r\n"
    b'User-Agent: pip/24.3.1 {"ci":null,"cpu":"x86_64","implementation":{}}\r\n'
    b"Accept-Encoding: gzip, deflate\r\n"
    b"Accept: application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1,"
    b" text/html; q=0.01\r\n"
    b"Connection: keep-alive\r\n"
    b"Cache-Control: max-age=0\r\n\r\n"
)


def bench_parsers(n: int) -> list[dict[str, Any]]:
    """Requests/s of the server-side HTTP/1.1 request parsers: httptools (llhttp) and h11.

    Each parses ``n`` pipelined pip requests from one connection's byte stream, fed 64 KiB at a time,
    collecting method, target and headers as a server must. Median of 5 runs.
    """
    from importlib.metadata import version

    import h11
    import httptools

    stream = PIP_REQUEST * n
    chunks = [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]

    def with_httptools() -> int:
        count = 0

        class Proto:
            def on_header(self, name: bytes, value: bytes) -> None:
                self.headers.append((name, value))

            def on_url(self, url: bytes) -> None:
                self.url = url

            def on_message_begin(self) -> None:
                self.headers: list[tuple[bytes, bytes]] = []

            def on_message_complete(self) -> None:
                nonlocal count
                count += 1

        parser = httptools.HttpRequestParser(Proto())
        for chunk in chunks:
            parser.feed_data(chunk)
        return count

    def with_h11() -> int:
        count = 0
        conn = h11.Connection(our_role=h11.SERVER)
        for chunk in chunks:
            conn.receive_data(chunk)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.EndOfMessage):
                    count += 1
                    # h11 is a strict state machine: answer, then start the next cycle.
                    conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                    conn.send(h11.EndOfMessage())
                    conn.start_next_cycle()
        return count

    rows = []
    for name, installed, fn in (
        ("httptools", version("httptools"), with_httptools),
        ("h11", version("h11"), with_h11),
    ):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            parsed = fn()
            times.append(time.perf_counter() - start)
            if parsed != n:
                raise RuntimeError(f"{name} parsed {parsed} requests, expected {n}")
        median = statistics.median(times)
        rows.append(
            {
                "parser": f"{name} {installed}",
                "requests": n,
                "median_s": round(median, 3),
                "requests_per_s": round(n / median),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    one = sub.add_parser("one", help="run one client once and print a JSON result")
    one.add_argument("--client", choices=CLIENTS, required=True)
    one.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    one.add_argument("--concurrency", type=int, required=True)
    one.add_argument("--base-url", required=True)
    one.add_argument("--manifest", required=True)
    one.add_argument("--time-limit", type=float, help="stop starting requests after this many s")
    one.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio")
    parsers = sub.add_parser("parsers", help="compare server-side request parsers (no network)")
    parsers.add_argument("--requests", type=int, default=100_000)
    every = sub.add_parser("all", help="start nginx and run the whole matrix")
    every.add_argument("--runs", type=int, default=3)
    every.add_argument(
        "--time-limit", type=float, help="cap each run (s); capped runs report completed < requests"
    )
    every.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    every.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=list(WORKLOADS))
    every.add_argument("--concurrency", nargs="+", type=int, default=list(CONCURRENCIES))
    every.add_argument(
        "--python",
        action="append",
        metavar="CLIENT=PATH",
        help="interpreter to run CLIENT with (e.g. niquests in its own venv)",
    )
    every.add_argument("--uvloop", action="store_true", help="run every client on uvloop")
    every.add_argument("--out", help="write the median results as JSON here")
    args = parser.parse_args(argv)
    if args.cmd == "parsers":
        for row in bench_parsers(args.requests):
            print(json.dumps(row))
        return 0
    if args.cmd == "all":
        return run_all(args)
    with open(args.manifest) as fh:
        manifest = json.load(fh)
    coro = run_client(
        args.client, args.workload, args.concurrency, args.base_url, manifest, args.time_limit
    )
    if args.uvloop:
        import uvloop

        result = uvloop.run(coro)
        result.client += "+uvloop"
    else:
        result = asyncio.run(coro)
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
