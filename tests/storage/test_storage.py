"""The Storage contract, run against every implementation; then what only the file system does."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.storage import (
    FileStorage,
    InvalidKey,
    MemoryStorage,
    NotFound,
    Storage,
    _batch,
    filesystem,
)
from headwater.storage.open import aclose_storage
from headwater.storage.s3 import S3Storage
from tests.seaweed import s3_location

# Storages whose client belongs to the event loop of one run() (an S3 client's connections):
# closed at the end of each run, as the lifespan that owns a storage closes it.
_OPEN: list[Storage] = []


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def main() -> Any:
        try:
            return await coro
        finally:
            for storage in _OPEN:
                await aclose_storage(storage)

    return asyncio.run(main())


@pytest.fixture(params=["memory", "filesystem", "filesystem-named-temps", "s3"])
def storage(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Storage]:
    if request.param == "memory":
        yield MemoryStorage()
        return
    if request.param == "s3":  # a real SeaweedFS, a fresh bucket, keys under a prefix
        bucket = request.getfixturevalue("s3_bucket")
        s3 = S3Storage(s3_location(request.getfixturevalue("seaweed"), bucket, "tree/"))
        _OPEN.append(s3)
        try:
            yield s3
        finally:
            _OPEN.remove(s3)
        return
    if request.param == "filesystem-named-temps":  # as where O_TMPFILE does not exist
        monkeypatch.setattr(filesystem, "_O_TMPFILE", 0)
    yield FileStorage(tmp_path / "root")


async def _collect(storage: Storage, prefix: str = "") -> list[str]:
    return sorted([key async for key in storage.iter_keys(prefix)])


def test_write_read_stat_delete(storage: Storage) -> None:
    async def go() -> None:
        await storage.write_bytes("web/simple/foo/index.html", b"<html>")
        assert await storage.read_bytes("web/simple/foo/index.html") == b"<html>"
        st = await storage.stat("web/simple/foo/index.html")
        assert st is not None and st.size == 6
        await storage.write_bytes("web/simple/foo/index.html", b"new")
        assert await storage.read_bytes("web/simple/foo/index.html") == b"new"
        assert await storage.delete("web/simple/foo/index.html") is True
        assert await storage.delete("web/simple/foo/index.html") is False
        assert await storage.stat("web/simple/foo/index.html") is None
        with pytest.raises(NotFound, match=r"web/simple/foo/index\.html"):
            await storage.read_bytes("web/simple/foo/index.html")

    run(go())


def test_delete_many_removes_each_key_and_says_which_existed(storage: Storage) -> None:
    async def go() -> None:
        keys = [f"web/packages/ab/cd/ef{i}/f{i}.whl" for i in range(4)]
        await storage.write_many([(key, b"x") for key in keys[:3]])
        asked = [keys[2], keys[3], keys[0], "web/packages/zz/f.whl", keys[2]]
        assert await storage.delete_many(asked) == [True, False, True, False, False]
        assert await _collect(storage, "web/packages") == [keys[1]]
        assert await storage.delete_many([]) == []
        # A bad key anywhere in the list: refused before anything is removed.
        with pytest.raises(InvalidKey):
            await storage.delete_many([keys[1], "../escape"])
        assert await _collect(storage, "web/packages") == [keys[1]]

    run(go())


def test_streaming_write_and_ranged_read(storage: Storage) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, crosses the write buffer

    async def go() -> None:
        async with storage.writer("web/packages/ab/cd/ef/big.whl") as w:
            for offset in range(0, len(data), 10_000):
                await w.write(data[offset : offset + 10_000])
        whole = b"".join(
            [c async for c in storage.open_read("web/packages/ab/cd/ef/big.whl", chunk_size=7000)]
        )
        assert whole == data
        part = b"".join(
            [
                c
                async for c in storage.open_read(
                    "web/packages/ab/cd/ef/big.whl", start=100, end=5000
                )
            ]
        )
        assert part == data[100:5000]

    run(go())


def test_failed_write_leaves_nothing(storage: Storage) -> None:
    async def go() -> None:
        await storage.write_bytes("a/keep", b"old")
        with pytest.raises(RuntimeError):
            async with storage.writer("a/keep") as w:
                await w.write(b"half")
                raise RuntimeError("download broke")
        assert await storage.read_bytes("a/keep") == b"old"
        with pytest.raises(RuntimeError):
            async with storage.writer("a/new") as w:
                await w.write(b"half")
                raise RuntimeError("download broke")
        assert await storage.stat("a/new") is None
        assert await _collect(storage) == ["a/keep"]

    run(go())


def test_aborted_write_publishes_nothing(storage: Storage) -> None:
    async def go() -> None:
        async with storage.writer("x/y") as w:
            await w.write(b"bad bytes")
            w.abort()  # e.g. the hash did not match
        assert await storage.stat("x/y") is None

    run(go())


def test_iter_keys_by_prefix(storage: Storage) -> None:
    async def go() -> None:
        for key in [
            "web/simple/a/index.html",
            "web/simple/b/index.html",
            "web/packages/x",
            "state/serial",
        ]:
            await storage.write_bytes(key, b"1")
        assert await _collect(storage, "web/simple") == [
            "web/simple/a/index.html",
            "web/simple/b/index.html",
        ]
        assert await _collect(storage, "web/simple/") == [
            "web/simple/a/index.html",
            "web/simple/b/index.html",
        ]
        assert len(await _collect(storage)) == 4

    run(go())


async def _stats(storage: Storage, prefix: str = "") -> dict[str, tuple[int, float]]:
    found: dict[str, tuple[int, float]] = {}
    async for key, stat in storage.iter_stats(prefix):
        assert key not in found, f"{key} listed twice"
        found[key] = (stat.size, stat.mtime)
    return found


# Nested keys of several sizes, and names that share a prefix without being under it.
_TREE = {
    "web/simple/a/index.html": b"",
    "web/simple/b/index.html": b"22",
    "web/simple-extra/c": b"333",
    "web/packages/ab/cd/x-1.0.tar.gz": b"4" * 4000,
    "web/packages/ab/cd/x-1.0.tar.gz.metadata": b"55555",
    "web/packages/ef/y-2.0-py3-none-any.whl": b"6" * 70_000,
    "state/serial": b"7",
}


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "web",
        "web/",
        "web/simple",
        "web/simple/",
        "web/sim",
        "web/packages/ab",
        "web/packages/ab/cd/x-1.0.tar.gz",
        "state",
        "nothing/here",
    ],
)
def test_iter_stats_lists_what_iter_keys_and_stat_find(storage: Storage, prefix: str) -> None:
    """iter_stats yields exactly iter_keys' keys, each with the size stat() gives (and its mtime:
    S3's HEAD answers whole seconds, its listing milliseconds), for any prefix."""

    async def go() -> None:
        assert await _stats(storage, prefix) == {}  # an empty storage lists nothing
        await storage.write_many(list(_TREE.items()))
        listed = await _stats(storage, prefix)
        keys = await _collect(storage, prefix)
        assert sorted(listed) == keys
        for key in keys:
            stat = await storage.stat(key)
            assert stat is not None
            assert listed[key][0] == stat.size == len(_TREE[key])
            assert abs(listed[key][1] - stat.mtime) < 1.0
        expected = (
            {k for k in _TREE if k.startswith(prefix.strip("/") + "/")}
            if prefix.strip("/")
            else set(_TREE)
        )
        assert set(listed) == expected

    run(go())


