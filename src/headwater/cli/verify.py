"""``headwater verify``: re-hash a tree against its pages; with ``--repair``, fix what is wrong."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from headwater.cli.mirror import add_selection_arguments, selected_mirrors
from headwater.cli.progress import make_reporter, run_async
from headwater.config import ConfigError, MirrorConfig
from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.storage.base import NotFound
from headwater.storage.filesystem import FileStorage
from headwater.storage.layout import page_key
from headwater.sync.engine import Mirror
from headwater.sync.state import SNAPSHOT
from headwater.sync.verify import Report, verify_tree

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``verify`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="check a mirrored tree: missing, corrupt and orphaned files",
        description=(
            "Re-hash every file of a tree against the sha256 its page promises, and find missing "
            "pages, missing or corrupt files and orphans. Resumes after an interruption. With "
            "--repair, deletes orphans and corrupt files and fetches what is missing from the "
            "upstream. Exit status: 0 clean (or fully repaired), 1 problems remain, 2 error."
        ),
    )
    add_selection_arguments(
        parser,
        upstream="with --target: where --repair fetches from (default: the tree's state)",
        target="a tree's directory, instead of a configuration file",
    )
    parser.add_argument("--repair", action="store_true", help="fix what is found")
    parser.add_argument("--workers", type=int, default=8, help="files hashed at once (8)")
    parser.add_argument(
        "--restart", action="store_true", help="ignore a checkpoint left by an interrupted verify"
    )
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.set_defaults(run=run)


async def _upstream_of(storage: FileStorage) -> str | None:
    try:
        return str(msgspec.json.decode(await storage.read_bytes(SNAPSHOT))["upstream"])
    except (NotFound, msgspec.DecodeError, KeyError, TypeError):
        return None


async def _verify(
    name: str, cfg: MirrorConfig | None, target: str, args: argparse.Namespace
) -> Report:
    storage = FileStorage(target)
    report = await verify_tree(storage, workers=args.workers, resume=not args.restart)
    if not args.repair or report.ok:
        return report
    with storage.exclusive():
        return await _repair(name, cfg, target, storage, report, args)


async def _repair(
    name: str,
    cfg: MirrorConfig | None,
    target: str,
    storage: FileStorage,
    report: Report,
    args: argparse.Namespace,
) -> Report:
    for problem in report.problems:
        if problem.kind in ("orphan", "corrupt"):
            await storage.delete(problem.key)
    resync = report.projects_to_resync()
    if resync:
        upstream = cfg.upstream if cfg else args.upstream or await _upstream_of(storage)
        if upstream is None:
            raise ConfigError(f"{target}: cannot repair without an upstream; pass --upstream URL")
        egress = cfg.egress(upstream, where=f"[mirror.{name}]") if cfg else None
        async with client_session(egress=egress) as session:
            repo = HttpRepository(
                upstream, session, retry=RetryPolicy(attempts=cfg.retries if cfg else 5)
            )
            mirror = Mirror(
                repo, storage, reporter=make_reporter(f"repair {name}", quiet=args.quiet)
            )
            summary = await mirror.run(only=resync)
        if summary.failed:
            print(f"verify {name}: repair could not fetch: {', '.join(sorted(summary.failed))}")
    elif any(p.kind == "missing-root" for p in report.problems):
        await storage.delete(page_key(None, "json"))
    return await verify_tree(storage, workers=args.workers, resume=False)


def run(args: argparse.Namespace) -> int:
    """Verify each selected tree; exit 1 if any problem remains."""
    if args.target:
        trees: dict[str, tuple[MirrorConfig | None, str]] = {args.target: (None, args.target)}
    else:
        trees = {n: (c, c.target) for n, c in selected_mirrors(args).items()}
    status = 0
    for name, (cfg, target) in trees.items():
        report = run_async(_verify(name, cfg, target, args))
        if args.format == "json":
            print(msgspec.json.encode({"tree": name, **msgspec.structs.asdict(report)}).decode())
        else:
            resumed = f" (resumed after {report.resumed_after})" if report.resumed_after else ""
            print(
                f"verify {name}: {report.projects} projects, {report.files} files, {report.bytes} bytes "
                f"checked in {report.seconds:.2f}s{resumed}; {len(report.problems)} problems"
            )
            for problem in report.problems:
                print(f"  {problem.kind:<12} {problem.key}  {problem.detail}")
        if not report.ok:
            status = 1
    return status
