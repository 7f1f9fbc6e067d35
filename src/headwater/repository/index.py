"""An index composed of ordered sources under a policy: what pip and uv see at ``/<index>/simple/``.

For each project the index asks :func:`headwater.policy.plan` which sources to consult and how
(``first``: in order, stopping at the first that has or claims the name; ``all``: every one), asks
those sources (:class:`~headwater.repository.base.ProjectSource`), and hands what they said to
:func:`headwater.policy.decide`, a pure function. The decision is served, refused (raised as
:class:`Refusal` for the server to turn into a response that pip and uv print), or a plain 404.

Sources keep their own caches (a tree stats its page, a hosted index watches its serial, a proxy
revalidates after its TTL), so deciding is cheap; the index also keeps each decision and its
rendered pages for ``revalidate`` seconds, so a warm page costs a dictionary lookup, as it does for
a single source.

Files are content-addressed (``packages/<aa>/<bb>/<rest>/<filename>``): the index serves a file
only if it is on the decided page of its project, from a source the decision took it from.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import msgspec

from headwater.errors import HeadwaterError
from headwater.policy import (
    Decision,
    NotServed,
    Observation,
    Refused,
    Rules,
    Served,
    decide,
    plan,
)
from headwater.repository._flight import SingleFlight
from headwater.repository.base import (
    FileRef,
    PageFormat,
    ProjectSource,
    RenderedPage,
    SourceUnavailable,
)
from headwater.repository.hosted import HostedSource
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.html import render_project_list_html, render_project_page_html
from headwater.simple.json import render_project_list_json, render_project_page_json
from headwater.simple.model import Namespace, ProjectList, ProjectListEntry, ProjectPage
from headwater.simple.names import NormalizedName

__all__ = ["ComposedIndex", "Refusal", "Resolution"]

_RENDER_PAGE: dict[str, Callable[[ProjectPage], bytes]] = {
    "json": render_project_page_json,
    "html": render_project_page_html,
}
_RENDER_LIST: dict[str, Callable[[ProjectList], bytes]] = {
    "json": render_project_list_json,
    "html": render_project_list_html,
}
#: Decisions kept per process (requests for made-up names must not grow memory without bound).
_MAX_ENTRIES = 50_000


class Refusal(HeadwaterError):
    """The policy refused a project; ``refused`` says why, which sources, and the fix."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(refused.message)
        self.refused = refused


class Resolution(msgspec.Struct, frozen=True):
    """A decision with everything the sources said (for ``headwater check`` and logs)."""

    decision: Decision
    observations: tuple[Observation, ...]
    versions: tuple[str, ...]


class _Entry:
    __slots__ = ("checked", "filenames", "pages", "resolution")

    def __init__(self, resolution: Resolution, checked: float) -> None:
        self.resolution = resolution
        self.checked = checked
        self.pages: dict[str, RenderedPage] = {}
        decision = resolution.decision
        self.filenames: frozenset[str] = (
            frozenset(f.filename for f in decision.page.files)
            if isinstance(decision, Served)
            else frozenset()
        )


