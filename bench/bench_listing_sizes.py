"""Summing the sizes of N stored files: a listing with sizes (``Storage.iter_stats``) against the
listing plus one ``stat`` per key (what the status measurement, the proxy's eviction scan in a
bucket, ``headwater gc`` and ``headwater move`` did before), on a directory and on a SeaweedFS
bucket (tests/seaweed.py), side by side in the same run, alternating, medians of ``--runs``.

    .venv/bin/python bench/bench_listing_sizes.py [--files 5000] [--runs 5]

Prints each median, the ratio (per-key stat / listing) and the requests each way sent to the
bucket (counted by tests/tcp_gate.py). Results belong in docs/configuration.md ("What listing a
storage costs").
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from headwater.storage import FileStorage, Storage  # noqa: E402
from headwater.storage.open import aclose_storage  # noqa: E402
from headwater.storage.s3 import S3Storage  # noqa: E402


async def per_key(storage: Storage) -> tuple[int, int]:
    files = total = 0
    async for key in storage.iter_keys("web/packages"):
        stat = await storage.stat(key)
        if stat is not None:
            files, total = files + 1, total + stat.size
    return files, total


async def listing(storage: Storage) -> tuple[int, int]:
    files = total = 0
    async for _, stat in storage.iter_stats("web/packages"):
        files, total = files + 1, total + stat.size
    return files, total


def measure(
    make: Callable[[], Storage], runs: int, count: Callable[[], int]
) -> dict[str, tuple[float, int]]:
    """Median seconds and requests per run of each way (alternating which goes first)."""
    times: dict[str, list[float]] = {"per-key stat": [], "listing": []}
    sent: dict[str, int] = {}
    ways: dict[str, Callable[[Storage], Awaitable[tuple[int, int]]]] = {
        "per-key stat": per_key,
        "listing": listing,
    }
    answers = set()
    for run in range(runs):
        order = list(ways) if run % 2 else list(reversed(ways))
        for name in order:

            async def once(name: str = name) -> tuple[float, tuple[int, int]]:
                storage = make()
                try:
                    started = time.perf_counter()
                    answer = await ways[name](storage)
                    return time.perf_counter() - started, answer
                finally:
                    await aclose_storage(storage)

            before = count()
            seconds, answer = asyncio.run(once())
            sent[name] = count() - before
            times[name].append(seconds)
            answers.add(answer)
    assert len(answers) == 1, answers  # both ways find the same files and bytes
    return {name: (statistics.median(values), sent[name]) for name, values in times.items()}


def report(where: str, results: dict[str, tuple[float, int]], requests: bool) -> None:
    for name, (seconds, sent) in results.items():
        extra = f", {sent} requests" if requests else ""
        print(f"{where:9} {name:13} median {seconds * 1000:9.1f} ms{extra}")
    ratio = results["per-key stat"][0] / results["listing"][0]
    print(f"{where:9} per-key stat / listing = {ratio:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.files} files, {args.runs} runs each, load average {os.getloadavg()[0]:.2f}")
    sizes = [(f"web/packages/{i % 256:02x}/{i:06d}/p-{i}.tar.gz", b"x" * (i % 97)) for i in range(args.files)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-listing-") as tmp:
        root = Path(tmp) / "tree"
        asyncio.run(FileStorage(root).write_many(sizes))
        results = measure(lambda: FileStorage(root), args.runs, lambda: 0)
        report("directory", results, requests=False)

    from tests.seaweed import fresh_bucket, s3_location, start_seaweed
    from tests.tcp_gate import tcp_gate

    server = start_seaweed()
    try:
        with fresh_bucket(server) as bucket:
            filler = S3Storage(s3_location(server, bucket, "tree/", max_connections=32))

            async def fill() -> None:
                try:
                    await filler.write_many(sizes)
                finally:
                    await aclose_storage(filler)

            asyncio.run(fill())
            host, port = server.endpoint.removeprefix("http://").rsplit(":", 1)
            with tcp_gate(host, int(port)) as gate:
                through = dataclasses.replace(server, endpoint=f"http://{gate.address}")
                results = measure(
                    lambda: S3Storage(s3_location(through, bucket, "tree/")),
                    args.runs,
                    lambda: sum(gate.requests.values()),
                )
            report("bucket", results, requests=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
