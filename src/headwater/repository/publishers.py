"""The publisher guard's state: what a mirror or a proxy holds back, and the operator's acceptances.

The decision is :func:`headwater.policy.continuity.decide_publishers` (pure). This module is the
one place both a mirror (:mod:`headwater.sync.engine`) and a caching proxy
(:mod:`headwater.repository._proxy_provenance`) turn it into what they keep and show:

- :func:`file_provenance`: one served file as the decision sees it (its release, its order, the
  publishers its verified provenance proved);
- :func:`judge`: the decision for one project, over the operator's acceptances, as
  :class:`HeldRecord` values (which release is held, the refusal's message and fix): what
  ``headwater provenance held``, ``GET /api/<source>/held`` and the logs show;
- a *ledger* per source, where the acceptances and the held records live:

  ================  ==========================================================================
  :class:`TreeLedger`   a mirror: ``state/publishers.json`` of the tree (one writer: the sync;
                        the operator's ``accept`` is read at its next sync)
  :class:`CacheLedger`  a proxy: one object per acceptance, ``state/publishers/<project>/
                        accepted/<version>``, and ``state/publishers/<project>/held.json``, in
                        the proxy's storage (a directory or a bucket several servers share). No
                        object is ever read, changed and written back, so two servers accepting
                        at once lose nothing
  ================  ==========================================================================

Versions are compared normalized (``2.0.0`` is ``2.0.0``, ``v2.0`` is ``2.0``), as the decision
reads them from file names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec
from packaging.version import InvalidVersion, Version

from headwater.errors import InvalidInput
from headwater.policy.continuity import (
    Acceptance,
    ContinuityRules,
    FileProvenance,
    PublisherDecision,
    decide_publishers,
)
from headwater.policy.publishers import PublisherIdentity, parse_publisher_spec
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.model import File
from headwater.simple.names import NormalizedName, is_normalized, normalize_name
from headwater.storage.base import NotFound, Storage
from headwater.storage.layout import STATE_DIR

__all__ = [
    "PUBLISHERS_STATE",
    "CacheLedger",
    "HeldRecord",
    "Ledger",
    "PublisherState",
    "TreeLedger",
    "accepted_version",
    "file_provenance",
    "guarded",
    "held_records",
    "judge",
    "load_publisher_state",
    "rules_for",
    "save_publisher_state",
    "version_of",
]

PUBLISHERS_STATE = f"{STATE_DIR}/publishers.json"
_CACHE_STATE = f"{STATE_DIR}/publishers"


class HeldRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A held file and the words of its refusal (from :class:`~headwater.policy.continuity.Held`)."""

    filename: str
    version: str
    reason: str
    message: str
    fix: str


class PublisherState(msgspec.Struct, kw_only=True):
    """A mirror's ``state/publishers.json``: project -> accepted versions, and held files."""

    accepted: dict[str, list[str]] = msgspec.field(default_factory=dict)
    held: dict[str, list[HeldRecord]] = msgspec.field(default_factory=dict)


def version_of(filename: str) -> str:
    """The release a distribution file belongs to (normalized), as the decision compares it."""
    try:
        return str(parse_filename(filename).version)
    except (InvalidFilename, ValueError):
        return filename


def accepted_version(raw: str) -> str:
    """``raw`` as an acceptance records it: the normalized version.

    Raises:
        InvalidInput: ``raw`` is not a version (naming it and the fix).
    """
    try:
        return str(Version(raw))
    except InvalidVersion:
        raise InvalidInput(
            f"{raw[:100]!r} is not a version; give the held release's version as "
            "'headwater provenance held' shows it (e.g. 2.0)"
        ) from None


def file_provenance(file: File, publishers: tuple[PublisherIdentity, ...]) -> FileProvenance:
    """``file`` as the decision sees it; ``publishers``: those its verified provenance proved."""
    order = file.upload_time.timestamp() if file.upload_time is not None else 0.0
    return FileProvenance(
        filename=file.filename,
        version=version_of(file.filename),
        order=order,
        publishers=publishers,
    )


def held_records(decision: PublisherDecision) -> list[HeldRecord]:
    """The held files of a decision as kept and shown."""
    return [
        HeldRecord(
            filename=h.filename, version=h.version, reason=h.reason, message=h.message, fix=h.fix
        )
        for h in decision.held
    ]


