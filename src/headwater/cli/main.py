"""The ``headwater`` command: a thin layer over the library.

Each subcommand lives in its own module under :mod:`headwater.cli` and exposes ``register(subparsers)``;
this module only assembles them and turns :class:`~headwater.errors.HeadwaterError` into a message and
exit status 2 (exit 1 is reserved for "the job ran and something failed").
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from headwater import __version__
from headwater.errors import HeadwaterError, printable

__all__ = ["main"]


#: The module under ``headwater.cli`` that registers each command. ``headwater COMMAND ...``
#: imports only that one: together they import most of the library, which cost every command
#: 0.23 s of its start on an idle machine here and over a second at load 12 (the same for a
#: ``headwater adopt`` that then takes a fraction of a second). tests/test_cli.py checks this
#: table against what each module registers.
COMMANDS: dict[str, str] = {
    "db": "admin",
    "user": "admin",
    "token": "admin",
    "project": "admin",
    "publisher": "admin",
    "namespace": "admin",
    "audit": "admin",
    "adopt": "adopt",
    "bundle": "bundle",
    "provenance": "provenance",
    "check": "check",
    "gc": "gc",
    "mirror": "mirror",
    "move": "move",
    "backup": "move",
    "restore": "move",
    "nginx-config": "nginx_config",
    "serve": "serve",
    "test-upstream": "upstream",
    "verify": "verify",
}


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose usage errors show control characters escaped, as every other
    message of the command does (subcommands' parsers are of the same class)."""

    def error(self, message: str) -> NoReturn:
        super().error(_shown(message))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: with every subcommand registered, or with ``command`` only (when it
    is one: see :data:`COMMANDS`)."""
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    parser = _Parser(
        prog="headwater",
        description=(
            "A Python package index: mirror PyPI into a static tree, serve hosted and proxied "
            "indexes, and refuse dependency confusion."
        ),
    )
    parser.add_argument("--version", action="version", version=f"headwater {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in modules:
        importlib.import_module(f"headwater.cli.{module}").register(subparsers)
    _refuse_empty_paths(parser)
    return parser


def _path(text: str) -> Path:
    """argparse's type for a path: ``Path("")`` is the current directory, so an empty argument
    (``--target "$UNSET"``) would silently mean "here"; refused instead."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path; give a file or directory")
    return Path(text)


def _refuse_empty_paths(parser: argparse.ArgumentParser) -> None:
    """Every ``type=Path`` argument of ``parser``'s tree parsed by :func:`_path` instead."""
    for action in parser._actions:
        if action.type is Path:
            action.type = _path
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _refuse_empty_paths(child)


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


def _shown(message: str) -> str:
    """``message`` for a terminal: control characters a name or a path in it carried (an escape
    sequence, a carriage return) shown escaped, so no input can rewrite what the user sees; its
    own line breaks kept."""
    return "\n".join(printable(line, 100_000) for line in message.split("\n"))


def _os_error(exc: OSError) -> str:
    """``exc`` as a message naming its path(s): "cannot use PATH: Not a directory; ..."."""
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    if not paths:
        return f"{reason}; check the command's arguments and retry"
    return (
        f"cannot use {paths}: {reason}; check the paths given to the command (their type, "
        "permissions and free space) and retry"
    )


def _not_utf8(given: Sequence[str]) -> str | None:
    """The first argument that is not UTF-8 text, shown escaped (None: all are).

    Python hands a command line's undecodable bytes over as lone surrogates; every name, path and
    URL headwater keeps (in its database, its pages, its URLs) is UTF-8, so such an argument is
    refused here, for every command, instead of failing wherever it is first encoded."""
    for arg in given:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return arg.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
    return None


def _main(argv: Sequence[str] | None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    bad = _not_utf8(given)
    if bad is not None:
        print(
            f"headwater: error: the argument '{bad}' is not UTF-8 text: headwater's names, paths "
            "and URLs are UTF-8; rename the file or give the name in UTF-8",
            file=sys.stderr,
        )
        return 2
    parser = build_parser(given[0] if given else None)
    args = parser.parse_args(given)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        status: int = args.run(args)
    except HeadwaterError as exc:
        print(f"headwater: error: {_shown(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # main() ends the command quietly
    except OSError as exc:
        # A file the command was pointed at failed in a way its own checks did not foresee (a
        # path through a regular file, a folder it may not write, a read that fails with EIO).
        # The system's own words name the path; a traceback would only hide them.
        print(f"headwater: error: {_shown(_os_error(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("headwater: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
