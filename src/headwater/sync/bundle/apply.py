"""``headwater bundle import`` and ``bundle verify``: check a bundle, then apply it to a tree.

Import runs in phases, each safe to kill and resumable by running the same import again:

1. **Refuse or accept** (nothing written): the signature, every volume present, the base (the
   tree's record names the same source tree and the serial the bundle applies on; a bundle at or
   below the tree's serial is a replay), and every entry that does not travel is already in the
   tree with its size (and, for anything not content-addressed, its sha256).
2. **Stage**: each entry's bytes stream into ``state/bundle-import/<bundle>/<n>.partial``
   and, once they hash to the signed digest, are renamed to ``<n>``. A staged entry is
   therefore always a verified one; a resumed import keeps it if its bytes are still there (a
   power loss before the barrier can leave the name without the bytes: each is hashed again on
   resume) and stages it again otherwise. A hash that does not match removes the staging
   directory: the tree is exactly as it was. Then one durability barrier for all staged files
   (not an fsync each) and a ``staged`` marker.
3. **Apply** in the mirror's order (:mod:`headwater.sync.bundle.listing`): files by rename
   (same file system: no copy), a barrier, then pages, the root, ``web/last-modified`` and the
   state, a barrier; then what the manifest does not name is removed, pages before files, and
   empty directories go. Finally the tree's record (``state/bundle.json``) and the staging
   directory. At every instant a page on disk points only at files on disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from headwater.storage.filesystem import FileStorage
from headwater.storage.layout import WEB
from headwater.sync.bundle.listing import (
    RECORD,
    REFS,
    STAGING,
    FarManifest,
    Record,
    addressed_digest,
    apply_rank,
    hash_path,
    list_tree,
    read_json,
    scope_keys,
    write_json,
)
from headwater.sync.bundle.manifest import Entry, InvalidBundle, Manifest, Piece
from headwater.sync.bundle.order import BARRIER_RANK
from headwater.sync.bundle.reader import Bundle, open_bundle

__all__ = ["Imported", "Verified", "describe_tree", "import_bundle", "verify_bundle"]

_STAGED = "staged"
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Verified:
    manifest: Manifest
    volumes: list[int]
    complete: bool


@dataclass(frozen=True)
class Imported:
    manifest: Manifest
    written: int
    removed: int
    resumed: bool
    #: The tree had imported this very bundle already (a run killed after its last step, or the
    #: same import run twice): nothing was done.
    already: bool = False


def verify_bundle(
    paths: list[str], public: Ed25519PublicKey, progress: Progress | None = None
) -> Verified:
    """Check the given volumes without importing: signature, framing, every piece's digest, and
    (when every volume is given) every entry's digest. Raises InvalidBundle at the first fault."""
    bundle = open_bundle(paths, public)
    for volume in sorted(bundle.paths):
        bundle.stream(volume, lambda _i, _e, _p: None, progress)
    return Verified(bundle.manifest, sorted(bundle.paths), not bundle.missing())


def _sync(root: Path) -> None:
    """The durability barrier: one syncfs of the tree's file system where Linux has it."""
    storage = FileStorage(root)
    if storage.durability == "syncfs":
        storage._syncfs()
    else:
        os.sync()