def test_iter_stats_after_deletes_and_replacements(storage: Storage) -> None:
    """A replaced object lists with its new size; a deleted one is gone."""

    async def go() -> None:
        await storage.write_many(list(_TREE.items()))
        await storage.write_bytes("web/simple/b/index.html", b"longer now")
        await storage.delete("web/packages/ab/cd/x-1.0.tar.gz")
        listed = await _stats(storage, "web")
        assert listed["web/simple/b/index.html"][0] == 10
        assert "web/packages/ab/cd/x-1.0.tar.gz" not in listed
        assert len(listed) == 5

    run(go())


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a\\b", "a\x00b", "a\nb"]
)
def test_unsafe_keys_refused(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKey):
        run(storage.write_bytes(key, b"x"))
    with pytest.raises(InvalidKey):
        run(storage.read_bytes(key))


# --- file system only -----------------------------------------------------------------------------


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_unnamed_files_until_published(tmp_path: Path) -> None:
    if not filesystem._O_TMPFILE:
        pytest.fail("O_TMPFILE is missing: headwater's default write path needs Linux")
    fs = FileStorage(tmp_path)

    async def go() -> None:
        async with fs.writer("web/simple/index.html") as w:
            await w.write(b"x" * (2 << 20))  # past the write buffer: bytes are on disk
            # While writing, nothing has a name anywhere: not under web/, not in the temp dir.
            assert _all_files(tmp_path) == []
        assert (tmp_path / "web/simple/index.html").read_bytes() == b"x" * (2 << 20)
        assert _all_files(tmp_path) == ["web/simple/index.html"]
        assert fs._tmpfile  # the unnamed-file path was taken, not the fallback

    run(go())


