"""The closure step of ``headwater mirror`` for a ``[mirror.NAME.closure]``: read the inputs,
compute the closure against the upstream, report what cannot be satisfied, and hand the engine
the file set (with the grace applied) as part of what the tree wants."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
from packaging.requirements import InvalidRequirement, Requirement

from headwater.config import ConfigError, MirrorConfig
from headwater.errors import HeadwaterError
from headwater.repository.http import HttpRepository
from headwater.storage.base import NotFound, Storage
from headwater.sync.closure import Closure
from headwater.sync.closure_config import ClosureConfig, GraceRecord, apply_grace
from headwater.sync.closure_fetch import FetchedClosure, fetch_closure
from headwater.sync.lockfiles import Inputs, InvalidLockfile, Root, read_inputs
from headwater.sync.wants import TreeWants

__all__ = ["ClosureRefused", "ClosureStep", "closure_step", "load_inputs", "report", "save_grace"]

GRACE_KEY = "state/closure.json"


class ClosureRefused(HeadwaterError):
    """An input does not match the upstream (a lockfile's hashes differ): nothing was synced."""


def load_inputs(closure: ClosureConfig, where: str) -> Inputs:
    """Read the inputs named by ``closure`` (absolute paths after the configuration is loaded).

    Raises:
        ConfigError: an input cannot be read, is malformed, or asks what a mirror cannot do.
    """
    try:
        inputs = read_inputs(
            closure.inputs,
            lambda path: Path(path).read_text(encoding="utf-8"),
            extras=tuple(closure.extras),
            groups=tuple(closure.groups),
        )
    except InvalidLockfile as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    inline = []
    for i, line in enumerate(closure.requirements):
        try:
            inline.append(Root(str(Requirement(line)), f"requirements[{i}]"))
        except InvalidRequirement as exc:
            raise ConfigError(f"{where} requirements[{i}]: {line!r}: {exc}") from exc
    return inputs + Inputs(roots=tuple(inline))


@dataclass(frozen=True)
class ClosureStep:
    """What the closure step decided for one mirror run."""

    wants: TreeWants
    fetched: FetchedClosure
    record: GraceRecord

    @property
    def closure(self) -> Closure:
        """The computed closure."""
        return self.fetched.closure


async def closure_step(
    name: str, cfg: MirrorConfig, upstream: HttpRepository, storage: Storage, wants: TreeWants
) -> ClosureStep:
    """Compute the closure of ``cfg.closure`` and return ``wants`` narrowed to it.

    Raises:
        ConfigError: an input file is bad. ClosureFetchError: the upstream failed.
        ClosureRefused: a locked or ``--hash`` file's sha256 differs from the upstream's.
    """
    closure = cfg.closure
    assert closure is not None
    where = f"[mirror.{name}.closure]"
    inputs = load_inputs(closure, where)
    fetched = await fetch_closure(
        upstream,
        inputs,
        closure.environments,
        sdists=closure.sdists,
        build_requirements=closure.build_requirements,
        prereleases=closure.prereleases,
        workers=cfg.workers,
        tree=storage,
    )
    mismatched = [p for p in fetched.closure.problems if p.kind == "hash-mismatch"]
    if mismatched:
        shown = "\n  ".join(str(p) for p in mismatched)
        raise ClosureRefused(
            f"{where}: refused, nothing was synced: the inputs do not match the upstream's "
            f"files:\n  {shown}"
        )
    previous = GraceRecord()
    try:
        raw = await storage.read_bytes(GRACE_KEY)
        previous = msgspec.json.decode(raw, type=GraceRecord)
    except NotFound:
        pass  # the first closure run of this tree
    except (msgspec.DecodeError, msgspec.ValidationError):
        print(f"{where}: {GRACE_KEY} is unreadable; starting the grace over", file=sys.stderr)
    # A run that cannot satisfy everything removes nothing: what it could not compute (a
    # requirement no release satisfies, a file gone) must not take away what clients have.
    grace = math.inf if fetched.closure.problems else closure.grace_hours * 3600
    kept, record = apply_grace(
        previous, fetched.closure.by_project(), now=time.time(), grace_seconds=grace
    )
    narrowed = msgspec.structs.replace(
        wants, closure={str(k): tuple(sorted(v)) for k, v in kept.items()}
    )
    return ClosureStep(narrowed, fetched, record)


async def save_grace(storage: Storage, record: GraceRecord) -> None:
    """Keep the grace record for the next run (after a run that synced)."""
    await storage.write_bytes(GRACE_KEY, msgspec.json.encode(record))


def report(step: ClosureStep, *, dry_run: bool) -> list[str]:
    """Lines for people: per environment, files and bytes; with ``dry_run``, every file."""
    sizes: dict[str, int | None] = {}
    for page in step.fetched.pages.values():
        if page is not None:
            for file in page.files:
                sizes[file.filename] = file.size

    def amount(names: list[str]) -> str:
        # An upstream without PEP 700 sizes (HTML-only pages) leaves some unknown: say so, rather
        # than count them as 0 bytes.
        unknown = sum(1 for f in names if sizes.get(f) is None)
        known = sum(sizes.get(f) or 0 for f in names)
        if not unknown:
            return f"{known} bytes"
        if unknown == len(names):
            return "bytes unknown (the upstream's pages give no sizes)"
        return f"{known} bytes + {unknown} files of unknown size"

    lines = []
    for label, projects in step.closure.files.items():
        names = [f for files in projects.values() for f in files]
        lines.append(
            f"  closure {label}: {len(names)} files, {amount(names)}, {len(projects)} projects"
        )
    union = step.closure.by_project()
    every = [f for files in union.values() for f in files]
    lines.append(
        f"  closure total: {len(every)} files, {amount(every)}, "
        f"{len(union)} projects ({step.fetched.rounds} rounds of fetching)"
    )
    if dry_run:
        for project, files in union.items():
            for filename in sorted(files):
                lines.append(f"  file   {project} {filename}")
    return lines
