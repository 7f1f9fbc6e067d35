"""``headwater bundle create``: pack a tree (or what changed since a bundle) into signed volumes.

One pass over the bytes: the manifest must come first in every volume (so an importer can refuse a
bundle for another tree before reading a byte of data), and it needs every entry's sha256. Those
are known without reading the files: a distribution file's key *is* its sha256 (the packer checks
the bytes against it as they stream past and stops if they differ); pages, ``.metadata`` and the
state are small and hashed up front. Only the pieces of a file split across two volumes are read
twice (one per volume boundary), to sign their own digests, so a volume verifies on its own.

The output is written under a temporary name and renamed into place when complete; the source
tree records the bundle (``state/bundles/<serial>.json``) only then, so a failed or interrupted
create changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from headwater.storage.filesystem import FileStorage
from headwater.sync.bundle.archive import (
    MANIFEST_MEMBER,
    SIGNATURE_MEMBER,
    VOLUME_MEMBER,
    header_bytes,
    member_header,
    piece_name,
    small_member,
)
from headwater.sync.bundle.listing import (
    ORIGIN,
    SENT,
    FarManifest,
    Origin,
    list_tree,
    read_json,
    write_json,
)
from headwater.sync.bundle.manifest import (
    END_OF_ARCHIVE,
    BundleError,
    Entry,
    Manifest,
    Piece,
    encode_manifest,
    key_id,
    padded,
    plan_volumes,
    sign,
)
from headwater.sync.bundle.order import disk_positions, read_order
from headwater.sync.bundle.pipeline import CHUNK, Segment, ShortFile, read_segments

__all__ = ["Created", "create_bundle", "volume_paths"]

_BUSY = ("state/in-progress",)


@dataclass(frozen=True)
class Created:
    """What ``create_bundle`` wrote."""

    paths: list[Path]
    serial: int
    base: int | None
    entries: int
    included: int
    bytes: int


def volume_paths(out: Path, volumes: int, split: bool) -> list[Path]:
    """``out`` itself for an unsplit bundle, else ``out.001``, ``out.002``, ..."""
    if not split:
        return [out]
    return [out.with_name(f"{out.name}.{n:03d}") for n in range(1, volumes + 1)]


def _base_listing(
    root: Path, origin: Origin, since: int | None, against: Path | None
) -> tuple[int | None, dict[str, str]]:
    if since is not None and against is not None:
        raise BundleError("give --since or --against, not both")
    if since is not None:
        sent = read_json(root / SENT / f"{since}.json", dict[str, str], "a bundle's listing")
        if sent is None:
            raise BundleError(
                f"this tree made no bundle {since} (made so far: 1 to {origin.serial}); give a "
                "serial it made, or use --against with the far side's `bundle manifest`"
            )
        return since, sent
    if against is not None:
        far = read_json(against, FarManifest, "the far side's manifest")
        if far is None:
            raise BundleError(f"{against} does not exist")
        if far.tree is None or far.serial is None:
            # The far tree imported no bundle: only a full bundle applies there (and only to an
            # empty tree: import never takes over a tree it did not make).
            return None, {}
        if far.tree != origin.tree:
            raise BundleError(
                f"{against} describes a tree made from another source tree ({far.tree[:12]}, this "
                f"is {origin.tree[:12]}); make a full bundle for it instead"
            )
        return far.serial, far.keys
    return None, {}


def create_bundle(
    root: Path,
    private: Ed25519PrivateKey,
    out: Path | None,
    *,
    volume_size: int | None = None,
    since: int | None = None,
    against: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> Created:
    """Pack ``root`` into ``out`` (``None``: stdout, one volume only).

    Raises:
        BundleError: the tree is busy or mid-sync, the base is unknown, a file does not hash to
            its key (the tree is damaged: run ``headwater verify --repair``), the output exists.
    """
    if out is None and volume_size is not None:
        raise BundleError("volumes need an output file name (-o), not stdout")
    storage = FileStorage(root)
    with storage.exclusive():
        for busy in _BUSY:
            if (root / busy).exists():
                raise BundleError(
                    f"a sync of {root} is running or was interrupted ({busy}); run `headwater "
                    "mirror` to finish it, then make the bundle (nothing was written)"
                )
        origin = read_json(root / ORIGIN, Origin, "the tree's bundle origin") or Origin()
        base, base_keys = _base_listing(root, origin, since, against)
        listing = list_tree(root)
        if not listing:
            raise BundleError(f"{root} holds no tree (no web/): nothing to bundle")
        include = [base_keys.get(key) != digest for key, _size, digest in listing]
        # Read (and pack) the files in their order on the disk, not their keys' (module order).
        keys = [key for key, _size, _digest in listing]
        order = read_order(keys, disk_positions(root, keys, include))
        listing = [listing[i] for i in order]
        include = [include[i] for i in order]
        serial = origin.serial + 1
        created = datetime.now(UTC).replace(microsecond=0)
        manifest = _plan(
            root, listing, include, volume_size, origin.tree, serial, base, created, private
        )
        raw = encode_manifest(manifest)
        signature = sign(private, raw)
        split = volume_size is not None
        paths = volume_paths(out, manifest.volumes, split) if out is not None else []
        for path in paths:
            if path.exists():
                raise BundleError(
                    f"{path} exists; choose another output name (nothing was written)"
                )
        written = _write(root, manifest, raw, signature, paths, int(created.timestamp()), progress)
        origin.serial = serial
        write_json(root / SENT / f"{serial}.json", {key: digest for key, _s, digest in listing})
        write_json(root / ORIGIN, origin)
    return Created(
        paths=paths,
        serial=serial,
        base=base,
        entries=len(listing),
        included=sum(include),
        bytes=written,
    )


def _plan(
    root: Path,
    listing: list[tuple[str, int, str]],
    include: list[bool],
    volume_size: int | None,
    tree: str,
    serial: int,
    base: int | None,
    created: datetime,
    private: Ed25519PrivateKey,
) -> Manifest:
    """The manifest, with the volume plan fitted around the manifest's own size."""
    sizes = [size for _k, size, _d in listing]
    reserve = 0
    piece_digests: dict[tuple[int, int], str] = {}
    while True:
        header = header_bytes(reserve, 129, 8)
        plan = plan_volumes(sizes, include, volume_size, header)
        entries = []
        for i, (key, size, digest) in enumerate(listing):
            pieces = []
            for volume, offset, length in plan[i]:
                piece_digest = None
                if len(plan[i]) > 1:  # split: sign each piece's digest so a volume stands alone
                    if (i, offset) not in piece_digests:
                        piece_digests[(i, offset)] = _hash_range(root / key, offset, length)
                    piece_digest = piece_digests[(i, offset)]
                pieces.append(Piece(volume, offset, length, piece_digest))
            entries.append(Entry(key, size, digest, tuple(pieces)))
        volumes = max((p.volume for e in entries for p in e.pieces), default=1)
        manifest = Manifest(
            bundle=secrets.token_hex(16),
            tree=tree,
            serial=serial,
            base=base,
            created=created.isoformat(),
            key=key_id(private.public_key()),
            volumes=volumes,
            entries=tuple(entries),
        )
        size = len(encode_manifest(manifest))
        if padded(size) <= reserve:
            return manifest
        reserve = padded(size) + 4 * 512


