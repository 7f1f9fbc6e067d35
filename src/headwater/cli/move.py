"""``headwater move``, ``headwater backup create|verify`` and ``headwater restore``: copy a whole
installation (database + stored objects) to other engines, or into and out of a backup file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from headwater.cli.arguments import bounded_int
from headwater.config.settings import ServePlan

__all__ = ["register"]


def _installation(parser: argparse.ArgumentParser, prefix: str = "", what: str = "") -> None:
    dash = f"--{prefix}" if prefix else "--"
    parser.add_argument(
        f"{dash}config",
        dest=f"{prefix.replace('-', '_')}config",
        help=f"{what}configuration file (default: $HEADWATER_CONFIG, ./headwater.toml)",
    )
    parser.add_argument(
        f"{dash}data-dir",
        dest=f"{prefix.replace('-', '_')}data_dir",
        help=f"{what}data directory (holds the SQLite database and local stores)",
    )
    parser.add_argument(
        f"{dash}database",
        dest=f"{prefix.replace('-', '_')}database",
        help=f"{what}database URL (sqlite:///PATH or postgresql://...)",
    )


def _plan(config: str | None, data_dir: str | None, database: str | None) -> ServePlan:
    from headwater.assembly.plan import plan_from_flags

    return plan_from_flags(config, overrides={"data_dir": data_dir, "database": database})


def register(subparsers: Any) -> None:
    """Add the ``move``, ``backup`` and ``restore`` subcommands."""
    move: argparse.ArgumentParser = subparsers.add_parser(
        "move",
        help="copy an installation to other engines (SQLite <-> PostgreSQL, directory <-> bucket)",
        description=(
            "Copy every row of the database and every stored object of the installation the "
            "source options describe into the one the --to- options describe, then check the "
            "copy: every table's rows, every object's sha256, every file row's object. The "
            "destination database must be empty (or --replace). Without --to-config the source's "
            "configuration is used with the --to- overrides. Exit status: 0 the copy is whole and "
            "the source did not change meanwhile, 1 a difference (listed) or the source changed "
            "(run again with writes stopped and --replace), 2 error."
        ),
    )
    _installation(move, what="the source's ")
    _installation(move, "to-", "the destination's ")
    move.add_argument("--replace", action="store_true", help="empty the destination's rows first")
    move.add_argument(
        "--no-proxies", action="store_true", help="leave proxy caches behind (they refill)"
    )
    move.add_argument("--mirrors", action="store_true", help="copy mirror trees too")
    move.add_argument("--check", action="store_true", help="only compare; copy nothing")
    move.add_argument(
        "--workers", type=bounded_int(1, 1024), default=8, help="objects copied at once (8)"
    )
    move.add_argument("--format", choices=["text", "json"], default="text")
    move.set_defaults(run=_run_move)

    backup: argparse.ArgumentParser = subparsers.add_parser(
        "backup", help="back up an installation, or check a backup"
    )
    actions = backup.add_subparsers(dest="backup_command", metavar="ACTION", required=True)
    create: argparse.ArgumentParser = actions.add_parser(
        "create",
        help="write a backup file: every row, the object manifest (and the objects with --objects)",
        description=(
            "Write every row of the database (one snapshot; portable between SQLite and "
            "PostgreSQL) and the manifest of every stored object (store, key, sha256, size) to a "
            "tar file; with --objects the objects' bytes too. The file appears only when complete."
        ),
    )
    _installation(create)
    create.add_argument("output", help="the backup file to write")
    create.add_argument("--objects", action="store_true", help="include the objects' bytes")
    create.add_argument("--proxies", action="store_true", help="include proxy caches")
    create.add_argument("--mirrors", action="store_true", help="include mirror trees")
    create.set_defaults(run=_run_backup_create)

    verify: argparse.ArgumentParser = actions.add_parser(
        "verify",
        help="check a backup file (and, with a configuration, that its objects are all stored)",
        description=(
            "Check every member's sha256, every table's rows and the manifest of a backup, without "
            "changing anything. With --config (or --data-dir / --database) and a backup made "
            "without --objects, also check every object of the manifest is in that installation's "
            "storage with the same sha256. Exit status: 0 sound, 1 problems (listed), 2 error."
        ),
    )
    _installation(verify)
    verify.add_argument("backup", help="the backup file")
    verify.add_argument("--format", choices=["text", "json"], default="text")
    verify.set_defaults(run=_run_backup_verify)

    restore: argparse.ArgumentParser = subparsers.add_parser(
        "restore",
        help="restore an installation from a backup file",
        description=(
            "Verify the whole backup first, then write its objects (if it has them) and every row "
            "into the installation the options describe, whose database must be empty (or "
            "--replace). A failed restore changes no row and can be run again."
        ),
    )
    _installation(restore)
    restore.add_argument("backup", help="the backup file")
    restore.add_argument("--replace", action="store_true", help="delete the database's rows first")
    restore.set_defaults(run=_run_restore)


def _print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


def _run_move(args: argparse.Namespace) -> int:
    from headwater.cli.progress import run_async
    from headwater.config import ConfigError
    from headwater.transfer.move import move

    if args.to_config is None and args.to_data_dir is None and args.to_database is None:
        raise ConfigError(
            "say where to move to: --to-config, --to-data-dir and/or --to-database (e.g. "
            "--to-database postgresql://USER@HOST/DB keeps the stores where they are)"
        )
    source = _plan(args.config, args.data_dir, args.database)
    # The destination keeps the source's data directory unless told otherwise (moving only the
    # database leaves the stores where they are); its database is never inherited.
    try:
        destination = _plan(
            args.to_config if args.to_config is not None else args.config,
            args.to_data_dir if args.to_data_dir is not None else args.data_dir,
            args.to_database,
        )
    except ConfigError as exc:
        # _plan speaks of --config, --data-dir, --database: here they are the --to-* flags.
        raise ConfigError(
            f"the destination (--to-config, --to-data-dir, --to-database): {exc}"
        ) from exc
    report = run_async(
        move(
            source,
            destination,
            replace=args.replace,
            proxies=not args.no_proxies,
            mirrors=args.mirrors,
            check_only=args.check,
            workers=args.workers,
        )
    )
    if args.format == "json":
        _print_json(
            {
                **msgspec.structs.asdict(report),
                "ok": report.ok,
                "source_changed": report.source_changed,
            }
        )
    else:
        verb = "compared" if args.check else "moved"
        print(f"{verb} {report.source} -> {report.destination} (schema {report.revision})")
        for table in report.tables:
            mark = "ok" if table.ok else "DIFFERS"
            print(
                f"  table {table.table}: {table.source.rows} rows -> {table.destination.rows} {mark}"
            )
        for copy in report.copies:
            print(
                f"  {copy.store}: {copy.copied} objects copied ({copy.copied_bytes} bytes), "
                f"{copy.skipped} already there"
            )
            for failure in copy.failed:
                print(f"    FAILED {failure}")
        for check in report.checks:
            print(
                f"  {check.store}: {check.checked} objects checked by sha256 "
                f"({check.checked_bytes} bytes)"
            )
            for key in check.missing:
                print(f"    MISSING {key}")
            for key in check.different:
                print(f"    DIFFERS {key}")
        for line in report.broken_rows:
            print(f"  BROKEN ROW {line}")
        if report.source_changed:
            print(
                f"  the source changed during the copy (serial {report.serial_before} -> "
                f"{report.serial_after}): stop writes and run again with --replace for the "
                "final copy"
            )
        print("the copy is whole" if report.ok else "the copy is NOT whole: see above")
    return 0 if report.ok and not report.source_changed else 1


def _run_backup_create(args: argparse.Namespace) -> int:
    from headwater.cli.progress import run_async
    from headwater.transfer.backup import create_backup

    if "://" in args.output:
        from headwater.config import ConfigError

        raise ConfigError(
            f"backup output {args.output!r} is a URL: a backup is written to a local file; write "
            "it here, then copy it where it belongs"
        )
    if not Path(args.output).name or Path(args.output).is_dir():
        from headwater.config import ConfigError

        raise ConfigError(
            f"backup output {args.output!r} is a directory: give the name of the file to write"
        )
    plan = _plan(args.config, args.data_dir, args.database)
    report = run_async(
        create_backup(
            plan,
            Path(args.output),
            objects=args.objects,
            proxies=args.proxies,
            mirrors=args.mirrors,
            progress=lambda message: print(message, file=sys.stderr),
        )
    )
    assert report.header is not None
    rows = sum(fp.rows for fp in report.header.tables.values())
    kept = "with their bytes" if args.objects else "manifest only"
    print(
        f"backup {args.output}: schema {report.header.revision}, serial {report.header.serial}, "
        f"{rows} rows, {report.objects} objects ({report.object_bytes} bytes, {kept})"
    )
    return 0


def _selected(args: argparse.Namespace) -> ServePlan | None:
    if args.config is None and args.data_dir is None and args.database is None:
        return None
    return _plan(args.config, args.data_dir, args.database)


def _run_backup_verify(args: argparse.Namespace) -> int:
    from headwater.cli.progress import run_async
    from headwater.transfer.backup import verify_backup

    report = run_async(verify_backup(Path(args.backup), _selected(args)))
    if args.format == "json":
        _print_json({**msgspec.structs.asdict(report), "ok": report.ok})
    else:
        for problem in report.problems:
            print(f"  {problem}")
        if report.header is not None:
            rows = sum(fp.rows for fp in report.header.tables.values())
            print(
                f"backup {args.backup}: schema {report.header.revision}, serial "
                f"{report.header.serial}, {rows} rows, {report.objects} objects"
            )
        print("the backup is sound" if report.ok else "the backup has problems: see above")
    return 0 if report.ok else 1


def _run_restore(args: argparse.Namespace) -> int:
    from headwater.cli.progress import run_async
    from headwater.transfer.backup import restore_backup

    plan = _plan(args.config, args.data_dir, args.database)
    report = run_async(restore_backup(Path(args.backup), plan, replace=args.replace))
    for problem in report.problems:
        print(f"  {problem}")
    assert report.header is not None
    print(
        f"restored {args.backup} (schema {report.header.revision}, serial {report.header.serial}, "
        f"{report.objects} objects)" + ("" if report.ok else ": with problems, see above")
    )
    return 0 if report.ok else 1
