"""Which demands of a closure an installer could satisfy at all. Pure.

The closure (:mod:`headwater.sync.closure`) follows every candidate of every demand, so it meets
dependencies an installer never has to satisfy: ``web 2.1`` needs ``core>=1.2``, a constraint
pins ``core==1.0``, and pip simply installs ``web 2.0`` instead. Such a dead end is not a failure
of the mirror. What cannot be satisfied is a requirement of the *inputs* none of whose candidates
installs, and this module decides which, over the graph the closure built for one environment:

==============  ==============================================================================
demand          a (project, specifier, extras) the closure expanded, by key
failed          the demand itself has no file in the environment (missing project, no file, no
                file with an allowed hash): it cannot be satisfied
candidate       one file the demand could install, with the demands its dependencies raise
dead            a demand is dead when it failed, or when every one of its candidates has a dead
                dependency; a candidate is dead when one of its dependencies is dead
==============  ==============================================================================

Truth table (``tests/sync/test_acceptance14.py`` checks it row by row):

=======  ===================================  ======================================
failed   candidates                            dead
=======  ===================================  ======================================
yes      any                                   yes
no       none (not expanded yet)               no (nothing known against it)
no       one with no dependencies              no
no       all with a dead dependency            yes
no       one alive, others dead                no (the installer backtracks to it)
no       a cycle back to itself only           no (a cycle is satisfiable)
=======  ===================================  ======================================

The answer is the least set closed under those rules (computed by propagating deaths until
nothing changes), so cycles stay alive. :func:`explain` then names, for a dead demand, the failed
demands beneath it that killed it: those are what a report shows.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

__all__ = ["dead_demands", "explain"]

K = TypeVar("K", bound=Hashable)


def dead_demands(
    failed: set[K] | frozenset[K],
    candidates: Mapping[K, Mapping[str, Sequence[K]]],
) -> set[K]:
    """Every demand no installer can satisfy: ``failed`` ones, and those all of whose candidates
    (``candidates[demand]``: filename -> the demands its dependencies raise) depend on a dead
    demand. A demand with no candidates that did not fail is alive (not expanded yet)."""
    dead = set(failed)
    changed = True
    while changed:
        changed = False
        for demand, files in candidates.items():
            if demand in dead or not files:
                continue
            if all(any(child in dead for child in children) for children in files.values()):
                dead.add(demand)
                changed = True
    return dead


def explain(
    demand: K,
    dead: set[K],
    failed: set[K] | frozenset[K],
    candidates: Mapping[K, Mapping[str, Sequence[K]]],
) -> list[K]:
    """The failed demands beneath a dead ``demand`` that make it dead (itself, if it failed), in
    the order a depth-first walk meets them, each once."""
    out: list[K] = []
    seen: set[K] = set()
    stack = [demand]
    while stack:
        current = stack.pop()
        if current in seen or current not in dead:
            continue
        seen.add(current)
        if current in failed:
            out.append(current)
            continue
        for children in candidates.get(current, {}).values():
            stack.extend(reversed([c for c in children if c in dead]))
    return out
