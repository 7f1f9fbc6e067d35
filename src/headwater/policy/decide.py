"""The decision for one project: serve these files from these sources, or refuse, and why.

The index consults the sources :func:`headwater.policy.plan` names (in parallel or one by one) and
hands what it learned to :func:`decide`. The plan is cut into *tiers* consulted in order: under
``priority`` each source is its own tier; under ``pep708`` and ``union-unsafe`` all sources form one
tier (a non-terminating route's sources form a tier before the rest). In each tier:

- a source that is unavailable refuses the project (503): never fall through on error (PEP 766);
- sources that have the project serve it (merged when the tier has several: PEP 708's test for
  ``pep708``, explicitly for a route, anything for ``union-unsafe``);
- a source that holds the name without files (a deleted hosted project) refuses it (409);
- otherwise the next tier is consulted. After the last: a plain 404, or, when a route or namespace
  claims the name and another source has it, a refusal (409).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal, TypeAlias

import msgspec

from headwater.policy.merge import FileClash, Part, apply_cooldown, merge_parts, merge_refusal
from headwater.policy.messages import detail, label, labels, one_line, route_toml
from headwater.policy.plan import Plan, plan
from headwater.policy.rules import PolicyError, Route, Rules
from headwater.simple.model import ProjectPage, ProjectStatus
from headwater.simple.names import NormalizedName, normalize_or_none

__all__ = ["Decision", "NotServed", "Observation", "Refused", "Served", "decide"]

_STATES = ("found", "absent", "unavailable")
_TierRule = Literal["first", "explicit", "pep708", "union"]


class Observation(msgspec.Struct, frozen=True):
    """What the index learned from one source about one project."""

    source: str
    state: Literal["found", "absent", "unavailable"]
    #: When found: the project page in served form.
    page: ProjectPage | None = None
    #: When absent: the source still holds the name (a deleted hosted project).
    claimed: bool = False
    #: The URL that identifies this page for PEP 708 (the upstream project URL of a proxy/mirror).
    url: str = ""
    #: When unavailable: what failed.
    error: str | None = None
    #: When found: why this is an old copy (the upstream failed), None when fresh.
    stale: str | None = None


class Served(msgspec.Struct, frozen=True):
    """Serve ``page``: the files of ``sources``, merged, with provenance set."""

    page: ProjectPage
    sources: tuple[str, ...]
    #: One line: why these sources (for logs, headers, ``headwater check``).
    reason: str
    #: Files hidden by a cooldown.
    hidden: int = 0
    #: When the first hidden file with an upload-time comes out of its cooldown (None: no
    #: hidden file has one, or nothing is hidden). pip and uv only see fewer files (or "no
    #: versions"): the server says why in a header, ``headwater check`` in its report.
    hidden_until: datetime | None = None
    #: Why some of the pages used are old copies.
    stale: tuple[str, ...] = ()


class Refused(msgspec.Struct, frozen=True):
    """Refuse the project: serving any of it could give the client the wrong package."""

    kind: Literal["conflict", "claimed", "unavailable"]
    project: NormalizedName
    #: The sources involved.
    sources: tuple[str, ...]
    #: One line, no double quotes: names the project, the sources and why.
    message: str
    #: One line, no double quotes: the config change that resolves it (TOML to paste), or what to do.
    fix: str
    #: 409 for conflict and claimed, 503 for unavailable.
    status: int
    #: The route the fix suggests, when the fix is a route (for tools that write config).
    route: Route | None = None


class NotServed(msgspec.Struct, frozen=True):
    """No source has the project and none claims it: a plain 404."""

    project: NormalizedName
    reason: str


Decision: TypeAlias = Served | Refused | NotServed


def _index(
    project: NormalizedName, observations: Sequence[Observation], rules: Rules
) -> dict[str, Observation]:
    by_source: dict[str, Observation] = {}
    for obs in observations:
        if rules.source(obs.source) is None:
            raise PolicyError(
                f"index {rules.index!r}: an observation names source {obs.source!r}, which is "
                "not one of the index's sources"
            )
        if obs.source in by_source:
            raise PolicyError(f"index {rules.index!r}: source {obs.source!r} observed twice")
        if obs.state not in _STATES:
            raise PolicyError(f"observation of {obs.source!r} has unknown state {obs.state!r}")
        if obs.state == "found" and obs.page is None:
            raise PolicyError(f"observation of {obs.source!r} is 'found' but carries no page")
        if obs.page is not None and normalize_or_none(obs.page.name) != project:
            # A source answering with another project's page must never be served for this one.
            raise PolicyError(
                f"observation of {obs.source!r} for {project!r} carries the page of "
                f"{obs.page.name!r}"
            )
        by_source[obs.source] = obs
    return by_source


def _tiers(the_plan: Plan, rules: Rules) -> list[tuple[tuple[str, ...], _TierRule]]:
    if rules.policy == "priority" or the_plan.namespace is not None:
        return [((name,), "first") for name in the_plan.sources]
    merged: _TierRule = "union" if rules.policy == "union-unsafe" else "pep708"
    route = the_plan.route
    if route is None:
        return [(the_plan.sources, merged)]
    # PEP 708 D6 step 3: sources the operator named explicitly are merged without question.
    explicit: _TierRule = "union" if merged == "union" else "explicit"
    tiers = [(route.sources, explicit)]
    rest = the_plan.sources[len(route.sources) :]
    if rest:
        tiers.append((rest, merged))
    return tiers


def decide(
    project: NormalizedName, observations: Sequence[Observation], rules: Rules, *, now: datetime
) -> Decision:
    """Decide what to serve for ``project`` from what the sources said.

    ``observations`` cover :func:`plan`'s sources in order; in ``first`` mode those after the first
    found-or-claimed one may be missing. Observations of other sources may be added (for a better
    refusal message); they are never served unless the plan names them. ``now`` is timezone-aware
    (cooldowns compare it with upload-times).

    Raises:
        PolicyError: an observation names an unknown source or is malformed, or a source the
            decision needs was not observed.
    """
    if now.utcoffset() is None:
        raise PolicyError("decide: 'now' must be timezone-aware (upload-times are UTC)")
    the_plan = plan(project, rules)
    by_source = _index(project, observations, rules)
    consulted: list[str] = []
    for names, rule in _tiers(the_plan, rules):
        tier: list[Observation] = []
        for name in names:
            obs = by_source.get(name)
            if obs is None:
                raise PolicyError(
                    f"index {rules.index!r}: {project!r} needs an observation of source "
                    f"{name!r} (plan: {', '.join(the_plan.sources)}; {the_plan.why})"
                )
            tier.append(obs)
        consulted.extend(names)
        down = [o for o in tier if o.state == "unavailable"]
        if down:
            return _unavailable(project, down, rules, the_plan)
        found = [o for o in tier if o.state == "found"]
        held = [o for o in tier if o.state == "absent" and o.claimed]
        if found:
            if held and rule == "pep708":
                return _claimed(project, held, found, rules, the_plan)
            return _serve(project, found, rule, rules, the_plan, now)
        if held:
            others = _found_elsewhere(by_source, consulted, rules)
            rest = tuple(s for s in the_plan.sources if s not in consulted)
            return _claimed(project, held, others, rules, the_plan, rest=rest)
    if the_plan.claims:
        others = _found_elsewhere(by_source, consulted, rules)
        if others:
            return _claimed(project, [], others, rules, the_plan)
    return NotServed(project, f"{the_plan.why}: no source has {project!r}")


def _found_elsewhere(
    by_source: dict[str, Observation], consulted: list[str], rules: Rules
) -> list[Observation]:
    """Sources outside those consulted that have the project, in index order (for messages)."""
    return [
        obs
        for spec in rules.sources
        if spec.name not in consulted
        and (obs := by_source.get(spec.name)) is not None
        and obs.state == "found"
    ]


def _serve(
    project: NormalizedName,
    found: list[Observation],
    rule: _TierRule,
    rules: Rules,
    the_plan: Plan,
    now: datetime,
) -> Decision:
    prefix = the_plan.why
    for obs in found:
        assert obs.page is not None
        if obs.page.status is ProjectStatus.QUARANTINED:
            # PEP 792: a quarantined project offers no files; another source must not fill in.
            page = msgspec.structs.replace(obs.page, name=project)
            reason = f"{prefix}: {label(rules, obs.source)} quarantined it (PEP 792)"
            return Served(page, (obs.source,), one_line(reason), stale=_stale([obs.stale]))
    parts: list[Part] = []
    hidden = 0
    reveals: list[datetime] = []
    for obs in found:
        spec = rules.source(obs.source)
        assert spec is not None and obs.page is not None
        page, gone, until = apply_cooldown(obs.page, spec, now)
        hidden += gone
        reveals.extend([until] if until is not None else [])
        parts.append(Part(spec, page, obs.url, obs.stale))
    names = tuple(p.spec.name for p in parts)
    if rule == "pep708":
        remote = [p for p in parts if p.spec.remote]
        why_not = merge_refusal(project, remote)
        if why_not is not None:
            return _conflict(project, [p.spec.name for p in remote], why_not, rules)
    merged = merge_parts(project, parts, first_wins=rule == "union")
    if isinstance(merged, FileClash):
        why_not = (
            f"file {merged.filename!r} differs between {label(rules, merged.first)} and "
            f"{label(rules, merged.second)} ({merged.detail})"
        )
        return _conflict(project, [merged.first, merged.second], why_not, rules, files=True)
    if len(parts) == 1:
        reason = f"{prefix}: served from {label(rules, names[0])}"
    else:
        how = {
            "pep708": "their tracks / alternate-locations agree or they are local",
            "explicit": "the route names them",
            "union": "union-unsafe merges every source",
            "first": "",
        }[rule]
        reason = f"{prefix}: merged {labels(rules, names)} ({how})"
    until = min(reveals) if reveals else None
    if hidden:
        reason += f"; {hidden} file(s) hidden by cooldown"
        if until is not None:
            reason += f" (the first until {until.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ})"
    return Served(
        merged,
        names,
        one_line(reason),
        hidden=hidden,
        hidden_until=until,
        stale=_stale([p.stale for p in parts]),
    )


def _stale(reasons: list[str | None]) -> tuple[str, ...]:
    return tuple(one_line(r) for r in reasons if r)


def _conflict(
    project: NormalizedName,
    sources: list[str],
    why_not: str,
    rules: Rules,
    *,
    files: bool = False,
) -> Refused:
    if files:
        message = f"index {rules.index!r}: {project!r} cannot be merged: {why_not}"
    else:
        message = (
            f"index {rules.index!r}: {project!r} is served by {labels(rules, sources)} and their "
            f"pages do not agree ({why_not})"
        )
    message += "; headwater does not merge them"
    choice = sources[0]
    route = Route((project,), (choice,))
    fix = f"to take {project} from {choice} only, add to headwater.toml: " + route_toml(
        rules, project, [choice]
    )
    return Refused(
        "conflict", project, tuple(sources), one_line(message), one_line(fix), 409, route=route
    )


def _unavailable(
    project: NormalizedName, down: list[Observation], rules: Rules, the_plan: Plan
) -> Refused:
    if len(down) == 1:
        failures = detail(down[0].error)
    else:
        failures = "; ".join(f"{o.source!r}: {detail(o.error)}" for o in down)
    message = (
        f"index {rules.index!r}: {project!r} cannot be served because "
        f"{labels(rules, [o.source for o in down])} did not answer ({failures}); headwater never "
        "takes a project from another source because one failed (PEP 766)"
    )
    fix = (
        f"no config change: retry when {join_names([o.source for o in down])} answers again, or "
        "repair its [source] settings; a route around it would let another source's copy in"
    )
    return Refused(
        "unavailable",
        project,
        tuple(o.source for o in down),
        one_line(message),
        one_line(fix),
        503,
    )


def join_names(names: Sequence[str]) -> str:
    """Quoted source names for a sentence."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _claimed(
    project: NormalizedName,
    held: list[Observation],
    others: list[Observation],
    rules: Rules,
    the_plan: Plan,
    *,
    rest: tuple[str, ...] = (),
) -> Refused:
    holders = [o.source for o in held]
    elsewhere = [o.source for o in others]
    index = f"index {rules.index!r}"
    if holders:
        message = (
            f"{index}: {project!r} is held by {labels(rules, holders)}, which has no files for it "
            "(deleted or reserved)"
        )
        if elsewhere:
            message += (
                f"; {labels(rules, elsewhere)} serves it, but headwater does not take it from there"
            )
        else:
            message += "; no other source is consulted for it"
    elif the_plan.namespace is not None:
        owner = the_plan.sources[0]
        message = (
            f"{index}: {project!r} belongs to namespace {the_plan.namespace!r} of "
            f"{label(rules, owner)}, which does not have it; {labels(rules, elsewhere)} serves it, "
            "but headwater never takes a name of that namespace from another source"
        )
    else:
        message = (
            f"{index}: {project!r} is routed to {join_names(the_plan.sources)} ({the_plan.why}), "
            f"which does not have it; {labels(rules, elsewhere)} serves it, but headwater never "
            "takes a routed name from another source"
        )
    candidates = elsewhere or [s for s in rest if s not in holders][:1]
    route: Route | None = None
    if candidates:
        choice = candidates[0]
        route = Route((project,), (choice,))
        where = " (before any route matching it)" if the_plan.route is not None else ""
        fix = (
            f"only if the copy on {choice} is the project you mean, add to headwater.toml{where}: "
            + route_toml(rules, project, [choice])
        )
        if holders:
            fix = f"publish {project} on {holders[0]} again; or, " + fix
    else:
        fix = f"publish {project} on {(holders or list(the_plan.sources))[0]} again"
    involved = tuple(dict.fromkeys((holders or list(the_plan.sources)) + elsewhere))
    return Refused("claimed", project, involved, one_line(message), one_line(fix), 409, route=route)
