"""The publisher guard of a mirror: which files a sync holds back, and the operator's acceptances.

The decision is :func:`headwater.policy.continuity.decide_publishers` (pure); this module gives it
what a mirror knows (each file's verified provenance, kept beside it by the sync) and keeps what
it needs between runs in ``state/publishers.json`` (not served):

- ``accepted``: project -> the releases an operator accepted (``headwater provenance accept``);
- ``held``: project -> the files the last sync of it held back, each with its refusal's message
  and fix (``headwater provenance held`` lists them).

A held file is left out of the page the sync writes (and out of the tree), so no client is
served it; once accepted, the next sync of the project (``headwater mirror --only PROJECT``)
mirrors it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from headwater.policy.continuity import (
    Acceptance,
    ContinuityRules,
    FileProvenance,
    PublisherDecision,
    decide_publishers,
)
from headwater.policy.publishers import PublisherIdentity, parse_publisher_spec
from headwater.simple.names import NormalizedName, normalize_name
from headwater.storage.base import NotFound, Storage
from headwater.storage.layout import STATE_DIR

__all__ = [
    "PUBLISHERS_STATE",
    "HeldRecord",
    "PublisherState",
    "judge",
    "load_publisher_state",
    "rules_for",
    "save_publisher_state",
]

PUBLISHERS_STATE = f"{STATE_DIR}/publishers.json"


class HeldRecord(msgspec.Struct, frozen=True, kw_only=True):
    filename: str
    version: str
    reason: str
    message: str
    fix: str


class PublisherState(msgspec.Struct, kw_only=True):
    accepted: dict[str, list[str]] = msgspec.field(default_factory=dict)
    held: dict[str, list[HeldRecord]] = msgspec.field(default_factory=dict)


async def load_publisher_state(storage: Storage) -> PublisherState:
    """The tree's publisher state (empty when it has none).

    Raises:
        msgspec.DecodeError: the file is not a publisher state (the caller reports it).
    """
    try:
        raw = await storage.read_bytes(PUBLISHERS_STATE)
    except NotFound:
        return PublisherState()
    return msgspec.json.decode(raw, type=PublisherState)


async def save_publisher_state(storage: Storage, state: PublisherState) -> None:
    await storage.write_bytes(PUBLISHERS_STATE, msgspec.json.encode(state))


def rules_for(
    continuity: bool, required: Sequence[str], expected: dict[str, list[str]]
) -> Callable[[NormalizedName], ContinuityRules]:
    """The rules of each project from a mirror's settings (``"*"`` covers every project)."""
    required_names = {p if p == "*" else normalize_name(p) for p in required}
    expected_ids: dict[str, tuple[PublisherIdentity, ...]] = {
        (p if p == "*" else normalize_name(p)): tuple(parse_publisher_spec(s) for s in specs)
        for p, specs in expected.items()
    }

    def rules(project: NormalizedName) -> ContinuityRules:
        return ContinuityRules(
            continuity=continuity,
            required=project in required_names or "*" in required_names,
            expected=(*expected_ids.get(project, ()), *expected_ids.get("*", ())),
        )

    return rules


def judge(
    project: NormalizedName,
    files: Sequence[FileProvenance],
    rules: ContinuityRules,
    state: PublisherState,
    *,
    index: str,
) -> PublisherDecision:
    """The decision for ``project``; records its held files in ``state`` (or forgets them)."""
    accepted = [Acceptance(version=v) for v in state.accepted.get(project, ())]
    decision = decide_publishers(project, files, rules, accepted, index=index)
    if decision.held:
        state.held[project] = [
            HeldRecord(
                filename=h.filename,
                version=h.version,
                reason=h.reason,
                message=h.message,
                fix=h.fix,
            )
            for h in decision.held
        ]
    else:
        state.held.pop(project, None)
    return decision
