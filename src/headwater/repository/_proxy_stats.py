"""What a proxy counts while it serves: the numbers behind its hit rate and stale pages.

Counted per process in plain integers (a request costs an attribute increment); the server adds
them to its metrics snapshot, so ``/metrics``, the status page and ``/mirrors.json`` show the sum
over every worker process (:mod:`headwater.server.metrics`).
"""

from __future__ import annotations

import msgspec

__all__ = ["ProxyStats"]


class ProxyStats(msgspec.Struct, kw_only=True):
    """Counters of one proxy in one process, since it started."""

    #: Project pages asked for (``page`` and ``project`` calls; the project list is not counted).
    page_requests: int = 0
    #: Of those, how many sent a request upstream (a first fetch or a revalidation, whatever
    #: the answer); requests that shared another's fetch are not counted again.
    page_fetches: int = 0
    #: Page requests answered with a copy kept after the upstream failed.
    stale_served: int = 0
    #: Files asked for, and how many of those had to be fetched upstream (cold).
    file_requests: int = 0
    file_fetches: int = 0
    #: Requests refused because the upstream failed and nothing usable was cached.
    unavailable: int = 0

    def items(self) -> list[tuple[str, int]]:
        """(counter, value) pairs, in field order."""
        return [(name, getattr(self, name)) for name in self.__struct_fields__]
