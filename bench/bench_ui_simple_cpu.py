"""Does the web interface add work to the Simple API's requests? CPU time per request, measured
inside two server processes (interface on, interface off) driven in interleaved rounds.

Requests/s over HTTP on a shared 2-core machine move by 10-20 % from run to run whatever is
measured (wrk, the server and everyone else's work share the cores), so a 0.92 ratio of two
wrk runs says little. CPU time spent by the worker's own thread per request does not depend on
how busy the machine is (only a little on caches), so it shows a difference of a few percent.

Each worker process builds the application exactly as ``headwater serve`` does
(:func:`headwater.ui.build_app` over the same plan, ``ui`` on or off), runs its ASGI lifespan
(startup hooks and background tasks as in a server), and is brought to the state the HTTP
benchmark leaves it in: the interface's worker has served its pages and built the search index of
``--names`` names (700,000: PyPI's size) before the Simple API is measured. Then, in each round,
each worker answers ``--requests`` Simple API requests (pip's Accept, a project page of 100
files and the project list, alternately) through the ASGI application in process, no sockets, and
reports the CPU time of its thread (``time.thread_time``), of the whole process
(``time.process_time``: background threads too) and the garbage collector's passes and time.
The order of the two workers alternates every round (on-off, off-on); medians and the spread of
the per-round ratios are printed and written to ``bench/results/ui-simple-cpu-<time>.json``.

    .venv/bin/python bench/bench_ui_simple_cpu.py [--names 700000] [--rounds 20] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

RESULTS = HERE / "results"
PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1"
SIMPLE_PATHS = ("/main/simple/big/", "/main/simple/")


async def _call(app: Any, path: str, query: str = "", accept: str = PIP_ACCEPT) -> int:
    """One GET through the ASGI app, as a server would send it; returns the status."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
        "headers": [(b"host", b"127.0.0.1:8080"), (b"accept", accept.encode()),
                    (b"accept-encoding", b"gzip")],
    }  # fmt: skip
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def worker(data: str, tree: str, ui: bool, queries: list[str]) -> None:
    """Build the app, warm it like the HTTP benchmark does, then answer rounds on stdin."""
    from headwater.config.settings import HostedSettings, ServePlan, ServeSettings
    from headwater.ui import build_app

    plan = ServePlan(
        settings=ServeSettings(data_dir=data, ui=ui),
        hosted={"main": HostedSettings()},
        mirrors={"pypi": tree},
        default="main",
    )
    app = build_app(plan)

    async def main() -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        life = asyncio.ensure_future(app({"type": "lifespan"}, inbox.get, outbox.put))
        started = await outbox.get()
        assert started["type"] == "lifespan.startup.complete", started
        for path in (*SIMPLE_PATHS, "/pypi/simple/"):
            assert await _call(app, path) == 200, path
        if ui:  # the interface's state after bench_ui.py's page runs
            assert await _call(app, "/", accept="text/html") == 200
            assert await _call(app, "/ui/main/project/big", accept="text/html") == 200
            for q in queries:
                assert await _call(app, "/ui/search", f"index=pypi&q={q}", "text/html") == 200
        passes = [0, 0, 0]
        gc_seconds = 0.0
        began = 0.0

        def watch(phase: str, info: dict[str, int]) -> None:
            nonlocal gc_seconds, began
            if phase == "start":
                began = time.perf_counter()
            else:
                passes[info["generation"]] += 1
                gc_seconds += time.perf_counter() - began

        gc.callbacks.append(watch)
        print(json.dumps({"ready": True, "objects": len(gc.get_objects())}), flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                break
            count = int(line)
            passes[:] = [0, 0, 0]
            gc_seconds = 0.0
            thread, process, wall = time.thread_time(), time.process_time(), time.perf_counter()
            for i in range(count):
                await _call(app, SIMPLE_PATHS[i % 2])
            thread = time.thread_time() - thread
            process = time.process_time() - process
            wall = time.perf_counter() - wall
            print(json.dumps({
                "thread_us": thread / count * 1e6, "process_us": process / count * 1e6,
                "wall_us": wall / count * 1e6, "gc_passes": passes,
                "gc_us": gc_seconds / count * 1e6,
            }), flush=True)  # fmt: skip
        await inbox.put({"type": "lifespan.shutdown"})
        await life

    asyncio.run(main())


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return {
        "median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1],
        "q1": quartiles[0], "q3": quartiles[2],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", type=int, default=700_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--worker", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--queries", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.data, args.tree, args.worker == "on", json.loads(args.queries))
        return 0
    from bench_html import make_names
    from bench_ui import build_data, queries

    work = Path(tempfile.mkdtemp(prefix="hw-bench-ui-cpu-"))
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        names = make_names(args.names)
        data, tree = build_data(work, names, args.files)
        mix = json.dumps(queries(names, 50))
        del names
        for label in ("on", "off"):
            procs[label] = subprocess.Popen(
                [sys.executable, __file__, "--worker", label, "--data", str(data),
                 "--tree", str(tree), "--queries", mix],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
        ready = {}
        for label, proc in procs.items():
            assert proc.stdout is not None
            ready[label] = json.loads(proc.stdout.readline())
        print(
            f"ready: tracked objects on={ready['on']['objects']:,} off={ready['off']['objects']:,}"
        )
        rounds: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}

        def one(label: str) -> None:
            proc = procs[label]
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{args.requests}\n")
            proc.stdin.flush()
            rounds[label].append(json.loads(proc.stdout.readline()))

        for _ in range(2):  # warm-up rounds, not counted
            one("on")
            one("off")
        rounds = {"on": [], "off": []}
        for r in range(args.rounds):
            for label in ("on", "off") if r % 2 == 0 else ("off", "on"):
                one(label)
        report: dict[str, Any] = {"args": vars(args), "ready": ready, "rounds": rounds,
                                  "load": os.getloadavg()[0]}  # fmt: skip
        print(f"\n{'measure':<12} {'on µs':>8} {'off µs':>8} {'ratio median':>13} {'ratio min-max':>16}"
              f" {'ratio q1-q3':>14}")  # fmt: skip
        for key in ("thread_us", "process_us", "wall_us", "gc_us"):
            on = [r[key] for r in rounds["on"]]
            off = [r[key] for r in rounds["off"]]
            ratios = [a / b for a, b in zip(on, off, strict=True) if b]
            report[key] = {"on": spread(on), "off": spread(off), "ratio": spread(ratios or [0.0])}
            s = report[key]["ratio"]
            print(f"{key:<12} {statistics.median(on):>8.2f} {statistics.median(off):>8.2f}"
                  f" {s['median']:>13.3f} {s['min']:>7.3f}-{s['max']:<8.3f} {s['q1']:>6.3f}-{s['q3']:<7.3f}")  # fmt: skip
        passes = {label: [sum(r["gc_passes"][g] for r in rounds[label]) for g in range(3)]
                  for label in rounds}  # fmt: skip
        report["gc_passes"] = passes
        print(f"gc passes per generation over all rounds: on={passes['on']} off={passes['off']}")
        print(f"load average {report['load']:.1f}")
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"ui-simple-cpu-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps(report, indent=2))
        print(f"written {out}")
        return 0
    finally:
        for proc in procs.values():
            if proc.stdin is not None and proc.poll() is None:
                try:
                    proc.stdin.write("\n")
                    proc.stdin.flush()
                except BrokenPipeError:
                    pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
