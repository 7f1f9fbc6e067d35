"""Caching proxy benchmark (issue 5): single-flight under load, and warm proxy pages vs a tree.

Everything runs on loopback against the test upstream (``headwater.testing.upstream``, in a thread
of this process, so its per-path request counters can be read):

``flight``  a proxy index served by granian (one worker) with an empty cache; for each of
            ``--flights`` projects, 100 concurrent GETs of its page (pip's Accept header, from
            100 connections at once) while the upstream answers that page 0.3 s late. Counts the
            upstream requests for the page: the target is exactly 1 per project.
``warm``    the same project pages served by granian (one worker) from a warm proxy (TTL one
            hour, every page fetched once first), from a hosted index holding the same files
            (SQLite; the issue's target compares the proxy with it) and from a mirror tree of
            the same corpus (``headwater mirror``), measured with wrk (64 connections, one
            thread, a Lua script cycling through every project page with pip's Accept header);
            ``--runs`` runs of ``--duration`` seconds each, interleaved (the order rotates each
            run) after a 2-second warm-up of each. Reports median requests/s and the ratios
            proxy / hosted (target >= 0.8) and proxy / tree.
``index``   the same pages from an index composed of three sources (two empty directories, then
            the tree: every page comes from the last source) vs the tree alone, interleaved the
            same way (target >= 0.7).

    .venv/bin/python bench/bench_proxy.py [--projects 50] [--flights 5] [--runs 5] [--duration 5]

Needs wrk (``apt-get install -y wrk``). Exit status 1 if a target was missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GRANIAN = ROOT / ".venv" / "bin" / "granian"
JSON = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = f"{JSON}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"

LUA = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local i = 0
local headers = {["Accept"] = "%(accept)s"}
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], headers)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d\\n", summary.requests, summary.duration,
    summary.errors.status))
end
"""


