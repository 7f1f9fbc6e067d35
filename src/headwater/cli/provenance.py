"""``headwater provenance``: the releases a mirror's or a proxy's publisher guard holds, and
accepting them.

``held SOURCE`` lists what is held (each with the refusal's message and fix); ``accept SOURCE
PROJECT VERSION`` records that the operator accepts a release as it is (its publisher is then
established for the project's next releases). SOURCE is a ``[mirror.NAME]`` (the next sync of the
project mirrors it: ``headwater mirror --name MIRROR --project PROJECT``) or a ``[proxy.NAME]``
(every server sharing the proxy's storage serves it once the page is next revalidated, within
the proxy's ``ttl``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from headwater.cli.progress import run_async
from headwater.config import Config, ConfigError, find_config, load_config
from headwater.errors import InvalidInput
from headwater.repository.publishers import CacheLedger, Ledger, TreeLedger
from headwater.simple.names import InvalidName, normalize_name
from headwater.storage.base import Storage
from headwater.storage.open import aclose_storage, open_storage

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``provenance`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "provenance",
        help="releases held by a mirror's or proxy's publisher guard, and accepting them",
        description=(
            "A mirror or caching proxy holds a release whose PEP 740 publisher is not the "
            "project's established one (publisher continuity) or not the one require-provenance "
            "names (docs/provenance.md). 'held' lists them; 'accept' lets one in."
        ),
    )
    parser.add_argument(
        "--config", help="configuration file (default: $HEADWATER_CONFIG or ./headwater.toml)"
    )
    commands = parser.add_subparsers(dest="action", required=True)
    held = commands.add_parser("held", help="list the held releases of a mirror or proxy")
    held.add_argument("source", metavar="SOURCE", help="the [mirror.NAME] or [proxy.NAME]")
    accept = commands.add_parser("accept", help="accept a held release as it is")
    accept.add_argument("source", metavar="SOURCE", help="the [mirror.NAME] or [proxy.NAME]")
    accept.add_argument("project")
    accept.add_argument("version")
    parser.set_defaults(run=run)


def _storage(config: Config, path: Path, name: str) -> tuple[Storage, Ledger]:
    if name in config.mirror:
        mirror = config.mirror[name]
        storage = open_storage(mirror.target, s3=mirror.s3)
        return storage, TreeLedger(storage)
    if name in config.proxy:
        proxy = config.proxy[name]
        # As headwater serve keeps it (headwater.assembly.proxy_storage).
        where = proxy.storage or str(Path(config.serve.data_dir) / "proxy" / name)
        storage = open_storage(where, s3=proxy.s3)
        return storage, CacheLedger(storage)
    known = [f"[mirror.{n}]" for n in config.mirror] + [f"[proxy.{n}]" for n in config.proxy]
    raise ConfigError(f"{path} has no [mirror.{name}] or [proxy.{name}] (it has: "
                      f"{', '.join(known) or 'none'})")  # fmt: skip


async def _run(args: argparse.Namespace) -> int:
    path = find_config(args.config)
    if path is None:
        raise ConfigError(
            "no configuration: pass --config FILE, set $HEADWATER_CONFIG, or create "
            "./headwater.toml"
        )
    storage, ledger = _storage(load_config(path), Path(path), args.source)
    try:
        return await _act(args, ledger)
    finally:
        await aclose_storage(storage)


async def _act(args: argparse.Namespace, ledger: Ledger) -> int:
    what = f"{ledger.kind} {args.source}"
    if args.action == "held":
        held = await ledger.held()
        if not held:
            print(f"{what}: nothing is held")
        for project, records in sorted(held.items()):
            for record in records:
                print(f"{project} {record.version} {record.filename}: {record.reason}")
                print(f"  {record.message}")
                print(f"  {record.fix}")
        return 0
    try:
        project = normalize_name(args.project)
    except InvalidName as exc:
        raise ConfigError(f"{args.project!r} is not a project name: {exc}") from exc
    try:
        version = await ledger.accept(project, args.version)
    except InvalidInput as exc:
        raise ConfigError(str(exc)) from exc
    if ledger.kind == "mirror":
        then = f"mirror it now with `headwater mirror --name {args.source} --project {project}`"
    else:
        then = "the proxy serves it once it revalidates the project's page (within its ttl)"
    print(f"{what}: {project} {version} accepted as it is; {then}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the ``provenance`` subcommand."""
    return run_async(_run(args))
