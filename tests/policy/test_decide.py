"""decide() as a truth table: one test per rule, every refusal kind, and the words of refusals."""

from __future__ import annotations

import re
import tomllib
from datetime import datetime, timedelta

import msgspec
import pytest

from headwater.policy import (
    NotServed,
    Observation,
    PolicyError,
    Refused,
    Route,
    Rules,
    Served,
    decide,
    rules_from_config,
)
from headwater.simple.model import Namespace, ProjectStatus
from tests.policy.builders import NOW, absent, dist, down, found, name, page, rules, url_of

FOO = name("foo-bar")
WHEEL = "foo_bar-1.0-py3-none-any.whl"
SDIST = "foo_bar-1.0.tar.gz"
EVIL = "foo_bar-9999.0-py3-none-any.whl"


def served(decision: object) -> Served:
    assert isinstance(decision, Served), decision
    return decision


def refused(decision: object, kind: str) -> Refused:
    assert isinstance(decision, Refused), decision
    assert decision.kind == kind
    assert decision.status == (503 if kind == "unavailable" else 409)
    for text in (decision.message, decision.fix):
        assert "\n" not in text and '"' not in text
    assert repr(decision.project) in decision.message
    for source in decision.sources:
        assert repr(source) in decision.message
    return decision


def filenames(decision: Served) -> list[str]:
    return sorted(f.filename for f in decision.page.files)


PRIVATE = page("foo-bar", dist(WHEEL))
PUBLIC = page("foo-bar", dist(EVIL))


# --- priority -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observations", "outcome", "sources"),
    [
        ([found("internal", PRIVATE)], "served", ("internal",)),
        ([absent("internal"), found("pypi", PUBLIC)], "served", ("pypi",)),
        ([found("internal", PRIVATE), found("pypi", PUBLIC)], "served", ("internal",)),
        ([down("internal")], "unavailable", ("internal",)),
        ([down("internal"), found("pypi", PUBLIC)], "unavailable", ("internal",)),
        ([absent("internal"), down("pypi")], "unavailable", ("pypi",)),
        ([absent("internal", claimed=True)], "claimed", ("internal",)),
        (
            [absent("internal", claimed=True), found("pypi", PUBLIC)],
            "claimed",
            ("internal", "pypi"),
        ),
        ([absent("internal"), absent("pypi")], "not-found", ()),
    ],
)
def test_priority_truth_table(
    observations: list[Observation], outcome: str, sources: tuple[str, ...]
) -> None:
    decision = decide(FOO, observations, rules("internal", "pypi"), now=NOW)
    if outcome == "served":
        assert served(decision).sources == sources
        assert decision.page.files == (PRIVATE.files if sources == ("internal",) else PUBLIC.files)
    elif outcome == "not-found":
        assert isinstance(decision, NotServed)
        assert "no source has 'foo-bar'" in decision.reason
    else:
        assert refused(decision, outcome).sources == sources


def test_priority_claimed_message_says_nothing_else_is_consulted() -> None:
    decision = decide(FOO, [absent("internal", claimed=True)], rules("internal", "pypi"), now=NOW)
    r = refused(decision, "claimed")
    assert "held by 'internal' (hosted)" in r.message
    assert "no other source is consulted" in r.message
    assert r.fix.startswith("publish foo-bar on internal again")
    assert "[[index.main.routes]] projects = ['foo-bar'] sources = ['pypi']" in r.fix


def test_stale_copy_is_served_and_recorded() -> None:
    obs = [absent("internal"), found("pypi", PUBLIC, url=url_of("pypi", FOO), stale="pypi: 502")]
    decision = served(decide(FOO, obs, rules("internal", "pypi"), now=NOW))
    assert decision.stale == ("pypi: 502",)


def test_quarantined_page_is_served_as_it_is() -> None:
    quarantined = page("foo-bar", status=ProjectStatus.QUARANTINED)
    for policy in ("priority", "pep708", "union-unsafe"):
        obs = [found("internal", quarantined), found("pypi", PUBLIC, url=url_of("pypi", FOO))]
        decision = served(decide(FOO, obs, rules("internal", "pypi", policy=policy), now=NOW))
        assert decision.sources == ("internal",)
        assert decision.page.status is ProjectStatus.QUARANTINED
        assert decision.page.files == ()


