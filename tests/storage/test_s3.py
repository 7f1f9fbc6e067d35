"""What only the S3 storage does, against a real SeaweedFS (the shared contract is in
test_storage.py, parametrized over every storage including S3)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from headwater.storage import NotFound, StorageError
from headwater.storage.location import S3Location, S3Options
from headwater.storage.s3 import S3Storage, tree_content_type
from tests.seaweed import SeaweedServer, s3_location


def run(storage: S3Storage, work: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            return await work()
        finally:
            await storage.aclose()

    return asyncio.run(main())


def _uploads(seaweed: SeaweedServer, bucket: str) -> list[str]:
    return [
        u["Key"] for u in seaweed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    ]


def _objects(seaweed: SeaweedServer, bucket: str) -> list[str]:
    listed = seaweed.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def test_multipart_write_streams_and_publishes_at_the_end(
    seaweed: SeaweedServer, s3_bucket: str
) -> None:
    s3 = S3Storage(s3_location(seaweed, s3_bucket, "p/"))
    data = os.urandom(1 << 20) * 13  # 13 MiB: three parts of 5 MiB, 5 MiB and 3 MiB

    async def go() -> None:
        async with s3.writer("web/packages/aa/bb/cc/big.whl") as w:
            for offset in range(0, len(data), 1 << 20):
                await w.write(data[offset : offset + (1 << 20)])
                # Parts are uploaded while writing, but nothing is visible before the end.
                assert await s3.stat("web/packages/aa/bb/cc/big.whl") is None
            assert _uploads(seaweed, s3_bucket) == ["p/web/packages/aa/bb/cc/big.whl"]
        assert _uploads(seaweed, s3_bucket) == []
        assert await s3.digest("web/packages/aa/bb/cc/big.whl") == (
            hashlib.sha256(data).hexdigest(),
            len(data),
        )
        ranged = b"".join(
            [
                c
                async for c in s3.open_read(
                    "web/packages/aa/bb/cc/big.whl", start=(5 << 20) - 3, end=(5 << 20) + 5
                )
            ]
        )
        assert ranged == data[(5 << 20) - 3 : (5 << 20) + 5]
        assert (
            b"".join(
                [c async for c in s3.open_read("web/packages/aa/bb/cc/big.whl", start=len(data))]
            )
            == b""
        )

    run(s3, go)
    assert _objects(seaweed, s3_bucket) == ["p/web/packages/aa/bb/cc/big.whl"]


@pytest.mark.parametrize("how", ["exception", "abort", "cancel"])
def test_abandoned_multipart_write_is_aborted(
    seaweed: SeaweedServer, s3_bucket: str, how: str
) -> None:
    """An exception, an abort() or a cancellation after parts were sent: no object, no upload."""
    s3 = S3Storage(s3_location(seaweed, s3_bucket))
    started = asyncio.Event()

    async def write() -> None:
        async with s3.writer("big") as w:
            await w.write(b"x" * (11 << 20))  # two parts sent (one may be in flight)
            started.set()
            if how == "exception":
                raise RuntimeError("hash mismatch")
            if how == "abort":
                w.abort()
                return
            await asyncio.sleep(3600)

    async def go() -> None:
        task = asyncio.create_task(write())
        await started.wait()
        if how == "cancel":
            task.cancel()
        with (
            pytest.raises((RuntimeError, asyncio.CancelledError)) if how != "abort" else _nothing()
        ):
            await task
        assert await s3.stat("big") is None

    run(s3, go)
    assert _uploads(seaweed, s3_bucket) == []
    assert _objects(seaweed, s3_bucket) == []


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_content_types_per_key(seaweed: SeaweedServer, s3_bucket: str) -> None:
    s3 = S3Storage(s3_location(seaweed, s3_bucket))
    keys = {
        "web/simple/foo/index.v1_json": "application/vnd.pypi.simple.v1+json",
        "web/simple/foo/index.v1_html": "application/vnd.pypi.simple.v1+html",
        "web/simple/foo/index.html": "text/html; charset=utf-8",
        "web/packages/aa/bb/cc/foo-1.0-py3-none-any.whl.metadata": "text/plain; charset=utf-8",
        "web/packages/aa/bb/cc/foo-1.0-py3-none-any.whl": "application/octet-stream",
        "web/last-modified": "text/plain; charset=utf-8",
    }

    async def go() -> None:
        await s3.write_many([(key, b"x") for key in keys])
        async with s3.writer("web/packages/aa/bb/cc/big.whl") as w:
            await w.write(b"y" * (6 << 20))  # multipart: the type is set when the upload starts
            # (SeaweedFS guesses a type from the extension of multipart objects instead, e.g.
            # application/gzip for .tar.gz; AWS keeps the one given)

    run(s3, go)
    client = seaweed.client()
    for key, expected in {
        **keys,
        "web/packages/aa/bb/cc/big.whl": "application/octet-stream",
    }.items():
        assert client.head_object(Bucket=s3_bucket, Key=key)["ContentType"] == expected, key
        assert tree_content_type(key) == expected


def test_listing_is_paginated(seaweed: SeaweedServer, s3_bucket: str) -> None:
    s3 = S3Storage(s3_location(seaweed, s3_bucket, "deep/prefix/"))
    s3.list_page_size = 7  # batches of 7 handed on
    # S3 answers at most 1,000 keys per ListObjectsV2 page: 1,010 take two, the second asked for
    # with the first's continuation token.
    keys = [f"web/simple/p{i:04d}/index.html" for i in range(1010)]

    async def go() -> list[str]:
        await s3.write_many([(k, b"1") for k in keys])
        await s3.write_bytes("state/serial", b"9")
        return sorted([k async for k in s3.iter_keys("web/simple")])

    assert run(s3, go) == keys


def test_stored_sha256_is_trusted_only_when_allowed(seaweed: SeaweedServer, s3_bucket: str) -> None:
    # The object's bytes are changed behind headwater's back (a copy keeps the old metadata).
    setup = S3Storage(s3_location(seaweed, s3_bucket))
    run(setup, lambda: setup.write_bytes("f", b"original"))
    client = seaweed.client()
    head = client.head_object(Bucket=s3_bucket, Key="f")
    assert head["Metadata"]["sha256"] == hashlib.sha256(b"original").hexdigest()
    client.put_object(Bucket=s3_bucket, Key="f", Body=b"tampered", Metadata=head["Metadata"])
    careful = S3Storage(s3_location(seaweed, s3_bucket))
    trusting = S3Storage(s3_location(seaweed, s3_bucket, trust_stored_sha256=True))
    assert run(careful, lambda: careful.digest("f")) == (hashlib.sha256(b"tampered").hexdigest(), 8)
    assert run(trusting, lambda: trusting.digest("f")) == (
        hashlib.sha256(b"original").hexdigest(),
        8,
    )


def test_presigned_url_reads_without_credentials(seaweed: SeaweedServer, s3_bucket: str) -> None:
    s3 = S3Storage(s3_location(seaweed, s3_bucket, "x/"))

    async def go() -> str:
        await s3.write_bytes("web/packages/a/f.whl", b"wheel bytes")
        return await s3.presigned_url("web/packages/a/f.whl", expires=60)

    url = run(s3, go)
    assert seaweed.secret_key not in url
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == b"wheel bytes"


def _errors_of(storage: S3Storage) -> list[str]:
    """The messages of every operation's failure."""

    async def go() -> list[str]:
        messages = []
        for op in (
            lambda: storage.read_bytes("web/x"),
            lambda: storage.stat("web/x"),
            lambda: storage.write_bytes("web/x", b"1"),
            lambda: storage.delete("web/x"),
            lambda: _drain(storage.iter_keys("web")),
            lambda: _drain(storage.open_read("web/x")),
        ):
            with pytest.raises(StorageError) as caught:
                await op()
            assert not isinstance(caught.value, NotFound)
            messages.append(str(caught.value))
        return messages

    return list(run(storage, go))