def app_from_env() -> Any:
    """The app granian's worker builds: one index ``bench``, a proxy or a tree (from env)."""
    from headwater.config.settings import ServeSettings
    from headwater.repository.proxy import ProxySource
    from headwater.repository.tree import TreeSource
    from headwater.server.app import IndexApp
    from headwater.storage import FileStorage

    kind = os.environ["BENCH_PROXY_KIND"]
    storage = FileStorage(os.environ["BENCH_PROXY_ROOT"])
    hooks: list[Any] = []
    source: Any
    if kind == "proxy":
        source = ProxySource("bench", os.environ["BENCH_PROXY_UPSTREAM"], storage, ttl=3600)
        hooks.append(source.aclose)
    elif kind == "hosted":
        # The tree's files are where a hosted index keeps them (the same layout); the database
        # next to it lists them (build_hosted).
        from headwater.db import Database
        from headwater.repository.hosted import HostedSource

        database = Database.connect(f"sqlite:///{os.environ['BENCH_PROXY_ROOT']}.sqlite3")
        source = HostedSource("bench", database, storage)
    elif kind == "index":
        # Three sources; the pages come from the last one (two misses first, the worst case of
        # the default priority policy).
        from headwater.policy import Rules, SourceKind, SourceSpec
        from headwater.repository.directory import DirectorySource
        from headwater.repository.index import ComposedIndex

        empty = Path(os.environ["BENCH_PROXY_ROOT"]).parent / "empty"
        (empty / "a").mkdir(parents=True, exist_ok=True)
        (empty / "b").mkdir(parents=True, exist_ok=True)
        members = [
            DirectorySource("a", empty / "a"),
            DirectorySource("b", empty / "b"),
            TreeSource("tree", storage),
        ]
        rules = Rules(
            index="bench",
            sources=(
                SourceSpec(name="a", kind=SourceKind.DIRECTORY),
                SourceSpec(name="b", kind=SourceKind.DIRECTORY),
                SourceSpec(name="tree", kind=SourceKind.MIRROR),
            ),
        )
        source = ComposedIndex(
            "bench", members, rules, project_url=lambda s, p: f"http://bench/{s}/simple/{p}/"
        )
    else:
        source = TreeSource("bench", storage)
    return IndexApp(ServeSettings(), {"bench": source}, default="bench", on_shutdown=hooks)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def granian(kind: str, root: Path, upstream: str) -> Iterator[str]:
    """granian, one worker, serving ``app_from_env`` on a free loopback port."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE),
        "BENCH_PROXY_KIND": kind,
        "BENCH_PROXY_ROOT": str(root),
        "BENCH_PROXY_UPSTREAM": upstream,
    }
    process = subprocess.Popen(
        [
            str(GRANIAN), "--interface", "asgi", "--workers", "1", "--no-ws", "--loop", "auto",
            "--host", "127.0.0.1", "--port", str(port), "--factory", "--log-level", "warning",
            "bench_proxy:app_from_env",
        ],
        env=env, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"granian ({kind}) did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def build_tree(root: Path, upstream_url: str) -> None:
    from headwater.repository.http import HttpRepository, client_session
    from headwater.storage import FileStorage
    from headwater.sync.engine import Mirror

    async def go() -> None:
        async with client_session(connections=8) as session:
            summary = await Mirror(HttpRepository(upstream_url, session), FileStorage(root)).run()
            if not summary.ok:
                raise SystemExit(f"mirror failed: {summary.failed}")

    asyncio.run(go())


def build_hosted(tree: Path) -> None:
    """A hosted index ``bench`` (SQLite at ``<tree>.sqlite3``) holding every file of ``tree``."""
    import json

    from headwater.db import Database
    from headwater.db.records import NewFile
    from headwater.simple.filenames import parse_filename
    from headwater.storage.layout import file_key

    database = Database.connect(f"sqlite:///{tree}.sqlite3")
    try:
        database.upgrade()
        for page in sorted((tree / "web" / "simple").glob("*/index.v1_json")):
            data = json.loads(page.read_bytes())
            for file in data["files"]:
                sha256 = file["hashes"]["sha256"]
                database.add_file(
                    "bench",
                    data["name"],
                    NewFile(
                        filename=file["filename"],
                        version=str(parse_filename(file["filename"]).version),
                        sha256=sha256,
                        size=file["size"],
                        upload_time=datetime.fromisoformat(file["upload-time"]),
                        storage_key=file_key(sha256, file["filename"]),
                        display_name=data["name"],
                    ),
                )
    finally:
        database.close()


async def burst(url: str, count: int) -> list[int]:
    """``count`` concurrent GETs of ``url``, each on its own connection; their statuses."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=count, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.get(url, headers={"Accept": PIP_ACCEPT}) as answer:
                await answer.read()
                return answer.status

        return await asyncio.gather(*(one() for _ in range(count)))


