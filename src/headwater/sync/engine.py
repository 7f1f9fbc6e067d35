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
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable

import msgspec

from headwater.errors import HeadwaterError
from headwater.policy.continuity import ContinuityRules, FileProvenance
from headwater.policy.held import held_entry, held_reason, hold_files, upstream_hold
from headwater.policy.publishers import PublisherIdentity
from headwater.repository.errors import StaleResponse, UpstreamError, UpstreamNotFound
from headwater.repository.http import Fetched, HttpRepository
from headwater.repository.publishers import (
    PublisherState,
    file_provenance,
    guarded,
    judge,
    load_publisher_state,
    save_publisher_state,
)
from headwater.simple.model import File, InvalidPage, ProjectList, ProjectListEntry, ProjectPage
from headwater.simple.names import NormalizedName, is_normalized
from headwater.simple.text import secure_url
from headwater.storage.base import Storage
from headwater.storage.layout import (
    PAGE_FILES,
    ROOT_INDEX_DIR,
    STATE_DIR,
    file_key,
    file_url_from_project_page,
    metadata_key,
    page_key,
    provenance_key,
)
from headwater.sync.commit import Barrier, Committer, Ready
from headwater.sync.plan import Plan, ProjectTask, plan_sync
from headwater.sync.provenance import ProvenanceFetcher, report_insecure
from headwater.sync.references import Change, References, file_keys
from headwater.sync.state import MirrorState, ProjectState
from headwater.sync.summary import NullReporter, Reporter, Summary
from headwater.sync.tree import Tree, prune_empty_directories
from headwater.sync.verify import sweep_orphans
from headwater.sync.wants import TreeWants
from headwater.sync.wheels import wheel_metadata

__all__ = ["Mirror", "NullReporter", "Reporter", "Summary"]

IN_PROGRESS = f"{STATE_DIR}/in-progress"
_FLUSH_EVERY = 256  # projects per journal chunk
_FLUSH_SECONDS = 5.0


class MirrorError(HeadwaterError):
    """The sync could not start or finish (as opposed to one project failing)."""


