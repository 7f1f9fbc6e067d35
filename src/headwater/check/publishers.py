"""Who published what ``headwater check`` says the client would install (PEP 740).

For each requirement the check knows which version the client would take and from which index
(:class:`~headwater.check.installers.Install`). This module fetches the provenance documents that
index lists for the files of that release and of the releases before it (the page's
``provenance`` URL, https only as PEP 740 requires), verifies each with the code uploads, mirrors
and ``headwater verify`` use (:func:`headwater.provenance.verify_provenance_document`), and asks
the publisher-continuity decision the mirrors apply (:func:`headwater.policy.decide_publishers`
with ``continuity``) whether that release would be held. So the check's "publisher changed" is
the same judgement a headwater mirror of the index would make, not a second rule.

Vocabulary (see docs/check.md):

=================  ==============================================================================
publishers         the identities the release's verified provenance proves (empty: unattested)
established        the publishers of the earlier releases, as continuity establishes them
changed            the release would be held by continuity: unattested, or attested by someone
                   else, after earlier releases were attested
invalid            a provenance document the index lists does not verify: counted as changed (a
                   document that fails is worse than none) and named in the message
=================  ==============================================================================

Only the ``HISTORY`` releases before the one installed are looked at (the most recent ones), one
file of each: a check must stay a few requests per requirement; docs/check.md says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import msgspec
from packaging.version import Version

from headwater.check.installers import Install
from headwater.check.model import IndexSpec
from headwater.check.sources import HttpSource, Lookup
from headwater.errors import InvalidInput
from headwater.policy.continuity import ContinuityRules, FileProvenance, decide_publishers
from headwater.policy.publishers import PublisherIdentity, describe_all
from headwater.provenance import (
    ProvenanceInvalid,
    TrustRoot,
    VerifyCache,
    verify_provenance_document,
)
from headwater.repository.errors import UpstreamError
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.model import File
from headwater.simple.text import secure_url

__all__ = ["HISTORY", "MAX_PROVENANCE", "ProvenanceChecker", "Publishers"]

#: Earlier releases whose provenance is fetched to establish the publisher.
HISTORY = 5
#: The largest provenance document read (PyPI's are a few kB).
MAX_PROVENANCE = 1 << 20
_ACCEPT = "application/vnd.pypi.integrity.v1+json, application/json;q=0.9"


class Publishers(msgspec.Struct, frozen=True, kw_only=True):
    """Who published the release the client would install, and whether that changed."""

    #: The release looked at.
    version: str
    #: ``describe()`` of each verified publisher of its files (empty: unattested).
    publishers: tuple[str, ...]
    #: The publishers its earlier releases established (empty: none was attested).
    established: tuple[str, ...]
    #: Continuity would hold the release (or a listed document does not verify).
    changed: bool
    #: One line: who published it, and what changed.
    message: str


def _one(files: list[File]) -> list[File]:
    attested = [f for f in files if secure_url(f.provenance) is not None]
    return (attested or files)[:1]


class ProvenanceChecker:
    """Fetches and verifies provenance for the check; one trust root and cache per run."""

    def __init__(self, trusted_root: str | None = None) -> None:
        self._trust = TrustRoot(trusted_root)
        self._cache = VerifyCache()

    async def _verified(
        self, source: HttpSource, file: File
    ) -> tuple[tuple[PublisherIdentity, ...], str | None]:
        """The publishers ``file``'s provenance proves; (() , None) when it lists none; (() ,
        why) when it does not verify or cannot be fetched."""
        url = secure_url(file.provenance)
        sha256 = file.hashes.get("sha256")
        if url is None or not sha256:
            return (), None
        try:
            raw = await source.repository.fetch_document(url, limit=MAX_PROVENANCE, accept=_ACCEPT)
            verified = await asyncio.to_thread(
                verify_provenance_document,
                raw,
                file.filename,
                sha256,
                self._trust,
                cache=self._cache,
            )
        except ProvenanceInvalid as exc:
            return (), f"the provenance of {file.filename} does not verify ({exc})"
        except (UpstreamError, InvalidInput) as exc:
            return (), f"the provenance of {file.filename} could not be fetched ({exc})"
        return verified.publishers, None

    async def publishers(
        self,
        project: str,
        install: Install | None,
        observed: Sequence[tuple[IndexSpec, Lookup]],
        sources: Mapping[str, object],
    ) -> Publishers | None:
        """Who published what ``install`` takes (None: nothing installed, or not from an HTTP
        index this checker can ask)."""
        if install is None or install.version is None or not install.indexes:
            return None
        index = install.indexes[0]
        source = sources.get(index)
        lookup = next((lk for spec, lk in observed if spec.name == index), None)
        if not isinstance(source, HttpSource) or lookup is None or lookup.page is None:
            return None
        wanted = Version(install.version)
        by_version: dict[Version, list[File]] = {}
        for file in lookup.page.files:
            try:
                version = parse_filename(file.filename).version
            except InvalidFilename:
                continue
            if version <= wanted:
                by_version.setdefault(version, []).append(file)
        releases = sorted(by_version)[-(HISTORY + 1) :]
        # Every file of the release installed (the client may take any of them); one file of
        # each earlier release is enough to know who published it (an attested one if any: a
        # project with 50 wheels a release costs 50 + 5 fetches, not 300).
        files = [
            (v, f)
            for v in releases
            for f in (by_version[v] if v == wanted else _one(by_version[v]))
        ]
        results = await asyncio.gather(*(self._verified(source, f) for _, f in files))
        problems = [why for _, why in results if why]
        history = [
            FileProvenance(
                filename=f.filename, version=str(v), order=float(n), publishers=publishers
            )
            for n, ((v, f), (publishers, _)) in enumerate(zip(files, results, strict=True))
        ]
        decision = decide_publishers(project, history, ContinuityRules(continuity=True))
        mine = [(f, p) for (v, f), (p, _) in zip(files, results, strict=True) if v == wanted]
        seen = tuple(dict.fromkeys(i for _, p in mine for i in p))
        held = [h for h in decision.held if h.version == str(wanted)]
        earlier = decide_publishers(
            project, [h for h in history if h.version != str(wanted)], ContinuityRules()
        ).established
        changed = bool(held) or bool(problems)
        who = describe_all(seen) if seen else "nobody (no verified provenance)"
        message = f"{project} {install.version} from '{index}' was published by {who}"
        if held:
            message = held[0].message.removeprefix("held: ")
            message += "; pip and uv would install it, a headwater mirror with continuity holds it"
        if problems:
            message += "; " + "; ".join(problems)
        return Publishers(
            version=install.version,
            publishers=tuple(i.describe() for i in seen),
            established=tuple(i.describe() for i in earlier),
            changed=changed,
            message=message,
        )
