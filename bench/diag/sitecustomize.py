"""Diagnosis of the mint-token latency tail (docs/trusted-publishing.md, "The p99 tail").

Not part of headwater: put this directory on ``PYTHONPATH`` with ``HW_DIAG=DIR`` set and every
Python process of the run (the benchmark and the ``headwater serve`` it starts) loads it. In the
server it times SQLite's ``BEGIN IMMEDIATE`` (the wait for the write lock), the database call of
each mint, and every garbage collection, and appends a summary to ``DIR/diag-<pid>.txt`` every
2,000 write transactions. Variants, each an environment variable:

``HW_FREEZE=1``      ``gc.freeze()`` at the first write (after start-up)
``HW_THREADS=N``     the event loop's default executor gets N threads (the database calls' pool)
``HW_SWITCH=S``      ``sys.setswitchinterval(S)``

    PYTHONPATH=bench/diag HW_DIAG=/tmp/diag .venv/bin/python bench/bench_mint_token.py \\
        --runs 1 --duration 8 --tokens 14000
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import os
import sys
import threading
import time
from typing import Any

_DIR = os.environ.get("HW_DIAG")
_lock = threading.Lock()
_begins: list[float] = []
_mints: list[float] = []
_collections: list[float] = []
_full: list[float] = []
_started = [0.0]


def _q(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))] if values else 0.0


def _dump() -> None:
    begins, mints, gcs = sorted(_begins), sorted(_mints), sorted(_collections)
    with open(f"{_DIR}/diag-{os.getpid()}.txt", "a") as out:
        out.write(
            f"begin {len(begins)}: p50 {_q(begins, 0.5):.2f} p99 {_q(begins, 0.99):.2f} "
            f"p99.9 {_q(begins, 0.999):.2f} max {_q(begins, 1):.1f} ms; mint db call p50 "
            f"{_q(mints, 0.5):.2f} p99 {_q(mints, 0.99):.2f} p99.9 {_q(mints, 0.999):.2f} ms; "
            f"gc {len(gcs)} max {_q(gcs, 1):.1f} ms, full collections (ms) "
            f"{[round(x) for x in _full]}; frozen {gc.get_freeze_count()}\n"
        )


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    took = (time.perf_counter() - _started[0]) * 1e3
    _collections.append(took)
    if info.get("generation") == 2:
        _full.append(took)


def _install() -> None:
    import headwater.db.engine as engine
    import headwater.db.minting as minting

    begin = engine._sqlite_on_begin
    mint = minting.Minting.mint_token
    frozen = [False]

    def timed_begin(conn: Any) -> None:
        if os.environ.get("HW_FREEZE") and not frozen[0]:
            frozen[0] = True
            gc.freeze()
        started = time.perf_counter()
        begin(conn)
        with _lock:
            _begins.append((time.perf_counter() - started) * 1e3)
            if len(_begins) % 2000 == 0:
                _dump()

    def timed_mint(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return mint(self, *args, **kwargs)
        finally:
            with _lock:
                _mints.append((time.perf_counter() - started) * 1e3)

    engine._sqlite_on_begin = timed_begin
    minting.Minting.mint_token = timed_mint  # type: ignore[method-assign]
    gc.callbacks.append(_on_gc)
    if os.environ.get("HW_SWITCH"):
        sys.setswitchinterval(float(os.environ["HW_SWITCH"]))
    if os.environ.get("HW_THREADS"):
        threads = int(os.environ["HW_THREADS"])
        init = concurrent.futures.ThreadPoolExecutor.__init__

        def sized(self: Any, max_workers: Any = None, thread_name_prefix: str = "", *a: Any,
                  **k: Any) -> None:  # fmt: skip
            if max_workers is None and thread_name_prefix == "asyncio":
                max_workers = threads
            init(self, max_workers, thread_name_prefix, *a, **k)

        concurrent.futures.ThreadPoolExecutor.__init__ = sized  # type: ignore[method-assign]


if _DIR:
    with contextlib.suppress(ImportError):  # not headwater's environment
        _install()