def test_observations_must_cover_the_plan() -> None:
    r = rules("internal", "pypi")
    with pytest.raises(PolicyError, match="needs an observation of source 'internal'"):
        decide(FOO, [found("pypi", PUBLIC)], r, now=NOW)
    with pytest.raises(PolicyError, match="'nexus', which is not one"):
        decide(FOO, [found("nexus", PUBLIC)], r, now=NOW)
    with pytest.raises(PolicyError, match="observed twice"):
        decide(FOO, [absent("internal"), absent("internal")], r, now=NOW)
    with pytest.raises(PolicyError, match="carries no page"):
        decide(FOO, [Observation("internal", "found")], r, now=NOW)
    with pytest.raises(PolicyError, match="needs an observation of source 'pypi'"):
        decide(FOO, [absent("internal")], rules("internal", "pypi", policy="pep708"), now=NOW)
    with pytest.raises(PolicyError, match="carries the page of 'other'"):
        decide(FOO, [found("internal", page("other"))], r, now=NOW)
    with pytest.raises(PolicyError, match="timezone-aware"):
        decide(FOO, [found("internal", PRIVATE)], r, now=NOW.replace(tzinfo=None))


def test_order_of_observations_does_not_matter() -> None:
    r = rules("internal", "pypi", policy="pep708")
    obs = [found("internal", PRIVATE), found("pypi", PUBLIC, url=url_of("pypi", FOO))]
    assert decide(FOO, obs, r, now=NOW) == decide(FOO, obs[::-1], r, now=NOW)


def test_unavailable_message_names_the_failure_safely() -> None:
    error = 'GET https://pypi.internal/simple/foo-bar/: 500 "oops"\nretry later'
    r = refused(
        decide(FOO, [down("internal", error)], rules("internal", "pypi"), now=NOW), "unavailable"
    )
    assert "500 'oops' retry later" in r.message
    assert "PEP 766" in r.message
    assert r.fix.startswith("no config change")


# --- routes and namespaces ------------------------------------------------------------------

ROUTED = rules("internal", "pypi", routes=(Route(("foo-*",), ("internal",)),))
NAMESPACED = rules("internal", "pypi", namespaces=(("foo", "internal"),))


@pytest.mark.parametrize("r", [ROUTED, NAMESPACED], ids=["route", "namespace"])
def test_claimed_names_never_come_from_elsewhere(r: Rules) -> None:
    evil = found("pypi", PUBLIC, url=url_of("pypi", FOO))
    assert served(decide(FOO, [found("internal", PRIVATE), evil], r, now=NOW)).sources == (
        "internal",
    )
    # Down: refused, even though pypi answered.
    refused(decide(FOO, [down("internal"), evil], r, now=NOW), "unavailable")
    # Absent, and the index looked elsewhere: refused naming pypi, with the route that would allow it.
    decision = refused(decide(FOO, [absent("internal"), evil], r, now=NOW), "claimed")
    assert decision.sources == ("internal", "pypi")
    assert decision.route == Route(("foo-bar",), ("pypi",))
    assert "[[index.main.routes]] projects = ['foo-bar'] sources = ['pypi']" in decision.fix
    # Absent, and the index did not look elsewhere: a plain 404.
    assert isinstance(decide(FOO, [absent("internal")], r, now=NOW), NotServed)
    # Deleted there: refused even when nothing else was consulted.
    refused(decide(FOO, [absent("internal", claimed=True)], r, now=NOW), "claimed")


def test_namespace_and_route_messages() -> None:
    evil = found("pypi", PUBLIC, url=url_of("pypi", FOO))
    ns = refused(decide(FOO, [absent("internal"), evil], NAMESPACED, now=NOW), "claimed")
    assert "belongs to namespace 'foo' of 'internal' (hosted)" in ns.message
    rt = refused(decide(FOO, [absent("internal"), evil], ROUTED, now=NOW), "claimed")
    assert "routed to 'internal' (route 'foo-*' -> internal)" in rt.message
    assert "(before any route matching it)" in rt.fix


def test_non_terminating_route_prefers_its_sources_then_the_policy() -> None:
    r = rules(
        "internal", "mirror", "pypi", routes=(Route(("foo-bar",), ("pypi",), terminating=False),)
    )
    evil = found("pypi", PUBLIC, url=url_of("pypi", FOO))
    assert served(decide(FOO, [evil], r, now=NOW)).sources == ("pypi",)
    obs = [absent("pypi"), absent("internal"), found("mirror", PRIVATE, url=url_of("mirror", FOO))]
    assert served(decide(FOO, obs, r, now=NOW)).sources == ("mirror",)
    refused(decide(FOO, [down("pypi")], r, now=NOW), "unavailable")


