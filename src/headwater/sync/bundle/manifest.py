"""What a bundle says about itself: the signed manifest, the volume plan, and the keys.

Vocabulary:

- **tree**: a mirror's static tree; the *source* tree a bundle is made from has a random
  identity (``state/bundle-origin.json``) so a bundle for another tree is refused.
- **bundle serial**: the source tree numbers its bundles 1, 2, 3...; the far side records the
  serial it has imported (``state/bundle.json``). A bundle made *since* serial N (or *against* the
  far side's manifest at serial N) has ``base = N`` and applies only on a tree at N.
- **entry**: one key the tree holds after the import (a file, a ``.metadata``, a page, the root,
  ``web/last-modified``, the mirror's ``state/mirror.json``), with its size and sha256. *Every*
  key is listed, whether its bytes travel or not: the importer checks that what does not travel
  is already there, byte for byte, and removes what the list does not name.
- **piece**: the bytes of one entry (or of one part of an entry split across volumes) in one
  volume, at an offset.

The manifest is JSON; the signature is Ed25519 over its exact bytes (``cryptography``). The
operator keeps the private key; the public key travels out of band and is given to ``verify`` and
``import``. Every volume carries the whole manifest and its signature, so each is verifiable alone.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from headwater.errors import HeadwaterError, InvalidInput
from headwater.storage.base import InvalidKey, check_key
from headwater.storage.layout import STATE_DIR, WEB

__all__ = [
    "FORMAT",
    "BundleError",
    "Entry",
    "InvalidBundle",
    "Manifest",
    "Piece",
    "decode_manifest",
    "encode_manifest",
    "generate_keys",
    "key_id",
    "load_private_key",
    "load_public_key",
    "parse_size",
    "plan_volumes",
    "sign",
    "verify_signature",
]

FORMAT = 1
BLOCK = 512
#: Every volume ends with two zero blocks (POSIX tar's end of archive).
END_OF_ARCHIVE = 2 * BLOCK


class BundleError(HeadwaterError):
    """A bundle cannot be made or applied (the tree is busy, a key is unreadable, ...)."""


class InvalidBundle(BundleError, InvalidInput):
    """A bundle is damaged, forged, incomplete, or does not apply to this tree. Nothing changed,
    and every message says so."""

    def __init__(self, message: str) -> None:
        if "nothing was changed" not in message:
            message += "; nothing was changed"
        super().__init__(message)


class Piece(msgspec.Struct, frozen=True, array_like=True):
    """Bytes ``offset .. offset+length`` of an entry, in ``volume`` (1-based). ``sha256`` is the
    digest of these bytes when the entry is split (else None: the entry's own digest covers it)."""

    volume: int
    offset: int
    length: int
    sha256: str | None = None


class Entry(msgspec.Struct, frozen=True, array_like=True):
    """A key of the tree after import. ``pieces`` is empty when the bytes do not travel."""

    key: str
    size: int
    sha256: str
    pieces: tuple[Piece, ...] = ()

    @property
    def included(self) -> bool:
        return bool(self.pieces)


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """The signed statement of what a bundle holds and what it applies on."""

    format: int = FORMAT
    bundle: str  # random id: volumes of one bundle carry the same one
    tree: str  # identity of the source tree
    serial: int  # this bundle's serial in the source tree
    base: int | None  # the serial it applies on; None: a full bundle
    created: str  # ISO 8601, UTC
    key: str  # key id (sha256 of the raw public key), for messages
    volumes: int
    entries: tuple[Entry, ...]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Manifest)
_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")

#: The keys a bundle covers (and so may write): the served tree, the mirror's page references
#: and its snapshot. Nothing else of the far tree (its bundle record, lock, serial) and nothing
#: outside it: a signature says who signed, not that the signing side was healthy.
SNAPSHOT_KEY = f"{STATE_DIR}/mirror.json"
COVERED_PREFIXES = (f"{WEB}/", f"{STATE_DIR}/refs/")


def check_entry_key(key: str, where: str) -> None:
    """Raises InvalidBundle unless ``key`` is a safe relative key (:func:`~headwater.storage.
    base.check_key`: no ``..``, no absolute path, no empty or ``.`` component, no backslash or
    control character) inside the covered scope."""
    try:
        check_key(key)
    except InvalidKey as exc:
        raise InvalidBundle(f"{where}: the manifest names an unsafe key: {exc}") from None
    if key != SNAPSHOT_KEY and not key.startswith(COVERED_PREFIXES):
        raise InvalidBundle(
            f"{where}: the manifest names key {key[:200]!r}, outside what a bundle covers "
            f"({', '.join(COVERED_PREFIXES)}, {SNAPSHOT_KEY}): it was made by something else "
            "than `headwater bundle create`"
        )


def encode_manifest(manifest: Manifest) -> bytes:
    return _encoder.encode(manifest)


