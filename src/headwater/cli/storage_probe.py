"""What ``headwater serve`` says at start about each bucket it is configured to use.

A node with a wrong endpoint, wrong credentials or a missing bucket still starts (the object
store may come back, or be fixed, while it runs: readiness fails until then, and recovers with no
restart). But the operator who just started it must not have to find out from the first failed
upload: each source kept in a bucket is asked once for a listing of its prefix (a read: nothing is
written), all at once and within :data:`PROBE_SECONDS`, and every failure is printed as a warning
naming the source, the bucket URL (never a secret) and the storage's own explanation with its fix.

The probe runs in a forked child process: the S3 client's runtime (threads and connections) must
never exist in the process that then starts the server's workers, which would inherit it broken
(a worker that never stops on SIGTERM, found while building this).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator

from headwater.config.settings import ServePlan
from headwater.storage.base import StorageError
from headwater.storage.location import S3Options, is_s3_url
from headwater.storage.open import aclose_storage, describe, open_storage

__all__ = ["PROBE_SECONDS", "bucket_problems", "warn_about_buckets"]

#: How long the start-up probe waits for every bucket together.
PROBE_SECONDS = 5.0


def _buckets(plan: ServePlan) -> Iterator[tuple[str, str, S3Options | None]]:
    """(``[kind.name]``, storage URL, its ``s3`` options) of every source kept in a bucket."""
    for name, hosted in plan.hosted.items():
        if hosted.storage is not None and is_s3_url(hosted.storage):
            yield f"[hosted.{name}]", hosted.storage, hosted.s3
    for name, proxy in plan.proxies.items():
        if proxy.storage is not None and is_s3_url(proxy.storage):
            yield f"[proxy.{name}]", proxy.storage, proxy.s3
    for name, target in plan.mirrors.items():
        if is_s3_url(target):
            yield f"[mirror.{name}]", target, plan.mirror_s3.get(name)


async def _probe(url: str, s3: S3Options | None) -> str | None:
    storage = open_storage(url, s3=s3)
    try:
        async for _key in storage.iter_keys("state"):
            break
    except StorageError as exc:
        return f"{describe(storage)}: {exc}"
    finally:
        await aclose_storage(storage)
    return None


async def bucket_problems(plan: ServePlan, *, limit: float = PROBE_SECONDS) -> list[str]:
    """One line per source whose bucket cannot be listed now (empty: every bucket answered)."""
    sources = list(_buckets(plan))

    async def one(table: str, url: str, s3: S3Options | None) -> str | None:
        try:
            problem = await asyncio.wait_for(_probe(url, s3), limit)
        except TimeoutError:
            problem = f"{url.split('?', 1)[0]}: no answer within {limit:g} s"
        return None if problem is None else f"{table} storage {problem}"

    found = await asyncio.gather(*(one(*source) for source in sources))
    return [line for line in found if line is not None]


def warn_about_buckets(plan: ServePlan) -> None:
    """Print a warning for each bucket that cannot be reached now (see the module docstring)."""
    if not any(True for _ in _buckets(plan)):
        return
    sys.stderr.flush()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's coverage is not collected
        code = 0
        try:
            for line in asyncio.run(bucket_problems(plan)):
                print(
                    f"headwater: warning: {line}\n"
                    "  The server starts anyway: /health/ready answers 503 and requests that "
                    "need this storage fail with 503 until it answers.",
                    file=sys.stderr,
                    flush=True,
                )
        except BaseException:
            code = 1
        os._exit(code)
    deadline = time.monotonic() + PROBE_SECONDS + 5
    while time.monotonic() < deadline:
        done, _ = os.waitpid(child, os.WNOHANG)
        if done:
            return
        time.sleep(0.02)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