def _hash_range(path: Path, offset: int, length: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        stream.seek(offset)
        left = length
        while left:
            chunk = stream.read(min(CHUNK, left))
            if not chunk:
                raise BundleError(
                    f"{path} is shorter than when it was listed: the tree is changing"
                )
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


class _Output:
    """The volume being written: a temp file renamed into place when finished, or stdout."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is None:
            self.stream: BinaryIO = sys.stdout.buffer
            self.tmp: Path | None = None
        else:
            self.tmp = path.with_name(f".{path.name}.partial")
            self.stream = self.tmp.open("wb")
        self.bytes = 0

    def write(self, data: bytes | memoryview) -> None:
        self.stream.write(data)
        self.bytes += len(data)

    def finish(self) -> None:
        self.stream.flush()
        if self.tmp is not None and self.path is not None:
            os.fsync(self.stream.fileno())
            self.stream.close()
            self.tmp.replace(self.path)

    def discard(self) -> None:
        if self.tmp is not None:
            self.stream.close()
            self.tmp.unlink(missing_ok=True)


def _write(
    root: Path,
    manifest: Manifest,
    raw: bytes,
    signature: bytes,
    paths: list[Path],
    mtime: int,
    progress: Callable[[int], None] | None,
) -> int:
    """Stream every volume; returns the bytes written. The pieces are read in the manifest's
    order, which is the files' order on the disk (:mod:`~headwater.sync.bundle.order`), through
    one reused buffer (:mod:`~headwater.sync.bundle.pipeline`)."""
    total = 0
    by_volume: dict[int, list[tuple[int, Entry, Piece]]] = {}
    for index, entry in enumerate(manifest.entries):
        for piece in entry.pieces:
            by_volume.setdefault(piece.volume, []).append((index, entry, piece))
    hashers: dict[int, hashlib._Hash] = {}
    buffer = bytearray(CHUNK)
    for volume in range(1, manifest.volumes + 1):
        pieces = by_volume.get(volume, [])
        segments = [
            Segment(root / entry.key, piece.offset, piece.length, entry.key)
            for _index, entry, piece in pieces
        ]
        out = _Output(paths[volume - 1] if paths else None)
        try:
            out.write(small_member(MANIFEST_MEMBER, raw, mtime))
            out.write(small_member(SIGNATURE_MEMBER, signature, mtime))
            out.write(small_member(VOLUME_MEMBER, f"{volume}\n".encode(), mtime))
            chunks = read_segments(segments, buffer)
            for index, entry, piece in pieces:
                out.write(member_header(piece_name(index, piece.offset), piece.length, mtime))
                hasher = hashers.pop(index, None) or hashlib.sha256()
                left = piece.length
                while left:
                    _segment, chunk = next(chunks)
                    hasher.update(chunk)
                    out.write(chunk)
                    left -= len(chunk)
                    if progress is not None:
                        progress(len(chunk))
                out.write(b"\0" * (padded(piece.length) - piece.length))
                if piece.offset + piece.length < entry.size:
                    hashers[index] = hasher  # the rest follows in the next volume
                elif hasher.hexdigest() != entry.sha256:
                    raise BundleError(
                        f"{entry.key} does not hash to its sha256 ({hasher.hexdigest()[:16]}...): "
                        "the tree is damaged; run `headwater verify --repair` and make the bundle "
                        "again (nothing was written)"
                    )
            out.write(b"\0" * END_OF_ARCHIVE)
            out.finish()
        except ShortFile as exc:
            out.discard()
            _discard(paths[: volume - 1])
            raise BundleError(
                f"{exc.segment.name} is shorter than when it was listed: another program is "
                "changing the tree; stop it and run again (nothing was written)"
            ) from None
        except BaseException:
            out.discard()
            _discard(paths[: volume - 1])
            raise
        total += out.bytes
    return total


def _discard(done: list[Path]) -> None:
    for path in done:
        path.unlink(missing_ok=True)