def import_bundle(
    paths: list[str], public: Ed25519PublicKey, root: Path, progress: Progress | None = None
) -> Imported:
    """Apply the bundle to the tree at ``root`` (made if missing).

    Raises:
        InvalidBundle: forged, damaged, incomplete, for another tree, a replay, or its base is not
            this tree's; the tree is unchanged.
    """
    bundle = open_bundle(paths, public)
    bundle.require_complete()
    manifest = bundle.manifest
    root.mkdir(parents=True, exist_ok=True)
    storage = FileStorage(root)
    with storage.exclusive():
        staging = root / STAGING / manifest.bundle
        resumed = staging.is_dir()
        record = read_json(root / RECORD, Record, "the tree's bundle record")
        if record is not None and (record.tree, record.bundle) == (manifest.tree, manifest.bundle):
            # The record is written after the last file and page: this bundle is in the tree. A
            # run killed between the record and its exit leaves only the staging to clear.
            shutil.rmtree(root / STAGING, ignore_errors=True)
            return Imported(manifest, 0, 0, resumed, already=True)
        _check_base(root, manifest, resumed)
        _check_present(root, manifest)
        if not (staging / _STAGED).exists():
            _stage(bundle, staging, progress)
            _sync(root)
            (staging / _STAGED).write_bytes(b"")
        written = _apply(root, manifest, staging)
        removed = _remove_unlisted(root, manifest)
        write_json(
            root / RECORD,
            Record(
                tree=manifest.tree, serial=manifest.serial, bundle=manifest.bundle, key=manifest.key
            ),
        )
        shutil.rmtree(root / STAGING, ignore_errors=True)
    return Imported(manifest, written, removed, resumed)


def _check_base(root: Path, manifest: Manifest, resumed: bool) -> None:
    record = read_json(root / RECORD, Record, "the tree's bundle record")
    if record is None:
        if manifest.base is not None:
            raise InvalidBundle(
                f"this bundle holds the changes since bundle {manifest.base} of its source tree, "
                f"but {root} has imported no bundle: import a full bundle first (`bundle create` "
                "without --since/--against); nothing was changed"
            )
        if not resumed and any(True for _ in _held(root)):
            raise InvalidBundle(
                f"{root} holds a tree that no bundle made: import into an empty directory (a "
                "bundle makes the tree exactly its source, removing everything else); nothing "
                "was changed"
            )
        return
    if record.tree != manifest.tree:
        raise InvalidBundle(
            f"this bundle is for another tree: it was made from source tree "
            f"{manifest.tree[:12]}, and {root} follows {record.tree[:12]}; nothing was changed"
        )
    if manifest.serial <= record.serial:
        raise InvalidBundle(
            f"bundle {manifest.serial} is not newer than bundle {record.serial}, which {root} "
            "has imported already: an older bundle is never replayed over a newer tree; nothing "
            "was changed"
        )
    if manifest.base is not None and manifest.base != record.serial:
        raise InvalidBundle(
            f"this bundle applies on bundle {manifest.base} of its source tree, but {root} is at "
            f"bundle {record.serial}: import the bundles in between, or make one with `bundle "
            "create --against` this tree's `bundle manifest`; nothing was changed"
        )


def _held(root: Path) -> list[str]:
    return [key for key in scope_keys(root) if key.startswith(WEB + "/")][:1]


def _check_present(root: Path, manifest: Manifest) -> None:
    """Entries that do not travel must be in the tree already, as the manifest says."""
    absent: list[str] = []
    for entry in manifest.entries:
        if entry.included:
            continue
        path = root / entry.key
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = -1
        ok = size == entry.size
        # A file addressed by its sha256 with the right size is the right file (the mirror's own
        # rule); anything else is hashed.
        if ok and addressed_digest(entry.key) != entry.sha256:
            ok = hash_path(path) == entry.sha256
        if not ok:
            absent.append(entry.key)
    if absent:
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise InvalidBundle(
            f"this bundle expects {len(absent)} unchanged file(s) the tree does not hold as the "
            f"manifest says ({shown}): the tree was changed since its last import; make a bundle "
            "with `bundle create --against` its `bundle manifest`; nothing was changed"
        )