def test_replacing_a_key_is_atomic_and_leaves_no_temp(storage: Storage, tmp_path: Path) -> None:
    async def go() -> None:
        await storage.write_bytes("web/simple/a/index.html", b"old")
        await storage.write_many([("web/simple/a/index.html", b"new"), ("web/simple/b/x", b"b")])
        async with storage.writer("web/simple/a/index.html") as w:
            await w.write(b"newer")
        assert await storage.read_bytes("web/simple/a/index.html") == b"newer"
        assert await _collect(storage) == ["web/simple/a/index.html", "web/simple/b/x"]
        if isinstance(storage, FileStorage):  # linked under a temp name, then renamed over
            assert _all_files(tmp_path / "root") == ["web/simple/a/index.html", "web/simple/b/x"]

    run(go())


def test_named_temp_files_live_outside_the_tree_and_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filesystem, "_O_TMPFILE", 0)  # a system without unnamed files
    fs = FileStorage(tmp_path)

    async def go() -> None:
        async with fs.writer("web/simple/index.html") as w:
            await w.write(b"partial")
            # While writing, nothing is visible under web/ yet.
            assert not (tmp_path / "web/simple/index.html").exists()
            temps = list((tmp_path / ".headwater-tmp").iterdir())
            assert len(temps) == 1 and temps[0].read_bytes() == b""  # buffered, not yet flushed
        assert (tmp_path / "web/simple/index.html").read_bytes() == b"partial"
        assert list((tmp_path / ".headwater-tmp").iterdir()) == []
        assert await _collect(fs) == ["web/simple/index.html"]  # temp dir is never listed

    run(go())


def test_file_system_without_unnamed_files_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open
    refused: list[str] = []

    def no_tmpfile(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if filesystem._O_TMPFILE and flags & filesystem._O_TMPFILE == filesystem._O_TMPFILE:
            refused.append(str(path))
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_tmpfile)
    fs = FileStorage(tmp_path)

    async def go() -> None:
        await fs.write_bytes("web/a/f", b"1")
        await fs.write_bytes("web/b/g", b"2")
        assert await fs.read_bytes("web/a/f") == b"1" and await fs.read_bytes("web/b/g") == b"2"

    run(go())
    assert len(refused) == (1 if filesystem._O_TMPFILE else 0)  # asked once, then remembered
    assert _all_files(tmp_path) == ["web/a/f", "web/b/g"]


