"""Reading bundles: open volumes (signature first), check the set is complete, stream the pieces.

Shared by ``bundle verify`` (which throws the bytes away) and ``bundle import`` (which stages
them). Memory is bounded by one reused buffer plus the manifest: nothing else is kept while
streaming.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from headwater.sync.bundle.archive import (
    MANIFEST_MEMBER,
    SIGNATURE_MEMBER,
    VOLUME_MEMBER,
    MemberReader,
    piece_name,
)
from headwater.sync.bundle.manifest import (
    Entry,
    InvalidBundle,
    Manifest,
    Piece,
    decode_manifest,
    verify_signature,
)

__all__ = ["Bundle", "PieceSink", "open_bundle", "open_stream"]

_MANIFEST_LIMIT = 1 << 30  # a manifest past 1 GiB is not one this reader holds in memory
STDIN = "-"


@contextmanager
def open_stream(path: str) -> Iterator[BinaryIO]:
    """A volume by path, or stdin for ``-``.

    Raises:
        InvalidBundle: the file cannot be opened (named).
    """
    if path == STDIN:
        yield sys.stdin.buffer
        return
    try:
        stream = Path(path).open("rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise InvalidBundle(f"cannot open the volume {path}: {exc.strerror}") from exc
    with stream:
        yield stream


def read_header(
    reader: MemberReader, public: Ed25519PublicKey | None
) -> tuple[Manifest, bytes, int]:
    """The volume's manifest (signature checked before it is parsed; ``None``: the caller
    compares the bytes with a manifest it checked) and volume number."""
    raw = reader.read_small(MANIFEST_MEMBER, _MANIFEST_LIMIT)
    signature = reader.read_small(SIGNATURE_MEMBER, 4096)
    if public is not None:
        verify_signature(public, raw, signature, reader.where)
    manifest = decode_manifest(raw, reader.where)
    text = reader.read_small(VOLUME_MEMBER, 64)
    try:
        volume = int(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        volume = 0
    if not 1 <= volume <= manifest.volumes:
        raise InvalidBundle(
            f"{reader.where}: its volume number {text[:20]!r} is not 1 to {manifest.volumes}"
        )
    return manifest, raw, volume


class ChunkSink(Protocol):
    """Where a piece's bytes go. A chunk is a view of the reader's buffer: a sink writes it
    before it returns and keeps no reference to it."""

    def write(self, chunk: memoryview, /) -> object: ...


#: Called for every piece: returns where its bytes go (None: nowhere, just check them).
PieceSink = Callable[[int, Entry, Piece], ChunkSink | None]


@dataclass
class Bundle:
    """A bundle whose volumes' headers were read and whose signature matched."""

    manifest: Manifest
    raw: bytes
    #: Volume number -> the path given for it.
    paths: dict[int, str]
    _hashers: dict[int, hashlib._Hash] = field(default_factory=dict)
    #: A volume read from stdin cannot be opened twice: its reader, past the header.
    _live: dict[int, MemberReader] = field(default_factory=dict)

    def missing(self) -> list[int]:
        return [n for n in range(1, self.manifest.volumes + 1) if n not in self.paths]

    def require_complete(self) -> None:
        """Raises InvalidBundle naming every volume that was not given."""
        missing = self.missing()
        if missing:
            names = ", ".join(f"{n}" for n in missing)
            given = ", ".join(sorted(self.paths.values()))
            raise InvalidBundle(
                f"volume{'s' if len(missing) > 1 else ''} {names} of {self.manifest.volumes} "
                f"missing (given: {given}); give every volume of bundle "
                f"{self.manifest.bundle[:12]}; nothing was changed"
            )

    def stream(
        self, volume: int, sink: PieceSink, progress: Callable[[int], None] | None = None
    ) -> None:
        """Read volume ``volume`` again from the start and check every piece; bytes go to
        ``sink``. Volumes of a split entry must be streamed in order (the entry's own digest
        runs across them). Raises InvalidBundle at the first mismatch."""
        path = self.paths[volume]
        live = self._live.pop(volume, None)
        if live is not None:
            self._stream_pieces(live, volume, sink, progress)
            live.read_end()
            return
        with open_stream(path) as stream:
            reader = MemberReader(stream, f"volume {volume} ({path})")
            _manifest, raw, number = read_header(reader, None)  # same bytes as checked at open
            if raw != self.raw or number != volume:
                raise InvalidBundle(f"{reader.where} changed since it was opened")
            self._stream_pieces(reader, volume, sink, progress)
            reader.read_end()

    def _stream_pieces(
        self,
        reader: MemberReader,
        volume: int,
        sink: PieceSink,
        progress: Callable[[int], None] | None,
    ) -> None:
        for index, entry in enumerate(self.manifest.entries):
            for piece in entry.pieces:
                if piece.volume != volume:
                    continue
                out = sink(index, entry, piece)
                piece_hash = hashlib.sha256() if piece.sha256 is not None else None
                # The entry's own digest runs across volumes; None when its earlier pieces were
                # not read in this run (a volume verified alone: its piece digests cover it).
                whole = hashlib.sha256() if piece.offset == 0 else self._hashers.pop(index, None)
                for chunk in reader.read_data(piece_name(index, piece.offset), piece.length):
                    if whole is not None:
                        whole.update(chunk)
                    if piece_hash is not None:
                        piece_hash.update(chunk)
                    if out is not None:
                        out.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
                if piece_hash is not None and piece_hash.hexdigest() != piece.sha256:
                    raise _mismatch(reader.where, entry, "part of ")
                if piece.offset + piece.length < entry.size:
                    if whole is not None:
                        self._hashers[index] = whole
                elif whole is not None and whole.hexdigest() != entry.sha256:
                    raise _mismatch(reader.where, entry, "")


def _mismatch(where: str, entry: Entry, part: str) -> InvalidBundle:
    return InvalidBundle(
        f"{where}: {part}{entry.key} does not hash to the sha256 the signed manifest gives: the "
        "volume is damaged (copy it again); nothing was changed"
    )


def open_bundle(paths: list[str], public: Ed25519PublicKey) -> Bundle:
    """Read the header of every given volume: same bundle, signature good, no volume twice.

    Raises:
        InvalidBundle: naming the volume and what is wrong.
    """
    if not paths:
        raise InvalidBundle("no volume given")
    if STDIN in paths and len(paths) > 1:
        raise InvalidBundle("stdin (-) carries one volume only: give volumes as files")
    bundle: Bundle | None = None
    for path in paths:
        with open_stream(path) as stream:
            reader = MemberReader(stream, f"{path}")
            manifest, raw, volume = read_header(reader, public)
        if bundle is None:
            bundle = Bundle(manifest, raw, {volume: path})
            if path == STDIN:
                bundle._live[volume] = reader
            continue
        if raw != bundle.raw:
            raise InvalidBundle(
                f"{path} is a volume of another bundle ({manifest.bundle[:12]}, not "
                f"{bundle.manifest.bundle[:12]}); give the volumes of one bundle"
            )
        if volume in bundle.paths:
            raise InvalidBundle(f"{path} and {bundle.paths[volume]} are both volume {volume}")
        bundle.paths[volume] = path
    assert bundle is not None
    return bundle
