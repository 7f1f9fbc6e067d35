"""Bundle benchmark: ``headwater bundle create`` and ``bundle import`` of a large tree against
``dd``'s sequential throughput on the same disk in the same run, and their peak memory.

    .venv/bin/python bench/bench_bundle.py --gib 5 --work /var/tmp/bench-bundle

Builds a valid mirror tree of ``--gib`` GiB (distribution files of 256 KiB to 32 MiB of random
bytes at their sha256 keys, with JSON and HTML pages), then times, each as its own process:

- ``dd``: copying one file of the same size with ``bs=1M conv=fdatasync`` (read + write + flush:
  what create and import also do);

Before each step its input is flushed and dropped from the page cache (``posix_fadvise
DONTNEED``), so all three read from the disk and write to it.
- ``bundle create`` (reads the tree, hashes every byte, writes one volume, fsync);
- ``bundle import`` into an empty directory (reads the bundle, hashes every byte, stages, syncfs,
  renames into place).

Throughput is bytes of the tree per second; peak RSS is the process's ``ru_maxrss``. Targets:
create and import >= 80% of dd's throughput, memory <= 200 MB. The work directory is removed at
the end (``--keep`` keeps it). Results go to stdout as a table and, with ``--json FILE``, as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADWATER = str(Path(sys.executable).with_name("headwater"))


def build_tree(root: Path, total: int, seed: int) -> tuple[int, int]:
    """A mirror tree of about ``total`` bytes of files; returns (files, bytes)."""
    import hashlib

    from headwater.simple.model import File, ProjectList, ProjectListEntry, ProjectPage
    from headwater.simple.names import NormalizedName
    from headwater.storage.filesystem import FileStorage
    from headwater.storage.layout import file_key, file_url_from_project_page
    from headwater.sync.tree import Tree

    rng = random.Random(seed)
    written = files = 0
    pages: list[ProjectPage] = []
    project = 0
    while written < total:
        name = NormalizedName(f"bench-{project:05d}")
        entries = []
        for version in range(rng.randint(1, 4)):
            size = min(
                rng.choice([256 << 10, 1 << 20, 4 << 20, 16 << 20, 32 << 20]), total - written
            )
            if size <= 0:
                break
            body = rng.randbytes(size)
            sha = hashlib.sha256(body).hexdigest()
            filename = f"bench_{project:05d}-{version}.0-py3-none-any.whl"
            path = root / file_key(sha, filename)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            entries.append(
                File(
                    filename=filename,
                    url=file_url_from_project_page(sha, filename),
                    hashes={"sha256": sha},
                    size=size,
                )
            )
            written += size
            files += 1
        pages.append(ProjectPage(name=name, files=tuple(entries), last_serial=project + 1))
        project += 1

    async def write_pages() -> None:
        tree = Tree(FileStorage(root))
        await tree.write_projects(pages)
        await tree.write_root(
            ProjectList(
                projects=tuple(ProjectListEntry(p.name, p.last_serial) for p in pages),
                last_serial=project,
            )
        )
        await tree.write_last_modified()
        await tree.storage.sync()

    asyncio.run(write_pages())
    return files, written


def evict(path: Path) -> None:
    """Drop ``path``'s pages (a file, or every file under a directory) from the page cache after
    flushing them, so each measured step reads its input from the disk, as dd's does."""
    os.sync()
    paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for item in paths:
        fd = os.open(item, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(command: list[str]) -> tuple[float, int]:
    """Wall seconds and the child's peak RSS (bytes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: run the biggest last or read it
    # per run with /usr/bin/time when available.
    return seconds, max(peak, before) * 1024


def peak_of(command: list[str]) -> tuple[float, int]:
    time_bin = shutil.which("time") or "/usr/bin/time"
    if Path(time_bin).exists():
        started = time.perf_counter()
        done = subprocess.run(
            [time_bin, "-f", "%M", *command],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        seconds = time.perf_counter() - started
        return seconds, int(done.stderr.strip().splitlines()[-1]) * 1024
    return timed(command)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=5.0, help="size of the tree (GiB)")
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/headwater-bench-bundle"))
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work: Path = args.work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    total = int(args.gib * (1 << 30))
    try:
        t0 = time.perf_counter()
        files, size = build_tree(work / "tree", total, seed=1)
        print(
            f"tree: {files} files, {size} bytes, built in {time.perf_counter() - t0:.1f}s",
            flush=True,
        )
        subprocess.run(
            [
                HEADWATER,
                "bundle",
                "keygen",
                "--private-key",
                str(work / "k"),
                "--public-key",
                str(work / "k.pub"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # dd: one file of the same size, copied with a flush at the end.
        with (work / "dd-source").open("wb") as out:
            out.truncate(0)
        subprocess.run(
            [
                "dd",
                "if=/dev/urandom",
                f"of={work / 'dd-source'}",
                "bs=1M",
                f"count={size >> 20}",
                "status=none",
            ],
            check=True,
        )
        evict(work / "dd-source")
        rows = []
        dd_s, dd_rss = peak_of(
            [
                "dd",
                f"if={work / 'dd-source'}",
                f"of={work / 'dd-copy'}",
                "bs=1M",
                "conv=fdatasync",
                "status=none",
            ]
        )
        rows.append(("dd copy (bs=1M, fdatasync)", dd_s, dd_rss))
        (work / "dd-copy").unlink()
        (work / "dd-source").unlink()
        evict(work / "tree")
        c_s, c_rss = peak_of(
            [
                HEADWATER,
                "bundle",
                "create",
                "--target",
                str(work / "tree"),
                "--private-key",
                str(work / "k"),
                "-o",
                str(work / "b"),
            ]
        )
        rows.append(("bundle create", c_s, c_rss))
        shutil.rmtree(work / "tree")
        evict(work / "b")
        i_s, i_rss = peak_of(
            [
                HEADWATER,
                "bundle",
                "import",
                "--target",
                str(work / "far"),
                "--public-key",
                str(work / "k.pub"),
                str(work / "b"),
            ]
        )
        rows.append(("bundle import", i_s, i_rss))
        load = os.getloadavg()[0]
        print(f"\n{size / (1 << 30):.2f} GiB tree ({files} files), load average {load:.1f}")
        print(f"{'':30} {'seconds':>8} {'MB/s':>8} {'of dd':>7} {'peak RSS MB':>12}")
        result = []
        for label, seconds, rss in rows:
            rate = size / seconds / 1e6
            share = dd_s / seconds
            print(f"{label:30} {seconds:8.1f} {rate:8.0f} {share:7.0%} {rss / 1e6:12.0f}")
            result.append(
                {
                    "what": label,
                    "seconds": seconds,
                    "mb_per_s": rate,
                    "of_dd": share,
                    "peak_rss_bytes": rss,
                }
            )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "when": datetime.now(UTC).isoformat(),
                        "bytes": size,
                        "files": files,
                        "load": load,
                        "rows": result,
                    },
                    indent=2,
                )
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