def test_a_killed_writer_leaves_nothing(tmp_path: Path) -> None:
    """SIGKILL in the middle of a streamed write: no file at the key, none in the temp dir."""
    script = f"""
import asyncio, os, signal
from headwater.storage import FileStorage

async def main():
    fs = FileStorage({str(tmp_path)!r})
    async with fs.writer("web/packages/ab/cd/ef/big.whl") as w:
        await w.write(b"x" * (3 << 20))
        await w.flush()
        os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert _all_files(tmp_path) == []
    assert FileStorage(tmp_path).clean_temp() == 0


def test_temp_dir_is_not_a_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidKey, match="temp"):
        run(FileStorage(tmp_path).write_bytes(".headwater-tmp/x", b"1"))


def test_iter_stats_of_a_directory_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a directory iter_stats walks in batches (here of 3) and lists what iter_keys + stat
    find: not the temp directory, not through a symbolic link to a directory, a link to a file
    with the file's size, no dangling link or FIFO (stat says None); a listing left early stops."""
    monkeypatch.setattr(filesystem, "_STAT_BATCH", 3)
    fs = FileStorage(tmp_path / "root")
    sizes = {f"web/packages/{i % 3}/{i}/f{i}": i for i in range(11)}

    async def go() -> None:
        await fs.write_many([(key, b"x" * size) for key, size in sizes.items()])
        await fs.write_bytes("web/outside", b"abc")
        (fs.root / ".headwater-tmp" / "leftover").write_bytes(b"partial")
        (fs.root / "web/packages/link-dir").symlink_to(fs.root / "web/packages/1")
        (fs.root / "web/packages/link-file").symlink_to(fs.root / "web/outside")
        (fs.root / "web/packages/dangling").symlink_to(fs.root / "missing")
        os.mkfifo(fs.root / "web/packages/fifo")
        listed = {key: stat.size async for key, stat in fs.iter_stats("web/packages")}
        stat_of_keys = {}
        for key in await _collect(fs, "web/packages"):
            stat = await fs.stat(key)
            if stat is not None:
                stat_of_keys[key] = stat.size
        assert listed == stat_of_keys == {**sizes, "web/packages/link-file": 3}
        assert ".headwater-tmp/leftover" not in {key async for key, _ in fs.iter_stats()}
        first = [key async for key, _ in _first(fs.iter_stats(), 4)]
        assert len(first) == 4

    run(go())


async def _first(listing: Any, count: int) -> Any:
    async for item in listing:
        yield item
        count -= 1
        if count == 0:
            return


def test_fsync_mode_fsyncs_each_written_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = FileStorage(tmp_path, durability="fsync")
    synced: list[int] = []
    real_fsync: Callable[[int], None] = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])

    async def go() -> None:
        for i in range(5):
            await fs.write_bytes(f"web/packages/{i}/f", b"x")
        assert synced == []  # batched: no fsync per write
        await fs.sync()
        assert len(synced) == 5 + 5  # five files, five distinct parent directories
        await fs.sync()
        assert len(synced) == 10  # nothing new to sync

    run(go())


def test_syncfs_mode_is_one_call_per_barrier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if filesystem._SYNCFS is None:
        pytest.fail("syncfs(2) is not available: headwater's default durability needs Linux")
    calls: list[int] = []
    real = filesystem._SYNCFS
    monkeypatch.setattr(filesystem, "_SYNCFS", lambda fd: (calls.append(fd), real(fd))[1])
    fs = FileStorage(tmp_path)
    assert fs.durability == "syncfs"

    async def go() -> None:
        for i in range(50):
            await fs.write_bytes(f"web/packages/{i}/f", b"x")
        await fs.sync()
        assert len(calls) == 1
        await fs.sync()
        assert len(calls) == 1  # nothing written since: no call
        await fs.delete("web/packages/0/f")
        await fs.sync()
        assert len(calls) == 2  # a removal is made durable too

    run(go())


def test_durability_none_never_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filesystem, "_SYNCFS", lambda fd: pytest.fail("synced"))
    monkeypatch.setattr(os, "fsync", lambda fd: pytest.fail("synced"))
    fs = FileStorage(tmp_path, durability="none")
    run(fs.write_bytes("a", b"1"))
    run(fs.sync())


def test_bad_durability_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        FileStorage(tmp_path, durability="sometimes")


