"""``headwater check --config``: audit requirements against the indexes of a headwater
configuration, run in process.

Where the plain check asks the indexes a client would use and judges them as pip or uv would
merge them, this mode builds the configuration's sources exactly as ``headwater serve`` does
(:func:`headwater.assembly.build_sources`: the same mirror trees, hosted indexes over the
same database, proxies over the same cache, directories) and asks each ``[index.NAME]`` what it
would do for every required name (:meth:`~headwater.repository.index.ComposedIndex.resolve`, the
decision the server makes). The verdicts:

- ``ok``: the index serves the name, and no other source of it has the name;
- ``guarded``: other sources have it too, and the policy serves it from one only (the guard at
  work: without it this name would be a confusion risk);
- ``refused``: the policy refuses the name (a conflict, or a source holds a name another serves);
  the finding carries the refusal and its fix, as pip and uv users would see them;
- ``unavailable``: a source the index must consult failed, so the index refuses (PEP 766);
- ``missing``: no source serves it;
- ``unclaimed``: served only from sources of your own (hosted indexes, directories), and the
  public index does not have the name: anyone can register it there.

Sources outside the policy's plan for a name are asked too (for the report), never to decide.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from headwater.assembly import base_url, build_sources, database_url
from headwater.check.audit import Report, wanted_projects
from headwater.check.errors import CheckError
from headwater.check.findings import (
    COOLDOWN_ADVICE,
    Failure,
    Finding,
    Risk,
    Wanted,
    finding_for,
    hash_matches,
    serving,
)
from headwater.check.indexes import IndexPlan, normalize_index_url
from headwater.check.model import Client, IndexSpec, Requirement
from headwater.check.sources import CheckSource, http_sources
from headwater.check.versions import highest
from headwater.config.settings import ServePlan
from headwater.db import Database
from headwater.errors import HeadwaterError
from headwater.policy import NotServed, Refused, Served
from headwater.policy.merge import apply_cooldown
from headwater.repository.index import ComposedIndex
from headwater.simple.model import ProjectPage

__all__ = ["check_config", "config_indexes"]

#: Sources of your own (their names are not claimed on the public index by being served).
_OWN_KINDS = ("hosted", "directory")


def config_indexes(plan: ServePlan, names: Sequence[str]) -> list[str]:
    """The composed indexes to check: ``names``, or every ``[index.NAME]`` of the plan.

    Raises:
        CheckError: a name is not a composed index, or the plan has none.
    """
    if not plan.indexes:
        raise CheckError(
            "the configuration defines no [index.NAME] (an index of ordered sources under a "
            "policy); check a client's indexes instead with --index-url / --extra-index-url, or "
            "define one (docs/configuration.md)"
        )
    for name in names:
        if name not in plan.indexes:
            kind = _kind(plan, name)
            what = f"a {kind}, not an [index.NAME]" if kind else "not defined"
            raise CheckError(
                f"--index {name!r}: {what} in the configuration; indexes: "
                + ", ".join(sorted(plan.indexes))
            )
    return list(dict.fromkeys(names)) or list(plan.indexes)


def _kind(plan: ServePlan, name: str) -> str | None:
    for kind, table in (
        ("hosted", plan.hosted),
        ("mirror", plan.mirrors),
        ("proxy", plan.proxies),
        ("directory", plan.directories),
    ):
        if name in table:
            return kind
    return None


def _open_database(plan: ServePlan) -> Database:
    url = database_url(plan)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise CheckError(
                f"the hosted indexes' database {path} does not exist: the check reads what "
                "`headwater serve` stored; run it on the server's configuration and data "
                "directory ([serve] data_dir / database)"
            )
    try:
        database = Database.connect(url)
    except HeadwaterError as exc:
        raise CheckError(f"cannot read the hosted indexes' database: {exc}") from exc
    try:
        database.check_schema()
    except HeadwaterError as exc:
        database.close()
        raise CheckError(f"cannot read the hosted indexes' database: {exc}") from exc
    return database


def _index_specs(plan: ServePlan, checked: Sequence[str], where: str) -> list[IndexSpec]:
    base = base_url(plan)
    specs: dict[str, IndexSpec] = {}
    for name in checked:
        index = plan.indexes[name]
        policy = str(index.rules.get("policy", "priority"))
        specs[name] = IndexSpec(
            name=name,
            url=f"{base}/{name}/simple/",
            origin=f"{where} [index.{name}], policy {policy}, sources {', '.join(index.sources)}",
        )
        for source in index.sources:
            if source in specs:
                continue
            kind = _kind(plan, source) or "source"
            if kind == "proxy":
                url = plan.proxies[source].url
            elif kind == "directory":
                url = plan.directories[source]
            elif kind == "mirror":
                url = plan.mirrors[source]
            else:
                url = f"{base}/{source}/simple/"
            specs[source] = IndexSpec(
                name=source,
                url=url,
                origin=f"[{kind}.{source}]",
                # PEP 708: only a directory is a local source (a hosted index is served
                # over HTTP like any other repository, and PEP 708 does not merge it freely).
                local=kind == "directory",
            )
    return list(specs.values())


def _warnings(requirements: Sequence[Requirement], directives: Sequence[str]) -> list[str]:
    warnings = [
        f"{origin}: index option ignored: with --config the indexes are the configuration's"
        for origin in directives
    ]
    pinned = dict.fromkeys(pin.origin for r in requirements for pin in r.pins)
    warnings.extend(
        f"{origin}: index pin ignored: with --config the index's policy decides where a name "
        "comes from (route it in [index.NAME.routes] instead)"
        for origin in pinned
    )
    return warnings


async def check_config(
    requirements: Sequence[Requirement],
    plan: ServePlan,
    *,
    indexes: Sequence[str] = (),
    where: str = "the configuration",
    public: str,
    directives: Sequence[str] = (),
    read_timeout: float = 30.0,
    concurrency: int = 32,
    now: datetime | None = None,
) -> Report:
    """Check every requirement against each composed index of ``plan`` (``indexes``, or all).

    ``where`` names the configuration in the report; ``public`` is the public index asked
    (over HTTP, unless a proxy of the index has it) whether names served only from your own
    sources are claimed there; ``directives`` are the origins of index options found in the
    input files (ignored in this mode, and reported as warnings).

    Raises:
        CheckError: no such index, the database cannot be read, or the policy tables are
            invalid.
    """
    checked = config_indexes(plan, indexes)
    now = now or datetime.now(UTC)
    database = _open_database(plan) if plan.hosted else None
    try:
        try:
            built = build_sources(plan, database)
        except HeadwaterError as exc:
            raise CheckError(str(exc)) from exc
        try:
            public_spec = IndexSpec(
                name=_unique("public", plan), url=public, origin="--public", public=True
            )
            async with http_sources([public_spec], read_timeout=read_timeout) as (reference,):
                bare = [msgspec.structs.replace(r, pins=()) for r in requirements]
                wanted, nameless = wanted_projects(
                    bare, IndexPlan(client=Client.NONE, indexes=(), public=public)
                )
                limit = asyncio.Semaphore(concurrency)
                public_key = normalize_index_url(public)
                public_proxies = {
                    name
                    for name, proxy in plan.proxies.items()
                    if normalize_index_url(proxy.url) == public_key
                }
                asked_public: list[bool] = []

                async def one(index: ComposedIndex, item: Wanted) -> Finding:
                    async with limit:
                        finding, used = await _judge(
                            index, item, plan, public_proxies, reference, now
                        )
                    if used:
                        asked_public.append(True)
                    return msgspec.structs.replace(finding, index=index.name)

                findings = await asyncio.gather(
                    *(one(built.indexes[name], item) for name in checked for item in wanted)
                )
        finally:
            await built.aclose()
    finally:
        if database is not None:
            database.close()
    specs = _index_specs(plan, checked, where)
    if asked_public:
        specs.append(msgspec.structs.replace(public_spec, used=False))
    return Report(
        client=Client.HEADWATER,
        public=public,
        indexes=tuple(specs),
        findings=(*findings, *nameless),
        warnings=tuple(_warnings(requirements, directives)),
    )


def _unique(name: str, plan: ServePlan) -> str:
    taken = {*plan.hosted, *plan.mirrors, *plan.proxies, *plan.directories, *plan.indexes}
    n = 2
    candidate = name
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


async def _judge(
    index: ComposedIndex,
    item: Wanted,
    plan: ServePlan,
    public_proxies: set[str],
    public: CheckSource,
    now: datetime,
) -> tuple[Finding, bool]:
    """The finding for ``item`` on ``index``, and whether the public index was asked."""
    p = item.project

    finding = functools.partial(finding_for, item)

    if item.direct is not None:
        return finding([Risk.DIRECT], f"not from an index: {item.direct}"), False
    resolution = await index.resolve(p)
    decision = resolution.decision
    asked = {o.source for o in resolution.observations}
    others = await asyncio.gather(
        *(index.observe(name, p) for name in index.sources if name not in asked)
    )
    seen = [*resolution.observations, *others]
    pages = {o.source: o.page for o in seen if o.state == "found" and o.page is not None}
    failures = [
        Failure(index=o.source, error=o.error or "no answer")
        for o in resolution.observations
        if o.state == "unavailable"
    ]

    if isinstance(decision, Refused):
        served = [serving(s, page, item.specifier) for s, page in pages.items()]
        if decision.kind == "unavailable":
            return (
                finding(
                    [Risk.UNAVAILABLE],
                    decision.message,
                    decision.fix,
                    served=served,
                    failures=failures,
                    decision=decision.message,
                ),
                False,
            )
        return (
            finding(
                [Risk.REFUSED],
                decision.message,
                decision.fix,
                served=served,
                decision=decision.message,
            ),
            False,
        )
    if isinstance(decision, NotServed):
        also = [o.source for o in others if o.state == "found"]
        message = f"index {index.name!r} serves nothing for it ({decision.reason})"
        if also:
            message += (
                f"; {_names(also)} {'has' if len(also) == 1 else 'have'} it, outside the plan"
            )
        return (
            finding(
                [Risk.MISSING],
                message,
                "fix the name, or add a source that has it to the index; until then, whoever "
                "registers it on the public index is what a client falling back there gets",
                decision=decision.reason,
            ),
            False,
        )
    assert isinstance(decision, Served)
    # What clients see: each served source's page after the index's cooldown (the versions a
    # cooldown hides are not counted, nor taken as the highest).
    shown = {s: _after_cooldown(index, s, pages[s], now) for s in decision.sources if s in pages}
    served = [serving(s, page, item.specifier) for s, page in shown.items()]
    facts = [f"index {index.name!r} serves it from {_names(decision.sources)} ({decision.reason})"]
    risks: list[Risk] = []
    advice: list[str] = []
    if decision.hidden:
        until = (
            f", the first until {decision.hidden_until.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
            if decision.hidden_until is not None
            else ", none with an upload-time (they stay hidden)"
        )
        facts.append(f"{decision.hidden} file(s) hidden by the cooldown{until}")
        if highest(decision.page, _specifier(item.specifier)) is None:
            risks.append(Risk.COOLDOWN)
            facts.append(
                "the cooldown hides every file the requirement could take: pip and uv find no "
                "version until then, and say only that there are no versions"
            )
            advice.append(COOLDOWN_ADVICE)
    stale = [o.source for o in resolution.observations if o.stale and o.source in decision.sources]
    if stale:
        facts.append(f"from a cached copy: {_names(stale)} could not be reached")
    if item.hashes and not hash_matches(decision.page, item.hashes):
        facts.append("no file it serves matches the --hash values: the install would fail")
    also = [s for s in pages if s not in decision.sources]
    kinds = {s: _kind(plan, s) for s in decision.sources}
    own = all(kind in _OWN_KINDS for kind in kinds.values())
    used_public = False
    if own:
        public_seen = next((o for o in seen if o.source in public_proxies), None)
        if public_seen is not None and public_seen.state != "unavailable":
            public_has = public_seen.state == "found"
        else:
            used_public = True
            lookup = await public.lookup(p)
            if lookup.state == "unavailable":
                failures.append(Failure(index=public.spec.name, error=lookup.error or "no answer"))
                risks.append(Risk.UNAVAILABLE)
                facts.append(f"the public index failed: {lookup.error}")
                advice.append("make the public index answer (or give --public) and check again")
            public_has = lookup.state == "found"
        if not public_has and Risk.UNAVAILABLE not in risks:
            risks.append(Risk.UNCLAIMED)
            facts.append(
                f"served only from your own {_names(decision.sources)} and the public index "
                f"does not have it: anyone can register {p} there (the Birsan attack); this "
                "index would keep serving yours, clients that reach the public index would not"
            )
            advice.append(
                f"register {p} on the public index (a placeholder) or a PEP 752 namespace "
                f"covering it, and keep it routed to {decision.sources[0]!r}"
            )
    if also:
        facts.append(
            f"{_names(also)} {'has' if len(also) == 1 else 'have'} it too and "
            f"{'is' if len(also) == 1 else 'are'} not served"
        )
        risks.append(Risk.GUARDED)
    if not risks:
        risks.append(Risk.OK)
    return (
        finding(
            risks,
            "; ".join(facts),
            "; ".join(advice),
            served=served,
            failures=failures,
            decision=decision.reason,
        ),
        used_public,
    )


def _after_cooldown(
    index: ComposedIndex, source: str, page: ProjectPage, now: datetime
) -> ProjectPage:
    spec = index.rules.source(source)
    return page if spec is None else apply_cooldown(page, spec, now)[0]


def _specifier(text: str) -> SpecifierSet:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return SpecifierSet()


def _names(names: Sequence[str]) -> str:
    shown = [repr(n) for n in names]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
