"""Whatever needs the sizes of a bucket's objects reads them from the listing, not from a
request per object: measuring a tree (the status check), a proxy's eviction scan, the garbage
collector's scan and a store copy (``headwater move``). The requests the storage sends to a real
SeaweedFS are counted by a TCP relay in between (tests/tcp_gate.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from headwater.config.status import StatusSettings
from headwater.db import Database
from headwater.repository._proxy_files import LruCache
from headwater.repository.collector import collect
from headwater.server.metrics import Metrics
from headwater.server.status.service import StatusService
from headwater.storage.open import aclose_storage
from headwater.storage.s3 import S3Storage
from headwater.transfer.objects import copy_store
from tests.seaweed import SeaweedServer, s3_location
from tests.tcp_gate import TcpGate, tcp_gate


@contextlib.contextmanager
def relayed(seaweed: SeaweedServer) -> Iterator[tuple[SeaweedServer, TcpGate]]:
    """``seaweed`` reached through a :class:`TcpGate` that counts the requests sent to it."""
    host, port = seaweed.endpoint.removeprefix("http://").rsplit(":", 1)
    with tcp_gate(host, int(port)) as gate:
        yield dataclasses.replace(seaweed, endpoint=f"http://{gate.address}"), gate


def test_measuring_a_bucket_sends_no_request_per_object(
    seaweed: SeaweedServer, s3_bucket: str, tmp_path: Path
) -> None:
    """A mirror tree of N files in a bucket is measured with its listing (ListObjectsV2: one GET
    per 1000 objects) and no HEAD per object (before: N HEADs; on a full mirror millions of
    requests after every run). The listing's sizes are the objects' sizes."""
    count = 130
    client = seaweed.client()
    sizes = {f"tree/web/packages/{i % 7:02x}/{i}/p-{i}.tar.gz": 100 + i for i in range(count)}
    for key, size in sizes.items():
        client.put_object(Bucket=s3_bucket, Key=key, Body=b"x" * size)
    client.put_object(Bucket=s3_bucket, Key="tree/web/simple/p/index.html", Body=b"not a file")
    client.put_object(Bucket=s3_bucket, Key="tree/web/packages-not/x", Body=b"not under it")

    with relayed(seaweed) as (through, relay):
        storage = S3Storage(s3_location(through, s3_bucket, "tree/"))

        async def go() -> None:
            service = StatusService(
                mirrors={"pypi": storage},
                proxies={},
                settings=StatusSettings(),
                metrics=Metrics(),
                base_url="http://h",
                directory=tmp_path / "status",
            )
            try:
                before = relay.requests.copy()
                checks = await service.check_once()
                measured = relay.requests - before
            finally:
                await service.aclose()
                await aclose_storage(storage)
            tree = checks.trees["pypi"]
            assert (tree.files, tree.bytes) == (count, sum(sizes.values()))
            # The history read is one GET, the listing one more; nothing per object.
            assert measured == Counter({"GET": 1 + math.ceil(count / 1000)}), measured

        asyncio.run(go())


def _fill(seaweed: SeaweedServer, bucket: str, prefix: str, count: int) -> dict[str, int]:
    client = seaweed.client()
    sizes = {f"web/packages/{i % 5:02x}/{i}/q-{i}.whl": 10 + i for i in range(count)}
    for key, size in sizes.items():
        client.put_object(Bucket=bucket, Key=prefix + key, Body=b"y" * size)
    return sizes


def test_eviction_scan_sends_no_request_per_object(seaweed: SeaweedServer, s3_bucket: str) -> None:
    """A proxy's eviction scan in a bucket lists sizes and dates: a scan under the cap sends no
    HEAD; one over it sends requests only for the files it deletes."""
    sizes = _fill(seaweed, s3_bucket, "cache/", 60)
    total = sum(sizes.values())
    with relayed(seaweed) as (through, relay):
        storage = S3Storage(s3_location(through, s3_bucket, "cache/"))

        async def go() -> tuple[int, Counter[str], int, Counter[str]]:
            try:
                before = relay.requests.copy()
                under = await LruCache("c", storage, max_size=total).evict()
                scanned = relay.requests - before
                before = relay.requests.copy()
                over = await LruCache("c", storage, max_size=total // 2).evict()
                return under, scanned, over, relay.requests - before
            finally:
                await aclose_storage(storage)

        under, scanned, over, evicting = asyncio.run(go())
    assert under == 0 and scanned == Counter({"GET": 1}), scanned
    assert 0 < over < len(sizes)
    # Each deletion asks whether the object is there (S3's DELETE does not say), then deletes.
    assert evicting == Counter({"GET": 1, "HEAD": over, "DELETE": over}), evicting


def test_gc_scan_sends_no_request_per_object(
    seaweed: SeaweedServer, s3_bucket: str, tmp_path: Path
) -> None:
    """``headwater gc`` lists the index's objects with their sizes and dates from the listing."""
    sizes = _fill(seaweed, s3_bucket, "hosted/", 40)
    db = Database.connect(f"sqlite:///{tmp_path / 'gc.sqlite3'}")
    db.upgrade()
    with relayed(seaweed) as (through, relay):
        storage = S3Storage(s3_location(through, s3_bucket, "hosted/"))

        async def go() -> tuple[int, int, Counter[str]]:
            try:
                before = relay.requests.copy()
                report = await collect(db, storage, "main", grace=0)
                unreferenced = report.found.unreferenced
                return len(unreferenced), sum(s.size for s in unreferenced), relay.requests - before
            finally:
                await aclose_storage(storage)

        found, found_bytes, sent = asyncio.run(go())
    db.close()
    assert (found, found_bytes) == (len(sizes), sum(sizes.values()))
    assert sent == Counter({"GET": 1}), sent


def test_store_copy_sends_no_request_per_object_it_skips(
    seaweed: SeaweedServer, s3_bucket: str
) -> None:
    """A store copy compares both sides' listings: an object the destination already has with
    the same size costs nothing; one it lacks (or has with another size) is read and written."""
    sizes = _fill(seaweed, s3_bucket, "from/", 30)
    client = seaweed.client()
    for i, key in enumerate(sorted(sizes)):
        if i % 3:  # two thirds already there, one of them with another size
            body = b"y" * (sizes[key] + (1 if i == 1 else 0))
            client.put_object(Bucket=s3_bucket, Key="to/" + key, Body=body)
    with relayed(seaweed) as (through, relay):
        source = S3Storage(s3_location(through, s3_bucket, "from/"))
        destination = S3Storage(s3_location(through, s3_bucket, "to/"))

        async def go() -> tuple[int, int, Counter[str]]:
            try:
                before = relay.requests.copy()
                report = await copy_store("t", source, destination, workers=4)
                assert report.failed == []
                return report.copied, report.skipped, relay.requests - before
            finally:
                await aclose_storage(source)
                await aclose_storage(destination)

        copied, skipped, sent = asyncio.run(go())
    assert (copied, skipped) == (11, 19)
    # Two listings, then one GET and one PUT for each object copied; no HEAD.
    assert sent == Counter({"GET": 2 + copied, "PUT": copied}), sent
    for key, size in sizes.items():
        got = client.get_object(Bucket=s3_bucket, Key="to/" + key)["Body"].read()
        assert got == b"y" * size
