"""The ``headwater`` command: a thin layer over the library.

Each subcommand lives in its own module under :mod:`headwater.cli` and exposes ``register(subparsers)``;
this module only assembles them and turns :class:`~headwater.errors.HeadwaterError` into a message and
exit status 2 (exit 1 is reserved for "the job ran and something failed").
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from headwater import __version__
from headwater.errors import HeadwaterError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
    from headwater.cli import (
        admin,
        adopt,
        bundle,
        check,
        gc,
        mirror,
        move,
        nginx_config,
        provenance,
        serve,
        upstream,
        verify,
    )

    parser = argparse.ArgumentParser(
        prog="headwater",
        description=(
            "A Python package index: mirror PyPI into a static tree, serve hosted and proxied "
            "indexes, and refuse dependency confusion."
        ),
    )
    parser.add_argument("--version", action="version", version=f"headwater {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    admin.register(subparsers)
    adopt.register(subparsers)
    bundle.register(subparsers)
    provenance.register(subparsers)
    check.register(subparsers)
    gc.register(subparsers)
    mirror.register(subparsers)
    move.register(subparsers)
    nginx_config.register(subparsers)
    serve.register(subparsers)
    upstream.register(subparsers)
    verify.register(subparsers)
    return parser


# 128 + SIGPIPE: the status a shell reports for a process its reader stopped reading (`yes | head`).
_READER_GONE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status.

    Every command's output may go to a reader that stops early (``headwater verify | head``).
    Python ignores SIGPIPE, so the next write raises BrokenPipeError instead of ending the process;
    here that ends the command quietly with the status SIGPIPE would have given, for every command
    at once. (Restoring SIGPIPE's default action instead would also kill ``headwater serve`` on a
    client's closed socket.)
    """
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # output still buffered fails here, not at interpreter exit
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that finds nothing to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return _READER_GONE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        status: int = args.run(args)
    except HeadwaterError as exc:
        print(f"headwater: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("headwater: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