def wrk(url: str, script: Path, duration: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{duration}s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = re.search(r"RESULT (\d+) (\d+) (\d+)", out)
    if found is None:
        raise SystemExit(f"could not read wrk output:\n{out}")
    requests, micros, bad = (int(g) for g in found.groups())
    if bad:
        raise SystemExit(f"{bad} non-2xx answers from {url}")
    return requests / (micros / 1e6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--flights", type=int, default=5, help="projects for the burst test")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    args = parser.parse_args()

    from headwater.testing.corpus import Corpus
    from headwater.testing.upstream import Upstream

    corpus = Corpus.generate(args.projects, releases=3, files=2, seed=2026)
    names = [p.normalized for p in corpus.project_list().projects]
    ok = True
    with tempfile.TemporaryDirectory() as tmp, Upstream(corpus).running() as up:
        work = Path(tmp)
        print(f"load average before: {os.getloadavg()[0]:.2f}")

        # -- single flight ------------------------------------------------------------------
        with granian("proxy", work / "flight", up.simple_url) as url:
            for name in names[: args.flights]:
                up.add_fault("delay", f"/simple/{name}/", delay=0.3)
                started = time.monotonic()
                statuses = asyncio.run(burst(f"{url}/bench/simple/{name}/", 100))
                took = time.monotonic() - started
                upstream = up.requests(f"/simple/{name}/")
                good = statuses.count(200) == 100 and upstream == 1
                ok &= good
                print(
                    f"flight {name}: 100 concurrent requests, {statuses.count(200)} x 200, "
                    f"{upstream} upstream request(s), {took:.2f} s  {'OK' if good else 'MISSED'}"
                )

        # -- warm pages: proxy vs tree ------------------------------------------------------
        tree = work / "tree"
        build_tree(tree, up.simple_url)
        paths = work / "paths.txt"
        paths.write_text("".join(f"/bench/simple/{n}/\n" for n in names))
        script = work / "pages.lua"
        script.write_text(LUA % {"paths": paths, "accept": PIP_ACCEPT})
        build_hosted(tree)
        up.reset_stats()
        with (
            granian("tree", tree, up.simple_url) as tree_url,
            granian("hosted", tree, up.simple_url) as hosted_url,
            granian("proxy", work / "warm", up.simple_url) as proxy_url,
        ):
            for name in names:  # warm the proxy: every page fetched once
                request = urllib.request.Request(
                    f"{proxy_url}/bench/simple/{name}/", headers={"Accept": PIP_ACCEPT}
                )
                with urllib.request.urlopen(request, timeout=10) as answer:
                    answer.read()
            fetched = sum(up.requests(f"/simple/{n}/") for n in names)
            targets = {"tree": tree_url, "hosted": hosted_url, "proxy": proxy_url}
            results: dict[str, list[float]] = {kind: [] for kind in targets}
            for target in targets.values():
                wrk(target, script, 2)  # warm-up, discarded
            order = list(targets)
            for run in range(args.runs):
                for kind in order[run % 3 :] + order[: run % 3]:
                    results[kind].append(wrk(targets[kind], script, args.duration))
                    print(f"run {run + 1} {kind:>6}: {results[kind][-1]:>9,.0f} req/s")
            after = sum(up.requests(f"/simple/{n}/") for n in names)
            # -- a warm page from an index of three sources vs the single-source tree ------------
            with granian("index", tree, up.simple_url) as index_url:
                wrk(index_url, script, 2)  # warm-up, discarded
                composed: list[float] = []
                alone: list[float] = []
                for run in range(args.runs):
                    pair = [("index", index_url, composed), ("tree", tree_url, alone)]
                    for kind, target, into in pair if run % 2 == 0 else pair[::-1]:
                        into.append(wrk(target, script, args.duration))
                        print(f"run {run + 1} {kind:>5}: {into[-1]:>9,.0f} req/s")
        index_ratio = statistics.median(composed) / statistics.median(alone)
        ok &= index_ratio >= 0.7
        print(
            f"warm pages, index of 3 sources vs the tree alone (median): "
            f"{statistics.median(composed):,.0f} vs {statistics.median(alone):,.0f} req/s, "
            f"ratio {index_ratio:.2f} (target >= 0.70) {'OK' if index_ratio >= 0.7 else 'MISSED'}"
        )
        tree_rps = statistics.median(results["tree"])
        hosted_rps = statistics.median(results["hosted"])
        proxy_rps = statistics.median(results["proxy"])
        ratio = proxy_rps / hosted_rps
        ok &= ratio >= 0.8
        print(
            f"warm pages ({len(names)} projects, wrk -c64 -t1, {args.runs} x {args.duration} s, "
            f"median): hosted {hosted_rps:,.0f} req/s, proxy {proxy_rps:,.0f} req/s, "
            f"ratio {ratio:.2f} (target >= 0.80) {'OK' if ratio >= 0.8 else 'MISSED'}; "
            f"tree {tree_rps:,.0f} req/s, proxy / tree {proxy_rps / tree_rps:.2f}"
        )
        print(f"upstream page requests: {fetched} to warm, {after - fetched} during the runs")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
