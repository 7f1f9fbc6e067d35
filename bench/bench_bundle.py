"""Bundle benchmark: ``headwater bundle create`` and ``bundle import`` of a large tree against
``dd``'s sequential throughput on the same disk in the same run, and their peak memory.

    .venv/bin/python bench/bench_bundle.py --gib 5 --repeat 3 --peers --before /tmp/before

Builds a valid mirror tree of ``--gib`` GiB (distribution files of 256 KiB to 32 MiB of random
bytes at their sha256 keys, with JSON and HTML pages), then times, each as its own process:

- ``dd``: copying one file of the same size with ``bs=1M conv=fdatasync`` (read + write + flush:
  what create and import also do);
- ``bundle create`` (reads the tree, hashes every byte, writes one volume, fsync);
- ``bundle import`` into an empty directory (reads the bundle, hashes every byte, stages, syncfs,
  renames into place);
- with ``--peers``: GNU ``tar -c`` of the tree (then ``sync FILE``) and ``tar -x`` of the bundle
  (then ``sync -f``): the same reads and writes for the same files without hashing, to tell what
  the disk allows for a tree of many files from what headwater costs;
- with ``--before DIR``: create and import again from another headwater source tree (its
  ``src`` first on ``PYTHONPATH``), side by side with this one.

Before each step its input is flushed and dropped from the page cache (``posix_fadvise
DONTNEED``), so every step reads from the disk and writes to it. ``--repeat N`` runs N rounds
(every other one in reverse order) and reports medians. Throughput is bytes of the tree per
second; CPU is user + system seconds; peak RSS is the process's maximum resident set. Targets:
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
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


def run(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (bytes) and CPU seconds (user + system) of ``command``."""
    time_bin = shutil.which("time") or "/usr/bin/time"
    if not Path(time_bin).exists():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        # ru_maxrss of RUSAGE_CHILDREN is the largest child so far
        return seconds, after.ru_maxrss * 1024, cpu
    started = time.perf_counter()
    done = subprocess.run(
        [time_bin, "-f", "%M %U %S", *command],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - started
    rss, user, system = done.stderr.strip().splitlines()[-1].split()
    return seconds, int(rss) * 1024, float(user) + float(system)


@dataclass
class Step:
    """One measured command; ``prepare`` runs (unmeasured) before each run of it."""

    label: str
    command: list[str]
    prepare: Callable[[], None]
    env: dict[str, str] | None = None
    runs: list[tuple[float, int, float]] = field(default_factory=list)


def _bundle_steps(work: Path, label: str, env: dict[str, str] | None) -> list[Step]:
    tree, bundle, far = work / "tree", work / "b", work / "far"

    def before_create() -> None:
        bundle.unlink(missing_ok=True)
        # each run makes bundle 1 again, of the whole tree
        shutil.rmtree(tree / "state/bundles", ignore_errors=True)
        (tree / "state/bundle-origin.json").unlink(missing_ok=True)
        evict(tree)

    def before_import() -> None:
        shutil.rmtree(far, ignore_errors=True)
        evict(bundle)

    create = [HEADWATER, "bundle", "create", "--target", str(tree)]
    create += ["--private-key", str(work / "k"), "-o", str(bundle)]
    apply = [HEADWATER, "bundle", "import", "--target", str(far)]
    apply += ["--public-key", str(work / "k.pub"), str(bundle)]
    return [
        Step(f"bundle create{label}", create, before_create, env),
        Step(f"bundle import{label}", apply, before_import, env),
    ]


def _peer_steps(work: Path) -> list[Step]:
    """What the same disk does for the same work without headwater: GNU tar packing the tree
    (directory order, no hashing) and unpacking the bundle, each made durable at the end."""
    tree, copy, out = work / "tree", work / "tar-copy", work / "tar-out"

    def before_pack() -> None:
        copy.unlink(missing_ok=True)
        evict(tree)

    def before_unpack() -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        evict(work / "b")

    pack = f"tar -b 2048 -cf {copy} -C {tree} web state && sync {copy}"
    unpack = f"tar -b 2048 -xf {work / 'b'} -C {out} && sync -f {out}"
    return [
        Step("tar -c of the tree (1 MiB records), fsync", ["sh", "-c", pack], before_pack),
        Step("tar -x of the bundle (1 MiB records), syncfs", ["sh", "-c", unpack], before_unpack),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=5.0, help="size of the tree (GiB)")
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/headwater-bench-bundle"))
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    parser.add_argument(
        "--peers", action="store_true", help="also time GNU tar packing and unpacking"
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="also time create and import from this headwater source tree (its src/ directory "
        "is put first on PYTHONPATH), e.g. `git archive main src | tar -x -C /tmp/before`",
    )
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
        keygen = [HEADWATER, "bundle", "keygen", "--private-key", str(work / "k")]
        subprocess.run(
            [*keygen, "--public-key", str(work / "k.pub")], check=True, stdout=subprocess.DEVNULL
        )
        # dd: one file of the same size, copied with a flush at the end.
        source = work / "dd-source"
        subprocess.run(
            [
                "dd",
                "if=/dev/urandom",
                f"of={source}",
                "bs=1M",
                f"count={size >> 20}",
                "status=none",
            ],
            check=True,
        )

        def before_dd() -> None:
            (work / "dd-copy").unlink(missing_ok=True)
            evict(source)

        dd = [
            "dd",
            f"if={source}",
            f"of={work / 'dd-copy'}",
            "bs=1M",
            "conv=fdatasync",
            "status=none",
        ]
        steps = [Step("dd copy (bs=1M, fdatasync)", dd, before_dd)]
        steps += _bundle_steps(work, "", None)
        if args.before is not None:
            env = dict(os.environ, PYTHONPATH=str(args.before.resolve() / "src"))
            steps += _bundle_steps(work, " (before)", env)
        if args.peers:
            steps += _peer_steps(work)
        loads = [os.getloadavg()[0]]
        for round_ in range(args.repeat):
            # Every other round in reverse order, so a change in the machine's load does not fall
            # on one step only (an import reads the bundle the last create made, in any round).
            order = steps if round_ % 2 == 0 else [steps[0], *reversed(steps[1:])]
            for step in order:
                step.prepare()
                step.runs.append(run(step.command, step.env))
            loads.append(os.getloadavg()[0])
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{s.label} {s.runs[-1][0]:.1f}s" for s in steps),
                flush=True,
            )
        dd_s = statistics.median(r[0] for r in steps[0].runs)
        print(
            f"\n{size / (1 << 30):.2f} GiB tree ({files} files), {args.repeat} round(s), medians; "
            f"load average {min(loads):.1f} to {max(loads):.1f}"
        )
        print(f"{'':44} {'seconds':>8} {'MB/s':>8} {'of dd':>7} {'CPU s':>7} {'peak RSS MB':>12}")
        result = []
        for step in steps:
            seconds = statistics.median(r[0] for r in step.runs)
            cpu = statistics.median(r[2] for r in step.runs)
            rss = max(r[1] for r in step.runs)
            rate = size / seconds / 1e6
            share = dd_s / seconds
            print(
                f"{step.label:44} {seconds:8.1f} {rate:8.0f} {share:7.0%} {cpu:7.1f} "
                f"{rss / 1e6:12.0f}"
            )
            result.append(
                {
                    "what": step.label,
                    "seconds": seconds,
                    "runs": [r[0] for r in step.runs],
                    "cpu_seconds": cpu,
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
                        "rounds": args.repeat,
                        "load": loads,
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
