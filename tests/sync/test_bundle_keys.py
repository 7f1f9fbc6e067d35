"""A bundle's entry keys become paths on the importing machine: a signed manifest must still
name only keys inside the tree's covered scope (``web/``, ``state/refs/``, ``state/mirror.json``).

The signature proves which key signed a manifest, not that the signing side is healthy: the
networked side of an air gap is the one more likely to be compromised, and a bundle it signs
must not write outside the far tree (or over the far tree's own bookkeeping, such as the record
that refuses replays). Every key here is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headwater.sync.bundle.apply import import_bundle, verify_bundle
from headwater.sync.bundle.archive import (
    MANIFEST_MEMBER,
    SIGNATURE_MEMBER,
    VOLUME_MEMBER,
    member_header,
    piece_name,
    small_member,
)
from headwater.sync.bundle.manifest import (
    END_OF_ARCHIVE,
    Entry,
    InvalidBundle,
    Manifest,
    Piece,
    encode_manifest,
    generate_keys,
    key_id,
    load_private_key,
    load_public_key,
    padded,
    sign,
)
from tests.sync.bundles import snapshot

HOSTILE = [
    "../escape",
    "../../escape",
    "web/../../escape",
    "web/simple/../../../escape",
    "/tmp/headwater-bundle-absolute-escape",
    "web//simple/x",
    "web/./simple/x",
    "web/simple/x/",
    "web\\..\\..\\escape",
    "web/simple/x\x00y",
    "",
    ".",
    "web",
    "escape",  # inside the root, outside the covered scope
    "state/bundle.json",  # the record that refuses replays
    "state/serial",
    "state/refs",
    "state/mirror.json/x",
    "webx/simple/x",
]


def _bundle(tmp: Path, key: str, data: bytes = b"owned\n") -> tuple[Path, Path]:
    private, public = tmp / "k", tmp / "k.pub"
    generate_keys(private, public)
    manifest = Manifest(
        bundle=uuid.uuid4().hex,
        tree=uuid.uuid4().hex,
        serial=1,
        base=None,
        created=datetime.now(UTC).isoformat(),
        key=key_id(load_public_key(public)),
        volumes=1,
        entries=(
            Entry(
                key=key,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                pieces=(Piece(volume=1, offset=0, length=len(data)),),
            ),
        ),
    )
    raw = encode_manifest(manifest)
    volume = tmp / "hostile.tar"
    volume.write_bytes(
        small_member(MANIFEST_MEMBER, raw, 0)
        + small_member(SIGNATURE_MEMBER, sign(load_private_key(private), raw), 0)
        + small_member(VOLUME_MEMBER, b"1\n", 0)
        + member_header(piece_name(0, 0), len(data), 0)
        + data
        + b"\0" * (padded(len(data)) - len(data))
        + b"\0" * END_OF_ARCHIVE
    )
    return volume, public


@pytest.mark.parametrize("key", HOSTILE, ids=repr)
def test_a_signed_bundle_naming_a_key_outside_the_tree_is_refused(tmp_path: Path, key: str) -> None:
    volume, public = _bundle(tmp_path, key)
    root = tmp_path / "far" / "tree"
    (root / "web" / "simple").mkdir(parents=True)
    before = snapshot(tmp_path)
    with pytest.raises(InvalidBundle, match="nothing was changed") as refused:
        import_bundle([str(volume)], load_public_key(public), root)
    assert "key" in str(refused.value)
    with pytest.raises(InvalidBundle):
        verify_bundle([str(volume)], load_public_key(public))
    # Nothing written anywhere: not beside the tree, not inside it, not at an absolute path.
    assert snapshot(tmp_path) == before
    assert not Path("/tmp/headwater-bundle-absolute-escape").exists()


@pytest.mark.parametrize(
    "key", ["web/simple/demo/index.html", "state/refs/demo", "state/mirror.json"]
)
def test_keys_inside_the_scope_still_import(tmp_path: Path, key: str) -> None:
    """The check refuses what is outside, not what a bundle legitimately carries."""
    volume, public = _bundle(tmp_path, key)
    root = tmp_path / "far"
    imported = import_bundle([str(volume)], load_public_key(public), root)
    assert imported.written == 1
    assert (root / key).read_bytes() == b"owned\n"
