"""``headwater mirror``: sync configured mirrors (or one given on the command line) into static trees."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from headwater.cli.arguments import bounded_int
from headwater.cli.closure import closure_step, report, save_grace
from headwater.cli.progress import make_reporter, run_async
from headwater.config import Config, ConfigError, MirrorConfig, find_config, load_config
from headwater.repository.boundary import FetchBoundary
from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.simple.names import NormalizedName, normalize_name
from headwater.storage.open import aclose_storage, exclusive_access, open_storage
from headwater.sync.engine import Mirror, Summary
from headwater.sync.history import run_recorded
from headwater.sync.publishers import rules_for
from headwater.sync.wants import TreeWants

__all__ = ["add_selection_arguments", "register", "selected_mirrors", "wants_of"]


_COMMAND_LINE = "command-line"  # the name of a mirror given by --upstream and --target


def wants_of(cfg: MirrorConfig) -> TreeWants:
    """What ``[mirror.NAME]`` wants in its tree: the one statement that ``mirror``, ``mirror
    --project`` and ``verify --repair`` all hand to the engine."""
    return TreeWants(filters=cfg.filters, tracks=cfg.tracks, metadata=cfg.metadata)


def add_selection_arguments(parser: argparse.ArgumentParser, *, upstream: str, target: str) -> None:
    """The options that pick mirrors: from the configuration (--config, --name) or given directly
    (--upstream, --target); and --quiet for log lines instead of a progress bar."""
    parser.add_argument(
        "--config", help="configuration file (default: $HEADWATER_CONFIG or ./headwater.toml)"
    )
    parser.add_argument("--name", action="append", help="only this [mirror.NAME] (repeatable)")
    parser.add_argument("--upstream", help=upstream)
    parser.add_argument("--target", help=target)
    parser.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")


def register(subparsers: Any) -> None:
    """Add the ``mirror`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "mirror",
        help="sync upstream indexes into static trees",
        description=(
            "Sync every [mirror.NAME] in the configuration (or --upstream into --target) into a "
            "static tree that nginx, a CDN or rsync can serve and copy. Exit status: 0 all good, "
            "1 some projects failed (the rest was synced), 2 nothing could be done."
        ),
    )
    add_selection_arguments(
        parser,
        upstream="an upstream simple URL, instead of a configuration file",
        target="the tree's directory, with --upstream",
    )
    parser.add_argument(
        "--project",
        action="append",
        metavar="NAME",
        help="sync only this project (repeatable); the filters still apply, and a name the "
        "upstream lacks or the filters refuse fails the run",
    )
    parser.add_argument(
        "--workers", type=bounded_int(1, 1024), help="override the configured concurrency"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    parser.set_defaults(run=run)


def selected_mirrors(args: argparse.Namespace) -> dict[str, MirrorConfig]:
    """The mirrors the command line selects.

    Raises:
        ConfigError: no configuration and no --upstream/--target, or an unknown --name.
    """
    if args.upstream or args.target:
        if not (args.upstream and args.target):
            raise ConfigError("--upstream and --target go together")
        return {_COMMAND_LINE: MirrorConfig(upstream=args.upstream, target=args.target)}
    path = find_config(args.config)
    if path is None:
        raise ConfigError(
            "no configuration: pass --config FILE, set $HEADWATER_CONFIG, create ./headwater.toml, "
            "or give --upstream URL --target DIR"
        )
    config: Config = load_config(path)
    if not config.mirror:
        raise ConfigError(f"{path} has no [mirror.NAME] table; see docs/configuration.md")
    names = args.name or list(config.mirror)
    unknown = [n for n in names if n not in config.mirror]
    if unknown:
        raise ConfigError(
            f"{path} has no [mirror.{unknown[0]}] (it has: {', '.join(config.mirror)})"
        )
    return {n: config.mirror[n] for n in names}


async def _sync(name: str, cfg: MirrorConfig, args: argparse.Namespace) -> Summary | bool:
    """Sync one mirror and return its summary; with --dry-run, print the plan and return whether
    everything asked for would be synced."""
    workers = args.workers or cfg.workers
    only: list[NormalizedName] | None = (
        [normalize_name(p) for p in args.project] if args.project else None
    )
    egress = cfg.egress(cfg.upstream, where=f"[mirror.{name}]")
    async with client_session(
        connections=workers * 2, read_timeout=cfg.timeout, egress=egress
    ) as session:
        upstream = HttpRepository(
            cfg.upstream,
            session,
            retry=RetryPolicy(attempts=cfg.retries),
            **cfg.bounds(),
            boundary=FetchBoundary.for_upstream(
                cfg.upstream,
                allowed_hosts=cfg.allowed_hosts,
                allowed_networks=cfg.allowed_networks,
                where=f"[mirror.{name}]",
                # --upstream typed on the command line: its own name may be on any network.
                trust_upstream_addresses=name == _COMMAND_LINE,
            ),
        )
        storage = open_storage(cfg.target, s3=cfg.s3)
        try:
            wants = wants_of(cfg)
            step = None
            if cfg.closure is not None:
                step = await closure_step(name, cfg, upstream, storage, wants)
                wants = step.wants
                for line in report(step, dry_run=args.dry_run):
                    print(line)
                for problem in step.closure.problems:
                    print(f"  cannot satisfy {problem}", file=sys.stderr)
            mirror = Mirror(
                upstream,
                storage,
                workers=workers,
                wants=wants,
                diff_key=cfg.diff_file,
                reporter=make_reporter(f"mirror {name}", quiet=args.quiet),
                trusted_root=cfg.trusted_root,
                verify_processes=cfg.verify_processes,
                publisher_rules=rules_for(
                    cfg.continuity, cfg.require_provenance, cfg.trusted_publishers
                )
                if cfg.continuity or cfg.require_provenance or cfg.trusted_publishers
                else None,
                name=name,
            )
            if args.dry_run:
                plan, _ = await mirror.plan(only)  # reads only: no lock needed
                print(f"mirror {name}: {cfg.upstream} -> {cfg.target}")
                print(
                    f"  sync {len(plan.sync)}, delete {len(plan.delete)}, unchanged {plan.unchanged}"
                )
                for task in plan.sync:
                    print(f"  sync   {task.name} ({task.reason}, serial {task.serial})")
                for deleted in plan.delete:
                    print(f"  delete {deleted}")
                for project, why in plan.not_synced:
                    print(f"  not synced {project}: {why}")
                return not plan.not_synced and not (step and step.closure.problems)
            async with exclusive_access(storage):
                summary = await run_recorded(mirror, only)
                if step is not None:
                    await save_grace(storage, step.record)
                    for problem in step.closure.problems:
                        summary.not_synced.setdefault(
                            f"{problem.origin} ({problem.environment})", problem.detail
                        )
                return summary
        finally:
            await aclose_storage(storage)


def run(args: argparse.Namespace) -> int:
    """Sync each selected mirror; exit 1 if any project failed anywhere."""
    status = 0
    for name, cfg in selected_mirrors(args).items():
        summary = run_async(_sync(name, cfg, args))
        if isinstance(summary, bool):  # a dry run
            status = status or (0 if summary else 1)
            continue
        print(
            f"mirror {name}: synced {summary.synced}, unchanged {summary.unchanged}, deleted "
            f"{summary.deleted}, failed {len(summary.failed)}, refused {len(summary.refused)}"
            f"{f', not synced {len(summary.not_synced)}' if summary.not_synced else ''}; "
            f"downloaded {summary.files_downloaded} files ({summary.bytes_downloaded} bytes), {summary.files_present} already present; "
            f"{summary.seconds:.2f}s; serial {summary.serial}"
        )
        if not summary.ok:
            status = 1
            for project, reason in sorted(summary.failed.items()):
                print(f"  failed {project}: {reason}", file=sys.stderr)
            for entry, reason in sorted(summary.refused.items()):
                print(f"  refused {entry!r}: {reason}", file=sys.stderr)
            for project, reason in sorted(summary.not_synced.items()):
                print(f"  not synced {project}: {reason}", file=sys.stderr)
    return status
