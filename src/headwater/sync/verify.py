"""``headwater verify``: check a static tree against its own pages.

Every file a page lists must exist and hash to the sha256 the page promises (and its ``.metadata``
too); every page the root lists must exist in all three formats; nothing under ``web/packages/``
may be unreferenced. Hashing is the slow part, so it runs concurrently and records a checkpoint
(projects are checked in sorted order): a verify that is killed resumes after the last project it
finished. Repair is a separate step (:func:`plan_repair`) so a report can be read before anything
is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator
from posixpath import normpath
from typing import Literal

import msgspec

from headwater.simple.json import parse_project_page_json
from headwater.simple.model import InvalidPage, ProjectPage
from headwater.simple.names import NormalizedName
from headwater.storage.base import NotFound, Storage
from headwater.storage.layout import PAGE_FILES, STATE_DIR, WEB, page_key, sha256_of_file_key
from headwater.sync.tree import Tree

__all__ = ["Problem", "Report", "page_file_keys", "sweep_orphans", "verify_tree"]

CHECKPOINT = f"{STATE_DIR}/verify-checkpoint.json"
Kind = Literal["missing", "corrupt", "orphan", "missing-page", "bad-page", "missing-root"]


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong with the tree: what, where, which project, and details a person can read."""

    kind: Kind
    key: str
    project: str | None = None
    detail: str = ""


class Report(msgspec.Struct, kw_only=True):
    """What verify found. ``resumed_after`` names the checkpoint it skipped to, if any."""

    projects: int = 0
    files: int = 0
    bytes: int = 0
    problems: list[Problem] = msgspec.field(default_factory=list)
    resumed_after: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def projects_to_resync(self) -> list[NormalizedName]:
        """Projects whose files or pages must be fetched again."""
        return sorted(
            {NormalizedName(p.project) for p in self.problems if p.project and p.kind != "orphan"}
        )


class _Checkpoint(msgspec.Struct):
    done_through: str
    problems: list[Problem]


def page_file_keys(page: ProjectPage) -> Iterator[tuple[str, str | None, str]]:
    """The tree keys a project page points at: each file and its ``.metadata``, with the sha256
    the page promises (None if it promises none) and a name for messages. URLs that leave the
    tree (absolute URLs elsewhere) are skipped: they are not this tree's to check."""
    for file in page.files:
        key = normpath(f"{WEB}/simple/{page.name}/{file.url.partition('#')[0]}")
        if sha256_of_file_key(key) is None:
            continue
        yield key, file.hashes.get("sha256"), file.filename
        if isinstance(file.core_metadata, dict):
            yield key + ".metadata", file.core_metadata.get("sha256"), f"{file.filename}.metadata"
        elif file.core_metadata is True:
            yield key + ".metadata", None, f"{file.filename}.metadata"


async def sweep_orphans(storage: Storage, names: Iterable[NormalizedName]) -> list[str]:
    """Remove every file under ``web/packages/`` that no page of ``names`` points at; return the
    removed keys. Run after an interrupted sync, when no other writer touches the tree."""
    referenced: set[str] = set()
    tree = Tree(storage)
    for name in names:
        page = await tree.read_project(name)
        if page is not None:
            referenced.update(key for key, _, _ in page_file_keys(page))
    removed = [key async for key in storage.iter_keys(f"{WEB}/packages") if key not in referenced]
    for key in removed:
        await storage.delete(key)
    return removed


async def verify_tree(storage: Storage, *, workers: int = 8, resume: bool = True) -> Report:
    """Check the tree in ``storage``; return the report (``ok`` when nothing is wrong).

    With ``resume`` and a checkpoint from an interrupted run, projects up to the checkpoint are
    not re-hashed (their problems are carried over); the orphan scan always covers everything.
    """
    started = time.monotonic()
    report = Report()
    tree = Tree(storage)
    root = await tree.read_root()
    if root is None:
        report.problems.append(
            Problem(
                "missing-root",
                page_key(None, "json"),
                detail="the root page is missing or unreadable",
            )
        )
        names = sorted(
            {
                NormalizedName(k.split("/")[2])
                async for k in storage.iter_keys(f"{WEB}/simple")
                if k.count("/") == 3
            }
        )
    else:
        names = sorted({entry.normalized for entry in root.projects})

    skip_through = None
    if resume:
        try:
            checkpoint = msgspec.json.decode(await storage.read_bytes(CHECKPOINT), type=_Checkpoint)
        except (NotFound, msgspec.DecodeError):
            checkpoint = None
        if checkpoint is not None:
            skip_through = checkpoint.done_through
            report.resumed_after = skip_through
            report.problems.extend(checkpoint.problems)

    referenced: set[str] = set()
    slots = asyncio.Semaphore(workers)
    lock = asyncio.Lock()
    done: set[str] = set()

    async def check_file(project: str, key: str, sha256: str | None, what: str) -> None:
        async with slots:
            try:
                actual, size = await storage.digest(key)
            except NotFound:
                report.problems.append(Problem("missing", key, project, f"{what} is missing"))
                return
        report.files += 1
        report.bytes += size
        if sha256 is not None and actual != sha256:
            report.problems.append(
                Problem(
                    "corrupt", key, project, f"{what} has sha256 {actual}, the page says {sha256}"
                )
            )

    async def check_project(name: NormalizedName) -> None:
        hash_it = skip_through is None or name > skip_through
        for fmt in PAGE_FILES:
            key = page_key(name, fmt)  # type: ignore[arg-type]
            if hash_it and await storage.stat(key) is None:
                report.problems.append(
                    Problem("missing-page", key, name, f"the {fmt} page is missing")
                )
        try:
            page = parse_project_page_json(await storage.read_bytes(page_key(name, "json")))
        except NotFound:
            return  # reported above
        except InvalidPage as exc:
            if hash_it:
                report.problems.append(Problem("bad-page", page_key(name, "json"), name, str(exc)))
            return
        checks = []
        for key, sha256, what in page_file_keys(page):
            referenced.add(key)
            if hash_it:
                checks.append(check_file(name, key, sha256, what))
        await asyncio.gather(*checks)
        if hash_it:
            report.projects += 1
        async with lock:
            done.add(name)

    async def checkpointer(stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5.0)
            async with lock:
                # Everything up to the first unfinished name (in sorted order) is done.
                through = None
                for name in names:
                    if name not in done:
                        break
                    through = name
            if through is not None and not stop.is_set():
                await storage.write_bytes(
                    CHECKPOINT, msgspec.json.encode(_Checkpoint(through, report.problems))
                )

    stop = asyncio.Event()
    ticker = asyncio.create_task(checkpointer(stop))
    try:
        batch = max(workers * 4, 16)
        for start in range(0, len(names), batch):
            await asyncio.gather(*(check_project(n) for n in names[start : start + batch]))
    finally:
        stop.set()
        await ticker

    async for key in storage.iter_keys(f"{WEB}/packages"):
        if key not in referenced:
            report.problems.append(Problem("orphan", key, None, "no page refers to this file"))
    await storage.delete(CHECKPOINT)
    report.seconds = time.monotonic() - started
    return report
