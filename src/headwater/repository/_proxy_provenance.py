"""PEP 740 provenance and the publisher guard of a caching proxy.

What a proxy keeps, beside its pages (``state/pages/<project>/``) and files::

    web/packages/<aa>/<bb>/<rest>/<filename>.provenance   the verified document, served as it is
    state/pages/<project>/provenance.json   per file: its sha256 and the publishers its document
                                            proved, or why the document was refused
    state/publishers/<project>/...          the operator's acceptances, held files
                                            (:class:`headwater.repository.publishers.CacheLedger`)

**When.** The documents are fetched when a page is fetched (or revalidated), for the files whose
upstream page lists a provenance URL and that have no verified record yet: the guard decides a
page from the publishers of *every* release (a new release is judged against the ones before it),
so waiting for a file's first download would serve a page before knowing what to leave out of
it. A record is kept in the proxy's storage and never fetched again (one request and a few
milliseconds of verification per attested file, once for all the servers sharing the storage);
a page without provenance URLs costs nothing.

**Verification** is :func:`headwater.provenance.verify_provenance_document`, the code uploads and
mirrors use, against the proxy's trust root (offline). A file whose document does not verify
(another file's digest, another identity than its bundle names, a truncated log entry, ...) is
left off the page and its download refused, like a file whose bytes do not match its sha256; so
is a file whose document could not be fetched. Both are logged and tried again at the next
revalidation of the page. The file is never served as if it were unattested: that would let a
forged document turn a publisher change into an unattested release the guard may let through.

**Pages** list, for a verified file, ``provenance`` (JSON) / ``data-provenance`` (HTML): the
integrity URL under the proxy's public URL (``[serve] base_url``), when that is ``https://`` (PEP
740 requires a secure origin; otherwise pages list none and the routes still answer, as for a
hosted index).

**The guard** is :func:`headwater.repository.publishers.judge` over the served files: a held file
is left off the page and cannot be downloaded; its record is in the ledger for ``headwater
provenance held``. An acceptance (``headwater provenance accept``, ``PUT /api/...``) is read at
the page's next revalidation (after ``ttl``), on every server sharing the storage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from headwater.errors import InvalidInput, printable
from headwater.policy.continuity import ContinuityRules, FileProvenance
from headwater.policy.held import hold_files
from headwater.policy.publishers import PublisherIdentity
from headwater.repository._proxy_pages import Entry, digest
from headwater.repository._proxy_upstream import PageFetcher
from headwater.repository.errors import UpstreamError
from headwater.repository.hosted import provenance_url
from headwater.repository.publishers import (
    CacheLedger,
    HeldRecord,
    file_provenance,
    guarded,
    judge,
    version_of,
)
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import NormalizedName
from headwater.simple.text import secure_url
from headwater.storage.base import NotFound, Storage
from headwater.storage.layout import WEB, file_key, provenance_key

__all__ = ["Guarded", "ProvenanceRecord", "ProxyGuard", "records_key"]

log = logging.getLogger("headwater.proxy")

#: Largest provenance document read (PyPI's are a few KiB per attestation).
MAX_PROVENANCE = 1 << 20
INTEGRITY_ACCEPT = "application/vnd.pypi.integrity.v1+json, application/json;q=0.9"
#: Provenance documents of one page fetched at once.
_AT_ONCE = 8


class ProvenanceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the proxy knows of one file's provenance."""

    sha256: str
    #: The publishers the document proved (when it verified).
    publishers: tuple[PublisherIdentity, ...] = ()
    #: Why the document was refused (it did not verify); None: it verified.
    refused: str | None = None


_RECORDS = msgspec.json.Decoder(dict[str, ProvenanceRecord])


def records_key(name: NormalizedName) -> str:
    return f"state/pages/{name}/provenance.json"


class Guarded:
    """A page after provenance and the guard: what is served, and what was held."""

    __slots__ = ("files", "held", "served")

    def __init__(self, served: ProjectPage, files: dict[str, File], held: list[HeldRecord]) -> None:
        self.served = served
        self.files = files
        self.held = held


