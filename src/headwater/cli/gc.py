"""``headwater gc``: find (and with ``--delete``, remove) stored objects of hosted indexes that
no database row refers to (see :mod:`headwater.repository.collector`). A dry run by default."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``gc`` subcommand."""
    parser = subparsers.add_parser(
        "gc",
        help="find or remove hosted files no database row refers to (dry run by default)",
        description=(
            "Find the objects in hosted indexes' storage that no database row refers to (left "
            "by an upload whose server or database failed before its row was committed) and, "
            "with --delete, remove them. Safe while servers run and uploads arrive: each "
            "object is looked at again under the database's write lock before it is deleted, "
            "and objects of uploads in progress are kept (docs/scale-out.md)."
        ),
    )
    parser.add_argument(
        "--config", help="configuration file (default: $HEADWATER_CONFIG, ./headwater.toml)"
    )
    parser.add_argument("--data-dir", help="the server's data directory")
    parser.add_argument("--database", help="database URL (sqlite:///PATH or postgresql://...)")
    parser.add_argument(
        "--index", action="append", help="only this hosted index (repeatable; default: all)"
    )
    parser.add_argument(
        "--delete", action="store_true", help="delete what is found (default: only report it)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="only report (the default; given for scripts that want to say so)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="keep unreferenced objects written less than this long ago (default 3600)",
    )
    parser.add_argument(
        "--pending-for",
        type=float,
        default=86400.0,
        metavar="SECONDS",
        help="an upload in progress keeps its objects this long, then counts as crashed "
        "(default 86400)",
    )
    parser.add_argument("--list", action="store_true", help="print every key found unreferenced")
    parser.set_defaults(run=run)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``headwater gc``."""
    import asyncio

    from headwater.assembly import database_url, hosted_storage
    from headwater.assembly.plan import plan_from_flags
    from headwater.config import ConfigError
    from headwater.db import Database
    from headwater.repository.collector import collect

    if args.delete and args.dry_run:
        raise ConfigError("give --delete or --dry-run, not both")
    if args.grace < 0 or args.pending_for < 0:
        raise ConfigError("--grace and --pending-for must not be negative")
    plan = plan_from_flags(
        args.config, overrides={"data_dir": args.data_dir, "database": args.database}
    )
    names = args.index or list(plan.hosted)
    unknown = [n for n in names if n not in plan.hosted]
    if unknown:
        raise ConfigError(
            f"not a hosted index: {', '.join(map(repr, unknown))} (hosted: {', '.join(plan.hosted) or 'none'})"
        )
    db = Database.connect(database_url(plan), create=False)
    try:
        db.check_schema()

        async def sweep() -> list[Any]:
            reports = []
            for name in names:
                storage = hosted_storage(plan, name)
                try:
                    reports.append(
                        await collect(
                            db,
                            storage,
                            name,
                            grace=args.grace,
                            pending_for=args.pending_for,
                            dry_run=not args.delete,
                        )
                    )
                finally:
                    close = getattr(storage, "aclose", None)  # an S3 storage's client
                    if close is not None:
                        await close()
            return reports

        reports = asyncio.run(sweep())
    finally:
        db.close()
    for report in reports:
        found = report.found
        print(
            f"{report.index}: {found.stored} objects ({_size(found.stored_bytes)}); "
            f"{found.referenced} referenced, {len(found.reserved)} reserved by uploads in "
            f"progress, {len(found.young)} younger than {args.grace:g} s, "
            f"{len(found.unreferenced)} unreferenced ({_size(found.unreferenced_bytes)})"
        )
        if args.list:
            for item in found.unreferenced:
                print(f"  {item.key}  {item.size}")
        if report.dry_run:
            if found.unreferenced:
                print(
                    f"  dry run: would delete {len(found.unreferenced)} objects "
                    f"({_size(found.unreferenced_bytes)}); run with --delete to delete them"
                )
        else:
            print(f"  deleted {report.deleted} objects ({_size(report.deleted_bytes)})")
    sys.stdout.flush()
    return 0
