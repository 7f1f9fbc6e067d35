"""``headwater provenance``: the releases a mirror's publisher guard holds, and accepting them.

``held`` lists what the last syncs held back (each with the refusal's message); ``accept MIRROR
PROJECT VERSION`` records that the operator accepts a release as it is (its publisher is then
established for the project's next releases). The next sync of the project mirrors it:
``headwater mirror --name MIRROR --project PROJECT``.
"""

from __future__ import annotations

import argparse
from typing import Any

from headwater.cli.progress import run_async
from headwater.config import ConfigError, find_config, load_config
from headwater.simple.names import InvalidName, normalize_name
from headwater.storage.filesystem import FileStorage
from headwater.sync.publishers import load_publisher_state, save_publisher_state

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``provenance`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "provenance",
        help="releases held by a mirror's publisher guard, and accepting them",
        description=(
            "A mirror holds a release whose PEP 740 publisher is not the project's established "
            "one (publisher continuity) or not the one require-provenance names "
            "(docs/provenance.md). 'held' lists them; 'accept' lets one in."
        ),
    )
    parser.add_argument(
        "--config", help="configuration file (default: $HEADWATER_CONFIG or ./headwater.toml)"
    )
    commands = parser.add_subparsers(dest="action", required=True)
    held = commands.add_parser("held", help="list the held releases of a mirror")
    held.add_argument("mirror", help="the [mirror.NAME]")
    accept = commands.add_parser("accept", help="accept a held release as it is")
    accept.add_argument("mirror", help="the [mirror.NAME]")
    accept.add_argument("project")
    accept.add_argument("version")
    parser.set_defaults(run=run)


def _target(args: argparse.Namespace) -> str:
    path = find_config(args.config)
    if path is None:
        raise ConfigError(
            "no configuration: pass --config FILE, set $HEADWATER_CONFIG, or create "
            "./headwater.toml"
        )
    config = load_config(path)
    if args.mirror not in config.mirror:
        raise ConfigError(
            f"{path} has no [mirror.{args.mirror}] (it has: {', '.join(config.mirror) or 'none'})"
        )
    return config.mirror[args.mirror].target


async def _run(args: argparse.Namespace) -> int:
    storage = FileStorage(_target(args))
    state = await load_publisher_state(storage)
    if args.action == "held":
        if not state.held:
            print(f"mirror {args.mirror}: nothing is held")
        for project, records in sorted(state.held.items()):
            for record in records:
                print(f"{project} {record.version} {record.filename}: {record.reason}")
                print(f"  {record.message}")
                print(f"  {record.fix}")
        return 0
    try:
        project = normalize_name(args.project)
    except InvalidName as exc:
        raise ConfigError(f"{args.project!r} is not a project name: {exc}") from exc
    versions = state.accepted.setdefault(project, [])
    if args.version not in versions:
        versions.append(args.version)
    await save_publisher_state(storage, state)
    print(
        f"mirror {args.mirror}: {project} {args.version} accepted as it is; mirror it now with "
        f"`headwater mirror --name {args.mirror} --project {project}`"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the ``provenance`` subcommand."""
    return run_async(_run(args))