def test_route_to_several_sources() -> None:
    route = (Route(("foo-bar",), ("internal", "pypi")),)
    evil = found("pypi", PUBLIC, url=url_of("pypi", FOO))
    # priority: the first of them that has it.
    r = rules("internal", "pypi", "mirror", routes=route)
    assert served(decide(FOO, [absent("internal"), evil], r, now=NOW)).sources == ("pypi",)
    # pep708: the user named them, so they merge without tracks (PEP 708 D6 step 3).
    r = rules("internal", "pypi", "mirror", policy="pep708", routes=route)
    decision = served(decide(FOO, [found("internal", PRIVATE), evil], r, now=NOW))
    assert decision.sources == ("internal", "pypi")
    assert filenames(decision) == [WHEEL, EVIL]
    assert "the route names them" in decision.reason


# --- pep708 ---------------------------------------------------------------------------------

PEP708 = rules("internal", "pypi", "piwheels", "wheelhouse", policy="pep708")


def observe_all(**pages: object) -> list[Observation]:
    obs: list[Observation] = []
    for source in ("internal", "pypi", "piwheels", "wheelhouse"):
        the_page = pages.get(source)
        obs.append(
            absent(source) if the_page is None else found(source, the_page, url=url_of(source, FOO))  # type: ignore[arg-type]
        )
    return obs


def test_pep708_conflict_words_match_the_issue() -> None:
    decision = decide(FOO, observe_all(internal=PRIVATE, pypi=PUBLIC), PEP708, now=NOW)
    r = refused(decision, "conflict")
    assert r.message == (
        "index 'main': 'foo-bar' is served by 'internal' (hosted) and 'pypi' (proxy) and their "
        "pages do not agree (no tracks or alternate-locations linking them); headwater does not "
        "merge them"
    )
    assert r.fix == (
        "to take foo-bar from internal only, add to headwater.toml: "
        "[[index.main.routes]] projects = ['foo-bar'] sources = ['internal']"
    )


def test_the_fix_is_toml_that_resolves_the_refusal() -> None:
    obs = observe_all(internal=PRIVATE, pypi=PUBLIC)
    r = refused(decide(FOO, obs, PEP708, now=NOW), "conflict")
    snippet = r.fix.partition("add to headwater.toml: ")[2]
    # One line for the header; the same text with line breaks before each key is the config.
    toml = re.sub(r" (projects|sources) = ", r"\n\1 = ", snippet)
    table = tomllib.loads(toml)["index"]["main"]
    table["policy"] = "pep708"
    fixed = rules_from_config("main", table, PEP708.sources, where="test")
    decision = served(decide(FOO, obs, fixed, now=NOW))
    assert decision.sources == ("internal",)
    assert filenames(decision) == [WHEEL]


@pytest.mark.parametrize(
    ("pages", "outcome"),
    [
        # One remote source: nothing to confuse.
        ({"pypi": PUBLIC}, ("served", ("pypi",))),
        # A local directory is always mergeable.
        ({"pypi": PUBLIC, "wheelhouse": PRIVATE}, ("served", ("pypi", "wheelhouse"))),
        # piwheels tracks PyPI's project URL: merged.
        (
            {
                "pypi": PUBLIC,
                "piwheels": page(
                    "foo-bar", dist(WHEEL), tracks=("https://pypi.org/simple/foo-bar",)
                ),
            },
            ("served", ("pypi", "piwheels")),
        ),
        # Tracks naming another project do not count.
        (
            {
                "pypi": PUBLIC,
                "piwheels": page(
                    "foo-bar", dist(WHEEL), tracks=("https://pypi.org/simple/other/",)
                ),
            },
            ("conflict", ("pypi", "piwheels")),
        ),
        # Tracks naming a project nobody here serves link to nothing.
        (
            {
                "internal": PRIVATE,
                "piwheels": page(
                    "foo-bar", dist(WHEEL), tracks=("https://pypi.org/simple/foo-bar/",)
                ),
            },
            ("conflict", ("internal", "piwheels")),
        ),
        # Alternate-locations on one side only: the other location does not agree.
        (
            {
                "internal": page(
                    "foo-bar", dist(WHEEL), alternates=("https://pypi.org/simple/foo-bar/",)
                ),
                "pypi": PUBLIC,
            },
            ("conflict", ("internal", "pypi")),
        ),
        # Two remote sources, no link.
        ({"internal": PRIVATE, "pypi": PUBLIC}, ("conflict", ("internal", "pypi"))),
        # Three remote: two agree, the third does not.
        (
            {
                "pypi": page(
                    "foo-bar", dist(EVIL), alternates=("https://www.piwheels.org/simple/foo-bar/",)
                ),
                "piwheels": page(
                    "foo-bar", dist(WHEEL), alternates=("https://pypi.org/simple/foo-bar/",)
                ),
                "internal": PRIVATE,
            },
            ("conflict", ("internal", "pypi", "piwheels")),
        ),
    ],
)
def test_pep708_truth_table(pages: dict[str, object], outcome: tuple[str, tuple[str, ...]]) -> None:
    decision = decide(FOO, observe_all(**pages), PEP708, now=NOW)
    kind, sources = outcome
    if kind == "served":
        assert served(decision).sources == sources
    else:
        assert refused(decision, kind).sources == sources


