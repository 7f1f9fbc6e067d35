"""Fault injection for the test upstream: make it fail the way real indexes and CDNs fail.

A :class:`Fault` names a kind of failure, which request paths it applies to (an exact path or a
:mod:`fnmatch` glob, matched against the path without the query string), how often (``rate``,
drawn from a PRNG seeded per fault, so a run is reproducible) and how many times at most
(``times``: "fail the first 2 times"). The :class:`FaultInjector` holds the active faults; the
server asks it, per request, which faults fire.

Kinds (what a client sees):

- ``status``: an HTTP error (``status``, default 503) with a short text body.
- ``reset``: the connection is reset (RST) before any response byte.
- ``delay``: the response is sent ``delay`` seconds late (combines with the other kinds).
- ``truncate``: the headers promise the full Content-Length, half the body is sent, then the
  connection closes.
- ``corrupt``: the body has the right length but wrong bytes (a hash check must fail).
- ``stale``: the previous state of a project page / JSON API answer, with its older
  ``X-PyPI-Last-Serial`` (a CDN that has not caught up).
- ``malformed``: a JSON or HTML body that is not a valid page.
"""

from __future__ import annotations

import enum
import fnmatch
import random
import threading
from typing import Any

import msgspec

from headwater.errors import InvalidInput

__all__ = ["Fault", "FaultInjector", "FaultKind", "InvalidFault", "corrupt", "malformed"]


class InvalidFault(InvalidInput):
    """A fault description cannot be used (unknown kind, bad rate, ...)."""


class FaultKind(enum.StrEnum):
    """What an injected fault does to a response."""

    STATUS = "status"
    RESET = "reset"
    DELAY = "delay"
    TRUNCATE = "truncate"
    CORRUPT = "corrupt"
    STALE = "stale"
    MALFORMED = "malformed"


class Fault(msgspec.Struct, kw_only=True):
    """One fault rule. ``fired`` counts how often it has fired so far."""

    kind: FaultKind
    #: An exact path ("/simple/foo/") or a glob ("/packages/*", "*"). Query strings are ignored.
    path: str = "*"
    #: The HTTP status for ``status`` faults.
    status: int = 503
    #: Seconds to wait for ``delay`` faults.
    delay: float = 0.0
    #: Probability in [0, 1] that a matching request fires the fault.
    rate: float = 1.0
    #: Fire at most this many times (``None``: no limit).
    times: int | None = None
    #: Seed of this fault's PRNG (used only when ``rate`` < 1).
    seed: int = 0
    fired: int = 0
    id: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise InvalidFault(f"fault rate {self.rate} is outside [0, 1]")
        if self.times is not None and self.times < 0:
            raise InvalidFault(f"fault times {self.times} is negative; use null for no limit")
        if self.kind is FaultKind.STATUS and not 100 <= self.status <= 599:
            raise InvalidFault(f"fault status {self.status} is not an HTTP status code")
        if self.delay < 0:
            raise InvalidFault(f"fault delay {self.delay} is negative")

    def matches(self, path: str) -> bool:
        """Whether the rule's path (exact or glob) covers ``path``."""
        return self.path == path or fnmatch.fnmatchcase(path, self.path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """Build a fault from its JSON form (the control API's body).

        Raises:
            InvalidFault: unknown fields, unknown kind, or out-of-range values.
        """
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise InvalidFault(f"invalid fault {data!r}: {exc}") from exc


class FaultInjector:
    """The active faults, consulted once per request (thread-safe)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._rngs: dict[int, random.Random] = {}
        self._next_id = 1
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        """Activate ``fault``; returns it with its ``id`` set."""
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
            # Fault injection replays, it does not protect anything: a seeded PRNG is the point.
            self._rngs[fault.id] = random.Random(fault.seed)  # noqa: S311
            return fault

    def remove(self, fault_id: int) -> bool:
        """Deactivate one fault; whether it existed."""
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            self._rngs.pop(fault_id, None)
            return len(self._faults) != before

    def clear(self) -> None:
        """Deactivate every fault."""
        with self._lock:
            self._faults.clear()
            self._rngs.clear()

    @property
    def faults(self) -> list[Fault]:
        """The active faults (a copy of the list)."""
        with self._lock:
            return list(self._faults)

    def __bool__(self) -> bool:
        return bool(self._faults)

    def select(self, path: str) -> list[Fault]:
        """The faults that fire for this request, counting each as fired."""
        if not self._faults:  # the fast path: no lock when nothing is injected
            return []
        fired: list[Fault] = []
        with self._lock:
            for fault in self._faults:
                if not fault.matches(path):
                    continue
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                if fault.rate < 1.0 and self._rngs[fault.id].random() >= fault.rate:
                    continue
                fault.fired += 1
                fired.append(fault)
        return fired


def corrupt(body: bytes) -> bytes:
    """Same length, different bytes: every byte is flipped, so any digest check fails."""
    return bytes(b ^ 0xFF for b in body) if body else b"\xff"


def malformed(body: bytes, *, json: bool) -> bytes:
    """A body that is not a valid page of the given format, derived from the real one."""
    if json:
        # Cut mid-document: an unterminated object no JSON parser accepts.
        return body[: max(1, len(body) // 2)].rstrip(b"}]") + b',"broken": '
    # HTML parsers recover from almost anything, so break what a Simple API reader needs: the
    # anchors lose their href and the repository-version meta is garbage.
    return (
        b'<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="x.y">'
        b"</head><body><a>no-href.whl</a><a href=>"
    )