def test_clean_temp_removes_leftovers(tmp_path: Path) -> None:
    (tmp_path / ".headwater-tmp").mkdir()
    (tmp_path / ".headwater-tmp" / "dead.tmp").write_bytes(b"from a crash")
    assert FileStorage(tmp_path).clean_temp() == 1
    assert list((tmp_path / ".headwater-tmp").iterdir()) == []


def test_implementations_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(MemoryStorage(), Storage)
    assert isinstance(FileStorage(tmp_path), Storage)


def test_digest(storage: Storage) -> None:
    data = b"x" * 3_000_000

    async def go() -> None:
        await storage.write_bytes("f", data)
        assert await storage.digest("f") == (hashlib.sha256(data).hexdigest(), len(data))
        with pytest.raises(NotFound):
            await storage.digest("missing")

    run(go())


def test_write_many_in_order(storage: Storage) -> None:
    async def go() -> None:
        await storage.write_many([("p/a", b"1"), ("p/b", b"2"), ("p/a", b"3")])
        assert await storage.read_bytes("p/a") == b"3"  # later items win: written in order
        assert await storage.read_bytes("p/b") == b"2"
        with pytest.raises(InvalidKey):
            await storage.write_many([("ok", b"x"), ("../bad", b"y")])
        assert await storage.stat("ok") is None  # a bad key anywhere writes nothing

    run(go())


def test_batch_thread_keeps_order_and_hands_back_errors() -> None:
    worker = _batch.BatchThread()
    seen: list[int] = []

    def boom() -> None:
        raise PermissionError("denied")

    async def go() -> None:
        seen.clear()
        futures = [worker.run(seen.append, i) for i in range(200)]
        failing = worker.run(boom)
        after = worker.run(len, seen)
        await asyncio.gather(*futures)
        with pytest.raises(PermissionError, match="denied"):
            await failing
        assert await after == 200  # queued after the 200 appends and the failure: ran after them
        assert seen == list(range(200))
        cancelled = worker.run(seen.append, -1)
        cancelled.cancel()  # the job still runs; its outcome is dropped without an error
        await worker.run(len, seen)

    run(go())
    run(go())  # a second event loop: results reach the loop that asked


def test_batch_thread_exits_when_idle_and_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_batch, "_IDLE_EXIT", 0.05)
    fs = FileStorage(tmp_path)

    def alive() -> int:
        return sum(t.name == "headwater-storage" and t.is_alive() for t in threading.enumerate())

    run(fs.write_bytes("a", b"1"))
    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert alive() == 0
    run(fs.write_bytes("b", b"2"))  # a new loop, a new thread
    assert run(fs.read_bytes("b")) == b"2" and run(fs.read_bytes("a")) == b"1"


def test_write_many_same_bytes_twice(storage: Storage, tmp_path: Path) -> None:
    """Consecutive items with equal bytes (index.html and index.v1_html) may share one file on
    disk; each key still reads back, and replacing one leaves the other alone."""
    html = b"<html>page</html>"

    async def go() -> None:
        for _ in range(2):  # the second round replaces existing keys
            await storage.write_many(
                [("p/a/index.html", html), ("p/a/index.v1_html", html), ("p/a/j", b"{}")]
            )
        assert await storage.read_bytes("p/a/index.html") == html
        assert await storage.read_bytes("p/a/index.v1_html") == html
        if isinstance(storage, FileStorage):
            first, second = (tmp_path / "root/p/a/index.html", tmp_path / "root/p/a/index.v1_html")
            assert first.stat().st_ino == second.stat().st_ino  # one file, two names
            assert _all_files(tmp_path / "root") == ["p/a/index.html", "p/a/index.v1_html", "p/a/j"]
        await storage.write_bytes("p/a/index.html", b"new")
        assert await storage.read_bytes("p/a/index.html") == b"new"
        assert await storage.read_bytes("p/a/index.v1_html") == html

    run(go())


