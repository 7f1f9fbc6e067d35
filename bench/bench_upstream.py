"""Project-page requests/s of the test upstream on ONE core, measured with wrk.

The server runs as ``headwater test-upstream`` pinned to core 0 (``taskset -c 0``); wrk runs on
core 1 with 64 keep-alive connections and a Lua script that cycles through many different
projects. Each format (JSON, HTML) is first requested once per path (warm-up), then RUNS runs of DURATION seconds; the
median requests/s and p99 latency are reported.

    .venv/bin/python bench/bench_upstream.py [--projects 20000] [--runs 3] [--duration 10]

Needs ``wrk`` (``apt-get install -y wrk``) and ``taskset`` (util-linux).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "text/html"

LUA = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], {["Accept"] = "%(accept)s"})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%f %%d\\n", summary.requests, summary.duration,
    latency:percentile(99), summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def _wrk(url: str, script: Path, duration: int) -> tuple[float, float, int]:
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{duration}s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) (\d+)", out)
    if match is None:
        raise SystemExit(f"could not read wrk output:\n{out}")
    requests, micros, p99_us, errors = match.groups()
    return int(requests) / (int(micros) / 1e6), float(p99_us) / 1000, int(errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--paths", type=int, default=5_000, help="distinct projects cycled")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install -y wrk util-linux)")
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "headwater.cli.main", "test-upstream",
         "--projects", str(args.projects), "--releases", "3", "--files", "3", "--seed", "1"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with urllib.request.urlopen(f"{url}/simple/?format={JSON.replace('+', '%2B')}") as resp:
            listing = json.load(resp)
        step = max(1, len(listing["projects"]) // args.paths)
        names = [p["name"] for p in listing["projects"][::step]][: args.paths]
        from headwater.simple.names import normalize_name

        paths = [f"/simple/{normalize_name(n)}/" for n in names]
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            path_file = Path(tmp) / "paths.txt"
            path_file.write_text("\n".join(paths) + "\n")
            for label, accept in (("json", JSON), ("html", HTML)):
                script = Path(tmp) / f"{label}.lua"
                script.write_text(LUA % {"paths": path_file, "accept": accept})
                # Warm-up: every page rendered (and its wheels built) once, so the runs measure
                # serving, which is what mirrors and benchmarks hit again and again.
                started = time.perf_counter()
                for path in paths:
                    request = urllib.request.Request(url + path, headers={"Accept": accept})
                    with urllib.request.urlopen(request) as resp:
                        resp.read()
                print(f"{label}: warm-up {time.perf_counter() - started:.1f}s", file=sys.stderr)
                _wrk(url, script, 2)
                runs = [_wrk(url, script, args.duration) for _ in range(args.runs)]
                rps = statistics.median(r[0] for r in runs)
                p99 = statistics.median(r[1] for r in runs)
                errors = sum(r[2] for r in runs)
                results[label] = {
                    "rps_median": round(rps),
                    "p99_ms": round(p99, 2),
                    "runs_rps": [round(r[0]) for r in runs],
                    "errors": errors,
                }
                print(
                    f"{label}: {rps:,.0f} req/s (median of {args.runs} x {args.duration}s), "
                    f"p99 {p99:.2f} ms, runs {[round(r[0]) for r in runs]}, errors {errors}"
                )
        print(json.dumps({"projects": args.projects, "distinct_paths": len(paths), **results}))
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
