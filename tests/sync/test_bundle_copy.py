"""``bundle create`` copies files into volumes inside the kernel and hashes them on a second
thread (sync/bundle/pipeline.py). The same bundle, byte for byte, whichever way the kernel lets it
copy; every refusal falls back; a file that is damaged, shrinks or grows stops create with a named
error and leaves nothing; a pipe, a file or an in-memory stream as stdout works; memory stays a
few buffers."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.sync.bundle import create, pipeline
from headwater.sync.bundle.apply import import_bundle
from headwater.sync.bundle.create import create_bundle
from headwater.sync.bundle.listing import ORIGIN, SENT
from headwater.sync.bundle.manifest import (
    BundleError,
    generate_keys,
    load_private_key,
    load_public_key,
)
from headwater.sync.bundle.pipeline import (
    CHUNK,
    COPY_FILE_RANGE,
    METHODS,
    READ_WRITE,
    SENDFILE,
    Hasher,
    Segment,
    Sink,
    next_method,
)
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.sync.bundles import mirror, snapshot


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror tree; tests copy it before changing it."""
    root = tmp_path_factory.mktemp("copy") / "source"
    with Upstream(Corpus.generate(6, releases=2, files=2, seed=14)).running() as up:
        mirror(up, root)
    return root


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "k", tmp_path / "k.pub"
    generate_keys(private, public)
    return private, public