def decode_manifest(raw: bytes, where: str) -> Manifest:
    """Parse a manifest whose signature was already checked; check its shape.

    Raises:
        InvalidBundle: naming ``where`` and what is wrong.
    """
    try:
        manifest = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidBundle(
            f"{where}: the manifest is unreadable ({exc}); nothing was changed"
        ) from exc
    if manifest.format != FORMAT:
        raise InvalidBundle(
            f"{where}: bundle format {manifest.format} is not one this headwater reads ({FORMAT}); "
            "use the same headwater version on both sides"
        )
    if manifest.volumes < 1:
        raise InvalidBundle(f"{where}: the manifest names no volumes")
    for entry in manifest.entries:
        check_entry_key(entry.key, where)
        if entry.size < 0 or not _SHA256.match(entry.sha256):
            raise InvalidBundle(f"{where}: entry {entry.key[:200]!r} has no valid size and sha256")
        covered = 0
        for piece in entry.pieces:
            if (
                piece.offset != covered
                or piece.length < 0
                or not 1 <= piece.volume <= manifest.volumes
            ):
                raise InvalidBundle(f"{where}: entry {entry.key[:200]!r} has pieces out of order")
            covered += piece.length
        if entry.pieces and covered != entry.size:
            raise InvalidBundle(f"{where}: the pieces of {entry.key[:200]!r} do not cover it")
    return manifest


# -- keys ------------------------------------------------------------------------------------


def key_id(public: Ed25519PublicKey) -> str:
    """The sha256 (hex) of the raw 32-byte public key: how messages name a key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def generate_keys(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair (private: PKCS#8 PEM, mode 0600, never overwritten; public:
    SubjectPublicKeyInfo PEM). Returns the key id.

    Raises:
        BundleError: a file exists already (a key is never replaced silently).
    """
    for path in (private_path, public_path):
        if path.exists():
            raise BundleError(f"{path} exists; keys are never overwritten: choose another name")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public = private.public_key()
    public_path.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_id(public)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Raises BundleError naming the file when it is not an unencrypted Ed25519 private key."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BundleError(
            f"cannot read the private key {path}: {exc}; make one with `headwater bundle keygen`"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path} is not an Ed25519 private key (`headwater bundle keygen`)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Raises BundleError naming the file when it is not an Ed25519 public key."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise BundleError(
            f"cannot read the public key {path}: {exc}; give the .pub file `headwater bundle "
            "keygen` wrote"
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path} is not an Ed25519 public key")
    return key


def sign(private: Ed25519PrivateKey, manifest: bytes) -> bytes:
    """The signature, as hex text (it travels as a tar member a person may look at)."""
    return private.sign(manifest).hex().encode() + b"\n"


def verify_signature(
    public: Ed25519PublicKey, manifest: bytes, signature: bytes, where: str
) -> None:
    """Raises InvalidBundle unless ``signature`` is ``public``'s over ``manifest``."""
    try:
        public.verify(bytes.fromhex(signature.decode("ascii").strip()), manifest)
    except (InvalidSignature, ValueError, UnicodeDecodeError) as exc:
        raise InvalidBundle(
            f"{where}: the signature does not match the manifest for the public key "
            f"{key_id(public)[:16]}: the bundle was altered, or signed with another key; "
            "nothing was changed"
        ) from exc


# -- volumes ---------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*\Z", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``4G``, ``700M``, ``650MiB``, ``123456`` -> bytes (binary units).

    Raises:
        InvalidInput: naming the text and the accepted forms.
    """
    match = _SIZE.match(text)
    if not match:
        raise InvalidInput(
            f"volume size {text[:40]!r} is not a size: write a number of bytes with an optional "
            "unit K, M, G or T (binary), e.g. 4G"
        )
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def padded(size: int) -> int:
    """A member's data rounded up to whole tar blocks."""
    return -(-size // BLOCK) * BLOCK


def plan_volumes(
    sizes: list[int], include: list[bool], volume_size: int | None, header: int
) -> list[list[tuple[int, int, int]]]:
    """Which bytes of which entry go in which volume (pure; the caller's order is kept).

    ``header`` is the bytes every volume spends before its data (manifest, signature, volume
    number); each data member costs one tar header block plus its data padded to a block. An entry
    that does not fit the room left is split (a piece fills the volume, the rest goes on), so a
    volume is never larger than ``volume_size``. Returns, per entry, ``(volume, offset, length)``.

    Raises:
        InvalidInput: ``volume_size`` leaves no room for data after the header.
    """
    per_entry: list[list[tuple[int, int, int]]] = [[] for _ in sizes]
    if volume_size is None:
        for i, size in enumerate(sizes):
            if include[i]:
                per_entry[i].append((1, 0, size))
        return per_entry
    capacity = volume_size - header - END_OF_ARCHIVE
    if capacity < 2 * BLOCK:
        raise InvalidInput(
            f"a volume size of {volume_size} bytes leaves no room for data: each volume carries "
            f"the signed manifest ({header} bytes here); give at least {header + END_OF_ARCHIVE + (1 << 20)} bytes"
        )
    volume, room = 1, capacity
    for i, size in enumerate(sizes):
        if not include[i]:
            continue
        offset = 0
        while True:
            left = size - offset
            if BLOCK + padded(left) <= room:
                per_entry[i].append((volume, offset, left))
                room -= BLOCK + padded(left)
                break
            fits = (room - BLOCK) // BLOCK * BLOCK
            if fits > 0:
                per_entry[i].append((volume, offset, fits))
                offset += fits
            volume, room = volume + 1, capacity
    return per_entry
