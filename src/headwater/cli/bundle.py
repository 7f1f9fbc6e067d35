"""``headwater bundle``: carry a mirror tree across an air gap as signed, verifiable volumes.

    headwater bundle keygen   --private-key K --public-key K.pub
    headwater bundle create   --target TREE --private-key K -o FILE [--volume-size 4G]
                              [--since N | --against FAR.json]
    headwater bundle verify   --public-key K.pub FILE...
    headwater bundle import   --target TREE --public-key K.pub FILE...
    headwater bundle manifest --target TREE -o FAR.json

Exit status: 0 done; 2 refused (a bad bundle, key or base; nothing was changed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from headwater.cli.arguments import write_output
from headwater.sync.bundle.apply import describe_tree, import_bundle, verify_bundle
from headwater.sync.bundle.create import create_bundle
from headwater.sync.bundle.manifest import (
    BundleError,
    generate_keys,
    load_private_key,
    load_public_key,
    parse_size,
)

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``bundle`` command and its subcommands."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bundle",
        help="carry a mirror tree across an air gap as signed volumes",
        description=(
            "Pack a mirror tree (or what changed since an earlier bundle) into signed tar "
            "volumes, check them, and apply them to a tree on the far side. See docs/airgap.md."
        ),
    )
    sub = parser.add_subparsers(dest="bundle_command", metavar="SUBCOMMAND", required=True)

    keygen = sub.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    keygen.add_argument("--private-key", required=True, type=Path, help="where to write it (0600)")
    keygen.add_argument("--public-key", required=True, type=Path, help="where to write it")
    keygen.set_defaults(run=_keygen)

    create = sub.add_parser("create", help="pack a tree into a signed bundle")
    create.add_argument("--target", required=True, type=Path, help="the mirror tree to pack")
    create.add_argument("--private-key", required=True, type=Path, help="the signing key")
    create.add_argument(
        "-o",
        "--output",
        required=True,
        help="the bundle file ('-': stdout); with --volume-size "
        "the volumes are OUTPUT.001, OUTPUT.002, ...",
    )
    create.add_argument("--volume-size", help="split into volumes of at most this size (4G, 700M)")
    create.add_argument(
        "--since",
        type=int,
        metavar="SERIAL",
        help="carry only what changed since the bundle with this serial made from this tree",
    )
    create.add_argument(
        "--against",
        type=Path,
        metavar="FILE",
        help="carry only what the far tree lacks, given its `bundle manifest` output",
    )
    create.set_defaults(run=_create)

    verify = sub.add_parser("verify", help="check a bundle (or some of its volumes); no import")
    verify.add_argument("--public-key", required=True, type=Path)
    verify.add_argument("volumes", nargs="+", metavar="VOLUME", help="volume files ('-': stdin)")
    verify.set_defaults(run=_verify)

    importer = sub.add_parser("import", help="apply a bundle to a tree")
    importer.add_argument("--target", required=True, type=Path, help="the tree to update")
    importer.add_argument("--public-key", required=True, type=Path)
    importer.add_argument("volumes", nargs="+", metavar="VOLUME", help="every volume ('-': stdin)")
    importer.set_defaults(run=_import)

    manifest = sub.add_parser(
        "manifest", help="describe a (far side) tree for `bundle create --against`"
    )
    manifest.add_argument("--target", required=True, type=Path)
    manifest.add_argument("-o", "--output", required=True, type=Path)
    manifest.set_defaults(run=_manifest)


def _keygen(args: argparse.Namespace) -> int:
    key = generate_keys(args.private_key, args.public_key)
    print(
        f"key {key[:16]}: private {args.private_key} (keep it), public {args.public_key} "
        "(give it to the far side out of band)"
    )
    return 0


def _create(args: argparse.Namespace) -> int:
    out = None if args.output == "-" else Path(args.output)
    created = create_bundle(
        args.target,
        load_private_key(args.private_key),
        out,
        volume_size=parse_size(args.volume_size) if args.volume_size else None,
        since=args.since,
        against=args.against,
    )
    base = "full" if created.base is None else f"since bundle {created.base}"
    names = ", ".join(str(p) for p in created.paths) or "stdout"
    print(
        f"bundle {created.serial} ({base}): {created.included} of {created.entries} entries, "
        f"{created.bytes} bytes in {max(len(created.paths), 1)} volume(s): {names}",
        file=sys.stderr,
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    verified = verify_bundle(args.volumes, load_public_key(args.public_key))
    m = verified.manifest
    which = ", ".join(str(v) for v in verified.volumes)
    state = "complete" if verified.complete else f"partial: volumes {which} of {m.volumes} checked"
    print(
        f"bundle {m.serial} of tree {m.tree[:12]} ({'full' if m.base is None else f'since {m.base}'}): "
        f"good, {state}"
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    done = import_bundle(args.volumes, load_public_key(args.public_key), args.target)
    m = done.manifest
    if done.already:
        print(f"bundle {m.serial} is imported in {args.target} already: nothing to do")
        return 0
    print(
        f"imported bundle {m.serial} into {args.target}: {done.written} written, {done.removed} "
        f"removed{' (resumed)' if done.resumed else ''}"
    )
    return 0


def _manifest(args: argparse.Namespace) -> int:
    if not args.target.is_dir():
        raise BundleError(
            f"--target {args.target} is not a directory: give the far side's tree (an empty "
            "directory for a tree that has none yet)"
        )
    write_output(args.output, msgspec.json.encode(describe_tree(args.target)), "--output")
    print(f"wrote {args.output}: give it to `bundle create --against` on the source side")
    return 0
