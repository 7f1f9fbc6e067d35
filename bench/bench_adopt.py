"""Adoption benchmark: take over a 2,000-project bandersnatch tree in place, against a full sync.

    bench/bandersnatch-setup.sh                       # once: bandersnatch 8.2 in its own venv
    .venv/bin/python bench/bench_adopt.py --projects 2000

One test upstream serving pypi.org-style file URLs (blake2b paths, what bandersnatch keeps on
disk), ``--projects`` projects x ``--releases`` x ``--files`` real files with PEP 658
``.metadata``. bandersnatch 8.2 mirrors it once (``simple-format = ALL``, ``core-metadata =
true``): the tree to adopt.

Two cases (run each and report both):

- ``--sizes pypi --bandwidth 1000`` (the defaults, the realistic case): each file is padded with
  random bytes to a size drawn from real PyPI files (``bench/pypi_file_sizes.json``: every file
  of 12 widely used projects, fetched from pypi.org's PEP 691 JSON with its PEP 700 sizes; a file
  draws one of the 12 projects, then one of its files, by a generator seeded with its filename),
  all scaled down by one factor when the expected total would exceed ``--max-gb`` (printed: the
  sample's mean, ~2.3 MB, is larger than PyPI's long tail, so a 2,000-project corpus of it would
  not fit a benchmark). The upstream sends through one shared link of ``--bandwidth`` Mbit/s
  (1,000: a good data-centre link to PyPI's CDN) with ``--latency-ms`` per reply. The adopted
  tree is flushed and dropped from the page cache before adoption (``posix_fadvise DONTNEED``
  per file, as bench_bundle.py does): an operator's tree is not in memory.
- ``--sizes tiny --bandwidth 0``: ~1 KB files on plain loopback, the worst case for the ratio (a
  full sync is little more than creating files).

Then ``--runs`` times, each run in the same conditions:

1. ``headwater mirror`` does a full sync into a fresh directory (the reference time);
2. ``headwater adopt`` takes over a fresh copy of the bandersnatch tree (copied and written back
   before the clock starts): hash every file, hard-link it into the sha256 layout, record the
   projects;
3. ``headwater mirror`` syncs the adopted tree (the first sync after adoption: every page, no
   file).

Before step 2 (not timed as adoption) every byte of the copy is read once in one thread
(``read every file once``): the floor of any adoption that hashes every file, on the same tree in
the same run (the copy is evicted again afterwards in the cold case). ``HEADWATER=<bin/headwater
of another build>`` times that build instead (the "before" of a change).

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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater.testing.upstream import Upstream

HERE = Path(__file__).resolve().parent
# HEADWATER=<a build's bin/headwater> measures another build (e.g. `git archive main`).
HEADWATER = os.environ.get("HEADWATER", str(Path(sys.executable).with_name("headwater")))
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


def evict(path: Path) -> None:
    """Flush ``path``'s files and drop them from the page cache (only these files)."""
    os.sync()
    for item in path.rglob("*"):
        if item.is_file():
            fd = os.open(item, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def read_all(path: Path) -> float:
    """Seconds to read every byte of every file under ``path`` in one thread (directory order,
    1 MiB reads): the floor of any adoption that hashes every file, measured on the same tree."""
    started = time.perf_counter()
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                while os.read(fd, 1 << 20):
                    pass
            finally:
                os.close(fd)
    return time.perf_counter() - started


def pypi_sizes(total_files: int, max_bytes: float) -> tuple[Callable[[str], int], float, float]:
    """The size function for :class:`Corpus` (by filename, deterministic), the scale applied and
    the expected total before scaling."""
    from headwater.testing.sizes import size_sampler

    return size_sampler(HERE / "pypi_file_sizes.json", total_files, max_bytes)


def one_run(
    up: Upstream, work: Path, pristine: Path, workers: int, number: int, cold: bool
) -> dict[str, float]:
    """One full sync into a fresh directory, then adoption of a fresh copy of the bandersnatch
    tree (copied before the clock starts) and the first sync after it: times and file requests."""
    tree = work / f"adopted-{number}"
    direct = work / f"direct-{number}"
    shutil.rmtree(tree, ignore_errors=True)
    shutil.rmtree(direct, ignore_errors=True)
    subprocess.run(["cp", "-a", str(pristine), str(tree)], check=True)
    subprocess.run(["sync"], check=True)  # neither timed run pays for the copy's write-back
    if cold:
        evict(tree)
    read_s = read_all(tree / "web" / "packages")
    if cold:
        evict(tree)

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
        f"{adopt_s:.2f}s = {adopt_s / full_s:.1%} (reading every file alone: {read_s:.2f}s = "
        f"{read_s / full_s:.1%}; {report['files']} files, "
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
        "read_all_s": read_s,
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
    parser.add_argument(
        "--sizes", choices=("pypi", "tiny"), default="pypi", help="file sizes (see above)"
    )
    parser.add_argument("--max-gb", type=float, default=3.0, help="bound on the corpus's bytes")
    parser.add_argument(
        "--bandwidth", type=float, default=1000.0, help="upstream link, Mbit/s (0: loopback)"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every reply")
    parser.add_argument(
        "--cold",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop the tree from the page cache before adoption (default: with --sizes pypi)",
    )
    args = parser.parse_args()
    cold = args.cold if args.cold is not None else args.sizes == "pypi"
    if not BANDERSNATCH.exists():
        raise SystemExit(f"{BANDERSNATCH} is missing: run bench/bandersnatch-setup.sh first")
    work: Path = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    size_of: Callable[[str], int] | None = None
    results: dict[str, object] = {
        "projects": args.projects,
        "sizes": args.sizes,
        "bandwidth_mbit": args.bandwidth,
        "latency_ms": args.latency_ms,
        "cold": cold,
    }
    if args.sizes == "pypi":
        size_of, scale, expected = pypi_sizes(
            args.projects * args.releases * args.files, args.max_gb * 1e9
        )
        results.update(size_scale=scale, unscaled_expected_bytes=expected)
        print(
            f"sizes from PyPI: expected {expected / 1e9:.1f} GB unscaled, scaled by {scale:.3f}",
            flush=True,
        )
    corpus = Corpus.generate(
        args.projects, releases=args.releases, files=args.files, seed=2026, sizes=size_of
    )
    bandwidth = args.bandwidth * 1e6 / 8 if args.bandwidth > 0 else None
    try:
        with Upstream(
            corpus, pypi_paths=True, bandwidth=bandwidth, latency=args.latency_ms / 1000
        ).running() as up:
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
            paths = [p for p in (work / "bandersnatch/web/packages").rglob("*") if p.is_file()]
            total = sum(p.stat().st_size for p in paths)
            results.update(files=len(paths), bytes=total)
            print(
                f"bandersnatch full sync: {bs_s:.1f}s, {len(paths)} files incl. .metadata, "
                f"{total / 1e9:.2f} GB",
                flush=True,
            )

            pristine = work / "bandersnatch"
            rows: list[dict[str, float]] = []
            for number in range(1, args.runs + 1):
                rows.append(one_run(up, work, pristine, args.workers, number, cold))
        load = os.getloadavg()[0]
        results.update(bandersnatch_s=bs_s, runs=rows, load=load)
        keys = ("full_s", "adopt_s", "read_all_s", "first_sync_s")
        medians = {k: statistics.median(r[k] for r in rows) for k in keys}
        ratios = [r["adopt_s"] / r["full_s"] for r in rows]
        results.update(
            median=medians,
            adopt_ratio_median=statistics.median(ratios),
            first_sync_ratio_median=statistics.median(
                r["first_sync_s"] / r["full_s"] for r in rows
            ),
        )
        print(
            f"\n{args.projects} projects, {args.runs} runs, sizes {args.sizes}, link "
            f"{args.bandwidth or 'loopback'} Mbit/s, cold adoption {cold}, "
            f"load average {load:.1f}"
        )
        print(f"{'median of the runs':34} {'seconds':>8} {'of full':>8}")
        print(f"{'headwater full sync':34} {medians['full_s']:8.2f} {1:8.0%}")
        print(
            f"{'adopt (hash + link + record)':34} {medians['adopt_s']:8.2f} "
            f"{statistics.median(ratios):8.1%}  (ratio: median of the per-run ratios)"
        )
        print(
            f"{'read every file once (one thread)':34} {medians['read_all_s']:8.2f} "
            f"{statistics.median(r['read_all_s'] / r['full_s'] for r in rows):8.1%}  "
            "(the floor of hashing every file)"
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