def test_pep708_alternate_locations_that_agree_merge() -> None:
    a = page("foo-bar", dist(WHEEL), alternates=("https://www.piwheels.org/simple/foo-bar/",))
    b = page("foo-bar", dist(SDIST), alternates=("HTTPS://pypi.org/simple/foo-bar",))
    decision = served(decide(FOO, observe_all(pypi=a, piwheels=b), PEP708, now=NOW))
    assert decision.sources == ("pypi", "piwheels")
    assert filenames(decision) == [WHEEL, SDIST]
    assert decision.page.alternate_locations == (
        "https://www.piwheels.org/simple/foo-bar/",
        "HTTPS://pypi.org/simple/foo-bar",
    )


def test_pep708_refuses_on_any_unavailable_or_claimed_source() -> None:
    obs = observe_all(pypi=PUBLIC)
    obs[0] = down("internal")
    refused(decide(FOO, obs, PEP708, now=NOW), "unavailable")
    obs[0] = absent("internal", claimed=True)
    r = refused(decide(FOO, obs, PEP708, now=NOW), "claimed")
    assert r.sources == ("internal", "pypi")


def test_same_filename_with_different_hashes_is_a_conflict() -> None:
    mine = page("foo-bar", dist(SDIST, content="mine"))
    theirs = page("foo-bar", dist(SDIST, content="theirs"))
    r = refused(decide(FOO, observe_all(wheelhouse=mine, pypi=theirs), PEP708, now=NOW), "conflict")
    assert (
        f"file '{SDIST}' differs between 'pypi' (proxy) and 'wheelhouse' (directory)" in r.message
    )
    same = decide(
        FOO,
        observe_all(wheelhouse=page("foo-bar", dist(SDIST)), pypi=page("foo-bar", dist(SDIST))),
        PEP708,
        now=NOW,
    )
    assert filenames(served(same)) == [SDIST]


def test_union_unsafe_merges_everything_first_file_wins() -> None:
    r = rules("internal", "pypi", policy="union-unsafe")
    mine = page("foo-bar", dist(SDIST, content="mine"))
    theirs = page("foo-bar", dist(SDIST, content="theirs"), dist(EVIL))
    obs = [found("internal", mine), found("pypi", theirs, url=url_of("pypi", FOO))]
    decision = served(decide(FOO, obs, r, now=NOW))
    assert decision.sources == ("internal", "pypi")
    assert filenames(decision) == [SDIST, EVIL]
    assert decision.page.files[0] == mine.files[0]
    refused(decide(FOO, [found("internal", mine), down("pypi")], r, now=NOW), "unavailable")


# --- cooldown and provenance ----------------------------------------------------------------


def test_cooldown_hides_new_and_undated_files_without_falling_through() -> None:
    r = rules("pypi", "mirror", cooldown={"pypi": 7})
    fresh = dist(EVIL, uploaded=NOW - timedelta(days=2))
    undated = dist(SDIST, uploaded=None)
    old = dist(WHEEL, uploaded=NOW - timedelta(days=7, seconds=1))
    obs = [found("pypi", page("foo-bar", fresh, undated, old), url=url_of("pypi", FOO))]
    decision = served(decide(FOO, obs, r, now=NOW))
    assert filenames(decision) == [WHEEL]
    assert decision.hidden == 2
    assert "2 file(s) hidden by cooldown" in decision.reason
    everything_new = [found("pypi", page("foo-bar", fresh), url=url_of("pypi", FOO))]
    decision = served(decide(FOO, everything_new, r, now=NOW))
    assert decision.sources == ("pypi",) and decision.page.files == () and decision.hidden == 1


