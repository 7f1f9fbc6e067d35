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
from headwater.sync.bundle.pipeline import (
    CHUNK,
    HINT_AHEAD,
    STEP,
    Hasher,
    Mismatch,
    Segment,
    ShortFile,
    Sink,
    sequential,
    will_need,
)

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
        self.tmp: Path | None = None
        if path is None:
            stream = sys.stdout.buffer
            stream.flush()
            try:
                fd: int | None = stream.fileno()
            except (OSError, AttributeError, ValueError):  # not a descriptor (an in-memory stream)
                fd = None
            self.sink = Sink(fd, readable=False, stream=stream if fd is None else None)
        else:
            self.tmp = path.with_name(f".{path.name}.partial")
            # Opened for reading too: the hasher reads back what was written.
            fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o666)
            self.sink = Sink(fd, readable=True)

    def finish(self) -> None:
        self.sink.flush()
        if self.tmp is not None and self.path is not None:
            self._close(durable=True)
            self.tmp.replace(self.path)

    def discard(self) -> None:
        if self.tmp is not None:
            self._close(durable=False)
            self.tmp.unlink(missing_ok=True)

    def _close(self, *, durable: bool) -> None:
        fd, self.sink.fd = self.sink.fd, None
        if fd is not None:
            try:
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _write(
    root: Path,
    manifest: Manifest,
    raw: bytes,
    signature: bytes,
    paths: list[Path],
    mtime: int,
    progress: Callable[[int], None] | None,
) -> int:
    """Stream every volume; returns the bytes written. The pieces are packed in the manifest's
    order, which is the files' order on the disk (:mod:`~headwater.sync.bundle.order`), each
    copied inside the kernel and hashed on a second thread (:mod:`~headwater.sync.bundle.pipeline`).
    """
    total = 0
    by_volume: dict[int, list[tuple[int, Entry, Piece]]] = {}
    for index, entry in enumerate(manifest.entries):
        for piece in entry.pieces:
            by_volume.setdefault(piece.volume, []).append((index, entry, piece))
    digests: dict[int, hashlib._Hash] = {}
    hasher = Hasher()
    done: list[Path] = []
    try:
        for volume in range(1, manifest.volumes + 1):
            pieces = by_volume.get(volume, [])
            segments = [
                Segment(root / entry.key, piece.offset, piece.length, entry.key)
                for _index, entry, piece in pieces
            ]
            out = _Output(paths[volume - 1] if paths else None)
            try:
                sink = out.sink
                sink.write(small_member(MANIFEST_MEMBER, raw, mtime))
                sink.write(small_member(SIGNATURE_MEMBER, signature, mtime))
                sink.write(small_member(VOLUME_MEMBER, f"{volume}\n".encode(), mtime))
                for ahead in segments[1 : HINT_AHEAD + 1]:
                    will_need(ahead)
                for n, (index, entry, piece) in enumerate(pieces):
                    # Tell the kernel about the next files now, so its read-ahead does not stop
                    # at the end of this one.
                    if n + HINT_AHEAD + 1 < len(segments):
                        will_need(segments[n + HINT_AHEAD + 1])
                    sink.write(member_header(piece_name(index, piece.offset), piece.length, mtime))
                    if piece.length == entry.size < SMALL:
                        _pack_small(segments[n], entry.sha256, sink)
                    else:
                        digest = digests.pop(index, None) or hashlib.sha256()
                        _pack(segments[n], entry.size, sink, hasher, digest)
                        if piece.offset + piece.length < entry.size:
                            digests[index] = digest  # the rest follows in the next volume
                        else:
                            hasher.expect(digest, entry.sha256, entry.key)
                    sink.write(b"\0" * (padded(piece.length) - piece.length))
                    if progress is not None:
                        progress(piece.length)
                sink.write(b"\0" * END_OF_ARCHIVE)
                sink.flush()
                hasher.wait()  # every byte of the volume checked before it gets its name
                out.finish()
            except BaseException:
                hasher.settle()  # nothing reads the volume any more
                out.discard()
                raise
            if out.path is not None:
                done.append(out.path)
            total += sink.position
    except (ShortFile, Mismatch, Grown) as exc:
        _discard(done)
        raise BundleError(_failure_message(exc)) from None
    except BaseException:
        _discard(done)
        raise
    finally:
        hasher.stop()
    return total


class Grown(Exception):
    """A file holds more bytes than when it was listed."""

    def __init__(self, name: str, size: int, listed: int) -> None:
        super().__init__(name)
        self.name, self.size, self.listed = name, size, listed


def _failure_message(exc: ShortFile | Mismatch | Grown) -> str:
    again = "stop it and run again (nothing was written)"
    if isinstance(exc, ShortFile):
        return (
            f"{exc.segment.name} is shorter than when it was listed: another program is changing "
            f"the tree; {again}"
        )
    if isinstance(exc, Grown):
        return (
            f"{exc.name} is longer than when it was listed ({exc.size} bytes, listed with "
            f"{exc.listed}): another program is changing the tree; {again}"
        )
    return (
        f"{exc.name} does not hash to its sha256 ({exc.got[:16]}...): the tree is damaged; run "
        "`headwater verify --repair` and make the bundle again (nothing was written)"
    )


def _pack(
    segment: Segment,
    size: int,
    sink: Sink,
    hasher: Hasher,
    digest: hashlib._Hash,
) -> None:
    """Copy ``segment`` into ``sink`` and have ``hasher`` add its bytes to ``digest`` (read back
    from the volume where it can be, else from the file). ``size``: the file's listed size."""
    fd = os.open(segment.path, os.O_RDONLY | _CLOEXEC)
    try:
        sequential(fd)
        offset, left = segment.offset, segment.length
        while left:
            hasher.check()
            at = sink.position
            got = sink.copy(fd, offset, min(STEP, left))
            if not got:
                raise ShortFile(segment)
            if sink.readable:
                hasher.hash(sink.fd, at, got, digest, segment)  # type: ignore[arg-type]
            else:
                hasher.hash(fd, offset, got, digest, segment)
            offset += got
            left -= got
        if offset == size and (now := os.fstat(fd).st_size) != size:
            raise ShortFile(segment) if now < size else Grown(segment.name, now, size)
    finally:
        if sink.readable:
            os.close(fd)
        else:
            hasher.close(fd)  # after the hasher has read it


#: Files smaller than this are read into the process, hashed and gathered with the members around
#: them into one write: for them a kernel copy and a job for the hashing thread cost more than the
#: copy (a tree of 3,605 files of about 1 KB, 6 alternating rounds: 0.85 s with kernel copies for
#: every file, 0.67 s with this threshold, 0.80 s for the code before kernel copies).
SMALL = 64 << 10


def _pack_small(segment: Segment, sha256: str, sink: Sink) -> None:
    """Pack a whole file of fewer than :data:`SMALL` bytes through the process."""
    fd = os.open(segment.path, os.O_RDONLY | _CLOEXEC)
    try:
        data = b""
        while len(data) <= segment.length:  # one byte more than listed: a file that grew shows
            more = os.pread(fd, segment.length + 1 - len(data), len(data))
            if not more:
                break
            data += more
        if len(data) < segment.length:
            raise ShortFile(segment)
        if len(data) > segment.length:
            raise Grown(segment.name, os.fstat(fd).st_size, segment.length)
    finally:
        os.close(fd)
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise Mismatch(segment.name, got)
    sink.write(data)


def _discard(done: list[Path]) -> None:
    for path in done:
        path.unlink(missing_ok=True)
