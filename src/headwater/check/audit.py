"""The audit: every required name looked up in every index it could come from, concurrently,
and judged by :func:`headwater.check.assess.assess`.

:func:`audit` runs over any :class:`~headwater.check.sources.CheckSource` objects, so the same
audit checks indexes over HTTP (:func:`~headwater.check.sources.http_sources`) or a headwater
configuration's sources in process (:class:`~headwater.check.sources.ProjectSourceLookup`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from headwater.check.assess import assess
from headwater.check.errors import CheckError
from headwater.check.findings import RISKS, Finding, Risk, Wanted, with_publishers
from headwater.check.indexes import IndexPlan, normalize_index_url
from headwater.check.model import Client, IndexSpec, Requirement
from headwater.check.publishers import ProvenanceChecker
from headwater.check.sources import CheckSource, Lookup, http_sources
from headwater.simple.names import NormalizedName

__all__ = ["Report", "audit", "check_over_http", "plan_pins", "wanted_projects"]


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a check: the indexes (with origins), a finding per project, warnings."""

    client: Client
    public: str
    indexes: tuple[IndexSpec, ...]
    findings: tuple[Finding, ...]
    warnings: tuple[str, ...] = ()

    @property
    def risky(self) -> tuple[Finding, ...]:
        """The findings that make the check fail."""
        return tuple(f for f in self.findings if f.risk in RISKS)

    @property
    def exit_status(self) -> int:
        """0: no risk; 1: at least one risk (an unavailable index included)."""
        return 1 if self.risky else 0


def plan_pins(requirements: Sequence[Requirement], plan: IndexPlan) -> IndexPlan:
    """``plan`` plus an explicit index for each pylock ``index`` URL the plan lacks (the lock
    installs from there, so the check must look there, but only for the names locked to it)."""
    extra: list[IndexSpec] = []
    known = {normalize_index_url(s.url) for s in plan.indexes if not s.local}
    names = {s.name for s in plan.indexes}
    for requirement in requirements:
        for pin in requirement.pins:
            if "://" not in pin.index:
                continue
            key = normalize_index_url(pin.index)
            if key in known:
                continue
            known.add(key)
            name, n = "locked", 2
            while name in names:
                name, n = f"locked-{n}", n + 1
            names.add(name)
            url = pin.index if pin.index.endswith("/") else pin.index + "/"
            extra.append(IndexSpec(name=name, url=url, origin=pin.origin, explicit=True))
    if not extra:
        return plan
    return msgspec.structs.replace(plan, indexes=(*plan.indexes, *extra))


def _pin_target(pin_index: str, plan: IndexPlan, origin: str) -> str:
    spec = plan.by_url(pin_index) if "://" in pin_index else plan.by_name(pin_index)
    if spec is None:
        known = ", ".join(s.name for s in plan.indexes if not s.local) or "none"
        raise CheckError(
            f"{origin}: pins to index {pin_index!r}, which is not defined (indexes: {known}); "
            "define it in [[tool.uv.index]] with that name, or fix the pin"
        )
    return spec.name


def wanted_projects(
    requirements: Sequence[Requirement], plan: IndexPlan
) -> tuple[list[Wanted], list[Finding]]:
    """The projects to look up (requirements of one name merged: specifiers intersected, hashes
    and origins collected, pins resolved to index names for ``plan.client``), and findings for
    direct references whose name is unknown.

    Raises:
        CheckError: a pin names an index that is not defined.
    """
    client = Client.PIP if plan.client is Client.NONE else plan.client
    grouped: dict[NormalizedName, list[Requirement]] = {}
    nameless: list[Finding] = []
    for requirement in requirements:
        if requirement.project is None:
            nameless.append(
                Finding(
                    project="",
                    names=(requirement.name,),
                    required_by=(requirement.origin,),
                    risk=Risk.DIRECT,
                    risks=(Risk.DIRECT,),
                    message=f"not from an index: {requirement.direct}",
                    advice="",
                )
            )
            continue
        grouped.setdefault(requirement.project, []).append(requirement)
    wanted: list[Wanted] = []
    for project, group in grouped.items():
        from_index = [r for r in group if r.direct is None]
        pinned: dict[str, None] = {}
        pin_origins: dict[str, None] = {}
        for requirement in group:
            for pin in requirement.pins:
                if client in pin.clients:
                    pinned[_pin_target(pin.index, plan, pin.origin)] = None
                    pin_origins[pin.origin] = None
        hashes = frozenset(h for r in group for h in r.hashes)
        wanted.append(
            Wanted(
                project=project,
                names=tuple(dict.fromkeys(r.name for r in group)),
                origins=tuple(dict.fromkeys(r.origin for r in group)),
                specifier=",".join(r.specifier for r in from_index if r.specifier),
                hashes=hashes,
                pinned_to=tuple(pinned),
                pin_origins=tuple(pin_origins),
                direct=group[0].direct if not from_index else None,
            )
        )
    return wanted, nameless


