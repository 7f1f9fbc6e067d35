"""The publisher guard of a mirror: which files a sync holds back, and the operator's acceptances.

The state and the decision's records are shared with caching proxies and live in
:mod:`headwater.repository.publishers` (a mirror keeps them in ``state/publishers.json``, not
served: ``accepted`` project -> the releases an operator accepted, ``held`` project -> the files
the last sync of it held back, each with its refusal's message and fix). A held file is left out
of the tree, so no client is served it, and the page the sync writes lists it as held (yanked,
at a URL that answers the refusal: :mod:`headwater.policy.held`); once accepted, the next sync of
the project (``headwater mirror --only PROJECT``) mirrors it. This module names
them for the sync and its commands.
"""

from __future__ import annotations

from headwater.repository.publishers import (
    PUBLISHERS_STATE,
    HeldRecord,
    PublisherState,
    TreeLedger,
    judge,
    load_publisher_state,
    rules_for,
    save_publisher_state,
)

__all__ = [
    "PUBLISHERS_STATE",
    "HeldRecord",
    "PublisherState",
    "TreeLedger",
    "judge",
    "load_publisher_state",
    "rules_for",
    "save_publisher_state",
]
