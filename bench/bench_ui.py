"""Web interface benchmark (issue 13): the interface's pages and search, and the Simple API with the
interface on and off, in one run.

Setup (deterministic): a data directory with hosted index ``main`` whose project ``big`` has
``--files`` (1,000) files over 100 releases (the newest one a real wheel with a Markdown README
and its ``.metadata``), and a static tree ``pypi`` whose root page lists ``--names`` (700,000)
generated, PyPI-like project names (bench/bench_html.make_names). Two ``headwater serve`` processes
(``--workers`` each, default 1) serve the same data: one with the interface (``ui = true``, the
default), one without (``ui = false``).

Measured:

``project``   ``/ui/main/project/big``: p99 at 32 connections (target <= 30 ms)
``home``      ``/``: p99 at 32 connections (target <= 50 ms)
``search``    ``/ui/search?index=pypi&q=...`` cycling through 2,000 queries (40 % prefixes of
              names, 20 % one-typo names, 20 % inner substrings, 10 % exact names, 10 % misses):
              p99 at 32 connections (target <= 50 ms); and the same queries in-process against
              the name index alone (p99 of one search)
``memory``    the worker's RSS growth from building the search index of ``pypi`` (after the
              tree's root page is already in memory for the Simple API), and its peak (target
              <= 150 MB extra)
``simple``    ``/main/simple/big/`` (pip's Accept) and ``/main/simple/`` requests/s on the
              server with and without the interface, ``--simple-runs`` (10) interleaved pairs of
              ``--simple-duration`` (3) s runs, on-off then off-on: the ratio of the medians and
              the spread of the pairs' ratios (target: equal within noise). What each request
              costs in CPU, without the noise of a shared machine, is bench_ui_simple_cpu.py's

wrk runs ``-c32`` (``-c64`` for ``simple``, as bench_serve.py) with ``--latency``; each case gets a
warm-up and ``--runs`` runs of ``--duration`` seconds; medians are reported, with the machine's
load average (other users share this machine). Results are printed and written to
``bench/results/ui-<time>.json``. Exit status 1 if a target was missed.

    .venv/bin/python bench/bench_ui.py [--names 700000] [--files 1000] [--runs 3] [--duration 5]
        [--simple-runs 10] [--simple-duration 3]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from bench_html import make_names  # noqa: E402
from bench_serve import free_port, get, stop, wait_http  # noqa: E402

from headwater.db import Database, NewFile  # noqa: E402
from headwater.simple.json import render_project_list_json  # noqa: E402
from headwater.simple.model import ProjectList, ProjectListEntry  # noqa: E402
from headwater.simple.names import normalize_name  # noqa: E402
from headwater.storage.layout import PAGE_FILES, ROOT_INDEX_DIR, file_key  # noqa: E402
from headwater.testing.wheels import build_wheel, wheel_filename  # noqa: E402
from headwater.ui.names import NameIndex, normalize_query  # noqa: E402

HEADWATER = ROOT / ".venv" / "bin" / "headwater"
RESULTS = HERE / "results"
PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1"
TARGETS = {"project": 30.0, "home": 50.0, "search": 50.0}
MEMORY_MB = 150.0
README = "# big\n\nA project with many files.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n" * 20


def build_data(work: Path, names: list[str], files: int) -> tuple[Path, Path]:
    """(data directory, tree root)."""
    data = work / "data"
    data.mkdir()
    db = Database.connect(f"sqlite:///{data / 'headwater.sqlite3'}")
    db.upgrade()
    storage = data / "hosted" / "main"
    releases = 100
    per = max(1, files // releases)
    when = datetime(2024, 1, 1, tzinfo=UTC)
    made = 0
    for r in range(releases):
        version = f"1.{r}"
        newest = r == releases - 1
        for k in range(per):
            if made >= files:
                break
            tag = (
                "py3-none-any"
                if k == 0
                else f"cp3{k % 10 + 5}-cp3{k % 10 + 5}-manylinux_2_17_x86_64"
            )
            filename = wheel_filename(normalize_name("big"), version, tag)
            metadata = (
                f"Metadata-Version: 2.1\nName: big\nVersion: {version}\n"
                "Description-Content-Type: text/markdown\n\n" + README
            ).encode()
            if newest and k == 0:
                body = build_wheel(normalize_name("big"), "big", version, metadata=metadata)
            else:
                body = f"{filename} {made}".encode()
            sha = hashlib.sha256(body).hexdigest()
            key = file_key(sha, filename)
            (storage / key).parent.mkdir(parents=True, exist_ok=True)
            (storage / key).write_bytes(body)
            meta_sha = None
            if newest and k == 0:
                (storage / (key + ".metadata")).write_bytes(metadata)
                meta_sha = hashlib.sha256(metadata).hexdigest()
            db.add_file(
                "main",
                normalize_name("big"),
                NewFile(
                    filename=filename,
                    version=version,
                    sha256=sha,
                    size=len(body),
                    upload_time=when,
                    storage_key=key,
                    requires_python=">=3.9",
                    metadata_sha256=meta_sha,
                    display_name="big",
                ),
            )
            made += 1
    db.close()
    tree = work / "tree"
    listing = ProjectList(projects=tuple(ProjectListEntry(n) for n in names))
    root = tree / ROOT_INDEX_DIR
    root.mkdir(parents=True)
    (root / PAGE_FILES["json"]).write_bytes(render_project_list_json(listing))
    return data, tree


def queries(names: list[str], count: int, seed: int = 13) -> list[str]:
    rng = random.Random(seed)
    normalized = [normalize_name(n) for n in rng.sample(names, count)]
    out: list[str] = []
    for i, name in enumerate(normalized):
        kind = i % 10
        if kind < 4:
            out.append(name[: rng.randint(3, max(3, min(8, len(name))))])
        elif kind < 6:
            at = rng.randrange(len(name))
            out.append(name[:at] + rng.choice("aeiou") + name[at + 1 :])
        elif kind < 8:
            start = rng.randrange(max(1, len(name) - 4))
            out.append(name[start : start + rng.randint(3, 6)])
        elif kind < 9:
            out.append(name)
        else:
            out.append("".join(rng.choice("qxzjkv") for _ in range(rng.randint(4, 12))))
    return out


def start(work: Path, data: Path, tree: Path, *, ui: bool, workers: int) -> tuple[str, Any]:
    port = free_port()
    config = work / f"serve-{'ui' if ui else 'plain'}.toml"
    config.write_text(
        f'[serve]\ndefault_index = "main"\nui = {"true" if ui else "false"}\n\n[hosted.main]\n'
    )
    log = (work / f"serve-{port}.log").open("w")
    proc = subprocess.Popen(
        [str(HEADWATER), "serve", "--config", str(config), "--data-dir", str(data),
         "--tree", f"pypi={tree}", "--listen", f"127.0.0.1:{port}", "--workers", str(workers)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health/live", proc)
    return url, proc


def workers_of(proc: Any) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()] or [proc.pid]


def memory(pids: list[int]) -> tuple[float, float]:
    """(RSS, peak RSS) in MB summed over ``pids``."""
    rss = hwm = 0.0
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        rss += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        hwm += int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    return rss, hwm


LUA = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], {["Accept"] = "%(accept)s"})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout))
end
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes ``pids`` have used so far (/proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks


def wrk(
    url: str,
    paths: list[str],
    accept: str,
    seconds: int,
    connections: int,
    scratch: Path,
    pids: list[int] | None = None,
) -> dict[str, float]:
    listing = scratch / f"paths-{abs(hash((url, tuple(paths[:3]))))}.txt"
    listing.write_text("\n".join(paths) + "\n")
    script = scratch / (listing.stem + ".lua")
    script.write_text(LUA % {"paths": listing, "accept": accept})
    cpu_before = cpu_seconds(pids) if pids else 0.0
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cpu = cpu_seconds(pids) - cpu_before if pids else 0.0
    result = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    if result is None or p99 is None:
        raise SystemExit(f"could not read wrk output:\n{out}")
    requests, micros, bad, errors = (int(g) for g in result.groups())
    return {
        "rps": requests / (micros / 1e6),
        # The server's CPU per request (its worker processes, HTTP parsing included): what a
        # request costs whatever else the machine is doing, unlike requests/s.
        "cpu_us": cpu / max(1, requests) * 1e6,
        "p99_ms": float(p99.group(1)) * _UNITS[p99.group(2)],
        "errors": bad + errors,
        "load": os.getloadavg()[0],
    }


def in_process_search(names: list[str], mix: list[str]) -> dict[str, float]:
    gc.collect()
    started = time.perf_counter()
    index = NameIndex(normalize_name(n) for n in names)
    built = time.perf_counter() - started
    held = index.nbytes() / 1e6  # the strings it keeps (tracemalloc would slow the build 10x)
    times, cpu = [], []
    for query in mix:
        t, c = time.perf_counter(), time.process_time()
        index.search(normalize_query(query), limit=50)
        cpu.append((time.process_time() - c) * 1000)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    cpu.sort()
    return {
        "build_s": built,
        "held_mb": held,
        "p50_ms": times[len(times) // 2],
        "p99_ms": times[int(len(times) * 0.99)],
        "max_ms": times[-1],
        # CPU time: what a search costs, whatever else the (shared) machine is doing.
        "cpu_p50_ms": cpu[len(cpu) // 2],
        "cpu_p99_ms": cpu[int(len(cpu) * 0.99)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", type=int, default=700_000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--simple-runs", type=int, default=10, help="interleaved on/off pairs for the Simple API"
    )
    parser.add_argument("--simple-duration", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="hw-bench-ui-"))
    procs: list[Any] = []
    report: dict[str, Any] = {"args": vars(args), "cpus": os.cpu_count()}
    try:
        print(f"generating {args.names:,} names and {args.files:,} files in {work}", flush=True)
        names = make_names(args.names)
        data, tree = build_data(work, names, args.files)
        mix = queries(names, 2000)
        report["in_process_search"] = in_process_search(names, mix)
        print("in-process search:", report["in_process_search"], flush=True)
        ui_url, ui_proc = start(work, data, tree, ui=True, workers=args.workers)
        procs.append(ui_proc)
        plain_url, plain_proc = start(work, data, tree, ui=False, workers=args.workers)
        procs.append(plain_proc)
        # Memory: the Simple API's own state first (the tree's root page in memory), then the
        # search index built by the first search.
        pids = workers_of(ui_proc)
        assert get(ui_url + "/pypi/simple/", PIP_ACCEPT)[0] == 200
        assert get(ui_url + "/main/simple/big/", PIP_ACCEPT)[0] == 200
        before, _ = memory(pids)
        t = time.monotonic()
        status, _, body = get(ui_url + "/ui/search?index=pypi&q=" + mix[0], timeout=300)
        first = time.monotonic() - t
        assert status == 200, body[:300]
        for query in mix[:50]:
            get(ui_url + "/ui/search?index=pypi&q=" + urllib.parse.quote(query))
        after, peak = memory(pids)
        report["memory"] = {
            "rss_before_mb": before, "rss_after_mb": after, "extra_mb": after - before,
            "peak_mb": peak, "peak_extra_mb": peak - before, "first_search_s": first,
        }  # fmt: skip
        print("memory:", report["memory"], flush=True)
        status, _, body = get(ui_url + "/ui/main/project/big")
        assert status == 200 and body.count(b"<tr>") >= args.files, "the project page is wrong"
        assert b"<table>" in body.split(b'class="readme"')[1][:5000], "no README"
        cases = {
            "project": (ui_url, ["/ui/main/project/big"], "text/html", 32),
            "home": (ui_url, ["/"], "text/html", 32),
            "search": (
                ui_url,
                ["/ui/search?index=pypi&q=" + urllib.parse.quote(q) for q in mix],
                "text/html",
                32,
            ),
        }
        simple_paths = ["/main/simple/big/", "/main/simple/"]
        rows: dict[str, list[dict[str, float]]] = {}
        for name, (url, paths, accept, conns) in cases.items():
            wrk(url, paths, accept, 2, conns, work)  # warm-up
            rows[name] = [
                wrk(url, paths, accept, args.duration, conns, work) for _ in range(args.runs)
            ]
        server_pids = {ui_url: workers_of(ui_proc), plain_url: workers_of(plain_proc)}
        for url in (ui_url, plain_url):
            wrk(url, simple_paths, PIP_ACCEPT, 2, 64, work)
        rows["simple-ui-on"], rows["simple-ui-off"] = [], []
        # Many short interleaved pairs (on-off, off-on, ...): each pair's ratio is taken from
        # two runs seconds apart, and their spread shows how much of a difference is noise.
        for run in range(args.simple_runs):
            order = [("simple-ui-on", ui_url), ("simple-ui-off", plain_url)]
            for label, url in order if run % 2 == 0 else order[::-1]:
                rows[label].append(
                    wrk(
                        url,
                        simple_paths,
                        PIP_ACCEPT,
                        args.simple_duration,
                        64,
                        work,
                        server_pids[url],
                    )
                )
        report["wrk"] = rows
        ok = True
        print(f"\n{'case':<14} {'req/s':>9} {'p99 ms':>8} {'target':>8} {'errors':>6} {'load':>5}")
        for name, runs in rows.items():
            rps = statistics.median(r["rps"] for r in runs)
            p99 = statistics.median(r["p99_ms"] for r in runs)
            errors = sum(r["errors"] for r in runs)
            target = TARGETS.get(name)
            load = statistics.median(r["load"] for r in runs)
            missed = (target is not None and p99 > target) or errors > 0
            ok = ok and not missed
            shown = f"{target:.0f}" if target else "-"
            print(f"{name:<14} {rps:>9,.0f} {p99:>8.2f} {shown:>8} {errors:>6} {load:>5.1f}"
                  f"{'  MISSED' if missed else ''}")  # fmt: skip
        on = statistics.median(r["rps"] for r in rows["simple-ui-on"])
        off = statistics.median(r["rps"] for r in rows["simple-ui-off"])
        pairs = sorted(
            a["rps"] / b["rps"]
            for a, b in zip(rows["simple-ui-on"], rows["simple-ui-off"], strict=True)
        )
        quartiles = statistics.quantiles(pairs, n=4) if len(pairs) > 1 else [pairs[0]] * 3
        report["simple_ratio"] = on / off
        report["simple_pair_ratios"] = pairs
        print(
            f"Simple API with/without the interface: {on / off:.3f} (medians); per interleaved "
            f"pair: median {statistics.median(pairs):.3f}, q1-q3 {quartiles[0]:.3f}-"
            f"{quartiles[2]:.3f}, min-max {pairs[0]:.3f}-{pairs[-1]:.3f} over {len(pairs)} pairs"
        )
        cpu_on = statistics.median(r["cpu_us"] for r in rows["simple-ui-on"])
        cpu_off = statistics.median(r["cpu_us"] for r in rows["simple-ui-off"])
        cpu_pairs = sorted(
            a["cpu_us"] / b["cpu_us"]
            for a, b in zip(rows["simple-ui-on"], rows["simple-ui-off"], strict=True)
            if b["cpu_us"]
        )
        report["simple_cpu_us"] = {"on": cpu_on, "off": cpu_off, "pair_ratios": cpu_pairs}
        if cpu_pairs:
            print(
                f"server CPU per Simple API request: {cpu_on:.1f} us with, {cpu_off:.1f} us "
                f"without the interface; per pair: median {statistics.median(cpu_pairs):.3f}, "
                f"min-max {cpu_pairs[0]:.3f}-{cpu_pairs[-1]:.3f}"
            )
        extra = report["memory"]["extra_mb"]
        print(f"search index memory: {extra:.1f} MB extra (peak {report['memory']['peak_extra_mb']:.1f}),"
              f" target {MEMORY_MB:.0f}")  # fmt: skip
        ok = ok and extra <= MEMORY_MB
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"ui-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps(report, indent=2))
        print(f"written {out}")
        return 0 if ok else 1
    finally:
        for proc in procs:
            stop(proc, signal.SIGTERM)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
