"""PEP 740 provenance in a mirror: each file's document fetched and verified while the file
downloads, then written with it (engine.py), so the tree keeps ``<file>.provenance`` beside the
file and ``headwater verify`` can re-check an rsync'd copy offline.

A document is verified with the code uploads use (signatures, certificate chain, transparency
log, subject = this file, each bundle signed by the publisher it names); one that does not verify
fails its file, so the project's page is not updated (the tree keeps its previous copy). Where it
is verified (a worker thread, or a process pool for a large run on more than one CPU) is
:mod:`headwater.provenance.pool`'s table; the verification libraries are imported on first use,
so a mirror of an index without provenance never loads them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from headwater.repository.errors import UpstreamError
from headwater.repository.http import HttpRepository
from headwater.simple.model import File
from headwater.simple.names import NormalizedName
from headwater.simple.text import secure_url
from headwater.storage.base import Storage
from headwater.storage.layout import provenance_key

if TYPE_CHECKING:
    from headwater.provenance.pool import DocumentVerifier

__all__ = ["INTEGRITY_ACCEPT", "MAX_PROVENANCE", "ProvenanceFetcher", "report_insecure"]

#: Largest PEP 740 provenance document read (PyPI's are a few KiB per attestation).
MAX_PROVENANCE = 1 << 20
INTEGRITY_ACCEPT = "application/vnd.pypi.integrity.v1+json, application/json;q=0.9"

log = logging.getLogger("headwater.mirror")


class ProvenanceFetcher:
    """Fetches and verifies the provenance documents of one sync run.

    ``processes`` names the verifying processes (1: a thread); None picks by the table of
    :mod:`headwater.provenance.pool` with :attr:`expected` (the projects the run syncs).
    """

    def __init__(
        self,
        upstream: HttpRepository,
        storage: Storage,
        downloads: asyncio.Semaphore,
        *,
        trusted_root: str | None,
        processes: int | None,
    ) -> None:
        self.upstream = upstream
        self.storage = storage
        self.downloads = downloads
        self.trusted_root = trusted_root
        self.processes = processes
        self.expected = 0
        self._verifier: DocumentVerifier | None = None

    def verifier(self) -> DocumentVerifier:
        if self._verifier is None:
            from headwater.provenance.pool import (
                DocumentVerifier,
                idle_cpus,
                usable_cpus,
                use_pool,
            )

            processes = self.processes
            if processes is None:
                cpus = usable_cpus()
                processes = cpus if use_pool(cpus, self.expected, idle_cpus(cpus)) else 1
            self._verifier = DocumentVerifier(self.trusted_root, processes=processes)
        return self._verifier

    async def fetch(
        self, project: NormalizedName, file: File, url: str, sha256: str, known: bool
    ) -> tuple[str, bytes] | None:
        """The verified (key, document) to write with the file, or None when the tree has it
        (a document in the tree was verified when it was written; only a ``known`` project, or
        a run after an interrupted one, can have it).

        Raises:
            UpstreamError: the document cannot be fetched, or does not verify (naming the check
                and the fix).
        """
        from headwater.provenance import ProvenanceInvalid

        key = provenance_key(sha256, file.filename)
        if known and await self.storage.stat(key) is not None:
            return None
        verifier = self.verifier()
        async with self.downloads:
            raw = await self.upstream.fetch_document(
                url, limit=MAX_PROVENANCE, accept=INTEGRITY_ACCEPT
            )
        try:
            await verifier.verify(raw, file.filename, sha256)
        except ProvenanceInvalid as exc:
            raise UpstreamError(
                f"{project}: the provenance of {file.filename} does not verify ({exc}); the "
                "tree keeps its previous copy of the project. If the upstream is right, update "
                "the trust root (docs/provenance.md)",
                url=url,
            ) from exc
        return key, raw

    async def close(self) -> None:
        """Stop the verifying processes (call when no verification is in flight)."""
        if self._verifier is not None:
            verifier, self._verifier = self._verifier, None
            await asyncio.to_thread(verifier.close)


def report_insecure(project: NormalizedName, files: list[File]) -> None:
    """Say once per project when the upstream gave PEP 740 provenance URLs that are not https:
    the spec requires a secure origin, so the renderers leave them out of the tree's pages."""
    insecure = [
        f.provenance for f in files if f.provenance is not None and secure_url(f.provenance) is None
    ]
    if insecure:
        log.warning(
            "mirror: %s: %d provenance URL(s) are not https (first: %r); left out of the page "
            "(PEP 740 requires a secure origin)",
            project,
            len(insecure),
            insecure[0][:200],
        )
