"""Status page benchmark (issue 13): ``/ui/status`` and ``/mirrors.json`` p99 under load.

Builds ``--mirrors`` mirror trees (each a real ``headwater mirror`` of a small generated corpus
from the test upstream, its history then filled to the 100 runs a tree keeps, with failures, so
every chart and table is full), configures ``--proxies`` proxies of the same upstream and
``--peers`` peer mirrors (HTTPS URLs nobody answers at: each shows as unreachable after its
check), starts ``headwater serve --workers N``, waits for the first scheduled check, checks both
pages answer 200 with every mirror, proxy and peer, then runs wrk (``--latency``,
``--connections`` connections, one thread) against each path: a 2-second warm-up and ``--runs``
runs of ``--duration`` seconds, the median p99 reported. Target: p99 <= 50 ms for both.

    .venv/bin/python bench/bench_ui_status.py [--mirrors 5] [--proxies 3] [--peers 5]
        [--workers 2] [--connections 32] [--runs 3] [--duration 10]

Needs wrk. Prints a table and writes ``bench/results/ui-status-<time>.json``; exit status 1 if
a target was missed, 2 if a page was wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from headwater.storage import FileStorage
from headwater.sync.history import KEEP, Run, read_history, record_run
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream

HEADWATER = str(Path(sys.executable).with_name("headwater"))
TARGET_MS = 50.0
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fill_history(tree: Path, upstream: str, runs: int) -> None:
    """Pad the tree's history (one real run) to ``runs`` runs, older ones first."""

    async def go() -> None:
        storage = FileStorage(tree)
        history = await read_history(storage)
        assert history is not None and history.runs, "the real run was not recorded"
        real = history.runs[-1]
        now = time.time()
        padded = [
            Run(
                started=now - (runs - i) * 600,
                seconds=5 + (i % 7) * 3.5,
                serial=(real.serial or 0) + i,
                upstream_serial=(real.serial or 0) + i + (i % 5),
                synced=i % 11,
                failed=1 if i % 9 == 0 else 0,
                failures={f"project-{i}": "upstream answered HTTP 503"} if i % 9 == 0 else {},
            )
            for i in range(runs - 1)
        ]
        await storage.delete("state/history.json")
        for run in [*padded, real]:
            await record_run(storage, upstream, run)

    asyncio.run(go())


def wrk(url: str, connections: int, duration: int) -> tuple[float, float]:
    """(requests/s, p99 ms) of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if rps is None or p99 is None:
        raise SystemExit(f"could not read wrk output:\n{out}")
    if non2xx is not None:
        raise SystemExit(f"{url}: {non2xx.group(1)} error answers under load:\n{out}")
    return float(rps.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirrors", type=int, default=5)
    parser.add_argument("--proxies", type=int, default=3)
    parser.add_argument("--peers", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hw-bench-ui-status-"))
    corpus = Corpus.generate(20, releases=2, files=2, seed=13)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    with Upstream(corpus).running() as up:
        config = [f'[serve]\ndata_dir = "{work / "data"}"\nworkers = {args.workers}\n']
        for m in range(args.mirrors):
            tree = work / f"tree{m}"
            subprocess.run(
                [HEADWATER, "mirror", "--upstream", up.simple_url, "--target", str(tree), "--quiet"],
                check=True, capture_output=True, env=env,
            )  # fmt: skip
            fill_history(tree, up.simple_url, KEEP)
            config.append(f'[mirror.m{m}]\nupstream = "{up.simple_url}"\ntarget = "{tree}"\n')
        for p in range(args.proxies):
            config.append(f'[proxy.p{p}]\nurl = "{up.simple_url}"\n')
        peers = [f'"https://127.0.0.1:{free_port()}/peer{i}/"' for i in range(args.peers)]
        config.append(f"[status]\ncheck_interval = 600\npeers = [{', '.join(peers)}]\n")
        (work / "headwater.toml").write_text("".join(config))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = (work / "serve.log").open("w")
        server = subprocess.Popen(
            [HEADWATER, "serve", "--config", str(work / "headwater.toml"),
             "--listen", f"127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(base + "/mirrors.json", timeout=5) as answer:
                        document = json.loads(answer.read())
                    if all(p["checked"] for p in document["peers"]) and all(
                        m["upstream_checked"] for m in document["mirrors"]
                    ):
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    print((work / "serve.log").read_text(), file=sys.stderr)
                    return 2
                time.sleep(0.5)
            page = urllib.request.urlopen(base + "/ui/status", timeout=10).read().decode()
            wrong = (
                len(document["mirrors"]) != args.mirrors
                or len(document["proxies"]) != args.proxies
                or len(document["peers"]) != args.peers
                or any(len(m["runs"]) != 30 for m in document["mirrors"])
                or page.count('<svg class="chart"') != 2 * args.mirrors
            )
            if wrong:
                print("the pages are not what was configured", file=sys.stderr)
                return 2
            results: dict[str, dict[str, object]] = {}
            for path in ("/ui/status", "/mirrors.json"):
                wrk(base + path, args.connections, 2)  # warm-up
                runs = [wrk(base + path, args.connections, args.duration) for _ in range(args.runs)]
                p99 = statistics.median(r[1] for r in runs)
                results[path] = {
                    "rps": statistics.median(r[0] for r in runs),
                    "p99_ms": p99,
                    "runs": runs,
                    "bytes": len(page.encode()) if path == "/ui/status" else None,
                    "ok": p99 <= TARGET_MS,
                }
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
            log.close()
    print(f"{'path':<14} {'req/s':>8} {'p99 ms':>8}  target {TARGET_MS:g} ms")
    for path, row in results.items():
        verdict = "ok" if row["ok"] else "MISSED"
        print(f"{path:<14} {row['rps']:>8.0f} {row['p99_ms']:>8.2f}  {verdict}")
    out = Path(__file__).parent / "results" / f"ui-status-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "load_before": os.getloadavg(),
                "results": results,
            },
            indent=2,
        )
    )
    print(f"written to {out}")
    return 0 if all(row["ok"] for row in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