D = timedelta(days=1)


@pytest.mark.parametrize(
    ("ages", "kept", "hidden", "until"),
    [
        # ages of WHEEL, SDIST, EVIL in days (None: no upload-time) under a 7-day cooldown
        ((8, 9, 10), [WHEEL, SDIST, EVIL], 0, None),
        ((8, 2, None), [WHEEL], 2, NOW + 5 * D),  # the dated hidden file is out in 5 days
        ((1, 2, 6), [], 3, NOW + 1 * D),  # every file hidden: the oldest is out first
        ((None, None, None), [], 3, None),  # undated files never come out by themselves
        ((None, 3, 8), [EVIL], 2, NOW + 4 * D),
    ],
)
def test_cooldown_says_how_many_files_are_hidden_and_until_when(
    ages: tuple[int | None, ...], kept: list[str], hidden: int, until: datetime | None
) -> None:
    r = rules("pypi", cooldown={"pypi": 7})
    files = [
        dist(name, uploaded=None if age is None else NOW - age * D)
        for name, age in zip((WHEEL, SDIST, EVIL), ages, strict=True)
    ]
    obs = [found("pypi", page("foo-bar", *files), url=url_of("pypi", FOO))]
    decision = served(decide(FOO, obs, r, now=NOW))
    assert sorted(filenames(decision)) == sorted(kept)
    assert (decision.hidden, decision.hidden_until) == (hidden, until)
    if until is not None:
        assert f"until {until:%Y-%m-%dT%H:%M:%SZ}" in decision.reason


def test_the_earliest_reveal_of_merged_sources_is_kept() -> None:
    r = rules("pypi", "mirror", policy="union-unsafe", cooldown={"pypi": 7, "mirror": 3})
    a = [found("pypi", page("foo-bar", dist(WHEEL, uploaded=NOW - 1 * D)), url=url_of("pypi", FOO))]
    b = [
        found(
            "mirror", page("foo-bar", dist(SDIST, uploaded=NOW - 1 * D)), url=url_of("mirror", FOO)
        )
    ]
    decision = served(decide(FOO, a + b, r, now=NOW))
    assert decision.hidden == 2 and decision.hidden_until == NOW + 2 * D  # the mirror's 3 days


def test_provenance_of_served_pages() -> None:
    hosted = msgspec.structs.replace(
        page("foo-bar", dist(WHEEL), alternates=("https://pypi.org/simple/foo-bar/",)),
        namespaces=(Namespace(name="foo", owned=True),),
    )
    r = rules("internal", "pypi")
    decision = served(decide(FOO, [found("internal", hosted)], r, now=NOW))
    assert decision.page.tracks == ()
    assert decision.page.namespaces == (Namespace(name="foo", owned=True),)
    assert decision.page.alternate_locations == ("https://pypi.org/simple/foo-bar/",)
    mirrored = page("foo-bar", dist(WHEEL), tracks=("https://pypi.org/simple/foo-bar/",))
    obs = [absent("internal"), found("pypi", mirrored, url="https://pypi.org/simple/foo-bar/")]
    decision = served(decide(FOO, obs, r, now=NOW))
    assert decision.page.tracks == ("https://pypi.org/simple/foo-bar/",)
    assert decision.page.namespaces is None
    obs = [
        absent("internal"),
        found("pypi", mirrored, url="https://mirror.example.org/simple/foo-bar/"),
    ]
    decision = served(decide(FOO, obs, r, now=NOW))
    assert decision.page.tracks == (
        "https://mirror.example.org/simple/foo-bar/",
        "https://pypi.org/simple/foo-bar/",
    )


def test_index_names_that_need_quoting_give_valid_toml() -> None:
    r = rules("internal", "pypi", policy="pep708", index="corp.main")
    obs = [found("internal", PRIVATE), found("pypi", PUBLIC, url=url_of("pypi", FOO))]
    fix = refused(decide(FOO, obs, r, now=NOW), "conflict").fix
    assert "[[index.'corp.main'.routes]]" in fix
