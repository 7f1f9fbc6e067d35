"""How fresh a mirror, a proxy or a peer mirror is: pure decisions over what was recorded.

The status pages, ``/mirrors.json`` and the checks of peer mirrors all ask these functions, so
a mirror is "behind" for the same reason everywhere. They do no I/O and read no clock: the
caller passes ``now``, the runs from the tree's history (:mod:`headwater.sync.history`) and the
last scheduled check of the upstream (:class:`UpstreamCheck`).

Vocabulary (the same words in docs/web-interface.md, "Mirror status"):

=========== ==================================================================================
state       meaning
=========== ==================================================================================
fresh       the tree has the upstream's serial, or its last complete sync started less than
            ``behind_after`` seconds ago
behind      its last complete sync started between ``behind_after`` and ``stale_after`` ago,
            and the upstream has moved on since (or cannot be asked)
stale       longer than ``stale_after`` ago, or no sync ever completed
failing     the last run failed as a whole (the upstream's project list unreachable, a state
            that cannot be read): the lag shown is still the tree's
unknown     nothing recorded yet (no history in the tree; a peer that said nothing usable)
offline     a proxy configured ``offline = true``: it never asks its upstream
unreachable a peer mirror that did not answer (or answered with an error) at its last check
=========== ==================================================================================

Why these rules:

- **Lag is time first.** PyPI's serial moves every few seconds, so a healthy mirror that syncs
  every ten minutes is nearly always some serials behind when looked at; counting serials alone
  would call every mirror "behind". The lag in serials is shown, the state is decided by how long
  ago the tree was last known current: the start of its last complete run (a run that reached
  the serial it planned for; one that finished with failed projects did not, since the engine
  keeps the serial back until every project is synced).
- **Caught up is caught up.** When the last scheduled check of the upstream saw a serial the
  tree already has, the lag is zero however long ago the sync ran (an index that rarely changes
  is not stale). A serial lower than the tree's (a stale CDN copy of ``/simple/``) is lag zero,
  never negative.
- **A failing run is said even when the data is young**: the operator must learn that the
  cron job broke before the mirror turns stale.
- **Peers are judged by our thresholds**, from the numbers their ``/mirrors.json`` gives (which
  are checked for type and range, never trusted for words): a peer cannot call itself fresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

import msgspec

from headwater.sync.history import Run

__all__ = [
    "BEHIND_AFTER",
    "STALE_AFTER",
    "MirrorFreshness",
    "ProxyFreshness",
    "State",
    "Thresholds",
    "UpstreamCheck",
    "hit_rate",
    "mirror_freshness",
    "proxy_freshness",
    "worst",
]

State: TypeAlias = Literal[
    "fresh", "behind", "stale", "failing", "unknown", "offline", "unreachable"
]
#: From best to worst, for :func:`worst` (and for sorting a list of mirrors).
ORDER: tuple[State, ...] = (
    "fresh",
    "offline",
    "behind",
    "unknown",
    "stale",
    "failing",
    "unreachable",
)
#: Default: a mirror is "behind" when its last complete sync started over an hour ago (PEP 381
#: asked public mirrors to sync at least hourly).
BEHIND_AFTER = 3600.0
#: Default: "stale" after a day.
STALE_AFTER = 86400.0


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Seconds after which a mirror not known to be current is ``behind``, then ``stale``."""

    behind_after: float = BEHIND_AFTER
    stale_after: float = STALE_AFTER


class UpstreamCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The last scheduled look at an upstream: its serial (None: it gives none, or the look
    failed), when (Unix time), and what failed (one line of our own words, or None)."""

    serial: int | None = None
    checked: float
    error: str | None = None


class MirrorFreshness(msgspec.Struct, frozen=True, kw_only=True):
    """The decision for one mirror tree, with the numbers it was made from."""

    state: State
    #: One sentence a person can act on.
    reason: str
    #: The serial the tree has (None: unknown, or an upstream without serials).
    serial: int | None = None
    #: The upstream's serial, from the last check (or the last run when never checked).
    upstream_serial: int | None = None
    #: Serials the tree is behind (None: one of the two is unknown).
    lag_serials: int | None = None
    #: Seconds since the tree was last known current (None: never).
    lag_seconds: float | None = None
    #: Unix time the last complete run started (None: none completed).
    last_complete: float | None = None


class ProxyFreshness(msgspec.Struct, frozen=True, kw_only=True):
    state: State
    reason: str


def _ago(seconds: float) -> str:
    """``seconds`` in words: "45 s", "12 min", "3 h", "2 days"."""
    if seconds < 120:
        return f"{max(0, int(seconds))} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    if seconds < 172800:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


def _complete(run: Run) -> bool:
    return run.error is None and run.failed == 0 and not run.partial


def mirror_freshness(
    runs: Sequence[Run],
    check: UpstreamCheck | None,
    now: float,
    thresholds: Thresholds | None = None,
) -> MirrorFreshness:
    """How fresh the tree whose history holds ``runs`` (oldest first) is at ``now``, given the
    last scheduled ``check`` of its upstream (None: not checked yet) and the ``thresholds``
    (default: :class:`Thresholds`)."""
    thresholds = thresholds or Thresholds()
    if not runs:
        return MirrorFreshness(
            state="unknown",
            reason="no sync recorded in this tree yet: run `headwater mirror`",
        )
    last = runs[-1]
    complete = next((run for run in reversed(runs) if _complete(run)), None)
    serial = next((run.serial for run in reversed(runs) if run.serial is not None), None)
    upstream = check.serial if check is not None and check.serial is not None else None
    if upstream is None:
        upstream = next(
            (run.upstream_serial for run in reversed(runs) if run.upstream_serial is not None),
            None,
        )
    lag_serials = max(0, upstream - serial) if upstream is not None and serial is not None else None
    caught_up = (
        check is not None
        and check.serial is not None
        and serial is not None
        and serial >= check.serial
    )
    if caught_up:
        lag_seconds: float | None = 0.0
    elif complete is not None:
        lag_seconds = max(0.0, now - complete.started)
    else:
        lag_seconds = None
    numbers = MirrorFreshness(
        state="unknown",
        reason="",
        serial=serial,
        upstream_serial=upstream,
        lag_serials=lag_serials,
        lag_seconds=lag_seconds,
        last_complete=complete.started if complete is not None else None,
    )

    def decided(state: State, reason: str) -> MirrorFreshness:
        return msgspec.structs.replace(numbers, state=state, reason=reason)

    if last.error is not None:
        return decided(
            "failing", f"the last run ({_ago(now - last.started)} ago) failed: {last.error}"
        )
    if lag_seconds is None:
        return decided(
            "stale",
            (
                f"no sync of this tree has completed yet ({last.failed} project(s) failed in "
                "the last run); see the failures, then run `headwater mirror` again"
            ),
        )
    failed = f"; {last.failed} project(s) failed in the last run" if last.failed else ""
    if caught_up:
        return decided("fresh", f"the tree has the upstream's serial {serial}{failed}")
    since = f"the last complete sync started {_ago(lag_seconds)} ago"
    if lag_seconds < thresholds.behind_after:
        return decided("fresh", since + failed)
    if lag_seconds < thresholds.stale_after:
        return decided("behind", f"{since} (over {_ago(thresholds.behind_after)}){failed}")
    return decided(
        "stale",
        f"{since} (over {_ago(thresholds.stale_after)}){failed}: is its sync still running?",
    )


def proxy_freshness(*, offline: bool, check: UpstreamCheck | None) -> ProxyFreshness:
    """A proxy is as fresh as its upstream is reachable: when it is not, the proxy serves the
    pages it has cached, stale (docs/proxy.md)."""
    if offline:
        return ProxyFreshness(state="offline", reason="offline: serves only what it has cached")
    if check is None:
        return ProxyFreshness(state="unknown", reason="the upstream has not been checked yet")
    if check.error is not None:
        return ProxyFreshness(
            state="failing",
            reason=f"the upstream failed at the last check ({check.error}); cached pages are "
            "served stale, projects never cached are refused",
        )
    return ProxyFreshness(state="fresh", reason="the upstream answered at the last check")


def hit_rate(hits: int, misses: int) -> float | None:
    """The share of requests answered from the cache; None before any request."""
    total = hits + misses
    return hits / total if total > 0 else None


def worst(states: Sequence[State]) -> State:
    """The worst of ``states`` ("unknown" for none)."""
    if not states:
        return "unknown"
    return max(states, key=ORDER.index)
