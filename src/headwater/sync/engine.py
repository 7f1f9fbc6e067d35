"""The mirror engine: execute a sync plan into a static tree.

Order of writes, for every project (DESIGN.md, "Data on disk"): its files (each streamed to a temp
file, checked against the page's size and sha256, then renamed into place), a durability barrier,
its pages, then its entry in the state journal. After all projects: the root page, last-modified,
the state snapshot with the upstream serial. A reader of the tree therefore never sees a page that
points at a missing or unverified file, and a sync killed at any point resumes from the journal.
Deletions run the other way: pages first, then files.

Concurrency: one TaskGroup; ``workers`` bounds page fetches and file downloads separately, so a
project with many files does not starve the others. A project whose files are all on disk is handed
to one committer task and its worker moves on to the next project: the committer takes every
project ready so far as one batch, makes their files durable with one barrier (a single ``syncfs``
for the batch), writes their pages in one storage call, and journals them. Durability therefore
overlaps the downloads instead of stalling them, and the number of ``syncfs`` calls follows how
long one takes, not the number of projects.

This module owns the run (planning, the order of writes, deletions, the state) and publishing
pages; a project's files are fetched by :mod:`headwater.sync.fetch`, the publisher guard judges
them in :mod:`headwater.sync.publishers`, and what each page references is counted by
:mod:`headwater.sync.references`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec

from headwater.errors import HeadwaterError
from headwater.policy.continuity import ContinuityRules
from headwater.repository.errors import StaleResponse, UpstreamError, UpstreamNotFound
from headwater.repository.http import Fetched, HttpRepository
from headwater.repository.publishers import (
    PublisherState,
    load_publisher_state,
    save_publisher_state,
)
from headwater.simple.model import InvalidPage, ProjectList, ProjectListEntry, ProjectPage
from headwater.simple.names import NormalizedName, is_normalized
from headwater.storage.base import Storage
from headwater.storage.layout import (
    PAGE_FILES,
    ROOT_INDEX_DIR,
    STATE_DIR,
    file_key,
    page_key,
)
from headwater.sync.commit import Barrier, Committer, Ready
from headwater.sync.fetch import FileFetcher, FilesFailed
from headwater.sync.plan import Plan, ProjectTask, plan_sync
from headwater.sync.provenance import ProvenanceFetcher, report_insecure
from headwater.sync.publishers import guard_page
from headwater.sync.references import Change, References, file_keys
from headwater.sync.state import MirrorState, ProjectState
from headwater.sync.summary import NullReporter, Reporter, Summary
from headwater.sync.tree import Tree, prune_empty_directories
from headwater.sync.verify import sweep_orphans
from headwater.sync.wants import TreeWants

__all__ = ["Mirror", "NullReporter", "Reporter", "Summary"]

IN_PROGRESS = f"{STATE_DIR}/in-progress"
_FLUSH_EVERY = 256  # projects per journal chunk
_FLUSH_SECONDS = 5.0


class MirrorError(HeadwaterError):
    """The sync could not start or finish (as opposed to one project failing)."""


class Mirror:
    """Sync ``upstream`` into ``storage``.

    Args:
        upstream: the remote index (its session is owned by the caller).
        storage: where the tree lives (``web/`` and ``state/`` keys).
        workers: concurrent page fetches, and separately concurrent file downloads.
        wants: what the tree should hold (projects, files, ``tracks``, ``.metadata``); when its
            fingerprint differs from the one the tree was synced with, every project is synced
            again so the tree matches. The same object answers for full runs, ``only`` runs and
            repairs.
        diff_key: where to write the keys this sync wrote or removed, one per line (for
            ``rsync --files-from=... --delete-missing-args``).
        reporter: progress hooks.
    """

    def __init__(
        self,
        upstream: HttpRepository,
        storage: Storage,
        *,
        workers: int = 16,
        wants: TreeWants | None = None,
        diff_key: str | None = None,
        reporter: Reporter | None = None,
        trusted_root: str | None = None,
        verify_processes: int | None = None,
        publisher_rules: Callable[[NormalizedName], ContinuityRules] | None = None,
        name: str = "mirror",
    ) -> None:
        self.upstream = upstream
        self.storage = storage
        self.tree = Tree(storage)
        self.state = MirrorState(storage, upstream.base_url)
        self.refs = References(self.tree, self.state.held)
        self.workers = workers
        self.wants = wants or TreeWants()
        self.filters_fingerprint = self.wants.fingerprint
        self.metadata = self.wants.metadata
        self.diff_key = diff_key
        self.reporter: Reporter = reporter or NullReporter()
        self._pages = asyncio.Semaphore(workers)
        self._downloads = asyncio.Semaphore(workers)
        self._barrier = Barrier(storage)
        self._flush_lock = asyncio.Lock()
        self._last_flush = time.monotonic()
        self._gone: set[NormalizedName] = set()
        self._committer = Committer(self._publish)
        #: PEP 740: fetches and verifies provenance documents against ``trusted_root`` in
        #: ``verify_processes`` (None: provenance/pool.py decides) (sync/provenance.py).
        self.provenance = ProvenanceFetcher(
            upstream,
            storage,
            self._downloads,
            trusted_root=trusted_root,
            processes=verify_processes,
        )
        #: The publisher guard (sync/publishers.py): None leaves every file in.
        self.publisher_rules = publisher_rules
        self.name = name
        self.publishers = PublisherState()
        self.interrupted = False
        self.summary = Summary()
        self._files = self._file_fetcher()

    async def plan(
        self, only: list[NormalizedName] | None = None, *, adopt: bool = False
    ) -> tuple[Plan, ProjectList]:
        """Load state, fetch the upstream project list, and decide what to do. With ``adopt``,
        every project page in the tree counts as the tree's even if the state does not know it
        (a repair: the root it writes then lists every page that stays).

        Raises:
            MirrorError: the project list cannot be fetched, or stays older than what the tree has.
        """
        await self.state.load()
        self.interrupted = await self.storage.stat(IN_PROGRESS) is not None
        if self.interrupted or adopt:
            await self._reconcile()
        elif only is not None:
            # A page the state does not know (an adopted tree, a kill before the journal) is still
            # the tree's: a requested project with a page is planned as one the tree has.
            for name in only:
                if name not in self.state.serials and await self.tree.read_project(name):
                    self.state.serials[name] = None
        upstream_list = await self._fresh_project_list()
        changed = self.state.filters != self.filters_fingerprint and bool(self.state.serials)
        plan = plan_sync(
            upstream_list,
            self.state.serials,
            wanted=self.wants.project_filter,
            only=only,
            resync_all=changed and only is None,
        )
        return plan, upstream_list

    async def _fresh_project_list(self) -> ProjectList:
        retry = self.upstream.retry
        for attempt in range(1, retry.attempts + 1):
            try:
                fetched = await self.upstream.project_list()
            except (UpstreamError, InvalidPage) as exc:
                raise MirrorError(
                    f"cannot read the project list of {self.upstream.base_url}: {exc}. Nothing was "
                    "changed in the tree; check the upstream URL and try again."
                ) from exc
            assert fetched.project_list is not None
            listed = fetched.project_list
            serial = listed.last_serial if listed.last_serial is not None else fetched.serial
            if serial is None or self.state.serial is None or serial >= self.state.serial:
                return listed
            if attempt < retry.attempts:  # a stale CDN copy of /simple/: wait and ask again
                await asyncio.sleep(retry.delay(attempt))
        raise MirrorError(
            f"{self.upstream.base_url} keeps serving a project list at serial {serial}, older than "
            f"the {self.state.serial} this tree already has (a stale cache); nothing was changed. "
            "Try again later."
        )

    async def run(
        self, only: list[NormalizedName] | None = None, *, adopt: bool = False
    ) -> Summary:
        """Plan and execute a sync; return the summary (``failed`` lists projects that failed).
        ``only`` and ``adopt`` are :meth:`plan`'s."""
        started = time.monotonic()
        plan, upstream_list = await self.plan(only, adopt=adopt)
        if (
            plan.empty
            and only is None  # a run for named projects always rewrites the root (repairs it)
            and not self.interrupted
            and not self.state.held  # files held for a project no longer planned: release them
            and self.state.filters == self.filters_fingerprint
            # A first sync of an empty upstream still writes an (empty) root page.
            and await self.storage.stat(page_key(None, "json")) is not None
        ):
            # Nothing changed upstream: write nothing (no-op runs are how cron jobs spend their
            # lives; they should cost one request and no disk writes).
            self.summary = Summary(
                unchanged=plan.unchanged,
                serial=self.state.serial,
                upstream_serial=plan.upstream_serial,
            )
            self.summary.not_synced.update(plan.not_synced)
            self.summary.refused.update({r.value[:200]: r.reason for r in upstream_list.rejected})
            self.summary.seconds = time.monotonic() - started
            self.reporter.finished(self.summary)
            return self.summary
        # A marker that outlives a run means the run was interrupted: plan() has already
        # reconciled the state with the pages on disk, and files the run downloaded for pages it
        # never wrote, or old files it never removed, are swept at the end of this run.
        interrupted = self.interrupted
        await self.storage.write_bytes(IN_PROGRESS, b"a sync is running, or was interrupted\n")
        self.reporter.planned(plan)
        self.summary = Summary(unchanged=plan.unchanged, upstream_serial=plan.upstream_serial)
        self._files = self._file_fetcher()  # counts into this run's summary
        self.summary.not_synced.update(plan.not_synced)
        for rejected in upstream_list.rejected:
            # A name the spec does not allow never reaches a path; the run says it was refused.
            self.summary.refused[rejected.value[:200]] = rejected.reason
        self._gone = set(plan.delete)
        if self.publisher_rules is not None:
            self.publishers = await load_publisher_state(self.storage)
        # A fixed pool of project workers pulls from the plan, so memory stays bounded however many
        # projects there are (one task per project would hold 700,000 pending pages on a first
        # sync of PyPI). Page fetches and downloads are further bounded by their semaphores.
        pending = iter(plan.sync)

        async def project_worker() -> None:
            for task in pending:  # a shared iterator: each worker takes the next project
                await self._sync_guarded(task)

        self._committer = Committer(self._publish)
        self.provenance.expected = len(plan.sync)
        async with asyncio.TaskGroup() as outer:
            outer.create_task(self._committer.run())
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(self.workers * 2, len(plan.sync))):
                        group.create_task(project_worker())
            finally:
                self._committer.close()  # publish what is queued, even if a worker crashed
                await self.provenance.close()  # no verification is in flight any more
        await self._barrier.sync()
        # The root stops listing projects about to be deleted before their pages go, so the
        # root never points at a missing page, even if this process is killed in between.
        await self.tree.write_root(self._root(upstream_list))
        await self._barrier.sync()
        async with asyncio.TaskGroup() as group:
            for name in sorted(self._gone):
                group.create_task(self._delete_guarded(name))
        if only is None:
            # Files held for a project this run does not sync (gone upstream, no longer wanted,
            # or unchanged upstream: files `headwater adopt --files` put in a synced tree) wait
            # for nothing; those its page in the tree lists stay.
            planned = {task.name for task in plan.sync}
            for name in sorted(set(self.state.held) - planned - self._gone):
                await self._release_held(name, file_keys(await self.tree.read_project(name)))
        self.summary.files_removed += await self.refs.settle()
        await self.tree.write_last_modified()
        await self._barrier.sync()
        complete = not self.summary.failed and only is None
        if self.publisher_rules is not None:
            await save_publisher_state(self.storage, self.publishers)
        await self.state.commit(
            plan.upstream_serial if complete else self.state.serial,
            filters=self.filters_fingerprint if complete else self.state.filters,
            wants=self.wants if complete else self.state.wants,
        )
        if interrupted:
            swept = await sweep_orphans(self.storage, keep=self.state.held_keys())
            self.tree.removed.extend(swept)
            self.summary.files_removed += len(swept)
        # Deletions must not leave empty directories behind (a static server would answer them).
        # After an interrupted run, every empty one (the killed run may have removed a page's
        # files and died before its directory went).
        await prune_empty_directories(
            self.storage,
            None
            if interrupted
            else [*self.tree.removed, *(page_key(n, "json") for n in self._gone)],
        )
        await self.storage.delete(IN_PROGRESS)
        if self.diff_key is not None:
            changed = sorted(set(self.tree.written) | set(self.tree.removed))
            await self.storage.write_bytes(
                self.diff_key, "".join(f"{k}\n" for k in changed).encode()
            )
        self.summary.serial = self.state.serial
        self.summary.seconds = time.monotonic() - started
        self.reporter.finished(self.summary)
        return self.summary

    async def _reconcile(self) -> None:
        """After an interrupted run, make the state know every project page in the tree.

        A run killed after writing a project's page but before journaling it leaves a page the
        state does not know. Such projects are added with an unknown serial, so the plan resyncs
        them (or deletes them if upstream no longer lists them), and the orphan sweep at the end of
        the run keeps their files.
        """
        suffix = "/" + PAGE_FILES["json"]
        async for key in self.storage.iter_keys(ROOT_INDEX_DIR):
            parts = key.split("/")
            if len(parts) == 4 and key.endswith(suffix) and is_normalized(parts[2]):
                name = NormalizedName(parts[2])
                if name not in self.state.serials:
                    self.state.serials[name] = None

    def _file_fetcher(self) -> FileFetcher:
        """What fetches the files of this run's pages (sync/fetch.py), counting into its summary."""
        return FileFetcher(
            self.upstream,
            self.tree,
            self.refs,
            self.provenance,
            self._downloads,
            metadata=self.metadata,
            summary=self.summary,
            reporter=self.reporter,
        )

    def _root(self, upstream_list: ProjectList) -> ProjectList:
        """Every project the tree has (less those about to be deleted), with display names and
        serials from upstream's list."""
        have = {n: s for n, s in self.state.serials.items() if n not in self._gone}
        entries: list[ProjectListEntry] = []
        seen: set[str] = set()
        for entry in upstream_list.projects:
            name = entry.normalized
            if name in have and name not in seen:
                seen.add(name)
                entries.append(ProjectListEntry(entry.name, have[name]))
        for name, serial in have.items():  # in the tree, no longer listed (e.g. --project runs)
            if name not in seen:
                entries.append(ProjectListEntry(name, serial))
        return ProjectList(projects=tuple(entries), last_serial=upstream_list.last_serial)

    # -- one project --------------------------------------------------------------------------------

    async def _sync_guarded(self, task: ProjectTask) -> None:
        try:
            ready = await self._sync_project(task)
        except FilesFailed as exc:
            self.state.hold(task.name, exc.kept)  # reused by the next run, not orphans
            self.summary.failed[task.name] = str(exc)
            self.reporter.project_done(task.name, str(exc))
            return
        except (HeadwaterError, OSError) as exc:
            self.summary.failed[task.name] = str(exc)
            self.reporter.project_done(task.name, str(exc))
            return
        if ready is None:
            self.reporter.project_done(task.name, None)
        else:
            await self._committer.add(ready)  # reported when its page is published

    async def _sync_project(self, task: ProjectTask) -> Ready | None:
        """Fetch the project's page and files; return what the committer must publish, or None
        when there is nothing to publish (not modified, or gone upstream)."""
        known = task.name in self.state.serials
        etag = self.state.etags.get(task.name) if task.reason == "no-serial" else None
        async with self._pages:
            try:
                fetched = await self.upstream.project_page(
                    task.name, min_serial=task.serial, etag=etag
                )
            except UpstreamNotFound:
                # Listed a moment ago, gone now: deleted upstream. Deleted after the root is
                # rewritten without it (see run()).
                if task.name in self.state.serials:
                    self._gone.add(task.name)
                return None
            except StaleResponse as exc:
                raise UpstreamError(
                    f"{exc}; the tree keeps its current copy of {task.name}", url=exc.url
                ) from exc
        if fetched.not_modified:
            self.summary.unchanged += 1
            await self._record(task.name, ProjectState(task.serial, etag))
            return None
        assert fetched.page is not None
        upstream_page = self.wants.files(fetched.page)
        # Pinned before any file is looked for on disk: no other project's removal can take a
        # file this page is about to list (references.py).
        pins = self.refs.pin(self._keys_of(upstream_page))
        try:
            return await self._fetch_project(task, fetched, upstream_page, known, pins)
        except BaseException:
            self.refs.unpin(pins)
            raise

    @staticmethod
    def _keys_of(page: ProjectPage) -> list[str]:
        keys = []
        for file in page.files:
            sha256 = file.hashes.get("sha256")
            try:
                keys.append(file_key(sha256 or "", file.filename))
            except ValueError:
                continue  # refused when it is fetched
        return keys

    async def _fetch_project(
        self,
        task: ProjectTask,
        fetched: Fetched,
        upstream_page: ProjectPage,
        known: bool,
        pins: list[str],
    ) -> Ready:
        # Only a project the tree had, or a run after an interrupted one, can find its files
        # already there; a first sync skips the check.
        known_files = (
            self.interrupted or task.name in self.state.serials or task.name in self.state.held
        )
        files = await self._files.fetch_files(upstream_page, known=known_files)
        report_insecure(task.name, files)
        page = msgspec.structs.replace(
            upstream_page,
            files=tuple(files),
            # PEP 708: tracks is this repository's operator speaking; the upstream's own tracks
            # describe the upstream, so they are never copied.
            tracks=(self.upstream.project_url(task.name),) if self.wants.tracks else (),
            namespaces=None,  # PEP 752: only the namespace's own repository may say
            last_serial=fetched.serial if fetched.serial is not None else task.serial,
        )
        # Sizes the upstream did not give are known now: the filters judge the files again, so
        # the page written is one the filters keep as it is (verify checks exactly that).
        kept = self.wants.files(page)
        if self.publisher_rules is not None:
            kept = await guard_page(
                task.name,
                kept,
                self.publisher_rules(task.name),
                self.publishers,
                self.storage,
                self.summary,
                index=self.name,
            )
        dropped = tuple(f for f in page.files if f not in kept.files)
        return Ready(kept, known, fetched.etag, pins, dropped)

    async def _publish(self, batch: list[Ready]) -> None:
        """Make a batch of projects visible: files durable first, then pages, then the journal.
        A project whose page cannot be written fails alone; the others are published."""
        try:
            await self._publish_batch(batch)
        finally:
            for item in batch:
                self.refs.unpin(item.pins)

    async def _publish_batch(self, batch: list[Ready]) -> None:
        try:
            # Markers for files a page lists but does not own go first; the barrier that makes
            # the files durable before any page points at them covers them too.
            for item in batch:
                await self.refs.record(item.page)
            await self._barrier.sync()
        except (HeadwaterError, OSError) as exc:
            for item in batch:  # no page may point at files that may not be durable
                self.summary.failed[item.page.name] = f"could not make its files durable: {exc}"
                self.reporter.project_done(item.page.name, str(exc))
                self.state.hold(item.page.name, list(file_keys(item.page)))
            return
        # Only a project the tree already had can have an old page (and old files) to replace;
        # read them before anything is overwritten.
        olds: list[ProjectPage | None] = list(
            await asyncio.gather(*(self._old_page(item) for item in batch))
        )
        try:
            await self.tree.write_projects([item.page for item in batch])
            written = [True] * len(batch)
        except (HeadwaterError, OSError):
            # Find which: write them one by one (rewriting a page is harmless).
            written = []
            for item in batch:
                try:
                    await self.tree.write_project(item.page)
                except (HeadwaterError, OSError) as exc:
                    self.summary.failed[item.page.name] = str(exc)
                    self.reporter.project_done(item.page.name, str(exc))
                    self.state.hold(item.page.name, list(file_keys(item.page)))
                    written.append(False)
                else:
                    written.append(True)
        published = [(item, old) for item, old, ok in zip(batch, olds, written, strict=True) if ok]
        # What each page no longer lists (its old page's files, and those the filters dropped),
        # released for the whole batch at once: one trip to the storage for all the removals.
        changes: list[Change] = []
        for item, old in published:
            before = file_keys(old)
            if item.dropped:
                extra = file_keys(msgspec.structs.replace(item.page, files=item.dropped))
                for key, has_metadata in extra.items():
                    before[key] = before.get(key, False) or has_metadata
            changes.append((item.page.name, before, file_keys(item.page)))
        try:
            self.summary.files_removed += await self.refs.release_many(changes)
        except (HeadwaterError, OSError) as exc:
            for item, _ in published:
                name = item.page.name
                self.summary.failed[name] = f"could not remove replaced files: {exc}"
                self.reporter.project_done(name, str(exc))
            # not journaled: the next run syncs them again and retries the removal
            await self._maybe_flush()
            return
        for (item, _), (name, _, listed) in zip(published, changes, strict=True):
            try:
                await self._release_held(name, listed)
            except (HeadwaterError, OSError) as exc:
                self.summary.failed[name] = f"could not remove replaced files: {exc}"
                self.reporter.project_done(name, str(exc))
                continue  # not journaled: the next run syncs it again and retries the removal
            self.summary.synced += 1
            self.state.record(name, ProjectState(item.page.last_serial, item.etag))
            self.reporter.project_done(name, None)
        await self._maybe_flush()

    async def _old_page(self, item: Ready) -> ProjectPage | None:
        return await self.tree.read_project(item.page.name) if item.known else None

    async def _release_held(self, name: NormalizedName, listed: dict[str, bool]) -> None:
        """``name`` is published (listing ``listed``) or gone: files held for it since a failed
        sync are references no more."""
        held = self.state.held.pop(name, None)
        if held:
            before = dict.fromkeys(held, True)
            self.summary.files_removed += await self.refs.release_keys(name, before, listed)

    async def _record(self, name: NormalizedName, state: ProjectState) -> None:
        self.state.record(name, state)
        await self._maybe_flush()

    async def _maybe_flush(self) -> None:
        due = (
            self.state.pending >= _FLUSH_EVERY
            or time.monotonic() - self._last_flush > _FLUSH_SECONDS
        )
        if not due or self._flush_lock.locked():
            return
        async with self._flush_lock:
            await self._barrier.sync()  # pages the chunk describes are durable first
            await self.state.flush()
            self._last_flush = time.monotonic()

    # -- deletions ------------------------------------------------------------------------------------

    async def _delete_guarded(self, name: NormalizedName) -> None:
        try:
            await self._delete_project(name)
        except (HeadwaterError, OSError) as exc:
            self.summary.failed[name] = f"could not delete: {exc}"

    async def _delete_project(self, name: NormalizedName) -> None:
        old = await self.tree.read_project(name)
        await self.tree.remove_project(name)  # pages first: nothing served points at what goes next
        self.summary.files_removed += await self.refs.release(name, old, None)
        await self._release_held(name, {})
        self.state.forget(name)
        self.summary.deleted += 1
        await self._maybe_flush()


log = logging.getLogger("headwater.mirror")
