"""An index composed of ordered sources under a policy: what pip and uv see at ``/<index>/simple/``.

For each project the index asks :func:`headwater.policy.plan` which sources to consult and how
(``first``: in order, stopping at the first that has or claims the name; ``all``: every one), asks
those sources (:class:`~headwater.repository.base.ProjectSource`), and hands what they said to
:func:`headwater.policy.decide`, a pure function. The decision is served, refused (raised as
:class:`Refusal` for the server to turn into a response that pip and uv print), or a plain 404.

Sources keep their own caches (a tree stats its page, a hosted index watches the database's change
signal, a proxy revalidates after its TTL), so asking them is cheap. The index keeps each decision
and its rendered pages, keyed on what it was made from, and checks that key on every request:

- the rules: the PEP 752 namespaces granted on its hosted sources are read again whenever the
  database's change signal (:meth:`headwater.db.Database.generation`) moves, so a grant or revoke
  by any process applies to the next request;
- what each source it consulted says now (asked again, from the source's own cache): its page
  version, whether the page is stale and why, or its failure. A page is served with ``stale``
  exactly while a source it came from serves it stale;
- time: a decision is made again at least every ``revalidate`` seconds (cooldowns end with time).

A warm page thus costs one look at the change signal and a cache lookup per consulted source
other than a hosted one (a hosted source says what its database says: it is asked again only when
the change signal moved).

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
    Plan,
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
from headwater.simple.filenames import project_candidates
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


#: What one consulted source said, as a decision's cache key: (page version, stale, failure).
_Said = tuple[str, str | None, str | None]


def _said(observation: Observation, version: str) -> _Said:
    return (version, observation.stale, observation.error)


class _Entry:
    __slots__ = (
        "checked",
        "consulted",
        "filenames",
        "generations",
        "key",
        "pages",
        "resolution",
        "rules",
    )

    def __init__(self, resolution: Resolution, rules: Rules, checked: float) -> None:
        self.resolution = resolution
        #: The rules it was decided under (the same object while no grant changed).
        self.rules = rules
        self.checked = checked
        #: The sources asked, in order, and what each said: the entry holds while they say so.
        self.consulted = tuple(o.source for o in resolution.observations)
        self.key = tuple(
            _said(o, v) for o, v in zip(resolution.observations, resolution.versions, strict=True)
        )
        self.pages: dict[str, RenderedPage] = {}
        #: The hosted databases' generations it was decided at.
        self.generations: tuple[int, ...] | None = None
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
        self._root: tuple[float, tuple[object, ...], dict[str, RenderedPage]] | None = None
        self._hosted = [s for s in sources if isinstance(s, HostedSource)]
        self._hosted_names = frozenset(s.name for s in self._hosted)
        #: The hosted databases' generations the rules' namespaces were read at.
        self._rules_key: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        return f"ComposedIndex({self.name!r}, {list(self.sources)!r}, {self.rules.policy!r})"

    # -- deciding ------------------------------------------------------------------------------

    def _generations(self) -> tuple[int, ...]:
        return tuple(source.db.generation() for source in self._hosted)

    async def _current_rules(self, key: tuple[int, ...] | None = None) -> Rules:
        """The rules with the hosted sources' PEP 752 namespace grants as they are now (read
        again whenever a hosted database's change signal moved). ``key``: the generations, if
        the caller just looked (taken before reading: a grant during the read shows next time)."""
        if not self._hosted:
            return self.rules
        if key is None:
            key = self._generations()
        if key == self._rules_key:
            return self.rules
        grants: list[tuple[str, str]] = []
        for source in self._hosted:
            try:
                grants.extend((ns, source.name) for ns in await source.namespace_grants())
            except Exception:
                # Keep the last known grants and ask again on the next request (the hosted
                # source reports the database failure on the pages that need it).
                return self.rules
        self._rules_key = key
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

    async def explain(self, project: NormalizedName) -> tuple[Plan, Resolution]:
        """The decision this index serves for ``project`` right now (the very entry
        :meth:`page` serves from: same cache, same revalidation) and the plan it followed, for
        a person asking why (the interface's "why this source" page)."""
        entry = await self._entry(project)
        return plan(project, entry.rules), entry.resolution

    async def resolve(self, project: NormalizedName) -> Resolution:
        """Ask the sources the policy names and decide (no caching: see :meth:`_entry`)."""
        return await self._resolve(project, await self._current_rules())

    async def _resolve(self, project: NormalizedName, rules: Rules) -> Resolution:
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
        generations = self._generations()
        rules = await self._current_rules(generations)
        entry = self._entries.get(project)
        if (
            entry is not None
            and entry.rules is rules
            and time.monotonic() - entry.checked < self.revalidate
            and await self._still(entry, project, generations)
        ):
            return entry
        # Concurrent requests for a project that must be decided share one decision.
        return await self._deciding.run(project, lambda: self._decide(project, entry))

    async def _still(
        self, entry: _Entry, project: NormalizedName, generations: tuple[int, ...]
    ) -> bool:
        """Whether every source the entry consulted still says what it said (each answers
        from its own cache: a dictionary lookup, a stat). A hosted source's answer is its
        database's: while the databases' generations are those the entry was decided at, it
        is not asked again (unless it had failed)."""
        same_databases = generations == entry.generations
        for name, said in zip(entry.consulted, entry.key, strict=True):
            if same_databases and name in self._hosted_names and said[0] != "unavailable":
                continue
            try:
                now = await self.sources[name].project(project)
            except SourceUnavailable as exc:
                if said != ("unavailable", None, str(exc)):
                    return False
                continue
            if (now.version, now.stale if now.page is not None else None, None) != said:
                return False
        return True

    async def _decide(self, project: NormalizedName, entry: _Entry | None) -> _Entry:
        generations = self._generations()  # before reading: a change during it shows next time
        rules = await self._current_rules(generations)
        resolution = await self._resolve(project, rules)
        fresh = _Entry(resolution, rules, time.monotonic())
        fresh.generations = generations
        if entry is not None and entry.resolution.decision == resolution.decision:
            fresh.pages = entry.pages  # the same decision: keep its rendered pages
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
            headers=(
                (b"x-headwater-sources", ",".join(decision.sources).encode()),
                *_hidden(decision),
            ),
        )
        entry.pages[fmt] = rendered
        return rendered

    async def _root_page(self, fmt: PageFormat) -> RenderedPage:
        now = time.monotonic()
        generations = self._generations()  # hosted project lists change with the database
        if (
            self._root is not None
            and now - self._root[0] < self.revalidate
            and self._root[1][0] == generations
        ):
            cached = self._root[2].get(fmt)
            if cached is not None:
                return cached
        lists: list[list[NormalizedName]] = []
        for source in self.sources.values():
            try:
                lists.append(await source.project_names())
            except SourceUnavailable:
                lists.append([])  # the list is a convenience; project pages decide
        identity = (generations, *(id(names) for names in lists))
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
        filename = path.rsplit("/", 1)[-1].removesuffix(".metadata").removesuffix(".provenance")
        # The project whose decided page lists the file: the name it states, or for legacy names
        # (.egg, .tar.bz2, a '-' in a version) a guess from its text, checked against the page.
        for project in project_candidates(filename):
            entry = await self._entry(project)
            decision = entry.resolution.decision
            if not isinstance(decision, Served) or filename not in entry.filenames:
                continue
            for name in decision.sources:
                ref = await self.sources[name].file(path)
                if ref is not None:
                    return ref
            return None
        return None

    async def check(self) -> None:
        """Ready when every source is."""
        for source in self.sources.values():
            await source.check()

    async def aclose(self) -> None:
        """Cancel decisions in progress (at shutdown; the sources are closed by their owner)."""
        await self._deciding.aclose()


#: Says that a cooldown hid files of a served page (pip and uv show only fewer versions, or "no
#: versions"): ``cooldown; files=N`` and, when a hidden file has an upload-time, ``; until=``
#: the UTC time the first of them comes out (docs/policy.md).
HIDDEN_HEADER = b"x-headwater-hidden"


def _hidden(decision: Served) -> tuple[tuple[bytes, bytes], ...]:
    if not decision.hidden:
        return ()
    value = f"cooldown; files={decision.hidden}"
    if decision.hidden_until is not None:
        value += f"; until={decision.hidden_until.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    return ((HIDDEN_HEADER, value.encode("ascii")),)


def _worth_explaining(decision: Decision) -> bool:
    if isinstance(decision, NotServed):
        return True
    return isinstance(decision, Refused) and decision.kind == "claimed"
