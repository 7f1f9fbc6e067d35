"""``headwater verify``: re-hash a tree against its pages; with ``--repair``, fix what is wrong."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from headwater.cli.arguments import bounded_int
from headwater.cli.mirror import add_selection_arguments, selected_mirrors, wants_of
from headwater.cli.progress import make_reporter, run_async
from headwater.config import ConfigError, MirrorConfig
from headwater.repository.boundary import FetchBoundary
from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.storage.base import NotFound, Storage
from headwater.storage.open import aclose_storage, describe, exclusive_access, open_storage
from headwater.sync.engine import Mirror, MirrorError
from headwater.sync.state import SNAPSHOT, StateError
from headwater.sync.tree import prune_empty_directories
from headwater.sync.verify import Report, verify_tree
from headwater.sync.wants import TreeWants

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``verify`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="check a mirrored tree: missing, corrupt and orphaned files",
        description=(
            "Re-hash every file of a tree against the sha256 its page promises, check every page "
            "parses completely and agrees with its other formats and with the configuration, and "
            "find missing pages, missing or corrupt files and orphans. Resumes after an "
            "interruption. With --repair, deletes orphans and corrupt files and fetches what is "
            "missing from the upstream, under the mirror's filters and tracks policy. Exit "
            "status: 0 clean (or fully repaired), 1 problems remain (each is listed), 2 error."
        ),
    )
    add_selection_arguments(
        parser,
        upstream="with --target: where --repair fetches from (default: the tree's state)",
        target="a tree's directory, instead of a configuration file",
    )
    parser.add_argument("--repair", action="store_true", help="fix what is found")
    parser.add_argument(
        "--workers", type=bounded_int(1, 1024), default=8, help="files hashed at once (8)"
    )
    parser.add_argument(
        "--restart", action="store_true", help="ignore a checkpoint left by an interrupted verify"
    )
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument(
        "--trusted-root",
        metavar="FILE",
        help="the Sigstore trusted_root.json PEP 740 provenance is verified against "
        "(default: the mirror's trusted_root, else the copy shipped with headwater)",
    )
    parser.set_defaults(run=run)


class _Recorded(msgspec.Struct):
    upstream: str | None = None
    filters: str | None = None
    wants: TreeWants | None = None
    held: dict[str, list[str]] = msgspec.field(default_factory=dict)


async def _recorded(storage: Storage) -> _Recorded | None:
    """What the tree's state says about its upstream and what it was synced to hold."""
    try:
        return msgspec.json.decode(await storage.read_bytes(SNAPSHOT), type=_Recorded)
    except (NotFound, msgspec.DecodeError):
        return None


async def _held(storage: Storage) -> set[str]:
    """The files the state keeps for failed projects' next sync (not orphans)."""
    recorded = await _recorded(storage)
    return {k for keys in recorded.held.values() for k in keys} if recorded else set()


class _Outcome(msgspec.Struct):
    """A verify's report and, after --repair, what the repair did and what it could not do."""

    report: Report
    repaired: list[str] = msgspec.field(default_factory=list)
    unrepaired: list[str] = msgspec.field(default_factory=list)


async def _verify(
    name: str, cfg: MirrorConfig | None, target: str, args: argparse.Namespace
) -> _Outcome:
    storage = open_storage(target, s3=cfg.s3 if cfg is not None else None)
    try:
        return await _verify_storage(name, cfg, storage, args)
    finally:
        await aclose_storage(storage)


async def _verify_storage(
    name: str, cfg: MirrorConfig | None, storage: Storage, args: argparse.Namespace
) -> _Outcome:
    recorded = await _recorded(storage)
    upstream: str | None = (
        cfg.upstream if cfg else args.upstream or (recorded.upstream if recorded else None)
    )
    # What the tree should hold: the configuration's statement, else the one the state recorded
    # at the last full sync. A state that has filters but did not record them (written by an
    # older headwater) cannot say: the pages are then not checked against it, and a repair that
    # must fetch refuses rather than guess.
    wants: TreeWants | None = None
    if cfg is not None:
        wants = wants_of(cfg)
    elif recorded is not None:
        wants = recorded.wants
    from headwater.provenance import TrustRoot

    trust = TrustRoot(args.trusted_root or (cfg.trusted_root if cfg else None))
    report = await verify_tree(
        storage,
        workers=args.workers,
        resume=not args.restart,
        wants=wants,
        upstream=upstream,
        held=await _held(storage),
        trust=trust,
    )
    if not args.repair or report.ok:
        return _Outcome(report)
    if wants is None and (recorded is None or recorded.filters is None):
        # Synced without filters (or adopted without a state): the defaults are what a mirror
        # without options would write.
        wants = TreeWants()
    async with exclusive_access(storage):
        return await _repair(name, cfg, upstream, wants, storage, report, args)