async def _drain(items: Any) -> None:
    async for _ in items:
        pass


def test_missing_bucket_is_named(seaweed: SeaweedServer) -> None:
    storage = S3Storage(s3_location(seaweed, "hw-no-such-bucket"))
    for message in _errors_of(storage):
        assert "'hw-no-such-bucket'" in message and seaweed.endpoint in message
        assert seaweed.secret_key not in message


def test_wrong_credentials_are_access_denied_without_the_secret(
    seaweed: SeaweedServer, s3_bucket: str
) -> None:
    secret = "wrong-secret-" + "z" * 20
    location = S3Location(
        bucket=s3_bucket,
        options=S3Options(
            endpoint=seaweed.endpoint,
            addressing_style="path",
            access_key_id=seaweed.access_key,
            secret_access_key=secret,
            allow_plaintext_secrets=True,
            max_attempts=1,
        ),
    )
    storage = S3Storage(location)
    for message in _errors_of(storage):
        assert "access denied" in message or "refused" in message, message
        assert secret not in message and seaweed.secret_key not in message
    assert (
        secret not in repr(storage)
        and secret not in repr(location)
        and secret not in str(location.options)
    )


def test_unreachable_endpoint_is_named() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    location = S3Location(
        bucket="bucket",
        options=S3Options(
            endpoint=f"http://127.0.0.1:{port}",
            access_key_id="AKIA",
            secret_access_key="s3cr3t-value",
            allow_plaintext_secrets=True,
            max_attempts=1,
            connect_timeout=2,
        ),
    )
    for message in _errors_of(S3Storage(location)):
        assert f"http://127.0.0.1:{port}" in message and "s3cr3t-value" not in message


