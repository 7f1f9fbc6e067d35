"""What makes bundles fast without making them less safe: the order files are read in (their place
on the disk), the importer's own apply order and its reader, and staged files a power loss emptied
before the barrier. How create copies and hashes: test_bundle_copy.py."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.sync.bundle import apply, create
from headwater.sync.bundle.apply import import_bundle
from headwater.sync.bundle.archive import MANIFEST_MEMBER, MemberReader
from headwater.sync.bundle.create import create_bundle
from headwater.sync.bundle.listing import apply_rank
from headwater.sync.bundle.manifest import (
    BundleError,
    decode_manifest,
    generate_keys,
    load_private_key,
    load_public_key,
)
from headwater.sync.bundle.order import BARRIER_RANK, disk_positions, first_extent, read_order
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.sync.bundles import mirror, snapshot

FILE = "web/packages/ab/cd/" + "e" * 60 + "/a-1.0-py3-none-any.whl"
SIDE = FILE + ".metadata"
REFS = "state/refs/ab/cd"
PAGE = "web/simple/a/index.html"
JSON = "web/simple/a/index.v1_json"
ROOT = "web/simple/index.html"
STAMP = "web/last-modified"
STATE = "state/mirror.json"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "k", tmp_path / "k.pub"
    generate_keys(private, public)
    return private, public


# -- the order a tree is read in -------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "positions", "expected"),
    [
        # files and sidecars move to their place on the disk, ties keep apply order
        ([FILE, FILE + "2.whl"], [9, 3], [1, 0]),
        ([FILE, SIDE], [5, 1], [1, 0]),
        ([FILE, FILE + "2.whl", SIDE], [4, 4, 0], [2, 0, 1]),
        # everything from the shared-file markers on keeps apply order, after the files,
        # whatever its position says
        (
            [FILE, REFS, PAGE, JSON, ROOT, STAMP, STATE],
            [9, 1, 0, 0, 0, 0, 0],
            [0, 1, 2, 3, 4, 5, 6],
        ),
        ([FILE, SIDE, PAGE, ROOT], [7, 3, 1, 0], [1, 0, 2, 3]),
        ([PAGE, JSON], [5, 1], [0, 1]),
        ([], [], []),
    ],
)
def test_read_order(keys: list[str], positions: list[int], expected: list[int]) -> None:
    assert read_order(keys, positions) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([FILE, SIDE, REFS, PAGE, JSON, ROOT]), st.integers(0, 9)))
)
def test_read_order_never_moves_a_page_before_a_file(items: list[tuple[str, int]]) -> None:
    listed = sorted(items, key=lambda item: apply_rank(item[0]))
    keys = [key for key, _ in listed]
    order = read_order(keys, [position for _, position in listed])
    assert sorted(order) == list(range(len(keys)))
    ranks = [apply_rank(keys[i])[0] >= BARRIER_RANK for i in order]
    assert ranks == sorted(ranks)  # every file and sidecar, then the rest
    published = [i for i in order if apply_rank(keys[i])[0] >= BARRIER_RANK]
    assert published == sorted(published)


def _probe(table: dict[str, tuple[int | None, int]]):  # type: ignore[no-untyped-def]
    return lambda path: table[path.name]


def test_disk_positions_use_extents_only_when_every_file_has_one(tmp_path: Path) -> None:
    keys = ["web/packages/a.whl", "web/packages/b.whl", "web/simple/x/index.html"]
    wanted = [True, True, True]
    answered = {"a.whl": (4096, 12), "b.whl": (0, 11), "index.html": (None, 3)}
    # the page is not probed (it keeps its place): extents for the files
    assert disk_positions(tmp_path, keys, wanted, _probe(answered)) == [4096, 0, 0]
    # one file the file system gives no extent for: inode numbers for every file
    answered["b.whl"] = (None, 11)
    assert disk_positions(tmp_path, keys, wanted, _probe(answered)) == [12, 11, 0]
    # what does not travel is not probed
    assert disk_positions(tmp_path, keys, [False, True, True], _probe(answered)) == [0, 11, 0]


def test_first_extent_on_this_file_system(tmp_path: Path) -> None:
    """ext4 (this machine's, and most servers') answers FIEMAP: a written file has a place, an
    empty one has none yet."""
    full, empty = tmp_path / "full", tmp_path / "empty"
    full.write_bytes(os.urandom(1 << 16))
    empty.write_bytes(b"")
    os.sync()
    with full.open("rb") as f, empty.open("rb") as e:
        placed, unplaced = first_extent(f.fileno()), first_extent(e.fileno())
    if placed is None:
        pytest.skip("this file system does not answer FIEMAP (inode order is used)")
    assert placed > 0 and unplaced == 0


def _manifest_of(volume: Path):  # type: ignore[no-untyped-def]
    with volume.open("rb") as stream:
        raw = MemberReader(stream, str(volume)).read_small(MANIFEST_MEMBER, 1 << 30)
    return decode_manifest(raw, str(volume))


def test_create_packs_files_in_their_order_on_the_disk(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    source, far = tmp_path / "source", tmp_path / "far"
    with Upstream(Corpus.generate(12, releases=2, files=2, seed=3)).running() as up:
        mirror(up, source)
    os.sync()
    create_bundle(source, load_private_key(private), tmp_path / "b")
    entries = _manifest_of(tmp_path / "b").entries
    keys_ = [entry.key for entry in entries]
    positions = disk_positions(source, keys_, [True] * len(keys_))
    files = [i for i, key in enumerate(keys_) if apply_rank(key)[0] < BARRIER_RANK]
    assert files == list(range(len(files)))  # files first
    assert [positions[i] for i in files] == sorted(positions[i] for i in files)
    assert len({positions[i] for i in files}) > 1  # the test saw distinct places
    rest = keys_[len(files) :]
    assert rest == sorted(rest, key=apply_rank)
    import_bundle([str(tmp_path / "b")], load_public_key(public), far)
    assert snapshot(far) == snapshot(source)


def test_import_applies_in_its_own_order_whatever_the_manifest_says(
    tmp_path: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle listing its pages before its files (any order: the signer's choice) is applied
    files, barrier, pages: at the first barrier every file is in place and no page is."""
    private, public = keys
    source, far = tmp_path / "source", tmp_path / "far"
    with Upstream(Corpus.generate(5, releases=2, files=2, seed=4)).running() as up:
        mirror(up, source)
    with monkeypatch.context() as patch:
        patch.setattr(create, "read_order", lambda keys, _p: list(reversed(range(len(keys)))))
        create_bundle(source, load_private_key(private), tmp_path / "b")
    entries = _manifest_of(tmp_path / "b").entries
    assert apply_rank(entries[0].key)[0] >= BARRIER_RANK  # the manifest starts with a page
    files = {e.key for e in entries if apply_rank(e.key)[0] < BARRIER_RANK}
    pages = {e.key for e in entries if apply_rank(e.key)[0] >= BARRIER_RANK}
    seen: list[tuple[set[str], set[str]]] = []
    real_sync = apply._sync

    def barrier(root: Path) -> None:
        present = {k for k in files | pages if (far / k).exists()}
        seen.append((files & present, pages & present))
        real_sync(root)

    monkeypatch.setattr(apply, "_sync", barrier)
    import_bundle([str(tmp_path / "b")], load_public_key(public), far)
    # barrier 1 after staging (nothing applied), 2 after the files, 3 after the pages
    assert seen[1] == (files, set()), "a page was applied before the files' barrier"
    assert snapshot(far) == snapshot(source)