@pytest.fixture
def tree(source: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    shutil.copytree(source, copy)
    return copy


@pytest.fixture(params=["kernel", "small"])
def packing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Files packed by the kernel (every file: no file counts as small) or, as the test
    corpus's files are all small, through the process."""
    if request.param == "kernel":
        monkeypatch.setattr(create, "SMALL", 0)
    return str(request.param)


def _kernel_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(create, "SMALL", 0)


def _refuse(monkeypatch: pytest.MonkeyPatch, method: str) -> list[str]:
    """Make the kernel refuse every way of copying before ``method``; returns the calls made
    to the ways refused."""
    refused: list[str] = []

    def cfr(*_args: object) -> int:
        refused.append(COPY_FILE_RANGE)
        raise OSError(errno.EXDEV, "refused by the test")

    def sendfile(*_args: object) -> int:
        refused.append(SENDFILE)
        raise OSError(errno.EINVAL, "refused by the test")

    if METHODS.index(method) > 0:
        monkeypatch.setattr(os, "copy_file_range", cfr)
    if METHODS.index(method) > 1:
        monkeypatch.setattr(os, "sendfile", sendfile)
    return refused


def _fixed_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bundles made in one test carry the same id and time, so they compare byte for byte."""

    class Fixed(datetime):
        @classmethod
        def now(cls, tz: object = None) -> Fixed:  # type: ignore[override]
            return cls(2026, 12, 3, tzinfo=UTC)

    monkeypatch.setattr(create.secrets, "token_hex", lambda n: "ab" * n)
    monkeypatch.setattr(create, "datetime", Fixed)
    # and the same order: the files' places on the disk change as the kernel allocates them
    monkeypatch.setattr(create, "read_order", lambda keys, _positions: list(range(len(keys))))


def _forget_bundles(root: Path) -> None:
    """The tree as if it made no bundle yet, keeping its identity (a random id once made)."""
    shutil.rmtree(root / SENT, ignore_errors=True)
    if (root / ORIGIN).exists():
        origin = json.loads((root / ORIGIN).read_bytes())
        (root / ORIGIN).write_text(json.dumps({**origin, "serial": 0}))


def _volumes(where: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(where.iterdir())]


# -- the decision: which way of copying next ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "error", "expected"),
    [
        (COPY_FILE_RANGE, errno.EXDEV, SENDFILE),
        (COPY_FILE_RANGE, errno.EINVAL, SENDFILE),
        (COPY_FILE_RANGE, errno.ENOSYS, SENDFILE),
        (COPY_FILE_RANGE, errno.EOPNOTSUPP, SENDFILE),
        (COPY_FILE_RANGE, errno.EBADF, SENDFILE),
        (SENDFILE, errno.EINVAL, READ_WRITE),
        (SENDFILE, errno.ENOSYS, READ_WRITE),
        (READ_WRITE, errno.EINVAL, None),  # nothing left to try
        (COPY_FILE_RANGE, errno.EIO, None),  # the disk's error, not a refusal
        (COPY_FILE_RANGE, errno.ENOSPC, None),
        (SENDFILE, errno.EIO, None),
        (COPY_FILE_RANGE, None, None),
    ],
)
def test_next_method(method: str, error: int | None, expected: str | None) -> None:
    assert next_method(method, error) == expected


# -- the sink: exact bytes whichever way ------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
    st.data(),
    st.sampled_from(METHODS),
)
def test_sink_appends_exactly_the_segments(
    tmp_path_factory: pytest.TempPathFactory,
    bodies: list[bytes],
    data: st.DataObject,
    method: str,
) -> None:
    where = tmp_path_factory.mktemp("sink")
    expected = b""
    out_fd = os.open(where / "out", os.O_RDWR | os.O_CREAT)
    try:
        sink = Sink(out_fd, readable=True)
        sink.method = method
        for n, body in enumerate(bodies):
            (where / str(n)).write_bytes(body)
            offset = data.draw(st.integers(0, len(body)))
            length = data.draw(st.integers(0, len(body) - offset))
            small = data.draw(st.binary(max_size=600))
            sink.write(small)
            expected += small
            fd = os.open(where / str(n), os.O_RDONLY)
            try:
                at, left = offset, length
                while left:
                    got = sink.copy(fd, at, left)
                    assert got > 0
                    at, left = at + got, left - got
                assert sink.copy(fd, len(body), 1) == 0  # the file ends there
            finally:
                os.close(fd)
            expected += body[offset : offset + length]
        sink.flush()
        assert sink.method == method and sink.position == len(expected)
    finally:
        os.close(out_fd)
    assert (where / "out").read_bytes() == expected


@pytest.mark.parametrize("error", [errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP])
def test_a_refused_copy_falls_back_and_an_io_error_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    (tmp_path / "in").write_bytes(b"0123456789")
    calls = []

    def refuse(*args: object) -> int:
        calls.append(args)
        raise OSError(error, "refused by the test")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    src = os.open(tmp_path / "in", os.O_RDONLY)
    out = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    try:
        sink = Sink(out, readable=True)
        sink.write(b"head")
        assert sink.copy(src, 2, 5) == 5
        assert calls and sink.method == SENDFILE
        assert sink.copy(src, 7, 3) == 3
        assert len(calls) == 1  # refused once: the rest of the volume goes the next way

        def broken(*_args: object) -> int:
            raise OSError(errno.EIO, "the disk, in the test")

        monkeypatch.setattr(os, "sendfile", broken)
        with pytest.raises(OSError) as caught:
            sink.copy(src, 0, 1)
        assert caught.value.errno == errno.EIO and sink.method == SENDFILE
    finally:
        os.close(src)
        os.close(out)
    assert (tmp_path / "out").read_bytes() == b"head" + b"23456" + b"789"


def test_memory_stays_a_few_buffers_whatever_the_size(tmp_path: Path) -> None:
    """Copying and hashing 64 MiB allocates a few buffers at most, on both threads
    (tracemalloc traces every thread)."""
    import tracemalloc

    body = tmp_path / "big"
    with body.open("wb") as out:
        for _ in range(64):
            out.write(os.urandom(1 << 20))
    expected = hashlib.sha256(body.read_bytes()).hexdigest()
    out_fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    src = os.open(body, os.O_RDONLY)
    tracemalloc.start()
    try:
        for method in METHODS:
            digest = hashlib.sha256()
            hasher = Hasher()
            sink = Sink(out_fd, readable=True)
            sink.method = method
            at = 0
            while at < 64 << 20:
                start = sink.position
                got = sink.copy(src, at, pipeline.STEP)
                hasher.hash(out_fd, start, got, digest, Segment(body, 0, 64 << 20, "big"))
                at += got
            hasher.wait()
            hasher.stop()
            assert digest.hexdigest() == expected
            os.lseek(out_fd, 0, os.SEEK_SET)
            os.ftruncate(out_fd, 0)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        os.close(src)
        os.close(out_fd)
    assert peak < 3 * CHUNK, peak


# -- create: the same bundle whichever way; every failure named, nothing left -----------------


@pytest.mark.parametrize("volume_size", [None, 40 << 10], ids=["one-volume", "volumes"])
def test_every_way_of_copying_makes_the_same_bundle(
    tree: Path,
    tmp_path: Path,
    keys: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    volume_size: int | None,
) -> None:
    private, public = keys
    _fixed_bundle(monkeypatch)
    _kernel_only(monkeypatch)
    made: dict[str, list[bytes]] = {}
    for method in METHODS:
        with monkeypatch.context() as patch:
            refused = _refuse(patch, method)
            where = tmp_path / method.replace("/", "-")
            where.mkdir()
            _forget_bundles(tree)
            create_bundle(tree, load_private_key(private), where / "b", volume_size=volume_size)
            assert len(set(refused)) == METHODS.index(method), refused
        made[method] = _volumes(where)
        far = tmp_path / f"far-{method.replace('/', '-')}"
        import_bundle([str(p) for p in sorted(where.iterdir())], load_public_key(public), far)
        assert snapshot(far) == snapshot(tree)
    assert len(made[READ_WRITE]) > (1 if volume_size else 0)
    assert made[COPY_FILE_RANGE] == made[SENDFILE] == made[READ_WRITE]


@contextlib.contextmanager
def _stdout(kind: str, where: Path) -> Iterator[list[bytes]]:
    """``sys.stdout`` as a pipe, a regular file or an in-memory stream; the list yielded holds
    what it received once the block ends."""
    got: list[bytes] = []
    real = sys.stdout
    if kind == "memory":
        memory = io.BytesIO()
        wrapper = io.TextIOWrapper(memory)
        sys.stdout = wrapper
        try:
            yield got
        finally:
            sys.stdout = real
        got.append(memory.getvalue())
        wrapper.detach()
        return
    if kind in ("file", "append"):  # "append": O_APPEND, which copy_file_range refuses
        stream = (where / "stdout").open("w" if kind == "file" else "a")
        sys.stdout = stream
        try:
            yield got
        finally:
            sys.stdout = real
            stream.close()
        got.append((where / "stdout").read_bytes())
        return
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(read_end, 1 << 16):
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    stream = os.fdopen(write_end, "w")
    sys.stdout = stream
    try:
        yield got
    finally:
        sys.stdout = real
        stream.close()
        reader.join()
        os.close(read_end)
    got.append(b"".join(chunks))


@pytest.mark.parametrize("kind", ["pipe", "file", "append", "memory"])
def test_a_bundle_to_stdout_is_the_bundle_to_a_file(
    tree: Path,
    tmp_path: Path,
    keys: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    packing: str,
) -> None:
    private, public = keys
    _fixed_bundle(monkeypatch)
    create_bundle(tree, load_private_key(private), tmp_path / "b")
    _forget_bundles(tree)
    with _stdout(kind, tmp_path) as got:
        create_bundle(tree, load_private_key(private), None)
    assert got[0] == (tmp_path / "b").read_bytes()
    (tmp_path / "piped").write_bytes(got[0])
    import_bundle([str(tmp_path / "piped")], load_public_key(public), tmp_path / "far")
    assert snapshot(tmp_path / "far") == snapshot(tree)


def _victim(tree: Path) -> Path:
    """The largest distribution file of the tree."""
    return max((tree / "web/packages").rglob("*.whl"), key=lambda p: p.stat().st_size)


def _after_listing(monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> None:
    """Run ``change`` once the tree was listed (with every file's size), before packing."""
    real = create.disk_positions

    def then_change(*args, **kwargs):  # type: ignore[no-untyped-def]
        positions = real(*args, **kwargs)
        change()
        return positions

    monkeypatch.setattr(create, "disk_positions", then_change)


def _nothing_left(tree: Path, where: Path) -> None:
    assert list(where.iterdir()) == [], "output left"
    assert not (tree / SENT).exists() and not (tree / ORIGIN).exists(), "the bundle was recorded"


OUTPUTS = ["file", "volumes", "pipe"]


def _create(tree: Path, private: Path, where: Path, output: str) -> None:
    key = load_private_key(private)
    if output == "pipe":
        with _stdout("pipe", where.parent):
            create_bundle(tree, key, None)
    else:
        size = 40 << 10 if output == "volumes" else None
        create_bundle(tree, key, where / "b", volume_size=size)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("method", [*METHODS, "small"])
def test_a_damaged_file_stops_create(
    tree: Path,
    tmp_path: Path,
    keys: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    output: str,
) -> None:
    """One flipped byte, same size: the bytes no longer hash to the key."""
    victim = _victim(tree)

    def flip() -> None:
        with victim.open("r+b") as stream:
            stream.seek(victim.stat().st_size // 2)
            byte = stream.read(1)
            stream.seek(-1, os.SEEK_CUR)
            stream.write(bytes([byte[0] ^ 0x10]))

    _after_listing(monkeypatch, flip)
    if method != "small":  # the corpus's files are small: through the process by default
        _kernel_only(monkeypatch)
        _refuse(monkeypatch, method)
    where = tmp_path / "out"
    where.mkdir()
    with pytest.raises(BundleError, match=rf"{victim.name} does not hash to its sha256.*repair"):
        _create(tree, keys[0], where, output)
    _nothing_left(tree, where)


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_file_shrinking_while_it_is_copied_stops_create(
    tree: Path,
    tmp_path: Path,
    keys: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    output: str,
) -> None:
    """Truncated by another program once the hasher has read its first bytes: the copy (or,
    reading the file itself for stdout, the hasher) finds it short."""
    _kernel_only(monkeypatch)
    victim = _victim(tree)
    size = victim.stat().st_size
    step = 64
    assert size > (pipeline.LAG + 3) * step  # the copy cannot have finished when it shrinks
    monkeypatch.setattr(create, "STEP", step)
    real = pipeline._read_at
    cut: list[int] = []

    def read_then_truncate(fd: int, view: memoryview, offset: int) -> int:
        got = real(fd, view, offset)
        if not cut:
            os.truncate(victim, size // 2)
            cut.append(size // 2)
        return got

    monkeypatch.setattr(pipeline, "_read_at", read_then_truncate)
    monkeypatch.setattr(
        create,
        "read_order",
        lambda keys, _p: sorted(range(len(keys)), key=lambda i: not keys[i].endswith(victim.name)),
    )
    where = tmp_path / "out"
    where.mkdir()
    with pytest.raises(BundleError, match=rf"{victim.name} is shorter than when it was listed"):
        _create(tree, keys[0], where, output)
    assert cut
    _nothing_left(tree, where)


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_file_growing_after_it_was_listed_stops_create(
    tree: Path,
    tmp_path: Path,
    keys: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    output: str,
    packing: str,
) -> None:
    victim = _victim(tree)
    size = victim.stat().st_size

    def grow() -> None:
        with victim.open("ab") as stream:
            stream.write(b"more")

    _after_listing(monkeypatch, grow)
    where = tmp_path / "out"
    where.mkdir()
    with pytest.raises(
        BundleError, match=rf"{victim.name} is longer than when it was listed \({size + 4} bytes"
    ):
        _create(tree, keys[0], where, output)
    _nothing_left(tree, where)
