"""The stored objects of an installation: which stores it has, copying one store to another, and
checking that every object arrived whole.

An installation keeps bytes in **stores**, each a :class:`~headwater.storage.base.Storage`:
one per hosted index (``hosted/NAME``: uploads and their ``.metadata``), one per proxy
(``proxy/NAME``: its cache) and one per mirror tree (``mirror/NAME``). The store's name is the same
on both sides of a move, whatever each side's storage is (a directory or a bucket), so a store of
one configuration is copied into the store of the same name of the other.

Objects are copied streaming (never whole in memory) and hashed while they are read; a copy that
fails is aborted, so a destination never shows half an object. Copying is idempotent: an object the
destination already has with the same size is not copied again (a resumed move), and the check that
follows compares the SHA-256 of every object on both sides, so a wrong object is never trusted
because of its size.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Awaitable, Callable

import msgspec

from headwater.assembly import hosted_storage, proxy_storage
from headwater.config.settings import ServePlan
from headwater.storage.base import NotFound, Storage, StorageError
from headwater.storage.open import aclose_storage, open_storage

__all__ = [
    "Store",
    "StoreCheck",
    "StoreCopy",
    "check_store",
    "close_stores",
    "copy_store",
    "stores",
]


class Store(msgspec.Struct, frozen=True):
    """A named place an installation keeps objects in."""

    name: str
    storage: Storage


def stores(plan: ServePlan, *, proxies: bool = True, mirrors: bool = False) -> list[Store]:
    """The stores of ``plan``: every hosted index's, and (by default) every proxy's cache; mirror
    trees only when asked (they are often copied with rsync, or re-mirrored, instead)."""
    found = [Store(f"hosted/{name}", hosted_storage(plan, name)) for name in sorted(plan.hosted)]
    if proxies:
        found += [
            Store(f"proxy/{name}", proxy_storage(plan, name)) for name in sorted(plan.proxies)
        ]
    if mirrors:
        found += [
            Store(f"mirror/{name}", _mirror_storage(target))
            for name, target in sorted(plan.mirrors.items())
        ]
    return found


def _mirror_storage(target: str) -> Storage:
    return open_storage(target)


async def close_stores(found: list[Store]) -> None:
    """Close what the stores hold open (an S3 client's connections)."""
    for store in found:
        await aclose_storage(store.storage)


class StoreCopy(msgspec.Struct):
    """What copying one store did."""

    store: str
    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0
    failed: list[str] = msgspec.field(default_factory=list)


class StoreCheck(msgspec.Struct):
    """What checking one store against another found."""

    store: str
    checked: int = 0
    checked_bytes: int = 0
    missing: list[str] = msgspec.field(default_factory=list)
    different: list[str] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.different


async def copy_object(source: Storage, destination: Storage, key: str) -> tuple[str, int]:
    """Stream ``key`` from ``source`` to ``destination``; return its sha256 and size as read."""
    digest = hashlib.sha256()
    size = 0
    async with destination.writer(key) as writer:
        async for chunk in source.open_read(key):
            digest.update(chunk)
            size += len(chunk)
            await writer.write(chunk)
    return digest.hexdigest(), size


async def _bounded(jobs: list[Callable[[], Awaitable[None]]], workers: int) -> None:
    queue: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            await job()

    await asyncio.gather(*(worker() for _ in range(max(1, workers))))


async def copy_store(
    name: str,
    source: Storage,
    destination: Storage,
    *,
    workers: int = 8,
    keys: list[str] | None = None,
) -> StoreCopy:
    """Copy every object of ``source`` (or just ``keys``) into ``destination``, skipping those the
    destination has with the same size. A failing object is named in ``failed``; the others go on."""
    report = StoreCopy(store=name)
    listed: dict[str, int] | None = None
    present: dict[str, int] = {}
    if keys is None:
        # Both sides' sizes from their listings: no stat (an S3 HEAD) per object on either side.
        listed = {key: stat.size async for key, stat in source.iter_stats()}
        present = {key: stat.size async for key, stat in destination.iter_stats()}
        keys = list(listed)

    async def one(key: str) -> None:
        try:
            if listed is not None:
                want = listed[key]
                have = present.get(key)
            else:
                found, wanted = await asyncio.gather(destination.stat(key), source.stat(key))
                if wanted is None:
                    report.failed.append(f"{key}: gone from the source during the copy")
                    return
                want, have = wanted.size, None if found is None else found.size
            if have == want:
                report.skipped += 1
                return
            _, size = await copy_object(source, destination, key)
        except NotFound:
            report.failed.append(f"{key}: gone from the source during the copy")
            return
        except (StorageError, OSError) as exc:
            report.failed.append(f"{key}: {exc}")
            return
        report.copied += 1
        report.copied_bytes += size

    await _bounded([functools.partial(one, key) for key in sorted(keys)], workers)
    report.failed.sort()
    return report


async def check_store(
    name: str, source: Storage, destination: Storage, *, workers: int = 8
) -> StoreCheck:
    """Compare every object of ``source`` with ``destination`` by SHA-256 and size."""
    report = StoreCheck(store=name)
    keys = sorted([key async for key in source.iter_keys()])

    async def one(key: str) -> None:
        try:
            want = await source.digest(key)
        except NotFound:
            return  # gone from the source meanwhile: nothing to compare
        try:
            have = await destination.digest(key)
        except NotFound:
            report.missing.append(key)
            return
        report.checked += 1
        report.checked_bytes += want[1]
        if have != want:
            report.different.append(key)

    await _bounded([functools.partial(one, key) for key in keys], workers)
    report.missing.sort()
    report.different.sort()
    return report