async def audit(
    requirements: Sequence[Requirement],
    plan: IndexPlan,
    sources: Sequence[CheckSource],
    *,
    concurrency: int = 64,
    now: datetime | None = None,
    provenance: ProvenanceChecker | None = None,
) -> Report:
    """Check every requirement against ``sources`` (one per index of ``plan``, same names).

    With ``provenance``, who published what the client would install is verified and reported
    (:mod:`headwater.check.publishers`; HTTP indexes only).

    Names are checked ``concurrency`` at a time; for each, every index it could come from is
    asked at once. The public index, when the client does not use it, is asked only about names
    a private index serves (to tell ``unclaimed``).

    Raises:
        CheckError: no index to check against, a pin names an unknown index, or ``sources`` do
            not match ``plan``.
    """
    by_name = {source.spec.name: source for source in sources}
    if set(by_name) != {spec.name for spec in plan.indexes}:
        raise CheckError("the sources given to the audit do not match the plan's indexes")
    used = [s for s in plan.indexes if s.used]
    if not used:
        raise CheckError(
            "no index to check against (--no-index, and no --find-links directory); give "
            "--index-url or --find-links"
        )
    wanted, nameless = wanted_projects(requirements, plan)
    reference = next((s for s in plan.indexes if s.public and not s.used), None)
    default = [s for s in used if not s.explicit]
    now = now or datetime.now(UTC)
    limit = asyncio.Semaphore(concurrency)

    async def one(item: Wanted) -> Finding:
        if item.direct is not None:
            return assess(item, [], client=plan.client, now=now)
        specs = [s for s in plan.indexes if s.name in item.pinned_to] if item.pinned_to else default
        async with limit:
            lookups = await asyncio.gather(*(by_name[s.name].lookup(item.project) for s in specs))
            observed = list(zip(specs, lookups, strict=True))
            seen: tuple[IndexSpec, Lookup] | None = None
            needs_public = any(
                lookup.state == "found" and not spec.public for spec, lookup in observed
            ) and not any(spec.public for spec in specs)
            if reference is not None and needs_public and not item.pinned_to:
                seen = (reference, await by_name[reference.name].lookup(item.project))
            finding = assess(item, observed, reference=seen, client=plan.client, now=now)
            if provenance is not None:
                publishers = await provenance.publishers(
                    item.project, finding.installs, observed, by_name
                )
                finding = with_publishers(finding, publishers)
        return finding

    findings = await asyncio.gather(*(one(item) for item in wanted))
    return Report(
        client=plan.client,
        public=plan.public,
        indexes=plan.indexes,
        findings=(*findings, *nameless),
        warnings=plan.warnings,
    )


async def check_over_http(
    requirements: Sequence[Requirement],
    plan: IndexPlan,
    *,
    read_timeout: float = 30.0,
    concurrency: int = 64,
    now: datetime | None = None,
    provenance: ProvenanceChecker | None = None,
) -> Report:
    """:func:`audit` over HTTP: one keep-alive pool per index host, closed when done."""
    async with http_sources(plan.indexes, read_timeout=read_timeout) as sources:
        return await audit(
            requirements, plan, sources, concurrency=concurrency, now=now, provenance=provenance
        )
