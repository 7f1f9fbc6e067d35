"""Properties of decide() over generated indexes and worlds: the guarantees the issue states.

- the default policy never serves one project from two sources (so never from two remote ones);
- a name a namespace or terminating route claims never comes from another source;
- an unavailable source never leads to files from a source after it;
- decide is deterministic (and does not depend on the order of observations);
- pep708 merges remote sources only when their pages link them;
- every refusal is one line, without double quotes, naming the project.

The oracles here are written independently of headwater.policy's helpers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from headwater.policy import (
    POLICIES,
    Decision,
    Observation,
    PolicyError,
    Refused,
    Route,
    Rules,
    Served,
    SourceKind,
    SourceSpec,
    decide,
    plan,
)
from headwater.simple.model import File, ProjectPage, ProjectStatus
from headwater.simple.names import NormalizedName, wheel_escape

NOW = datetime(2024, 6, 1, tzinfo=UTC)
POOL = (
    ("internal", SourceKind.HOSTED),
    ("team", SourceKind.HOSTED),
    ("pypi", SourceKind.PROXY),
    ("piwheels", SourceKind.PROXY),
    ("mirror", SourceKind.MIRROR),
    ("wheelhouse", SourceKind.DIRECTORY),
)
REMOTE_URL = {
    "pypi": "https://pypi.org/simple/",
    "piwheels": "https://www.piwheels.org/simple/",
    "mirror": "https://pypi.org/simple/",  # a mirror of PyPI: its pages are PyPI's project URLs
}
PROJECTS = [NormalizedName(n) for n in ("foo", "foo-bar", "acme", "acme-x", "acmex", "bar")]
PATTERNS = ("foo", "foo-*", "acme-x", "*", "ba?", "acme*", "foo-bar")
NAMESPACES = ("acme", "foo")

POLICY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


@dataclass(frozen=True)
class World:
    project: NormalizedName
    rules: Rules
    states: dict[str, str]  # source -> found | absent | claimed | unavailable
    pages: dict[str, ProjectPage]  # for found sources
    look_elsewhere: bool


@st.composite
def rules_st(draw: st.DrawFn, policies: tuple[str, ...] = POLICIES) -> Rules:
    chosen = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=4, unique=True))
    names = [n for n, _ in chosen]
    cooldown = {n: draw(st.sampled_from([None, None, 0.0, 7.0])) for n in names}
    specs = tuple(SourceSpec(n, k, cooldown[n]) for n, k in chosen)
    routes = draw(
        st.lists(
            st.builds(
                Route,
                st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2, unique=True).map(tuple),
                st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True).map(tuple),
                st.booleans(),
            ),
            max_size=2,
        )
    )
    hosted = [n for n, k in chosen if k is SourceKind.HOSTED]
    namespaces = []
    if hosted:
        for namespace in NAMESPACES:
            if draw(st.booleans()):
                namespaces.append((namespace, draw(st.sampled_from(hosted))))
    policy = draw(st.sampled_from(policies))
    try:
        return Rules("main", specs, policy, tuple(routes), tuple(namespaces))  # type: ignore[arg-type]
    except PolicyError:
        assume(False)
        raise


def _file(project: NormalizedName, source: str, draw: st.DrawFn) -> File:
    filename = draw(
        st.sampled_from(
            [
                f"{wheel_escape(project)}-1.0.tar.gz",
                f"{wheel_escape(project)}-1.0-py3-none-any.whl",
                f"{wheel_escape(project)}-9999.0.tar.gz",
            ]
        )
    )
    # Most files are the same bytes everywhere; some are a different file of the same name.
    content = filename if draw(st.booleans()) else f"{source}/{filename}"
    digest = hashlib.sha256(content.encode()).hexdigest()
    uploaded = draw(st.sampled_from([NOW - timedelta(days=100), NOW - timedelta(days=1), None]))
    return File(
        filename=filename,
        url=f"../../packages/{digest[:2]}/{digest[2:4]}/{digest[4:]}/{filename}",
        hashes={"sha256": digest},
        upload_time=uploaded,
    )


@st.composite
def world_st(draw: st.DrawFn, policies: tuple[str, ...] = POLICIES) -> World:
    rules = draw(rules_st(policies))
    project = draw(st.sampled_from(PROJECTS))
    states: dict[str, str] = {}
    pages: dict[str, ProjectPage] = {}
    all_urls = [f"{u}{project}/" for u in REMOTE_URL.values()] + ["https://pypi.org/simple/other/"]
    for spec in rules.sources:
        state = draw(st.sampled_from(["found", "found", "absent", "claimed", "unavailable"]))
        states[spec.name] = state
        if state != "found":
            continue
        files = [_file(project, spec.name, draw) for _ in range(draw(st.integers(0, 3)))]
        by_name = {f.filename: f for f in files}
        pages[spec.name] = ProjectPage(
            name=project,
            files=tuple(by_name.values()),
            tracks=tuple(draw(st.lists(st.sampled_from(all_urls), max_size=1))),
            alternate_locations=tuple(draw(st.lists(st.sampled_from(all_urls), max_size=3))),
            status=draw(st.sampled_from([ProjectStatus.ACTIVE] * 5 + [ProjectStatus.QUARANTINED])),
        )
    return World(project, rules, states, pages, draw(st.booleans()))


def observation(world: World, source: str) -> Observation:
    state = world.states[source]
    if state == "found":
        url = f"{REMOTE_URL[source]}{world.project}/" if source in REMOTE_URL else ""
        return Observation(source, "found", page=world.pages[source], url=url)
    if state == "unavailable":
        return Observation(source, "unavailable", error="boom")
    return Observation(source, "absent", claimed=state == "claimed")


def consult(world: World) -> list[Observation]:
    """What an index gathers: the plan's sources in order (stopping in ``first`` mode), and
    sometimes the others too, for a better refusal."""
    the_plan = plan(world.project, world.rules)
    seen = []
    for source in the_plan.sources:
        seen.append(observation(world, source))
        if the_plan.mode == "first" and world.states[source] != "absent":
            break
    if world.look_elsewhere:
        seen += [
            observation(world, s.name)
            for s in world.rules.sources
            if s.name not in the_plan.sources
        ]
    return seen


def run(world: World) -> Decision:
    return decide(world.project, consult(world), world.rules, now=NOW)


def served_pairs(decision: Served) -> set[tuple[str, str]]:
    return {(f.filename, f.hashes["sha256"]) for f in decision.page.files}


def pairs_of(world: World, sources: set[str]) -> set[tuple[str, str]]:
    return {
        (f.filename, f.hashes["sha256"])
        for s in sources
        if s in world.pages
        for f in world.pages[s].files
    }


def claimed_by(world: World) -> set[str] | None:
    """Independent oracle: the only sources a claimed name may come from, or None."""
    for route in world.rules.routes:
        if any(fnmatchcase(world.project, p) for p in route.patterns):
            if route.terminating:
                return set(route.sources)
            break
    for namespace, owner in world.rules.namespaces:
        if world.project == namespace or world.project.startswith(namespace + "-"):
            return {owner}
    return None


@POLICY
@given(world_st(("priority",)))
def test_default_policy_serves_from_one_source_only(world: World) -> None:
    decision = run(world)
    if isinstance(decision, Served):
        assert len(decision.sources) == 1
        assert served_pairs(decision) <= pairs_of(world, set(decision.sources))


@POLICY
@given(world_st())
def test_claimed_names_never_come_from_another_source(world: World) -> None:
    allowed = claimed_by(world)
    decision = run(world)
    if allowed is not None and isinstance(decision, Served):
        assert set(decision.sources) <= allowed
        assert served_pairs(decision) <= pairs_of(world, allowed)


@POLICY
@given(world_st())
def test_an_unavailable_source_never_leads_to_files_from_a_later_one(world: World) -> None:
    decision = run(world)
    if not isinstance(decision, Served):
        return
    order = list(plan(world.project, world.rules).sources)
    last = max(order.index(s) for s in decision.sources)
    for source in order[: last + 1]:
        assert world.states[source] != "unavailable"
    if world.rules.policy == "priority" and not world.rules.routes and not world.rules.namespaces:
        # Without routes the order is the index's order.
        names = [s.name for s in world.rules.sources]
        first_down = next(
            (i for i, n in enumerate(names) if world.states[n] == "unavailable"), len(names)
        )
        assert names.index(decision.sources[0]) < first_down


@POLICY
@given(world_st(), st.randoms(use_true_random=False))
def test_decide_is_deterministic(world: World, rnd: object) -> None:
    observations = consult(world)
    first = decide(world.project, observations, world.rules, now=NOW)
    assert decide(world.project, observations, world.rules, now=NOW) == first
    shuffled = list(observations)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert decide(world.project, shuffled, world.rules, now=NOW) == first


@POLICY
@given(world_st(("pep708",)))
def test_pep708_merges_remote_sources_only_when_linked(world: World) -> None:
    decision = run(world)
    if not isinstance(decision, Served) or world.rules.routes:
        return
    remote = [s for s in decision.sources if world.rules.source(s).remote]  # type: ignore[union-attr]
    # Pages without tracks or alternate-locations can only merge when they are the same location
    # (a mirror of PyPI and a proxy of PyPI serve the same project URL).
    unlinked = {
        REMOTE_URL.get(s, s)
        for s in remote
        if not (world.pages[s].tracks or world.pages[s].alternate_locations)
    }
    assert len(remote) <= 1 or len(unlinked) <= 1


@POLICY
@given(world_st())
def test_decisions_are_well_formed(world: World) -> None:
    decision = run(world)
    if isinstance(decision, Refused):
        for text in (decision.message, decision.fix):
            assert text and "\n" not in text and '"' not in text
        assert repr(world.project) in decision.message
        assert decision.status == (503 if decision.kind == "unavailable" else 409)
        if decision.kind == "unavailable":
            assert all(world.states[s] == "unavailable" for s in decision.sources)
    elif isinstance(decision, Served):
        names = [f.filename for f in decision.page.files]
        assert len(names) == len(set(names))
        assert decision.page.name == world.project
        assert decision.hidden >= 0
