"""What the interface knows about each index: its names (for search and totals) and its health,
computed off the request path and kept, so pages answer in milliseconds however large an index is.

- **Names**: a :class:`~headwater.ui.names.NameIndex` of the index's project list, built (in a
  thread, once for concurrent requests) when the list's ETag changes; until a new one is built,
  requests use the one before.
- **Totals**: projects (the names); files and bytes of a hosted index from its database (asked
  again when the database's change signal moves). Files and bytes are counted where the source keeps them cheaply (a hosted index's
  database); elsewhere they are "unknown" rather than a walk of a mirror tree on a page view.
- **Health**: the index's readiness check (:meth:`ServedSource.check`, what ``/health/ready``
  runs), at most once per :data:`HEALTH_SECONDS`, with a time limit; the last failure is kept and
  shown with its time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import msgspec

from headwater.db import Database
from headwater.errors import printable
from headwater.repository.base import ServedSource
from headwater.simple.json import parse_project_list_json
from headwater.simple.names import normalize_or_none
from headwater.ui.names import NameIndex

__all__ = ["HEALTH_SECONDS", "Catalog", "Health", "Summary"]

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


_EMPTY = NameIndex(())


class _Name(msgspec.Struct, gc=False):
    name: str


class _Names(msgspec.Struct, gc=False):
    projects: list[_Name]


_names_decoder = msgspec.json.Decoder(_Names)


def _build(body: bytes) -> NameIndex:
    """The names of a JSON project list. Only the names are decoded (a 700,000-name list would
    otherwise be held twice over while the index is built); a list that is not the plain shape
    goes through the full parser, which sets hostile entries aside."""
    try:
        projects = _names_decoder.decode(body).projects
    except (msgspec.MsgspecError, RecursionError):
        listing = parse_project_list_json(body)
        return NameIndex(entry.normalized for entry in listing.projects)
    # Invalid names are left out, as the full parser leaves them out. Each decoded entry is
    # dropped as soon as its name is normalized, so the names are not held twice.
    projects.reverse()

    def drained() -> Iterator[str]:
        while projects:
            name = normalize_or_none(projects.pop().name)
            if name is not None:
                yield name

    return NameIndex(drained())


class Catalog:
    """Per-index names, totals and health, cached (see the module docstring)."""

    def __init__(
        self, sources: Mapping[str, ServedSource], database: Database | None = None
    ) -> None:
        self.sources = sources
        self.database = database
        self._totals: dict[str, tuple[int, tuple[int, int]]] = {}
        self._names: dict[str, tuple[str, NameIndex]] = {}
        self._building: dict[str, tuple[str, asyncio.Future[NameIndex]]] = {}
        self._health: dict[str, Health] = {}

    async def names(self, index: str) -> NameIndex | None:
        """The project names of ``index``, None when its list cannot be read now (and was never
        read before)."""
        known = self._names.get(index)
        try:
            page = await self.sources[index].page(None, "json")
        except Exception:  # any failure: the health line says what is wrong
            return known[1] if known is not None else None
        if page is None:
            return _EMPTY
        if known is not None and known[0] == page.etag:
            return known[1]
        building = self._building.get(index)
        if building is None or building[0] != page.etag:
            future: asyncio.Future[NameIndex] = asyncio.ensure_future(
                asyncio.to_thread(_build, page.body)
            )
            building = (page.etag, future)
            self._building[index] = building
        etag, future = building
        try:
            names = await asyncio.shield(future)
        except Exception:
            self._building.pop(index, None)
            return known[1] if known is not None else None
        self._names[index] = (etag, names)
        if self._building.get(index) is building:
            del self._building[index]
        return names

    async def get(self, index: str, only: frozenset[str] | None) -> Summary:
        names = await self.names(index)
        if names is None:
            return Summary(projects=None)
        if only is not None:
            return Summary(projects=sum(1 for name in only if name in names))
        files = size = None
        if self.database is not None and self.sources[index].kind == "hosted":
            files, size = await self._hosted_totals(index)
        return Summary(projects=len(names), files=files, bytes=size)

    async def _hosted_totals(self, index: str) -> tuple[int | None, int | None]:
        database = self.database
        assert database is not None
        try:
            generation = database.generation()
            known = self._totals.get(index)
            if known is not None and known[0] == generation:
                return known[1]
            totals = await asyncio.to_thread(database.totals, index)
        except Exception:  # the health line says what is wrong
            return None, None
        self._totals[index] = (generation, totals)
        return totals

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
