"""Fetching a project's files into the tree: what the engine (:mod:`headwater.sync.engine`) does
between reading a project's page and handing it to the committer.

This module owns one file's way in: the file is looked for at its sha256 key first (a present
file with the promised size is the right one, since only verified bytes are ever put there),
otherwise downloaded and checked against the page's size and sha256, read whole when small enough
(the file, its PEP 658 ``.metadata`` taken from the wheel and its verified PEP 740 provenance then
reach storage in one call) or streamed. It also owns the ``.metadata`` of each file and the
download counters of the run's :class:`~headwater.sync.summary.Summary`. It writes no page and
removes nothing: publishing pages, releasing old files and the journal stay with the engine.
"""

from __future__ import annotations

import asyncio
import hashlib

import msgspec

from headwater.errors import HeadwaterError
from headwater.policy.held import held_entry, upstream_hold
from headwater.repository.errors import UpstreamError
from headwater.repository.http import HttpRepository
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import NormalizedName
from headwater.simple.text import secure_url
from headwater.storage.base import Storage
from headwater.storage.layout import file_key, file_url_from_project_page, metadata_key
from headwater.sync.provenance import ProvenanceFetcher
from headwater.sync.references import References, file_keys
from headwater.sync.summary import Reporter, Summary
from headwater.sync.tree import Tree
from headwater.sync.wheels import wheel_metadata

__all__ = ["FileFetcher", "FilesFailed"]


class FilesFailed(HeadwaterError):
    """Some files of a project failed; ``kept`` are the keys of those that were fetched (held for
    the project's next sync). Caught by the engine, which fails that project alone: it never
    leaves a sync."""

    def __init__(self, message: str, kept: list[str]) -> None:
        super().__init__(message)
        self.kept = kept


class FileFetcher:
    """Fetches the files of the pages of one sync run into ``tree``.

    Args:
        upstream: the remote index the files come from.
        tree: the tree written to (keys written are noted in ``tree.written``).
        refs: the run's reference counting: a file being removed is waited for before it is
            looked for (:meth:`References.settled`).
        provenance: fetches and verifies PEP 740 documents beside the files.
        downloads: bounds concurrent downloads (shared with ``provenance``).
        metadata: whether the tree keeps PEP 658 ``.metadata`` files.
        summary: the run's counters (files present, downloaded, bytes, provenance verified).
        reporter: progress hooks (one call per file downloaded).
    """

    def __init__(
        self,
        upstream: HttpRepository,
        tree: Tree,
        refs: References,
        provenance: ProvenanceFetcher,
        downloads: asyncio.Semaphore,
        *,
        metadata: bool,
        summary: Summary,
        reporter: Reporter,
    ) -> None:
        self.upstream = upstream
        self.tree = tree
        self.storage: Storage = tree.storage
        self.refs = refs
        self.provenance = provenance
        self._downloads = downloads
        self.metadata = metadata
        self.summary = summary
        self.reporter = reporter

    async def fetch_files(self, page: ProjectPage, *, known: bool) -> list[File]:
        """Fetch every file of ``page``; all are tried even when one fails (what succeeded is kept
        for the next run), then any failure fails the project so its page is not written.
        ``known``: the files may already be in the tree (a project the tree has or holds files
        for, or a run after an interrupted one); a first sync of a project skips the look."""
        results: list[File | None] = [None] * len(page.files)
        errors: list[str] = []

        async def one(index: int, file: File) -> None:
            try:
                results[index] = await self._fetch_file(page.name, file, known)
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
            raise FilesFailed(
                f"{len(errors)} of {len(page.files)} files failed, so the page of {page.name} was "
                f"not updated (the tree keeps its previous copy; the files fetched are kept for "
                f"the next run): {shown}",
                list(file_keys(fetched)),
            )
        return [f for f in results if f is not None]

    async def _fetch_file(self, project: NormalizedName, file: File, known: bool) -> File:
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
