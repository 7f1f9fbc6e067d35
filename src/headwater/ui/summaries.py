"""What the home page says about each index: its totals and its health, computed off the
request path and kept briefly, so the home page answers in milliseconds however large an index is.

- **Totals**: projects (from the index's project list, counted again only when the list's ETag
  changes). Files and bytes are counted where the source keeps them cheaply (a hosted index's
  database); elsewhere they are "unknown" rather than a walk of a mirror tree on a page view.
- **Health**: the index's readiness check (:meth:`ServedSource.check`, what ``/health/ready``
  runs), at most once per :data:`HEALTH_SECONDS`, with a time limit; the last failure is kept and
  shown with its time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from headwater.errors import printable
from headwater.repository.base import ServedSource
from headwater.simple.json import parse_project_list_json

__all__ = ["HEALTH_SECONDS", "Health", "Summaries", "Summary"]

HEALTH_SECONDS = 10.0
CHECK_TIMEOUT = 2.0


@dataclass(frozen=True)
class Summary:
    projects: int | None
    files: int | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class Health:
    ok: bool
    #: The check's failure, one printable line; "" when ok.
    error: str
    #: time.time() of the check.
    checked: float
    #: time.time() and text of the last failure seen, if any.
    last_error: tuple[float, str] | None = None


class Summaries:
    """Per-index totals and health, cached (see the module docstring)."""

    def __init__(self, sources: Mapping[str, ServedSource]) -> None:
        self.sources = sources
        self._names: dict[str, tuple[str, frozenset[str]]] = {}
        self._health: dict[str, Health] = {}
        self._lock = asyncio.Lock()

    async def names(self, index: str) -> frozenset[str] | None:
        """Every project name of ``index`` (normalized), None when it cannot be read now."""
        try:
            page = await self.sources[index].page(None, "json")
        except Exception:  # any failure: the health line says what is wrong
            return None
        if page is None:
            return frozenset()
        known = self._names.get(index)
        if known is not None and known[0] == page.etag:
            return known[1]
        listing = await asyncio.to_thread(parse_project_list_json, page.body)
        names = frozenset(entry.normalized for entry in listing.projects)
        self._names[index] = (page.etag, names)
        return names

    async def get(self, index: str, only: frozenset[str] | None) -> Summary:
        names = await self.names(index)
        if names is None:
            return Summary(projects=None)
        if only is not None:
            names = names & only
        return Summary(projects=len(names))

    async def health(self, index: str) -> Health:
        now = time.time()
        known = self._health.get(index)
        if known is not None and now - known.checked < HEALTH_SECONDS:
            return known
        try:
            await asyncio.wait_for(self.sources[index].check(), CHECK_TIMEOUT)
        except TimeoutError:
            error = f"no answer within {CHECK_TIMEOUT:g} s"
        except Exception as exc:  # a failing check is shown, never raised
            error = printable(f"{type(exc).__name__}: {exc}", 300)
        else:
            error = ""
        last = known.last_error if known is not None else None
        if error:
            last = (now, error)
        health = Health(ok=not error, error=error, checked=now, last_error=last)
        self._health[index] = health
        return health
