"""Hot-path cost of a warm page: ``page()`` of a hosted index and of a composed index, in process.

What each request pays before its bytes go out once everything is cached: for a hosted index, the
look at the database's change signal and a dictionary lookup; for a composed index, its rules'
check and asking each consulted source again from its cache. Three cases, each timed over
``--calls`` calls, ``--runs`` times (the median is printed, in microseconds per call):

``signal``          one look at the database's change signal (``Database.generation()``);
``hosted``          ``/priv/simple/acme/`` on the hosted index alone (SQLite database);
``index-hosted``    ``/main/simple/acme/`` on ``main = [priv, pub]`` (priority): priv has it;
``index-proxy``     ``/main/simple/other/``: priv does not, the proxy ``pub`` has it (two sources
                    consulted).

    .venv/bin/python bench/bench_page_hot.py [--calls 20000] [--runs 5] [--settle 6]

``--settle 0`` measures the first seconds after a write, when the SQLite change signal asks
``PRAGMA data_version`` on every call instead of two ``stat()`` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from headwater.db import Database, NewFile
from headwater.policy import Rules
from headwater.policy.rules import SourceSpec
from headwater.repository.hosted import HostedSource
from headwater.repository.index import ComposedIndex
from headwater.repository.proxy import ProxySource
from headwater.simple.names import NormalizedName
from headwater.storage.filesystem import FileStorage
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream


async def _time(call: object, calls: int, runs: int) -> float:
    results = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(calls):
            await call()  # type: ignore[operator]
        results.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(results)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--settle", type=float, default=6.0, help="seconds to wait after the last write (6)"
    )
    args = parser.parse_args()
    corpus = Corpus(files=1)
    corpus.add_release("other", "1.0")
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.connect(f"sqlite:///{Path(tmp) / 'db.sqlite3'}")
        db.upgrade()
        db.add_file(
            "priv",
            "acme",
            NewFile(
                filename="acme-1.0-py3-none-any.whl",
                version="1.0",
                sha256="a" * 64,
                size=10,
                upload_time=datetime(2025, 1, 1, tzinfo=UTC),
                storage_key="x",
            ),
        )
        async with Upstream(corpus) as up:
            hosted = HostedSource("priv", db, FileStorage(Path(tmp) / "hosted"))
            proxy = ProxySource("pub", up.simple_url, FileStorage(Path(tmp) / "proxy"), ttl=3600)
            index = ComposedIndex(
                "main",
                [hosted, proxy],
                Rules(
                    index="main",
                    sources=(SourceSpec("priv", "hosted"), SourceSpec("pub", "proxy")),
                    policy="priority",
                ),
                project_url=lambda source, name: f"http://x/{source}/simple/{name}/",
            )
            acme, other = NormalizedName("acme"), NormalizedName("other")
            for name in (acme, other):
                assert await index.page(name, "json") is not None
            assert await hosted.page(acme, "json") is not None

            async def signal() -> None:
                db.generation()

            cases = {
                # (absent before the change signal existed: the benchmark runs on older code too)
                **({"signal": signal} if hasattr(db, "generation") else {}),
                "hosted": lambda: hosted.page(acme, "json"),
                "index-hosted": lambda: index.page(acme, "json"),
                "index-proxy": lambda: index.page(other, "json"),
            }
            # A real server's database was last written seconds ago; the change signal asks SQLite
            # itself only in the first seconds after a write (then every call pays a statement).
            await asyncio.sleep(args.settle)
            for case, call in cases.items():
                per_call = await _time(call, args.calls, args.runs)
                print(f"{case:14} {per_call:7.2f} µs/call", flush=True)
            await proxy.aclose()
        db.close()


if __name__ == "__main__":
    asyncio.run(main())
