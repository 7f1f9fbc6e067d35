"""Adoption benchmark: take over a 2,000-project bandersnatch tree in place, against a full sync.

    bench/bandersnatch-setup.sh                       # once: bandersnatch 8.2 in its own venv
    .venv/bin/python bench/bench_adopt.py --projects 2000

One test upstream on loopback serving pypi.org-style file URLs (blake2b paths, what bandersnatch
keeps on disk), ``--projects`` projects x ``--releases`` x ``--files`` real files with PEP 658
``.metadata``. In the same run:

1. bandersnatch 8.2 mirrors it (``simple-format = ALL``, ``core-metadata = true``): the tree to
   adopt;
2. ``headwater mirror`` does a full sync into a fresh directory (the reference time);
3. ``headwater adopt`` takes over the bandersnatch tree (hash every file, hard-link it into the
   sha256 layout, record the projects), then ``headwater mirror`` syncs it (pages only).

Targets: adoption downloads 0 files (counted by the upstream: requests under ``/packages/``) and
takes <= 10% of the full sync's time. Both the adoption alone and adoption + its first sync are
reported. Work directory removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


def main() -> int:
    from headwater.testing.corpus import Corpus
    from headwater.testing.upstream import Upstream

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--releases", type=int, default=1)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/headwater-bench-adopt"))
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

            up.reset_stats()
            full_s, out = run(
                [
                    HEADWATER,
                    "mirror",
                    "--upstream",
                    up.simple_url,
                    "--target",
                    str(work / "direct"),
                    "--workers",
                    str(args.workers),
                    "--quiet",
                ]
            )
            full_downloads = sum(n for p, n in up.stats.items() if p.startswith("/packages/"))
            print(f"headwater full sync: {full_s:.1f}s, {full_downloads} file requests", flush=True)

            up.reset_stats()
            adopt_s, out = run(
                [
                    HEADWATER,
                    "adopt",
                    "--target",
                    str(work / "bandersnatch"),
                    "--upstream",
                    up.simple_url,
                    "--format",
                    "json",
                ]
            )
            report = json.loads(out)
            adopt_downloads = sum(n for p, n in up.stats.items() if p.startswith("/packages/"))
            sync_s, out = run(
                [
                    HEADWATER,
                    "mirror",
                    "--upstream",
                    up.simple_url,
                    "--target",
                    str(work / "bandersnatch"),
                    "--workers",
                    str(args.workers),
                    "--quiet",
                ]
            )
            after_downloads = sum(n for p, n in up.stats.items() if p.startswith("/packages/"))
            print(out.strip())
        load = os.getloadavg()[0]
        results.update(
            bandersnatch_s=bs_s,
            full_sync_s=full_s,
            full_sync_file_requests=full_downloads,
            adopt_s=adopt_s,
            adopted_files=report["files"],
            adopted_metadata=report["metadata"],
            not_adopted=len(report["not_adopted"]),
            adopt_file_requests=adopt_downloads,
            first_sync_s=sync_s,
            first_sync_file_requests=after_downloads,
            load=load,
        )
        print(f"\n{args.projects} projects, load average {load:.1f}")
        print(f"{'':34} {'seconds':>8} {'of full':>8} {'file requests':>14}")
        print(f"{'headwater full sync':34} {full_s:8.2f} {1:8.0%} {full_downloads:14}")
        print(
            f"{'adopt (hash + link + record)':34} {adopt_s:8.2f} {adopt_s / full_s:8.0%} {adopt_downloads:14}"
        )
        print(
            f"{'first sync after adopt (pages)':34} {sync_s:8.2f} {sync_s / full_s:8.0%} {after_downloads:14}"
        )
        print(
            f"{'adopt + first sync':34} {adopt_s + sync_s:8.2f} {(adopt_s + sync_s) / full_s:8.0%} {adopt_downloads + after_downloads:14}"
        )
        print(
            f"adopted {report['files']} files and {report['metadata']} .metadata; not adopted {len(report['not_adopted'])}"
        )
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