class _FilesFailed(MirrorError):
    """Some files of a project failed; ``kept`` are the keys of those that were fetched (held for
    the project's next sync)."""

    def __init__(self, message: str, kept: list[str]) -> None:
        super().__init__(message)
        self.kept = kept


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
            # Files held for a project the plan no longer syncs (gone upstream, or no longer
            # wanted) wait for nothing.
            planned = {task.name for task in plan.sync}
            for name in sorted(set(self.state.held) - planned - self._gone):
                await self._release_held(name, {})
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
        except _FilesFailed as exc:
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
        files = await self._fetch_files(upstream_page)
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
            kept = await self._guard(task.name, kept)
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

    async def _fetch_files(self, page: ProjectPage) -> list[File]:
        """Fetch every file of ``page``; all are tried even when one fails (what succeeded is kept
        for the next run), then any failure fails the project so its page is not written."""
        results: list[File | None] = [None] * len(page.files)
        errors: list[str] = []

        async def one(index: int, file: File) -> None:
            try:
                results[index] = await self._fetch_file(page.name, file)
            except (HeadwaterError, OSError) as exc:
                errors.append(str(exc))

        if len(page.files) == 1:  # most projects of a release: no task group for one file
            await one(0, page.files[0])
        else:
            async with asyncio.TaskGroup() as group:
                for index, file in enumerate(page.files):
                    group.create_task(one(index, file))
        if errors:
            shown = "; ".join(errors[:3]) + ("; ..." if len(errors) > 3 else "")
            fetched = msgspec.structs.replace(page, files=tuple(f for f in results if f))
            raise _FilesFailed(
                f"{len(errors)} of {len(page.files)} files failed, so the page of {page.name} was "
                f"not updated (the tree keeps its previous copy; the files fetched are kept for "
                f"the next run): {shown}",
                list(file_keys(fetched)),
            )
        return [f for f in results if f is not None]

    async def _fetch_file(self, project: NormalizedName, file: File) -> File:
        upstream_held = upstream_hold(project, file)
        if upstream_held is not None:
            return held_entry(project, file, upstream_held)  # its URL only ever refuses
        sha256 = file.hashes.get("sha256")
        if sha256 is None:
            raise UpstreamError(
                f"{project}: {file.filename} has no sha256 on the upstream page, so it cannot be "
                "verified; refusing to mirror it",
                url=file.url,
            )
        key = file_key(sha256, file.filename)  # checks the digest and the filename are safe
        # Only a project the tree had, or a run after an interrupted one, can find its files
        # already there; a first sync skips the check.
        known = self.interrupted or project in self.state.serials or project in self.state.held
        # PEP 740: the provenance document is fetched and verified while the file downloads, and
        # written with it; a document that does not verify fails the file (sync/provenance.py).
        url = secure_url(file.provenance)
        document = (
            asyncio.create_task(self._provenance_of(project, file, url, sha256, known))
            if url is not None
            else None
        )
        try:
            return await self._fetch_file_with(project, file, sha256, key, known, document)
        finally:
            if document is not None:
                document.cancel()  # when the file failed first: nothing to write it with
                await asyncio.gather(document, return_exceptions=True)

    async def _fetch_file_with(
        self,
        project: NormalizedName,
        file: File,
        sha256: str,
        key: str,
        known: bool,
        document: asyncio.Task[tuple[str, bytes] | None] | None,
    ) -> File:
        await self.refs.settled(key)  # a removal that began before this project's pin
        existing = await self.storage.stat(key) if known else None
        core_metadata: dict[str, str] | None = None
        # The key is the sha256 and a file is only published there after it was verified, so a
        # file already present with the promised size is the right one (verify re-hashes).
        if existing is not None and (file.size is None or existing.size == file.size):
            size = existing.size
            self.summary.files_present += 1
            if self.metadata:
                core_metadata = await self._fetch_metadata(file, sha256, known)
        elif self.upstream.small_enough(file.size):
            # Read whole: the file and its .metadata (when the wheel has it) reach storage in one
            # call, one trip to the storage thread for both.
            assert file.size is not None
            async with self._downloads:
                body = await self.upstream.fetch_bytes(file.url, sha256=sha256, size=file.size)
            size = len(body)
            writes = [(key, body)]
            extracted = self._metadata_in(file, body) if self.metadata else None
            if extracted is not None:
                writes.append((metadata_key(sha256, file.filename), extracted[0]))
                core_metadata = extracted[1]
            # The file, its .metadata and its verified provenance reach storage in one call.
            try:
                verified = await document if document is not None else None
            except (HeadwaterError, OSError):
                # The file is right (its sha256 was checked): kept for the next run, unlisted.
                await self.storage.write_many(writes[:1])
                self._downloaded(key, size)
                raise
            if verified is not None:
                writes.append(verified)
            document = None
            await self.storage.write_many(writes)
            self._downloaded(key, size)
            self.tree.written.extend(k for k, _ in writes[1:])
            if extracted is None and self.metadata:
                core_metadata = await self._fetch_metadata(file, sha256, known)
        else:
            async with self._downloads:
                size, _ = await self.upstream.fetch_verified(
                    file.url, sha256=sha256, size=file.size, storage=self.storage, key=key
                )
            self._downloaded(key, size)
            if self.metadata:
                core_metadata = await self._fetch_metadata(file, sha256, known)
        if document is not None:
            verified = await document
            if verified is not None:
                await self.storage.write_bytes(*verified)
                self.tree.written.append(verified[0])
        return msgspec.structs.replace(
            file,
            url=file_url_from_project_page(sha256, file.filename),
            core_metadata=core_metadata,
            gpg_sig=None,  # signatures are not mirrored; do not promise them
            size=size,
        )

    async def _provenance_of(
        self, project: NormalizedName, file: File, url: str, sha256: str, known: bool
    ) -> tuple[str, bytes] | None:
        verified = await self.provenance.fetch(project, file, url, sha256, known)
        if verified is not None:
            self.summary.provenance_verified += 1
        return verified

    async def _guard(self, project: NormalizedName, page: ProjectPage) -> ProjectPage:
        """The page with the files the publisher guard holds as held entries (their refusals are
        logged and kept in ``state/publishers.json``; the files leave the tree like filtered
        ones)."""
        from headwater.provenance import publishers_of_document

        assert self.publisher_rules is not None
        rules = self.publisher_rules(project)
        if not guarded(rules):
            self.publishers.held.pop(project, None)
            return page
        known: list[FileProvenance] = []
        for file in page.files:
            if held_reason(file) is not None:
                continue  # held by the upstream (another headwater): not ours to judge
            publishers: tuple[PublisherIdentity, ...] = ()
            sha256 = file.hashes.get("sha256")
            if secure_url(file.provenance) is not None and sha256:
                # Verified when the sync wrote it (sync/provenance.py).
                raw = await self.storage.read_bytes(provenance_key(sha256, file.filename))
                publishers = publishers_of_document(raw)
            known.append(file_provenance(file, publishers))
        accepted = self.publishers.accepted.get(project, ())
        decision, records = judge(project, known, rules, accepted, index=self.name)
        if records:
            self.publishers.held[project] = records
        else:
            self.publishers.held.pop(project, None)
        if not decision.held:
            return page
        for h in decision.held:
            log.warning("mirror: %s: %s; %s", project, h.message, h.fix)
            self.summary.held[h.filename] = h.message
        # Listed as yanked with the refusal, at a URL that refuses (policy/held.py); the file
        # itself leaves the tree like a filtered one.
        return hold_files(page, decision.held)

    def _downloaded(self, key: str, size: int) -> None:
        self.tree.written.append(key)
        self.summary.files_downloaded += 1
        self.summary.bytes_downloaded += size
        self.reporter.file_done(size)

    @staticmethod
    def _metadata_in(file: File, body: bytes) -> tuple[bytes, dict[str, str]] | None:
        """The PEP 658 ``.metadata`` of a just-downloaded (verified) wheel, taken from the wheel:
        its ``.dist-info/METADATA`` is that file byte for byte. Only when the page promises a
        ``.metadata`` and the extracted bytes match the digest it gives (when it gives one)."""
        if not file.has_metadata:
            return None
        promised = file.core_metadata if isinstance(file.core_metadata, dict) else {}
        meta_sha = promised.get("sha256")
        extracted = wheel_metadata(file.filename, body)
        if extracted is None:
            return None
        digest = hashlib.sha256(extracted).hexdigest()
        if meta_sha is not None and digest != meta_sha:
            return None  # fetched and verified on its own instead
        return extracted, {"sha256": digest}

    async def _fetch_metadata(self, file: File, sha256: str, known: bool) -> dict[str, str] | None:
        """Mirror the file's PEP 658 ``.metadata`` when its page promises one: fetched and
        verified like any file (a just-downloaded wheel's comes from :meth:`_metadata_in`)."""
        if not file.has_metadata:
            return None
        promised = file.core_metadata if isinstance(file.core_metadata, dict) else {}
        meta_sha = promised.get("sha256")
        key = metadata_key(sha256, file.filename)
        # As for files: only a project the tree had (or a resumed run) can find it present.
        if meta_sha is not None and known and await self.storage.stat(key) is not None:
            return {"sha256": meta_sha}
        async with self._downloads:
            _, data = await self.upstream.fetch_verified(
                file.metadata_url, sha256=meta_sha, size=None, storage=self.storage, key=key
            )
        self.tree.written.append(key)
        if meta_sha is None:
            meta_sha = hashlib.sha256(
                data if data is not None else await self.storage.read_bytes(key)
            ).hexdigest()
        return {"sha256": meta_sha}

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