def test_a_killed_writer_leaves_no_object(seaweed: SeaweedServer, s3_bucket: str) -> None:
    """SIGKILL in the middle of a multipart write: no object at the key (the incomplete upload is
    the lifecycle rule's to clean; it is invisible to readers)."""
    script = f"""
import asyncio, os, signal
from headwater.storage.s3 import S3Storage
from headwater.storage.location import S3Location, S3Options

async def main():
    s3 = S3Storage(S3Location(bucket={s3_bucket!r}, options=S3Options(
        endpoint={seaweed.endpoint!r}, addressing_style="path", access_key_id={seaweed.access_key!r},
        secret_access_key={seaweed.secret_key!r}, allow_plaintext_secrets=True, part_size=5 << 20)))
    async with s3.writer("web/packages/ab/cd/ef/big.whl") as w:
        await w.write(b"x" * (11 << 20))
        await asyncio.sleep(1)
        os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], check=False, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert _objects(seaweed, s3_bucket) == []
    assert _uploads(seaweed, s3_bucket) == ["web/packages/ab/cd/ef/big.whl"]


def test_a_streamed_write_holds_a_bounded_number_of_parts(
    seaweed: SeaweedServer, s3_bucket: str
) -> None:
    """Memory of a multipart write does not grow with the object: 60 MiB through 5 MiB parts
    peaks at three parts (the one being filled, the one joined, the one in flight), measured with
    tracemalloc."""
    import tracemalloc

    s3 = S3Storage(s3_location(seaweed, s3_bucket))
    chunk = os.urandom(1 << 20)

    async def go() -> int:
        # The multipart client (imported on the first write that outgrows a part) and its
        # connections exist first.
        await s3.write_bytes("warm", b"x" * ((5 << 20) + 1))
        tracemalloc.start()
        try:
            async with s3.writer("big") as w:
                for _ in range(60):
                    await w.write(chunk)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak = run(s3, go)
    # Three parts (the chunks of the next part, the joined part, the part in flight) and change;
    # a growing bytearray with copies sliced off it took four (20.2 MiB; now 15.7 MiB).
    assert peak < 3 * (5 << 20) + (3 << 20), f"peak {peak / 2**20:.1f} MiB for 5 MiB parts"
    assert seaweed.client().head_object(Bucket=s3_bucket, Key="big")["ContentLength"] == 60 << 20


def _silent_endpoint() -> tuple[str, Callable[[], None]]:
    """An endpoint that accepts connections, reads the requests and never answers (a hung store)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)  # read nothing back, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()

    return f"http://127.0.0.1:{server.getsockname()[1]}", close


def test_a_silent_endpoint_times_out_with_a_clear_error() -> None:
    """Every small-object operation against a store that accepts and never answers fails after
    read_timeout with a StorageError saying so (not a hang, not a traceback)."""
    endpoint, close = _silent_endpoint()
    location = S3Location(
        bucket="bucket",
        options=S3Options(
            endpoint=endpoint,
            addressing_style="path",
            access_key_id="AKIA",
            secret_access_key="s3cr3t-value",
            allow_plaintext_secrets=True,
            max_attempts=1,
            connect_timeout=1,
            read_timeout=1,
        ),
    )
    started = time.monotonic()
    try:
        messages = _errors_of(S3Storage(location))
    finally:
        close()
    seconds = time.monotonic() - started
    for message in messages:
        assert "did not answer in time (1 s)" in message and endpoint in message, message
        assert "s3cr3t-value" not in message
    assert seconds < 6 * 10  # six operations, each cut after about a second (and retries off)


