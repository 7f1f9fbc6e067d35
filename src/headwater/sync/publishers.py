"""The publisher guard of a mirror: which files a sync holds back, and the operator's acceptances.

The state and the decision's records are shared with caching proxies and live in
:mod:`headwater.repository.publishers` (a mirror keeps them in ``state/publishers.json``, not
served: ``accepted`` project -> the releases an operator accepted, ``held`` project -> the files
the last sync of it held back, each with its refusal's message and fix). A held file is left out
of the tree, so no client is served it, and the page the sync writes lists it as held (yanked,
at a URL that answers the refusal: :mod:`headwater.policy.held`); once accepted, the next sync of
the project (``headwater mirror --only PROJECT``) mirrors it. This module names
them for the sync and its commands, and owns the guard's step in a sync (:func:`guard_page`):
judging the files of a fetched page by the publishers their verified provenance names.
"""

from __future__ import annotations

import logging

from headwater.policy.continuity import ContinuityRules, FileProvenance
from headwater.policy.held import held_reason, hold_files
from headwater.policy.publishers import PublisherIdentity
from headwater.repository.publishers import (
    PUBLISHERS_STATE,
    HeldRecord,
    PublisherState,
    TreeLedger,
    file_provenance,
    guarded,
    judge,
    load_publisher_state,
    rules_for,
    save_publisher_state,
)
from headwater.simple.model import ProjectPage
from headwater.simple.names import NormalizedName
from headwater.simple.text import secure_url
from headwater.storage.base import Storage
from headwater.storage.layout import provenance_key
from headwater.sync.summary import Summary

__all__ = [
    "PUBLISHERS_STATE",
    "HeldRecord",
    "PublisherState",
    "TreeLedger",
    "guard_page",
    "judge",
    "load_publisher_state",
    "rules_for",
    "save_publisher_state",
]


async def guard_page(
    project: NormalizedName,
    page: ProjectPage,
    rules: ContinuityRules,
    publishers: PublisherState,
    storage: Storage,
    summary: Summary,
    *,
    index: str,
) -> ProjectPage:
    """The page with the files the publisher guard holds as held entries (their refusals are
    logged, counted in ``summary`` and kept in ``publishers``, saved to ``state/publishers.json``
    by the sync; the files leave the tree like filtered ones). ``page``'s files are in ``storage``
    with their verified provenance; ``index`` names the mirror in the refusals."""
    from headwater.provenance import publishers_of_document

    if not guarded(rules):
        publishers.held.pop(project, None)
        return page
    known: list[FileProvenance] = []
    for file in page.files:
        if held_reason(file) is not None:
            continue  # held by the upstream (another headwater): not ours to judge
        named: tuple[PublisherIdentity, ...] = ()
        sha256 = file.hashes.get("sha256")
        if secure_url(file.provenance) is not None and sha256:
            # Verified when the sync wrote it (sync/provenance.py).
            raw = await storage.read_bytes(provenance_key(sha256, file.filename))
            named = publishers_of_document(raw)
        known.append(file_provenance(file, named))
    accepted = publishers.accepted.get(project, ())
    decision, records = judge(project, known, rules, accepted, index=index)
    if records:
        publishers.held[project] = records
    else:
        publishers.held.pop(project, None)
    if not decision.held:
        return page
    for h in decision.held:
        log.warning("mirror: %s: %s; %s", project, h.message, h.fix)
        summary.held[h.filename] = h.message
    # Listed as yanked with the refusal, at a URL that refuses (policy/held.py); the file
    # itself leaves the tree like a filtered one.
    return hold_files(page, decision.held)


log = logging.getLogger("headwater.mirror")  # the sync's logger: the refusals are its messages