class ComposedIndex:
    """The index ``name``: ``sources`` (in priority order) under ``rules``.

    ``project_url(source, project)`` gives the URL that identifies a source's own page of a
    project for PEP 708 when the source is the origin (a hosted index): its served URL.
    """

    kind = "index"
    local = False

    def __init__(
        self,
        name: str,
        sources: Sequence[ProjectSource],
        rules: Rules,
        *,
        project_url: Callable[[str, NormalizedName], str],
        revalidate: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self.sources = {source.name: source for source in sources}
        self.rules = rules
        self.revalidate = revalidate
        self._project_url = project_url
        self._clock = clock
        self._entries: dict[NormalizedName, _Entry] = {}
        self._deciding: SingleFlight[NormalizedName, _Entry] = SingleFlight()
        self._root: tuple[float, tuple[int, ...], dict[str, RenderedPage]] | None = None
        self._rules_checked = float("-inf")
        self._hosted = [s for s in sources if isinstance(s, HostedSource)]

    def __repr__(self) -> str:
        return f"ComposedIndex({self.name!r}, {list(self.sources)!r}, {self.rules.policy!r})"

    # -- deciding ------------------------------------------------------------------------------

    async def _current_rules(self) -> Rules:
        """The rules with the hosted sources' PEP 752 namespace grants as they are now (asked
        at most once per ``revalidate`` seconds)."""
        if not self._hosted or time.monotonic() - self._rules_checked < self.revalidate:
            return self.rules
        grants: list[tuple[str, str]] = []
        for source in self._hosted:
            try:
                grants.extend((ns, source.name) for ns in await source.namespace_grants())
            except Exception:
                # Keep the last known grants: readiness reports the database, not every page.
                return self.rules
        self._rules_checked = time.monotonic()
        namespaces = tuple(sorted(grants))
        if namespaces != self.rules.namespaces:
            self.rules = msgspec.structs.replace(self.rules, namespaces=namespaces)
        return self.rules

    async def _observe(self, source_name: str, project: NormalizedName) -> tuple[Observation, str]:
        source = self.sources[source_name]
        try:
            said = await source.project(project)
        except SourceUnavailable as exc:
            return (
                Observation(source=source_name, state="unavailable", error=str(exc)),
                "unavailable",
            )
        if said.page is None:
            return (
                Observation(source=source_name, state="absent", claimed=said.claimed),
                said.version,
            )
        url = said.url or self._project_url(source_name, project)
        return (
            Observation(
                source=source_name, state="found", page=said.page, url=url, stale=said.stale
            ),
            said.version,
        )

    async def observe(self, source_name: str, project: NormalizedName) -> Observation:
        """What source ``source_name`` says about ``project``, as a decision sees it (for
        reports of sources the plan did not consult)."""
        observation, _ = await self._observe(source_name, project)
        return observation

    async def resolve(self, project: NormalizedName) -> Resolution:
        """Ask the sources the policy names and decide (no caching: see :meth:`_entry`)."""
        rules = await self._current_rules()
        chosen = plan(project, rules)
        observed: list[tuple[Observation, str]] = []
        if chosen.mode == "all":
            observed = list(
                await asyncio.gather(*(self._observe(name, project) for name in chosen.sources))
            )
        else:
            for name in chosen.sources:
                seen = await self._observe(name, project)
                observed.append(seen)
                if seen[0].state != "absent" or seen[0].claimed:
                    break
        decision = decide(project, [o for o, _ in observed], rules, now=self._clock())
        if _worth_explaining(decision) and len(chosen.sources) < len(self.sources):
            # The name is claimed, or nothing in the plan has it: say who else has it, so the
            # refusal can name them (they are never served from).
            others = [name for name in self.sources if name not in chosen.sources]
            extra = await asyncio.gather(*(self._observe(name, project) for name in others))
            if any(o.state == "found" for o, _ in extra):
                observed.extend(extra)
                decision = decide(project, [o for o, _ in observed], rules, now=self._clock())
        return Resolution(
            decision=decision,
            observations=tuple(o for o, _ in observed),
            versions=tuple(v for _, v in observed),
        )

    async def _entry(self, project: NormalizedName) -> _Entry:
        entry = self._entries.get(project)
        if entry is not None and time.monotonic() - entry.checked < self.revalidate:
            return entry
        # Concurrent requests for a project that must be decided share one decision.
        return await self._deciding.run(project, lambda: self._decide(project, entry))

    async def _decide(self, project: NormalizedName, entry: _Entry | None) -> _Entry:
        resolution = await self.resolve(project)
        if entry is not None and entry.resolution.versions == resolution.versions:
            entry.checked = time.monotonic()  # nothing changed: keep the rendered pages
            return entry
        fresh = _Entry(resolution, time.monotonic())
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[project] = fresh
        return fresh

    # -- serving -------------------------------------------------------------------------------

    @property
    def implements_namespaces(self) -> bool:
        """PEP 752, decided once per index: an index with a hosted source implements it (every
        page carries ``namespaces`` and says 1.5, and ``/<index>/namespaces`` lists its hosted
        sources' grants); any other implements none of it ("Repositories that do not support
        this PEP MUST NOT implement these changes")."""
        return bool(self._hosted)

    def hosted_sources(self) -> list[HostedSource]:
        """The hosted sources, whose PEP 752 grants are this index's namespaces."""
        return list(self._hosted)

    def _with_namespaces(self, page: ProjectPage) -> ProjectPage:
        """``page`` with the PEP 752 ``namespaces`` this index must give it: none at all when it
        does not implement PEP 752; else the hosted source's entry when the page came from one,
        or the granted namespaces that cover the name (``owned`` False: the page did not come
        from the grantee's source)."""
        if not self.implements_namespaces:
            if page.namespaces is None:
                return page
            return msgspec.structs.replace(page, namespaces=None)
        if page.namespaces is not None:
            return page
        covering = tuple(
            Namespace(name=namespace, owned=False)
            for namespace, _ in self.rules.namespaces
            if page.name == namespace or page.name.startswith(namespace + "-")
        )
        return msgspec.structs.replace(page, namespaces=covering)

    async def page(self, project: NormalizedName | None, fmt: PageFormat) -> RenderedPage | None:
        if project is None:
            return await self._root_page(fmt)
        entry = await self._entry(project)
        rendered = entry.pages.get(fmt)
        if rendered is not None:
            return rendered
        decision = entry.resolution.decision
        if isinstance(decision, Refused):
            raise Refusal(decision)
        if isinstance(decision, NotServed):
            return None
        stale = "; ".join(decision.stale) or None
        rendered = RenderedPage(
            _RENDER_PAGE[fmt](self._with_namespaces(decision.page)),
            serial=decision.page.last_serial,
            stale=stale,
            headers=((b"x-headwater-sources", ",".join(decision.sources).encode()),),
        )
        entry.pages[fmt] = rendered
        return rendered

    async def _root_page(self, fmt: PageFormat) -> RenderedPage:
        now = time.monotonic()
        if self._root is not None and now - self._root[0] < self.revalidate:
            cached = self._root[2].get(fmt)
            if cached is not None:
                return cached
        lists: list[list[NormalizedName]] = []
        for source in self.sources.values():
            try:
                lists.append(await source.project_names())
            except SourceUnavailable:
                lists.append([])  # the list is a convenience; project pages decide
        identity = tuple(id(names) for names in lists)
        if self._root is not None and self._root[1] == identity:
            self._root = (now, identity, self._root[2])
            cached = self._root[2].get(fmt)
            if cached is not None:
                return cached
        else:
            self._root = (now, identity, {})
        names = sorted(set().union(*lists)) if lists else []
        listing = ProjectList(
            projects=tuple(ProjectListEntry(name) for name in names),
            namespaces=self.implements_namespaces,
        )
        rendered = RenderedPage(_RENDER_LIST[fmt](listing))
        self._root[2][fmt] = rendered
        return rendered

    async def file(self, path: str) -> FileRef | None:
        filename = path.rsplit("/", 1)[-1].removesuffix(".metadata")
        try:
            project = parse_filename(filename).name
        except (InvalidFilename, ValueError):
            return None
        entry = await self._entry(project)
        decision = entry.resolution.decision
        if not isinstance(decision, Served) or filename not in entry.filenames:
            return None
        for name in decision.sources:
            ref = await self.sources[name].file(path)
            if ref is not None:
                return ref
        return None

    async def check(self) -> None:
        """Ready when every source is."""
        for source in self.sources.values():
            await source.check()

    async def aclose(self) -> None:
        """Cancel decisions in progress (at shutdown; the sources are closed by their owner)."""
        await self._deciding.aclose()


def _worth_explaining(decision: Decision) -> bool:
    if isinstance(decision, NotServed):
        return True
    return isinstance(decision, Refused) and decision.kind == "claimed"
