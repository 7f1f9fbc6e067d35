"""``headwater adopt``: take over an existing mirror (bandersnatch, or directories of files) in
place, downloading nothing it already has. See :mod:`headwater.sync.adopt` and docs/mirror.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from headwater.cli.arguments import bounded_int
from headwater.sync.adopt import ADOPTED, adopt

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``adopt`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "adopt",
        help="take over an existing mirror tree in place (bandersnatch, pip download)",
        description=(
            "Hard-link every file of an existing mirror tree (bandersnatch's layout) whose "
            "sha256 matches its page, and every distribution file in --files directories, into "
            "headwater's layout; record the projects so the next `headwater mirror` of UPSTREAM "
            "into the tree downloads none of them. The tree stays servable throughout. Exit "
            "status: 0 everything adopted, 1 some files were not (listed), 2 nothing was done."
        ),
    )
    parser.add_argument("--target", required=True, type=Path, help="the existing tree")
    parser.add_argument(
        "--upstream", required=True, help="the upstream the tree mirrors (its simple URL)"
    )
    parser.add_argument(
        "--files",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="also adopt the distribution files in DIR (pip download, a wheelhouse); repeatable",
    )
    parser.add_argument(
        "--workers", type=bounded_int(1, 1024), default=4, help="files hashed at once"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = adopt(args.target, args.upstream, directories=args.files, workers=args.workers)
    if args.format == "json":
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        print(
            f"adopted {report.files} files ({report.bytes} bytes) of {report.projects} projects "
            f"into {args.target}: {report.linked} given their sha256 name ({report.copied} "
            f"copied: no hard links here), {report.metadata} .metadata "
            f"({report.metadata_from_wheels} taken from their wheels), {report.from_directories} "
            f"from --files; not adopted {len(report.not_adopted)}; recorded in "
            f"{args.target / ADOPTED}"
        )
        for item in report.not_adopted:
            print(f"  not adopted {item.project} {item.file}: {item.why}", file=sys.stderr)
        print(f"next: headwater mirror --upstream {args.upstream} --target {args.target}")
    return 1 if report.not_adopted else 0