def test_write_many_writes_concurrently(seaweed: SeaweedServer, s3_bucket: str) -> None:
    """S3 has no batch PUT: write_many sends its items concurrently (one after the other, a
    mirror's pages waited on the store's latency once per page), bounded by max_connections."""

    class Counting(S3Storage):
        in_flight = 0
        peak = 0

        async def write_bytes(self, key: str, data: bytes) -> None:
            Counting.in_flight += 1
            Counting.peak = max(Counting.peak, Counting.in_flight)
            try:
                await asyncio.sleep(0.01)  # all start before any ends
                await super().write_bytes(key, data)
            finally:
                Counting.in_flight -= 1

    s3 = Counting(s3_location(seaweed, s3_bucket, max_connections=8))
    items = [(f"web/simple/p{i}/index.html", f"page {i}".encode()) for i in range(40)]
    items.append(("web/simple/p0/index.html", b"later"))  # given twice: the later data wins

    async def go() -> dict[str, bytes]:
        await s3.write_many(items)
        return {key: await s3.read_bytes(key) for key, _ in items}

    stored = run(s3, go)
    assert Counting.peak == 8
    assert stored["web/simple/p0/index.html"] == b"later"
    assert stored["web/simple/p39/index.html"] == b"page 39"


def test_write_many_failure_is_one_storage_error(seaweed: SeaweedServer) -> None:
    """A concurrent batch that fails raises the StorageError itself (what callers catch), not an
    exception group."""
    storage = S3Storage(s3_location(seaweed, "hw-no-such-bucket"))
    with pytest.raises(StorageError) as caught:
        run(storage, lambda: storage.write_many([("a", b"1"), ("b", b"2"), ("c", b"3")]))
    assert "'hw-no-such-bucket'" in str(caught.value) and "does not exist" in str(caught.value)


def test_processes_that_used_the_storage_exit_cleanly(
    seaweed: SeaweedServer, s3_bucket: str
) -> None:
    """A command that used the S3 storage exits with its own status. obstore's ``*_async`` calls
    finish on obstore's runtime threads, which touch the interpreter: one still doing so when the
    process exits aborted it (SIGABRT in 1 to 4 exits of 10 here, after the work had succeeded).
    The storage runs obstore's blocking calls on threads of its own, joined before exit."""
    script = f"""
import asyncio, sys
from headwater.storage.s3 import S3Storage
from headwater.storage.location import S3Location, S3Options

s3 = S3Storage(S3Location(bucket={s3_bucket!r}, prefix=f"exit{{sys.argv[1]}}/", options=S3Options(
    endpoint={seaweed.endpoint!r}, addressing_style="path", access_key_id={seaweed.access_key!r},
    secret_access_key={seaweed.secret_key!r}, allow_plaintext_secrets=True)))

async def main():
    await s3.write_many([(f"k{{i}}", b"x") for i in range(8)])
    assert await s3.read_bytes("k1") == b"x"
    assert await s3.stat("missing") is None
    assert len([k async for k in s3.iter_keys()]) == 8
    await s3.write_bytes("last", b"y")  # the exit follows a request at once

asyncio.run(main())
"""
    from concurrent.futures import ThreadPoolExecutor

    def exit_code(run: int) -> int:
        command = [sys.executable, "-c", script, str(run)]
        return subprocess.run(command, check=False, timeout=120).returncode

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(exit_code, range(24)))
    assert codes == [0] * 24


def test_no_credentials_anywhere_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    storage = S3Storage(
        S3Location(
            bucket="bucket",
            options=S3Options(endpoint="http://127.0.0.1:9", region="us-east-1", max_attempts=1),
        )
    )
    with pytest.raises(StorageError, match="no usable S3 credentials: set AWS_ACCESS_KEY_ID"):
        run(storage, lambda: storage.write_bytes("web/x", b"1"))
    named = S3Storage(
        S3Location(
            bucket="bucket",
            options=S3Options(endpoint="http://127.0.0.1:9", profile="nosuch", max_attempts=1),
        )
    )
    with pytest.raises(StorageError, match=r"profile \(nosuch\) could not be found"):
        run(named, lambda: named.read_bytes("web/x"))