class _PowerLoss(Exception):
    pass


def test_staged_files_a_power_loss_emptied_are_staged_again(
    tmp_path: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staged files get their final name before the one barrier for all of them; a power loss
    before it can leave a name with no bytes (or some). The resumed import must not apply them:
    it hashes what an earlier run staged and stages again what is not intact."""
    private, public = keys
    source, far = tmp_path / "source", tmp_path / "far"
    with Upstream(Corpus.generate(6, releases=2, files=2, seed=6)).running() as up:
        mirror(up, source)
    create_bundle(source, load_private_key(private), tmp_path / "b")

    def lost(_root: Path) -> None:
        raise _PowerLoss

    with monkeypatch.context() as patch:
        patch.setattr(apply, "_sync", lost)
        with pytest.raises(_PowerLoss):
            import_bundle([str(tmp_path / "b")], load_public_key(public), far)
    staged = sorted(
        (p for p in (far / "state/bundle-import").rglob("*") if p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    assert len(staged) > 4
    # what the disk may hold after the power loss: an empty file, half of one, a changed byte
    staged[0].write_bytes(b"")
    staged[1].write_bytes(staged[1].read_bytes()[: staged[1].stat().st_size // 2])
    data = bytearray(staged[2].read_bytes())
    data[0] ^= 1
    staged[2].write_bytes(bytes(data))
    done = import_bundle([str(tmp_path / "b")], load_public_key(public), far)
    assert done.resumed
    assert snapshot(far) == snapshot(source)


def test_a_file_that_shrinks_while_packed_stops_create(
    tmp_path: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    private, _public = keys
    source = tmp_path / "source"
    with Upstream(Corpus.generate(3, releases=1, files=2, seed=9)).running() as up:
        mirror(up, source)
    victim = next(p for p in (source / "web/packages").rglob("*.whl"))
    real = disk_positions

    def then_shrink(*args, **kwargs):  # type: ignore[no-untyped-def]
        positions = real(*args, **kwargs)
        victim.write_bytes(victim.read_bytes()[:10])  # after it was listed with its size
        return positions

    monkeypatch.setattr(create, "disk_positions", then_shrink)
    with pytest.raises(BundleError, match="shorter than when it was listed"):
        create_bundle(source, load_private_key(private), tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k", "k.pub", "source"], "output left"


# -- the importer's reader ---------------------------------------------------------------------


def test_a_volume_read_through_the_buffer_matches_its_bytes(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    """Data members read from a stream that returns short reads (a pipe) come out whole."""
    private, _public = keys
    source = tmp_path / "source"
    with Upstream(Corpus.generate(4, releases=1, files=2, seed=2)).running() as up:
        mirror(up, source)
    create_bundle(source, load_private_key(private), tmp_path / "b")
    raw = (tmp_path / "b").read_bytes()

    class Trickle(io.RawIOBase):
        def __init__(self) -> None:
            self.at = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            n = min(len(buffer), 777, len(raw) - self.at)
            buffer[:n] = raw[self.at : self.at + n]
            self.at += n
            return n

    reader = MemberReader(io.BufferedReader(Trickle(), 1000), "trickle")
    manifest = decode_manifest(reader.read_small(MANIFEST_MEMBER, 1 << 30), "trickle")
    reader.read_small("headwater-bundle/manifest.sig", 4096)
    reader.read_small("headwater-bundle/volume", 64)
    for index, entry in enumerate(manifest.entries):
        if not entry.included:
            continue
        digest = hashlib.sha256()
        for piece in reader.read_data(f"data/{index}.0", entry.size):
            digest.update(piece)
        assert digest.hexdigest() == entry.sha256
    reader.read_end()