def test_batch_thread_idle_exit_never_strands_a_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs queued just as the thread gives up waiting still run (no write hangs)."""
    monkeypatch.setattr(_batch, "_IDLE_EXIT", 0.001)
    fs = FileStorage(tmp_path)

    async def go() -> None:
        for i in range(300):
            await fs.write_bytes(f"k/{i % 7}", b"x")
            await asyncio.sleep(0.0005 * (i % 5))  # around the idle timeout

    run(asyncio.wait_for(go(), timeout=60))


def test_storage_works_in_a_forked_child(tmp_path: Path) -> None:
    fs = FileStorage(tmp_path)
    run(fs.write_bytes("parent", b"1"))  # the parent's storage thread is running
    pid = os.fork()
    if pid == 0:  # the child has no copy of that thread: its storage must start its own
        try:
            run(asyncio.wait_for(fs.write_bytes("child", b"2"), timeout=30))
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (tmp_path / "child").read_bytes() == b"2"


def test_a_failed_publish_never_closes_another_writers_file(tmp_path: Path) -> None:
    """A publish that fails closes its file once: the number must not be closed again after
    another writer was given it (its bytes would land in a third writer's file)."""
    fs = FileStorage(tmp_path, durability="none")
    (tmp_path / "d" / "x").mkdir(parents=True)  # key "d" is a directory: publishing it fails
    queue_run = fs._thread.run
    first_done = asyncio.Event()
    finished = asyncio.Event()

    async def others() -> None:
        async with fs.writer("b") as b:
            await first_done.wait()
            async with fs.writer("c") as c:  # opened after A's failure: may reuse A's number
                await b.write(b"B" * 10)
                await b.flush()
                await c.write(b"C" * 10)
        finished.set()

    def run(fn: Callable[..., Any], *args: Any) -> Any:
        future = queue_run(fn, *args)
        if getattr(fn, "__name__", "") == "_publish":  # B opens right behind A's publish
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(others()))
        return future

    fs._thread.run = run  # type: ignore[method-assign]

    async def go() -> None:
        with pytest.raises(filesystem.StorageError, match="Is a directory"):
            async with fs.writer("d") as a:
                await a.write(b"A")
        first_done.set()
        async with asyncio.timeout(10):
            await finished.wait()

    asyncio.run(go())
    assert (tmp_path / "b").read_bytes() == b"B" * 10
    assert (tmp_path / "c").read_bytes() == b"C" * 10


def test_a_worker_thread_that_cannot_start_does_not_wedge_the_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = FileStorage(tmp_path, durability="none")
    start = threading.Thread.start
    calls = []

    def failing_once(self: threading.Thread) -> None:
        calls.append(self.name)
        if len(calls) == 1:
            raise RuntimeError("can't start new thread")
        start(self)

    monkeypatch.setattr(threading.Thread, "start", failing_once)

    async def go() -> None:
        with pytest.raises(RuntimeError, match="can't start new thread"):
            await fs.write_bytes("a", b"first")
        async with asyncio.timeout(5):  # hung forever before: the storage thought it had a thread
            await fs.write_bytes("b", b"second")

    asyncio.run(go())
    assert (tmp_path / "b").read_bytes() == b"second"
    assert not (tmp_path / "a").exists()  # the failed call's write was not done behind its back


def test_identical_pages_are_copies_where_hard_links_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vfat, exFAT, FUSE object stores: link(2) fails; the second name gets a copy."""
    fs = FileStorage(tmp_path, durability="none")
    real_link = os.link

    def no_plain_links(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("src_dir_fd") is not None:  # naming an unnamed file: allowed
            real_link(src, dst, *args, **kwargs)
            return
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_plain_links)
    page = b"<html>same</html>"
    asyncio.run(
        fs.write_many([("web/simple/x/index.html", page), ("web/simple/x/index.v1_html", page)])
    )
    asyncio.run(
        fs.write_many([("web/simple/y/index.html", page), ("web/simple/y/index.v1_html", page)])
    )
    for name in ("x", "y"):
        html = tmp_path / "web" / "simple" / name / "index.html"
        v1 = tmp_path / "web" / "simple" / name / "index.v1_html"
        assert html.read_bytes() == v1.read_bytes() == page
        assert html.stat().st_ino != v1.stat().st_ino
