"""How many password sign-ins may fail before one is refused unseen: a pure decision.

Two counters are kept for every password sign-in, one per **user name** (whatever was typed,
existing or not: the answer must not tell which names exist) and one per **client address** (an
IPv6 address counts by its /64 network: one host commonly holds a whole /64). Each counter holds
``failures`` within a window that began at ``since``, and ``locked_until`` once the limit was
reached. The database keeps them (:mod:`headwater.db.passwords`), so every server node sees the
same counts and a lockout holds on all of them.

An attempt is counted *before* its password is checked (:func:`after_attempt`), in the same write
transaction that looks at the lock: a burst of concurrent guesses, on one node or several, cannot
get more checks than the limit. A correct password then takes its attempt back
(:func:`after_success`).

================================ ============================================================
state of a counter               an attempt now
================================ ============================================================
none                             checked; the counter starts at 1
``locked_until`` > now           refused unchecked ("try again after ..."); not counted
window over (now >= since +      checked; the counter starts again at 1
window), not locked
within the window                checked; failures + 1; reaching ``limit.failures`` locks the
                                 counter until now + ``limit.lockout`` (at least until the
                                 window ends)
================================ ============================================================

================================ ============================================================
after a correct password         the counter
================================ ============================================================
the user's                       forgotten (the owner of the account is back)
the address's                    failures - 1 (the attempt was not a failure); a lock set by
                                 this very attempt is lifted; an address's earlier failures
                                 stay, so one valid account cannot reset its address between
                                 guesses at others
================================ ============================================================

Windows are fixed (they start at a counter's first attempt): at most ``failures`` checks in each,
so at most twice that in any stretch of one window's length (the end of one, the start of the
next); a property test holds both. The limits (:data:`USER_LIMIT`, :data:`ADDRESS_LIMIT`) are in docs/web-interface.md.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

__all__ = [
    "ADDRESS_LIMIT",
    "USER_LIMIT",
    "Counter",
    "Kind",
    "Limit",
    "address_key",
    "after_attempt",
    "after_success",
    "counter_key",
    "locked",
]

Kind = Literal["user", "address"]


@dataclass(frozen=True)
class Limit:
    """``failures`` attempts within ``window``, then refused for ``lockout``."""

    failures: int
    window: timedelta
    lockout: timedelta


#: Per user name: five wrong passwords in 15 minutes lock the name for 15 minutes.
USER_LIMIT = Limit(failures=5, window=timedelta(minutes=15), lockout=timedelta(minutes=15))
#: Per client address: thirty in 15 minutes lock the address for 15 minutes (an office behind
#: one NAT address signs in as many people; a guesser tries many names).
ADDRESS_LIMIT = Limit(failures=30, window=timedelta(minutes=15), lockout=timedelta(minutes=15))


@dataclass(frozen=True)
class Counter:
    failures: int
    since: datetime
    locked_until: datetime | None = None


def locked(counter: Counter | None, now: datetime) -> datetime | None:
    """Until when an attempt is refused unchecked, or None when it may be checked."""
    if counter is None or counter.locked_until is None or counter.locked_until <= now:
        return None
    return counter.locked_until


def after_attempt(counter: Counter | None, limit: Limit, now: datetime) -> Counter:
    """The counter once an attempt (not refused by :func:`locked`) is counted."""
    if counter is None or now >= counter.since + limit.window or counter.locked_until is not None:
        # A lock that has run out starts a new window, as a window that has passed does.
        counter = Counter(failures=0, since=now)
    failures = counter.failures + 1
    # Locked for the lockout, and at least to the end of the window: never more than
    # ``failures`` checks within any window, whatever the two lengths.
    until = (
        max(now + limit.lockout, counter.since + limit.window)
        if failures >= limit.failures
        else None
    )
    return Counter(failures=failures, since=counter.since, locked_until=until)


def after_success(counter: Counter | None, kind: Kind, limit: Limit) -> Counter | None:
    """The counter once the counted attempt turned out to have the right password (None: forget
    it)."""
    if counter is None or kind == "user":
        return None
    failures = max(0, counter.failures - 1)
    if failures == 0:
        return None
    until = counter.locked_until if failures >= limit.failures else None
    return replace(counter, failures=failures, locked_until=until)


def address_key(address: str) -> str:
    """What a client address is counted as: an IPv4 address itself, an IPv6 address its /64
    network, anything else (a Unix socket's "-") as it is."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(parsed, ipaddress.IPv6Address):
        mapped = parsed.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def counter_key(kind: Kind, value: str) -> str:
    """The database key of a counter: a sha256, bounded whatever ``value`` holds."""
    raw = f"{kind}\0{value}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()
