"""Argument types shared by the commands (numbers with bounds) and the output files they name.

``type=int`` takes any integer, and a number past what the database or the operating system holds
(``--limit 10**40`` is past SQLite's 64-bit INTEGER) then fails deep inside as a traceback. A
bounded type refuses it while the command line is parsed, naming the option and the range.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from headwater.errors import HeadwaterError

__all__ = ["SQL_INT_MAX", "bounded_int", "write_output"]

#: The largest integer SQLite and PostgreSQL's BIGINT store.
SQL_INT_MAX = 2**63 - 1


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type`` for an integer from ``low`` to ``high`` (inclusive)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    parse.__name__ = "int"  # argparse names the type in its messages
    return parse


def write_output(path: Path, data: bytes, option: str) -> None:
    """Write ``data`` to the file ``path`` given as ``option``, whole or not at all: into a
    temporary file beside it, then renamed over it.

    Raises:
        HeadwaterError: it cannot be written (naming the option, the path and why); nothing is left.
    """
    if path.is_dir():
        raise HeadwaterError(f"{option} {path} is a directory: give a file name")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("xb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise HeadwaterError(
            f"cannot write {option} {path}: {exc.strerror or exc}; give a file in a directory "
            "you can write (nothing was written)"
        ) from exc
