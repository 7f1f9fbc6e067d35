"""The last runs of a mirror, kept in its tree: what status pages and ``/mirrors.json`` read.

Kept beside ``web/`` (never served, but copied by an rsync of the whole tree, so a copy of a tree
says how fresh it is)::

    state/history.json   {"format": 1, "upstream": URL, "runs": [Run, ...]}   oldest first

Bounded: the newest :data:`KEEP` runs are kept, and each run keeps at most :data:`FAILURES`
failure reasons of at most :data:`REASON` characters, so the file stays a few tens of KiB
whatever happened (a PyPI-sized failure list is summarised by its count). It is small on
purpose: reading the state snapshot (700,000 names for PyPI) on every status page would not be.

A run is recorded whether it synced, changed nothing, or failed before it could start (the
project list unreachable): a status page must show a mirror that stopped working as failing,
not as the last good run. Writes are atomic (one ``write_bytes``); a history that cannot be
read is started afresh, never an error for the sync.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec

from headwater.storage.base import NotFound, Storage
from headwater.storage.layout import STATE_DIR
from headwater.sync.summary import Summary

if TYPE_CHECKING:
    from headwater.simple.names import NormalizedName
    from headwater.sync.engine import Mirror

__all__ = [
    "FAILURES",
    "HISTORY",
    "KEEP",
    "REASON",
    "History",
    "Run",
    "read_history",
    "record_run",
    "run_of",
    "run_recorded",
]

HISTORY = f"{STATE_DIR}/history.json"
FORMAT = 1
#: Runs kept.
KEEP = 100
#: Failure reasons kept per run (the count is always kept).
FAILURES = 10
#: Characters kept of one reason (or of a run's error).
REASON = 300


class Run(msgspec.Struct, kw_only=True, frozen=True):
    """One run of ``headwater mirror`` into this tree.

    ``serial`` is the upstream serial the tree reached (None: no serials, or never complete);
    ``upstream_serial`` the upstream's serial when the run planned (None: unknown, or the run
    failed before). ``error`` is why the whole run failed (nothing synced); ``failures`` maps
    some of the projects that failed to why (``failed`` is how many did)."""

    #: Unix time the run started.
    started: float
    #: Seconds it took.
    seconds: float
    serial: int | None = None
    upstream_serial: int | None = None
    synced: int = 0
    deleted: int = 0
    failed: int = 0
    files_downloaded: int = 0
    bytes_downloaded: int = 0
    #: A run for named projects only (``--project``): it does not advance the serial.
    partial: bool = False
    failures: dict[str, str] = msgspec.field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The run finished and nothing failed."""
        return self.error is None and self.failed == 0


class History(msgspec.Struct, kw_only=True):
    format: int = FORMAT
    upstream: str = ""
    runs: list[Run] = msgspec.field(default_factory=list)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(History)


def _cut(text: str) -> str:
    return text if len(text) <= REASON else text[: REASON - 3] + "..."


def run_of(
    summary: Summary | None,
    *,
    started: float,
    seconds: float,
    partial: bool = False,
    error: str | None = None,
) -> Run:
    """The record of one run: from its ``summary`` (None when the run failed before it had one,
    with ``error`` saying why)."""
    if summary is None:
        return Run(started=started, seconds=seconds, partial=partial, error=_cut(error or "failed"))
    problems = {**summary.failed, **summary.not_synced}
    failures = {_cut(name): _cut(reason) for name, reason in sorted(problems.items())[:FAILURES]}
    return Run(
        started=started,
        seconds=seconds,
        serial=summary.serial,
        upstream_serial=summary.upstream_serial,
        synced=summary.synced,
        deleted=summary.deleted,
        failed=len(problems),
        files_downloaded=summary.files_downloaded,
        bytes_downloaded=summary.bytes_downloaded,
        partial=partial,
        failures=failures,
        error=None if error is None else _cut(error),
    )


async def read_history(storage: Storage) -> History | None:
    """The tree's history, or None when it has none or it cannot be read (nothing recorded yet,
    a tree from an older headwater or another tool, or damage)."""
    try:
        raw = await storage.read_bytes(HISTORY)
    except NotFound:
        return None
    try:
        history = _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if history.format > FORMAT:
        return None
    return history


async def record_run(storage: Storage, upstream: str, run: Run, *, keep: int = KEEP) -> History:
    """Append ``run`` to the tree's history (keeping the newest ``keep``) and write it."""
    history = await read_history(storage) or History()
    if history.upstream.rstrip("/") != upstream.rstrip("/"):
        history = History()  # another upstream's runs say nothing about this one
    history.upstream = upstream
    history.runs = [*history.runs, run][-keep:]
    await storage.write_bytes(HISTORY, _encoder.encode(history))
    return history


async def run_recorded(mirror: Mirror, only: list[NormalizedName] | None = None) -> Summary:
    """``mirror.run(only)``, with the run appended to the tree's history, also when it fails
    (then the error is recorded and raised again). The caller holds the tree's lock."""
    started, clock = time.time(), time.monotonic()
    upstream = mirror.upstream.base_url
    try:
        summary = await mirror.run(only)
    except Exception as exc:
        run = run_of(
            None,
            started=started,
            seconds=time.monotonic() - clock,
            partial=only is not None,
            error=str(exc) or type(exc).__name__,
        )
        await record_run(mirror.storage, upstream, run)
        raise
    run = run_of(
        summary, started=started, seconds=time.monotonic() - clock, partial=only is not None
    )
    await record_run(mirror.storage, upstream, run)
    return summary