async def _repair(
    name: str,
    cfg: MirrorConfig | None,
    upstream: str | None,
    wants: TreeWants | None,
    storage: Storage,
    report: Report,
    args: argparse.Namespace,
) -> _Outcome:
    outcome = _Outcome(report)
    resync = report.projects_to_resync()
    fetch = bool(resync) or report.root_damaged
    # Refuse before deleting anything when the fetch could not be done the way the mirror would.
    if fetch and upstream is None:
        raise ConfigError(
            f"{describe(storage)}: cannot repair without an upstream; pass --upstream URL (nothing was "
            "changed)"
        )
    recorded = await _recorded(storage)
    if (
        fetch
        and recorded is not None
        and recorded.upstream is not None
        and upstream is not None
        and recorded.upstream.rstrip("/") != upstream.rstrip("/")
    ):
        raise ConfigError(
            f"this tree was mirrored from {recorded.upstream}, but the repair was asked to fetch "
            f"from {upstream}; repair from the tree's own upstream (nothing was changed)"
        )
    if fetch and wants is None:
        raise ConfigError(
            f"{describe(storage)}: this tree was synced with filters its state does not record, so a "
            "repair could bring back what they leave out; run it with --config (the "
            "configuration of this mirror), or run `headwater mirror` once to record them "
            "(nothing was changed)"
        )
    # Bytes that fail verification are never served, even while the upstream is unreachable.
    corrupt = [p.key for p in report.problems if p.kind == "corrupt"]
    orphans = [p.key for p in report.problems if p.kind == "orphan"]
    removed: list[str] = []
    for key in corrupt:
        if await storage.delete(key):
            removed.append(key)
    if corrupt:
        outcome.repaired.append(f"deleted {len(corrupt)} corrupt files")
    if orphans and report.references_known:
        for key in orphans:
            if await storage.delete(key):
                removed.append(key)
        outcome.repaired.append(f"deleted {len(orphans)} orphaned files")
    unrecorded = [p.key for p in report.problems if p.kind == "unrecorded-ref"]
    if unrecorded:
        await storage.write_many([(key, b"") for key in unrecorded])
        await storage.sync()
        outcome.repaired.append(f"recorded {len(unrecorded)} shared-file references")
    stale = [p.key for p in report.problems if p.kind == "stale-ref"]
    for key in stale:
        await storage.delete(key)
    if stale:
        outcome.repaired.append(f"removed {len(stale)} stale shared-file references")
    if fetch:
        assert upstream is not None and wants is not None
        egress = cfg.egress(upstream, where=f"[mirror.{name}]") if cfg else None
        try:
            async with client_session(egress=egress) as session:
                repo = HttpRepository(
                    upstream,
                    session,
                    retry=RetryPolicy(attempts=cfg.retries if cfg else 5),
                    **(cfg.bounds() if cfg else {}),
                    boundary=FetchBoundary.for_upstream(
                        upstream,
                        allowed_hosts=cfg.allowed_hosts if cfg else (),
                        allowed_networks=cfg.allowed_networks if cfg else (),
                        where=f"[mirror.{name}]" if cfg else "",
                        trust_upstream_addresses=cfg is None,  # --upstream typed by hand
                    ),
                )
                mirror = Mirror(
                    repo,
                    storage,
                    wants=wants,
                    reporter=make_reporter(f"repair {name}", quiet=args.quiet),
                )
                summary = await mirror.run(only=resync, adopt=True)
                removed.extend(mirror.tree.removed)
        except (MirrorError, StateError) as exc:
            outcome.unrepaired.append(
                f"could not fetch from {upstream} ({exc.__cause__ or exc}); run the repair again "
                "when it answers"
            )
        else:
            if summary.synced or summary.deleted:
                outcome.repaired.append(
                    f"synced {summary.synced} and removed {summary.deleted} projects from {upstream}"
                )
            outcome.repaired.append("rewrote the root page")
            for project, reason in sorted(summary.failed.items()):
                outcome.unrepaired.append(f"could not sync {project}: {reason}")
            for project, reason in sorted(summary.not_synced.items()):
                outcome.repaired.append(f"{project}: {reason}")
    await prune_empty_directories(storage, removed)
    if any(p.kind == "empty-dir" for p in report.problems):
        await prune_empty_directories(storage)  # every empty one, whatever left it
    held = await _held(storage)  # the repair's sync may have used or released some
    final = await verify_tree(
        storage, workers=args.workers, resume=False, wants=wants, upstream=upstream, held=held
    )
    if not report.references_known and final.references_known:
        # The first pass could not tell orphans (a page was unreadable); now that the pages are
        # rewritten it can.
        late = [p.key for p in final.problems if p.kind == "orphan"]
        for key in late:
            await storage.delete(key)
        if late:
            outcome.repaired.append(f"deleted {len(late)} orphaned files")
            await prune_empty_directories(storage, late)
            final = await verify_tree(
                storage,
                workers=args.workers,
                resume=False,
                wants=wants,
                upstream=upstream,
                held=held,
            )
    if not final.references_known:
        outcome.unrepaired.append(
            "some page is unreadable in every format, so orphans were not deleted"
        )
    outcome.report = final
    return outcome


def run(args: argparse.Namespace) -> int:
    """Verify each selected tree; exit 1 if any problem remains."""
    if args.target:
        trees: dict[str, tuple[MirrorConfig | None, str]] = {args.target: (None, args.target)}
    else:
        trees = {n: (c, c.target) for n, c in selected_mirrors(args).items()}
    status = 0
    for name, (cfg, target) in trees.items():
        outcome = run_async(_verify(name, cfg, target, args))
        report = outcome.report
        if args.format == "json":
            print(
                msgspec.json.encode(
                    {
                        "tree": name,
                        **msgspec.structs.asdict(report),
                        "repaired": outcome.repaired,
                        "unrepaired": outcome.unrepaired,
                    }
                ).decode()
            )
        else:
            resumed = f" (resumed after {report.resumed_after})" if report.resumed_after else ""
            print(
                f"verify {name}: {report.projects} projects, {report.files} files, {report.bytes} bytes "
                f"checked in {report.seconds:.2f}s{resumed}; {len(report.problems)} problems"
                + (" left after the repair" if args.repair and report.problems else "")
            )
            for line in outcome.repaired:
                print(f"  repaired: {line}")
            for line in outcome.unrepaired:
                print(f"  not repaired: {line}")
            for problem in report.problems:
                print(f"  {problem.kind:<12} {problem.key}  {problem.detail}")
        if not report.ok or outcome.unrepaired:
            status = 1
    return status