class ProxyGuard:
    """Provenance and the publisher guard of one proxy (see the module docstring).

    Args:
        name: the proxy's name (messages, and the accept command in refusals).
        storage: the proxy's storage.
        pages: fetches the documents (the proxy's boundary, deadline and retries).
        trusted_root: the Sigstore trust root file (None: the one shipped with headwater).
        rules: the guard's rules per project (None: no guard; provenance is still kept).
        public_url: the proxy's public URL (``https://`` for pages to list provenance).
    """

    def __init__(
        self,
        name: str,
        storage: Storage,
        pages: PageFetcher,
        *,
        trusted_root: str | None = None,
        rules: Callable[[NormalizedName], ContinuityRules] | None = None,
        public_url: str | None = None,
    ) -> None:
        self.name = name
        self.storage = storage
        self.ledger = CacheLedger(storage)
        self._pages = pages
        self._trusted_root = trusted_root
        self._verifier: Any = None  # (TrustRoot, VerifyCache), made on first use
        self.rules = rules
        self.public_url = public_url
        #: Held records this process last wrote per project (to write only changes).
        self._written: dict[NormalizedName, list[HeldRecord]] = {}

    def needed(self, name: NormalizedName, files: dict[str, File]) -> bool:
        """Whether the page of ``name`` needs this guard at all (else it is served as it is):
        some file lists provenance, or the project must be attested. Continuity alone holds
        nothing until some release is attested (most projects of PyPI never are)."""
        if any(secure_url(f.provenance) is not None for f in files.values()):
            return True
        rules = self.rules(name) if self.rules is not None else None
        return rules is not None and (rules.required or bool(rules.expected))

    async def update(self, name: NormalizedName, entry: Entry, *, fetch: bool) -> None:
        """Apply provenance and the guard to ``entry`` in place, from the upstream's served form
        (kept in ``entry.base`` to be judged again: an acceptance, a document fetched later)."""
        served, files = entry.base or (entry.served, entry.files)
        if served is None or not self.needed(name, files):
            return
        done = await self.apply(name, served, files, fetch=fetch)
        entry.base = (served, files)
        entry.served, entry.files, entry.held = done.served, done.files, done.held
        entry.guard_due = bool(done.held) or len(done.files) < len(files)
        held = " ".join(h.filename for h in done.held).encode()
        entry.guard_tag = f":{len(done.files)}:{digest(held)[:8]}"
        entry.rendered.clear()
        entry.sized_at = float("-inf")  # sizes found in the cache: looked up again

    async def apply(
        self,
        name: NormalizedName,
        served: ProjectPage,
        files: dict[str, File],
        *,
        fetch: bool,
    ) -> Guarded:
        """The served form of ``name``'s page after provenance and the guard. ``files`` maps the
        served files' paths to the upstream's; ``fetch``: fetch the documents still missing
        (False offline)."""
        records = await self._records(name, files, fetch=fetch)
        keep: list[File] = []
        kept: dict[str, File] = {}
        known: list[FileProvenance] = []
        for file in served.files:
            path = file.url.removeprefix("../../packages/")
            upstream = files[path]
            publishers: tuple[PublisherIdentity, ...] = ()
            if secure_url(upstream.provenance) is not None:
                record = records.get(file.filename)
                if record is None or record.sha256 != file.hashes["sha256"]:
                    log.warning(
                        "proxy %r: %s left off the page of %r: its provenance could not be "
                        "fetched (tried again when the page is revalidated)",
                        self.name,
                        printable(file.filename, 200),
                        name,
                    )
                    continue
                if record.refused is not None:
                    continue  # logged when it was refused
                publishers = record.publishers
                file = msgspec.structs.replace(
                    file,
                    provenance=provenance_url(
                        self.public_url, name, version_of(file.filename), file.filename
                    ),
                )
            keep.append(file)
            kept[path] = upstream
            known.append(file_provenance(file, publishers))
        held, changed = await self._judge(name, known)
        page = msgspec.structs.replace(served, files=tuple(keep))
        if held:
            out = {h.filename for h in held}
            # The one place a held file leaves what is served: the page lists it as held (yanked,
            # at a URL that answers the refusal: policy/held.py, as a mirror's page does), and it
            # is not among the downloads.
            page = hold_files(page, held)
            if changed:
                await self._uncache([p for p, f in kept.items() if f.filename in out])
            kept = {p: f for p, f in kept.items() if f.filename not in out}
        return Guarded(page, kept, held)

    async def _uncache(self, paths: list[str]) -> None:
        """Delete files cached before they were held or their provenance refused (the guard
        turned on, a rule or the upstream changed): the cache would otherwise serve them at
        their URL. Fetched again once they are served."""
        for path in paths:
            for key in (f"{WEB}/packages/{path}", f"{WEB}/packages/{path}.metadata"):
                if await self.storage.delete(key):
                    log.warning("proxy %r: deleted the cached %s: not served", self.name, key)

    async def _judge(
        self, name: NormalizedName, known: list[FileProvenance]
    ) -> tuple[list[HeldRecord], bool]:
        """The held files of ``name`` and whether they changed since this process last said."""
        if self.rules is None or not guarded(rules := self.rules(name)):
            return [], False
        _, held = judge(name, known, rules, (), index=self.name)
        if held:  # only then can an acceptance change anything: read them
            accepted = await self.ledger.accepted_of(name)
            if accepted:
                _, held = judge(name, known, rules, accepted, index=self.name)
        if self._written.get(name) == held:
            return held, False
        await self.ledger.record_held(name, held)
        self._written[name] = held
        if len(self._written) > 100_000:
            self._written.clear()
        for h in held:
            log.warning("proxy %r: %s: %s; %s", self.name, name, h.message, h.fix)
        return held, True

    async def _records(
        self, name: NormalizedName, files: dict[str, File], *, fetch: bool
    ) -> dict[str, ProvenanceRecord]:
        """The provenance records of ``name``'s files, fetching and verifying missing ones."""
        try:
            records = _RECORDS.decode(await self.storage.read_bytes(records_key(name)))
        except NotFound:
            records = {}
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("proxy %r: %s is unreadable (%s); fetching again", self.name, name, exc)
            records = {}
        wanted = [
            f
            for f in files.values()
            if secure_url(f.provenance) is not None
            and (
                (r := records.get(f.filename)) is None
                or r.refused is not None
                or r.sha256 != f.hashes.get("sha256", "").lower()
            )
        ]
        if not wanted or not fetch:
            return records
        limit = asyncio.Semaphore(_AT_ONCE)

        async def one(file: File) -> tuple[str, ProvenanceRecord | None]:
            async with limit:
                return file.filename, await self._fetch(name, file)

        changed = False
        for filename, record in await asyncio.gather(*(one(f) for f in wanted)):
            if record is not None and records.get(filename) != record:
                records[filename] = record
                changed = True
        if changed:
            # Only the files the page lists now. Two servers writing at once: the last write
            # wins, and a record it lacks is fetched again by the next page build (no harm).
            listed = {f.filename for f in files.values()}
            records = {k: v for k, v in records.items() if k in listed}
            await self.storage.write_bytes(records_key(name), msgspec.json.encode(records))
        return records

    async def _fetch(self, name: NormalizedName, file: File) -> ProvenanceRecord | None:
        """Fetch, verify and keep ``file``'s document; None when it could not be fetched."""
        from headwater.provenance import (
            ProvenanceInvalid,
            TrustRoot,
            TrustRootError,
            VerifyCache,
            verify_provenance_document,
        )

        url = secure_url(file.provenance)
        assert url is not None
        sha256 = file.hashes.get("sha256", "").lower()
        try:
            raw = await self._pages.document(url, limit=MAX_PROVENANCE, accept=INTEGRITY_ACCEPT)
        except UpstreamError as exc:
            log.warning(
                "proxy %r: cannot fetch the provenance of %s (%s)",
                self.name,
                printable(file.filename, 200),
                printable(" ".join(str(exc).split()), 300),
            )
            return None
        if self._verifier is None:
            self._verifier = (TrustRoot(self._trusted_root), VerifyCache())
        trust, cache = self._verifier
        try:
            verified = await asyncio.to_thread(
                verify_provenance_document, raw, file.filename, sha256, trust, cache=cache
            )
        except ProvenanceInvalid as exc:
            reason = printable(str(exc), 400)
            log.warning(
                "proxy %r: %s: the provenance of %s does not verify (%s); the file is not "
                "served. If the upstream is right, update the trust root (docs/provenance.md)",
                self.name,
                name,
                printable(file.filename, 200),
                reason,
            )
            # Not served: nor a copy cached before (when no document was listed, say).
            await self._uncache([file_key(sha256, file.filename).removeprefix(f"{WEB}/packages/")])
            return ProvenanceRecord(sha256=sha256, refused=reason)
        except TrustRootError as exc:
            # The operator's to fix; the page fails as a whole (stale copy or 503), naming it.
            raise InvalidInput(f"proxy {self.name!r}: {exc}") from exc
        await self.storage.write_bytes(provenance_key(sha256, file.filename), raw)
        return ProvenanceRecord(sha256=sha256, publishers=verified.publishers)
