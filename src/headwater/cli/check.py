"""``headwater check``: audit requirements for dependency confusion against the indexes a client
would use. Exit status: 0 no risk, 1 at least one risk (an unavailable index included), 2 the check
could not run (bad input, no index). See docs/check.md.

Only argparse is imported when the parser is built; the check itself is imported when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.check import Report, RequirementSet

__all__ = ["register"]

_DEFAULT_INPUTS = ("pylock.toml", "pyproject.toml", "requirements.txt")


def register(subparsers: Any) -> None:
    """Add the ``check`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="audit requirements for dependency confusion against your indexes",
        description=(
            "For every name in requirements.txt, pyproject.toml or pylock.toml files, ask every "
            "index the client would use (from the command line, the files, and pip's or uv's "
            "configuration) whether it serves the name, say what pip or uv would install, and "
            "report the confusion risks: served by several remote indexes without PEP 708 "
            "agreement (confusion), taken from the public index although a private index is "
            "asked and does not serve it (exposed), a public release installed instead of the "
            "private one (shadowed), a private name nobody holds on the public index "
            "(unclaimed), no index has it (missing), a headwater index's cooldown hides every "
            "file (cooldown), a headwater index refuses it (refused), the release it would "
            "install was published by someone else than the earlier ones, or unattested after "
            "attested ones, PEP 740 provenance verified (publisher), an index failed "
            "(unavailable). Exit status: 0 no risk, 1 at least one risk, 2 the check could not "
            "run."
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="REQUIREMENTS",
        help="requirements.txt, pyproject.toml or pylock.toml files (default: the first of "
        + ", ".join(_DEFAULT_INPUTS)
        + " in the current directory)",
    )
    parser.add_argument(
        "--config",
        metavar="TOML",
        help="check the [index.NAME] indexes of this headwater configuration, in process, as "
        "`headwater serve` would answer (instead of the indexes pip or uv would use)",
    )
    parser.add_argument(
        "--index",
        dest="config_indexes",
        action="append",
        default=[],
        metavar="NAME",
        help="with --config: the index to check (repeatable; default: every [index.NAME])",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="with --config: the server's data directory, if `headwater serve` is started with "
        "--data-dir (hosted indexes' database and files, proxy caches)",
    )
    parser.add_argument("--index-url", "-i", help="the primary index (replaces pip's/uv's default)")
    parser.add_argument(
        "--extra-index-url",
        action="append",
        default=[],
        metavar="URL",
        help="another index, as pip/uv's option (repeatable)",
    )
    parser.add_argument(
        "--find-links",
        "-f",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory of distribution files, a local source (repeatable)",
    )
    parser.add_argument(
        "--from",
        dest="client",
        choices=["auto", "pip", "uv", "none"],
        default="auto",
        help="read indexes from pip's or uv's configuration and follow its rules; none: only "
        "the command line and the files (auto: uv if a pyproject.toml has [tool.uv], else pip)",
    )
    parser.add_argument(
        "--public",
        default=None,
        metavar="URL",
        help="the public index, where anyone can register a name (https://pypi.org/simple/)",
    )
    parser.add_argument(
        "--format",
        choices=["table", "text", "json"],
        default="table",
        help="table (rich on a terminal, plain text otherwise), text, or json",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait to connect or for the next bytes of an answer (30)",
    )
    parser.add_argument(
        "--trusted-root",
        default=None,
        metavar="FILE",
        help="the Sigstore trusted_root.json PEP 740 provenance is verified against "
        "(default: the one shipped with headwater)",
    )
    parser.add_argument(
        "--no-provenance",
        action="store_true",
        help="do not fetch and verify who published what would be installed",
    )
    parser.set_defaults(run=run)


def _inputs(given: list[str]) -> list[Path]:
    from headwater.check import CheckError

    if given:
        return [Path(p) for p in given]
    for name in _DEFAULT_INPUTS:
        if Path(name).is_file():
            return [Path(name)]
    raise CheckError(
        "no requirements given and none of "
        + ", ".join(_DEFAULT_INPUTS)
        + " in the current directory; name the files to check"
    )


def _check_readable(path: str, flag: str) -> None:
    """Refuse ``path`` unless it is a file that can be read: given to ``flag``, it may be read
    only later (or never, when nothing needs it), and a typo must not pass unnoticed.

    Raises:
        CheckError: naming the flag, the path and why.
    """
    from headwater.check import CheckError

    try:
        with open(path, "rb") as handle:  # noqa: PTH123 (a str path from the command line)
            handle.read(1)
    except OSError as exc:
        raise CheckError(f"{flag} {path!r}: {exc.strerror or exc}; give a readable file") from exc


def run(args: argparse.Namespace) -> int:
    """Run the check; print the report; return the exit status."""
    from headwater.check import (
        DEFAULT_PUBLIC,
        CheckError,
        Client,
        CommandLineIndexes,
        ConfigPaths,
        RequirementSet,
        check_over_http,
        plan_pins,
        read_requirements,
        resolve_indexes,
    )
    from headwater.cli.progress import run_async

    if not args.timeout > 0:
        raise CheckError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    paths = _inputs(args.inputs)
    inputs = RequirementSet()
    for path in paths:
        inputs = inputs + read_requirements(path, environ=os.environ)
    for flag, given in (("--index", args.config_indexes), ("--data-dir", args.data_dir)):
        if given and args.config is None:
            raise CheckError(f"{flag} is about a headwater configuration: give --config too")
    if args.trusted_root is not None:
        _check_readable(args.trusted_root, "--trusted-root")
    if args.config is not None:
        report = _check_config(args, inputs)
        _print(report, args.format)
        return report.exit_status
    if args.client == "auto":
        client = Client.UV if inputs.uv_project else Client.PIP
    else:
        client = Client(args.client)
    public = args.public or DEFAULT_PUBLIC
    if "://" not in public:
        raise CheckError(f"--public {public!r} is not a URL; write it as https://host/simple/")
    plan = resolve_indexes(
        client,
        command_line=CommandLineIndexes(
            index_url=args.index_url,
            extra_index_urls=tuple(args.extra_index_url),
            find_links=tuple(args.find_links),
        ),
        directives=inputs.directives,
        environ=os.environ if client is not Client.NONE else {},
        paths=ConfigPaths.from_environ(os.environ, Path.cwd()),
        public=public,
        skip_files=[p for p in paths if p.name == "pyproject.toml"],
    )
    plan = plan_pins(inputs.requirements, plan)
    from headwater.check.publishers import ProvenanceChecker

    checker = None if args.no_provenance else ProvenanceChecker(args.trusted_root)
    report = run_async(
        check_over_http(inputs.requirements, plan, read_timeout=args.timeout, provenance=checker)
    )
    _print(report, args.format)
    return report.exit_status


def _check_config(args: argparse.Namespace, inputs: RequirementSet) -> Report:
    """``--config``: the configuration's indexes, built and asked in process."""
    from headwater.assembly.plan import plan_from_config
    from headwater.check import DEFAULT_PUBLIC, CheckError
    from headwater.check.configured import check_config
    from headwater.cli.progress import run_async

    mixed = [
        flag
        for flag, given in (
            ("--index-url", args.index_url),
            ("--extra-index-url", args.extra_index_url),
            ("--find-links", args.find_links),
            ("--from", args.client != "auto"),
        )
        if given
    ]
    if mixed:
        raise CheckError(
            f"{', '.join(mixed)} and --config cannot be combined: --config checks a headwater "
            "configuration's indexes, the others the indexes pip or uv would use; run the check "
            "once for each"
        )
    public = args.public or DEFAULT_PUBLIC
    if "://" not in public:
        raise CheckError(f"--public {public!r} is not a URL; write it as https://host/simple/")
    plan = plan_from_config(args.config, data_dir=args.data_dir)
    return run_async(
        check_config(
            inputs.requirements,
            plan,
            indexes=args.config_indexes,
            where=args.config,
            public=public,
            directives=[d.origin for d in inputs.directives],
            read_timeout=args.timeout,
        )
    )


def _print(report: Report, fmt: str) -> None:
    from headwater.check import render_json, render_text, write_table

    if fmt == "json":
        _write_all(render_json(report))
    elif fmt == "table" and sys.stdout.isatty():
        color = "NO_COLOR" not in os.environ
        write_table(report, sys.stdout, color=color)
    else:
        _write_all(render_text(report).encode("utf-8"))


def _write_all(data: bytes) -> None:
    """Write ``data`` to stdout completely. A buffered write to a pipe may return early when a
    signal interrupts it (seen in the benchmark: a 390 kB report cut at 320 kB, exit status
    unchanged), and a truncated report in CI must not pass for a whole one."""
    sys.stdout.flush()
    view = memoryview(data)
    while view:
        written = sys.stdout.buffer.write(view)
        view = view[written:]
    sys.stdout.buffer.flush()
