"""A pure stand-in for an index's consulting loop, driven by a scenario: what the composed index
does between plan() and decide(), without I/O. It consults the planned sources in order (stopping
at the first found-or-claimed or failed one in ``first`` mode) and, when a route or namespace
claims the name and none of its sources has it, also the other sources, for a refusal that names
them (the composed index may do the same)."""

from __future__ import annotations

from headwater.policy import Decision, Observation, Rules, SourceSpec, decide, plan
from headwater.policy import rules_from_config as _rules_from_config
from headwater.simple.names import NormalizedName, normalize_name
from headwater.testing.policy_scenarios import Scenario, ScenarioSource


def rules_of(scenario: Scenario) -> Rules:
    """The scenario's index, through the same parser a headwater config goes through."""
    specs = [SourceSpec(s.name, s.kind) for s in scenario.sources]  # type: ignore[arg-type]
    return _rules_from_config(
        scenario.index,
        scenario.index_table(),
        specs,
        where=f"scenario {scenario.name}",
        namespaces=scenario.namespaces(),
    )


def observe(source: ScenarioSource, project: NormalizedName) -> Observation:
    """What ``source`` says about ``project``."""
    if source.down:
        return Observation(
            source.name, "unavailable", error=f"{source.url or source.name}: connection refused"
        )
    held = source.project(project)
    if held is None:
        return Observation(source.name, "absent")
    page = held.page()
    if page is None:
        return Observation(source.name, "absent", claimed=True)
    return Observation(source.name, "found", page=page, url=source.project_url(project))


def consult(scenario: Scenario, rules: Rules, project: NormalizedName) -> list[Observation]:
    """The observations an index gathers for ``project``."""
    the_plan = plan(project, rules)
    seen: list[Observation] = []
    for name in the_plan.sources:
        obs = observe(scenario.source(name), project)
        seen.append(obs)
        decisive = obs.state != "absent" or obs.claimed
        if the_plan.mode == "first" and decisive:
            break
    if the_plan.claims and not any(o.state == "found" for o in seen):
        seen.extend(observe(s, project) for s in scenario.sources if s.name not in the_plan.sources)
    return seen


def ask(scenario: Scenario, rules: Rules, spelled: str) -> Decision:
    """The decision for a project as the user spells it."""
    project = normalize_name(spelled)
    return decide(project, consult(scenario, rules, project), rules, now=scenario.now)
