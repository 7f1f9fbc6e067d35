"""``headwater test-upstream``: serve a generated PyPI-like corpus on loopback (filled in by the
test-upstream work; see :mod:`headwater.testing`)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``test-upstream`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "test-upstream", help="serve a generated PyPI-like index for tests and benchmarks"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