def rules_for(
    continuity: bool, required: Sequence[str], expected: dict[str, list[str]]
) -> Callable[[NormalizedName], ContinuityRules]:
    """The rules of each project from a source's settings (``"*"`` covers every project)."""
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


def guarded(rules: ContinuityRules) -> bool:
    """Whether ``rules`` can hold anything at all."""
    return rules.continuity or rules.required or bool(rules.expected)


def judge(
    project: NormalizedName,
    files: Sequence[FileProvenance],
    rules: ContinuityRules,
    accepted: Sequence[str],
    *,
    index: str,
) -> tuple[PublisherDecision, list[HeldRecord]]:
    """The decision for ``project`` given the versions an operator accepted, and its held files
    as records."""
    decision = decide_publishers(
        project, files, rules, [Acceptance(version=v) for v in accepted], index=index
    )
    return decision, held_records(decision)


# -- a mirror's state file ----------------------------------------------------------------------


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


class Ledger(Protocol):
    """Where one source keeps its acceptances and held records (CLI and API read it)."""

    #: ``mirror`` or ``proxy`` (for messages: what to do after accepting differs).
    kind: str

    async def held(self) -> dict[str, list[HeldRecord]]: ...

    async def accepted(self) -> dict[str, list[str]]: ...

    async def accept(self, project: NormalizedName, version: str) -> str:
        """Record that ``version`` of ``project`` is accepted; returns the normalized version."""
        ...


class TreeLedger:
    """A mirror's ledger: its tree's ``state/publishers.json``."""

    kind = "mirror"

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._lock = asyncio.Lock()

    async def held(self) -> dict[str, list[HeldRecord]]:
        return (await load_publisher_state(self.storage)).held

    async def accepted(self) -> dict[str, list[str]]:
        return (await load_publisher_state(self.storage)).accepted

    async def accept(self, project: NormalizedName, version: str) -> str:
        version = accepted_version(version)
        async with self._lock:
            state = await load_publisher_state(self.storage)
            versions = state.accepted.setdefault(project, [])
            if version not in versions:
                versions.append(version)
                await save_publisher_state(self.storage, state)
        return version


_HELD = msgspec.json.Decoder(list[HeldRecord])


class CacheLedger:
    """A proxy's ledger: one object per acceptance, a held record per project (module docstring)."""

    kind = "proxy"

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def accepted_of(self, project: NormalizedName) -> list[str]:
        prefix = f"{_CACHE_STATE}/{project}/accepted"
        return sorted([key.rsplit("/", 1)[1] async for key in self.storage.iter_keys(prefix)])

    async def accept(self, project: NormalizedName, version: str) -> str:
        version = accepted_version(version)
        await self.storage.write_bytes(f"{_CACHE_STATE}/{project}/accepted/{version}", b"")
        return version

    async def record_held(self, project: NormalizedName, records: Sequence[HeldRecord]) -> None:
        """Keep ``records`` as the project's held files (none: forget them)."""
        key = f"{_CACHE_STATE}/{project}/held.json"
        if records:
            await self.storage.write_bytes(key, msgspec.json.encode(list(records)))
        else:
            await self.storage.delete(key)

    async def held(self) -> dict[str, list[HeldRecord]]:
        found: dict[str, list[HeldRecord]] = {}
        async for key in self.storage.iter_keys(_CACHE_STATE):
            parts = key.split("/")
            if len(parts) != 4 or parts[3] != "held.json" or not is_normalized(parts[2]):
                continue
            try:
                found[parts[2]] = _HELD.decode(await self.storage.read_bytes(key))
            except (NotFound, msgspec.DecodeError, msgspec.ValidationError):
                continue  # forgotten meanwhile, or not ours: the next page fetch rewrites it
        return dict(sorted(found.items()))

    async def accepted(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        async for key in self.storage.iter_keys(_CACHE_STATE):
            parts = key.split("/")
            if len(parts) == 5 and parts[3] == "accepted" and is_normalized(parts[2]):
                found.setdefault(parts[2], []).append(parts[4])
        return {p: sorted(v) for p, v in sorted(found.items())}
