"""Which keys of a tree a bundle carries, in the order they are applied, and the far side's record.

A bundle carries what a served tree is: everything under ``web/``, the shared-file markers
(``state/refs/``) and the mirror's state snapshot (``state/mirror.json``, so ``headwater verify``
on the far side knows the filters the tree was made with). Journals, locks, checkpoints and the
bundle bookkeeping itself stay on their side.

The order is the mirror's order of writes (:mod:`headwater.sync.engine`): distribution files,
their ``.metadata``, shared-file markers, project pages (``index.v1_json`` last in each
directory: it is what "the page exists" means), the root page, the rest of ``web/`` (the
last-modified stamp), then the state. The importer applies them in this order, so a page never
points at a file that is not there yet.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import msgspec

from headwater.storage.layout import ROOT_INDEX_DIR, STATE_DIR, WEB, sha256_of_file_key
from headwater.sync.bundle.manifest import BundleError, InvalidBundle

__all__ = [
    "FarManifest",
    "Origin",
    "Record",
    "apply_rank",
    "hash_path",
    "list_tree",
    "read_json",
    "write_json",
]

SNAPSHOT = f"{STATE_DIR}/mirror.json"
REFS = f"{STATE_DIR}/refs"
ORIGIN = f"{STATE_DIR}/bundle-origin.json"
SENT = f"{STATE_DIR}/bundles"  # SENT/<serial>.json: the listing each bundle made here carried
RECORD = f"{STATE_DIR}/bundle.json"
STAGING = f"{STATE_DIR}/bundle-import"
T = TypeVar("T")
_PAGE_RANK = {"index.html": 0, "index.v1_html": 1, "index.v1_json": 2}


class Origin(msgspec.Struct, kw_only=True):
    """The source tree's identity and the serial of the last bundle made from it."""

    tree: str = msgspec.field(default_factory=lambda: secrets.token_hex(16))
    serial: int = 0


class Record(msgspec.Struct, kw_only=True):
    """What the far tree has imported: which source tree, at which bundle serial."""

    tree: str
    serial: int
    bundle: str
    key: str


class FarManifest(msgspec.Struct, kw_only=True):
    """``bundle manifest``'s output: the far tree's record and every key it holds (sha256)."""

    format: int = 1
    tree: str | None
    serial: int | None
    keys: dict[str, str]


def read_json(path: Path, kind: type[T], what: str) -> T | None:
    """Decode ``path`` as ``kind``; None if absent; BundleError naming it if unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError as exc:
        raise InvalidBundle(f"{path} ({what}) is unreadable: {exc}") from exc


def write_json(path: Path, value: object) -> None:
    """Atomically replace ``path`` (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        out.write(msgspec.json.encode(value))
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def hash_path(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def apply_rank(key: str) -> tuple[int, str, int]:
    """Sort key putting a tree's keys in the order they are applied (see the module doc)."""
    if key.startswith(f"{WEB}/packages/"):
        return (0 if addressed_digest(key) else 1, key, 0)
    if key.startswith(REFS + "/"):
        return (2, key, 0)
    if key.startswith(ROOT_INDEX_DIR + "/"):
        directory, _, name = key.rpartition("/")
        rank = _PAGE_RANK.get(name, 3)
        return (4 if directory == ROOT_INDEX_DIR else 3, directory, rank)
    if key.startswith(WEB + "/"):
        return (5, key, 0)
    return (6, key, 0)


def _walk(root: Path, top: str) -> Iterator[str]:
    base = root / top
    if not base.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not d.startswith(".headwater")]
        rel = Path(dirpath).relative_to(root).as_posix()
        for name in filenames:
            yield f"{rel}/{name}"


def scope_keys(root: Path) -> list[str]:
    """Every key a bundle covers that ``root`` holds, in apply order."""
    keys = [*_walk(root, WEB), *_walk(root, REFS)]
    if (root / SNAPSHOT).is_file():
        keys.append(SNAPSHOT)
    keys.sort(key=apply_rank)
    return keys


_DISTRIBUTIONS = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".egg")


def addressed_digest(key: str) -> str | None:
    """The sha256 a key is addressed by: only a distribution file's own key. Its sidecars
    (``.metadata``, ``.provenance``, anything later) share the path but not the digest, so any
    name that is not a distribution's is hashed instead."""
    if not key.lower().endswith(_DISTRIBUTIONS):
        return None
    return sha256_of_file_key(key)


def file_digest(root: Path, key: str, size: int) -> str:
    """The sha256 of a key: read from the key itself for a distribution file (content-addressed;
    the bytes are checked against it while they are packed), hashed otherwise."""
    return addressed_digest(key) or hash_path(root / key)


def list_tree(root: Path) -> list[tuple[str, int, str]]:
    """``(key, size, sha256)`` of every covered key, in apply order.

    Raises:
        BundleError: a key vanished while it was listed (something else writes the tree).
    """
    listing: list[tuple[str, int, str]] = []
    for key in scope_keys(root):
        try:
            size = (root / key).stat().st_size
            listing.append((key, size, file_digest(root, key, size)))
        except FileNotFoundError as exc:
            raise BundleError(
                f"{key} vanished while the tree was listed: another program is changing "
                f"{root}; stop it and run again (nothing was written)"
            ) from exc
    return listing
