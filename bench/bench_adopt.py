"""Adoption benchmark: take over a 2,000-project bandersnatch tree in place, against a full sync.

    bench/bandersnatch-setup.sh                       # once: bandersnatch 8.2 in its own venv
    .venv/bin/python bench/bench_adopt.py --projects 2000

One test upstream on loopback serving pypi.org-style file URLs (blake2b paths, what bandersnatch
keeps on disk), ``--projects`` projects x ``--releases`` x ``--files`` real files with PEP 658
``.metadata``. bandersnatch 8.2 mirrors it once (``simple-format = ALL``, ``core-metadata =
true``): the tree to adopt. Then ``--runs`` times, each run in the same conditions:

1. ``headwater mirror`` does a full sync into a fresh directory (the reference time);
2. ``headwater adopt`` takes over a fresh copy of the bandersnatch tree (copied and written back
   before the clock starts): hash every file, hard-link it into the sha256 layout, record the
   projects;
3. ``headwater mirror`` syncs the adopted tree (the first sync after adoption: every page, no
   file).

Targets: adoption downloads 0 files (counted by the upstream: requests under ``/packages/``) and
takes <= 10% of the full sync's time. Reported: each run, the medians, and the median of the
per-run ratios. Work directory removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater.testing.upstream import Upstream

HERE = Path(__file__).resolve().parent
HEADWATER = str(Path(sys.executable).with_name("headwater"))
BANDERSNATCH = Path(
    os.environ.get("BANDERSNATCH", HERE / ".bandersnatch-venv" / "bin" / "bandersnatch")
)


def run(command: list[str], **kw: object) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[:3]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def one_run(
    up: Upstream, work: Path, pristine: Path, workers: int, number: int
) -> dict[str, float]:
    """One full sync into a fresh directory, then adoption of a fresh copy of the bandersnatch
    tree (copied before the clock starts) and the first sync after it: times and file requests."""
    tree = work / f"adopted-{number}"
    direct = work / f"direct-{number}"
    shutil.rmtree(tree, ignore_errors=True)
    shutil.rmtree(direct, ignore_errors=True)
    subprocess.run(["cp", "-a", str(pristine), str(tree)], check=True)
    subprocess.run(["sync"], check=True)  # neither timed run pays for the copy's write-back

    def file_requests() -> int:  # up.stats is a new dict after each reset_stats()
        return sum(n for p, n in up.stats.items() if p.startswith("/packages/"))

    sync = [HEADWATER, "mirror", "--upstream", up.simple_url, "--workers", str(workers)]
    up.reset_stats()
    full_s, _ = run([*sync, "--target", str(direct), "--quiet"])
    full_requests = file_requests()
    up.reset_stats()
    adopt_s, out = run(
        [HEADWATER, "adopt", "--target", str(tree), "--upstream", up.simple_url, "--format", "json"]
    )
    report = json.loads(out)
    adopt_requests = file_requests()
    up.reset_stats()
    first_s, out = run([*sync, "--target", str(tree), "--quiet"])
    first_requests = file_requests()
    print(
        f"run {number}: full sync {full_s:.2f}s ({full_requests} file requests); adopt "
        f"{adopt_s:.2f}s = {adopt_s / full_s:.1%} ({report['files']} files, "
        f"{report['metadata']} .metadata, {len(report['not_adopted'])} not adopted, "
        f"{adopt_requests} file requests); first sync after it {first_s:.2f}s "
        f"({first_requests} file requests): {out.strip()}",
        flush=True,
    )
    shutil.rmtree(direct, ignore_errors=True)
    shutil.rmtree(tree, ignore_errors=True)
    return {
        "full_s": full_s,
        "full_file_requests": full_requests,
        "adopt_s": adopt_s,
        "adopted_files": report["files"],
        "adopted_metadata": report["metadata"],
        "not_adopted": len(report["not_adopted"]),
        "adopt_file_requests": adopt_requests,
        "first_sync_s": first_s,
        "first_sync_file_requests": first_requests,
    }


def main() -> int:
    from headwater.testing.corpus import Corpus
    from headwater.testing.upstream import Upstream

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--releases", type=int, default=1)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/headwater-bench-adopt"))
    parser.add_argument("--runs", type=int, default=3, help="adoptions timed (medians)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not BANDERSNATCH.exists():
        raise SystemExit(f"{BANDERSNATCH} is missing: run bench/bandersnatch-setup.sh first")
    work: Path = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    corpus = Corpus.generate(args.projects, releases=args.releases, files=args.files, seed=2026)
    results: dict[str, object] = {"projects": args.projects}
    try:
        with Upstream(corpus, pypi_paths=True).running() as up:
            conf = work / "bandersnatch.conf"
            conf.write_text(
                "[mirror]\n"
                f"directory = {work / 'bandersnatch'}\n"
                f"master = {up.url}\n"
                f"allow-non-https = true\nworkers = {min(args.workers, 10)}\njson = false\n"
                "release-files = true\ncore-metadata = true\nsimple-format = ALL\n"
                "hash-index = false\nstop-on-error = false\nstorage-backend = filesystem\n"
                "timeout = 60\nglobal-timeout = 18000\n"
            )
            env = {"PATH": "/usr/bin:/bin", "HOME": str(work)}
            bs_s, _ = run([str(BANDERSNATCH), "-c", str(conf), "mirror"], env=env)
            files = sum(1 for p in (work / "bandersnatch/web/packages").rglob("*") if p.is_file())
            print(f"bandersnatch full sync: {bs_s:.1f}s, {files} files incl. .metadata", flush=True)

            pristine = work / "bandersnatch"
            rows: list[dict[str, float]] = []
            for number in range(1, args.runs + 1):
                rows.append(one_run(up, work, pristine, args.workers, number))
        load = os.getloadavg()[0]
        results.update(bandersnatch_s=bs_s, runs=rows, load=load)
        keys = ("full_s", "adopt_s", "first_sync_s")
        medians = {k: statistics.median(r[k] for r in rows) for k in keys}
        ratios = [r["adopt_s"] / r["full_s"] for r in rows]
        results.update(
            median=medians,
            adopt_ratio_median=statistics.median(ratios),
            first_sync_ratio_median=statistics.median(
                r["first_sync_s"] / r["full_s"] for r in rows
            ),
        )
        print(f"\n{args.projects} projects, {args.runs} runs, load average {load:.1f}")
        print(f"{'median of the runs':34} {'seconds':>8} {'of full':>8}")
        print(f"{'headwater full sync':34} {medians['full_s']:8.2f} {1:8.0%}")
        print(
            f"{'adopt (hash + link + record)':34} {medians['adopt_s']:8.2f} "
            f"{statistics.median(ratios):8.1%}  (ratio: median of the per-run ratios)"
        )
        print(
            f"{'first sync after adopt':34} {medians['first_sync_s']:8.2f} "
            f"{results['first_sync_ratio_median']:8.1%}"
        )
        downloads = sum(r["adopt_file_requests"] + r["first_sync_file_requests"] for r in rows)
        print(f"file requests during adoption and the first sync after it, all runs: {downloads}")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