class _Stager:
    """The reader's sink during staging. The reader checks a piece's digests before it asks for
    the next piece, so when a piece begins, the one before it is verified: if that was an entry's
    last piece, the entry is closed and renamed to its staged name."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.out: BinaryIO | None = None
        #: Entries an earlier run staged whose bytes are intact (kept, not read again).
        self.kept: set[int] = set()
        self.last: tuple[int, Entry, Piece] | None = None

    def __call__(self, index: int, entry: Entry, piece: Piece) -> BinaryIO | None:
        self.settle()
        if piece.offset == 0:
            staged = self.staging / str(index)
            if staged.exists():
                # Staged by an earlier run that stopped before the barrier: its name was given
                # after its bytes were verified, but a power loss can leave a renamed file
                # without its bytes (they were in memory). Kept only if they are there.
                if _intact(staged, entry):
                    self.kept.add(index)
                    return None
                staged.unlink()
            self.out = (self.staging / f"{index}.partial").open("wb")
        elif index in self.kept:
            return None
        self.last = (index, entry, piece)
        return self.out

    def settle(self) -> None:
        """Promote the entry whose piece was just read, if that piece was its last."""
        if self.last is None:
            return
        index, entry, piece = self.last
        self.last = None
        if piece.offset + piece.length < entry.size or self.out is None:
            return
        self.out.close()
        self.out = None
        (self.staging / f"{index}.partial").replace(self.staging / str(index))

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None


def _intact(staged: Path, entry: Entry) -> bool:
    try:
        if staged.stat().st_size != entry.size:
            return False
    except FileNotFoundError:
        return False
    return hash_path(staged) == entry.sha256


def _stage(bundle: Bundle, staging: Path, progress: Progress | None) -> None:
    staging.mkdir(parents=True, exist_ok=True)
    stager = _Stager(staging)
    try:
        for volume in range(1, bundle.manifest.volumes + 1):
            bundle.stream(volume, stager, progress)
        stager.settle()
    except InvalidBundle:
        stager.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        stager.close()


def _apply(root: Path, manifest: Manifest, staging: Path) -> int:
    """Move staged entries into place in apply order, with a barrier after the files.

    The order is :func:`apply_rank`'s whatever the manifest's (``bundle create`` lists the files
    in their order on its disk): files and sidecars, the barrier, then the rest."""
    written = 0
    files_done = False
    order = sorted(range(len(manifest.entries)), key=lambda i: apply_rank(manifest.entries[i].key))
    for index in order:
        entry = manifest.entries[index]
        if not entry.included:
            continue
        if not files_done and apply_rank(entry.key)[0] >= BARRIER_RANK:
            _sync(root)
            files_done = True
        staged = staging / str(index)
        target = root / entry.key
        if not staged.exists():
            continue  # applied by an earlier run
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.chmod(0o644)
        staged.replace(target)
        written += 1
    _sync(root)
    return written


def _remove_unlisted(root: Path, manifest: Manifest) -> int:
    """Remove covered keys the manifest does not name: pages (JSON first) before files."""
    listed = {entry.key for entry in manifest.entries}
    stale = [key for key in scope_keys(root) if key not in listed]
    # Reverse apply order: other web/ keys, root, pages (JSON first), refs, metadata, files.
    stale.sort(key=apply_rank, reverse=True)
    for key in stale:
        (root / key).unlink(missing_ok=True)
    # Every empty directory, not only those this run emptied: a run killed between removing a
    # file and its directory leaves the directory for the resumed run, which removes no file.
    for top in (f"{WEB}/simple", f"{WEB}/packages", REFS):
        for dirpath, _dirs, _files in os.walk(root / top, topdown=False):
            if Path(dirpath) != root / top:
                with contextlib.suppress(OSError):  # not empty
                    Path(dirpath).rmdir()
    return len(stale)


def describe_tree(root: Path) -> FarManifest:
    """``bundle manifest``: the tree's record and the sha256 of every key a bundle covers, for
    ``bundle create --against`` on the source side (so only what differs travels)."""
    record = read_json(root / RECORD, Record, "the tree's bundle record")
    keys = {key: digest for key, _size, digest in list_tree(root)}
    return FarManifest(
        tree=record.tree if record else None, serial=record.serial if record else None, keys=keys
    )
