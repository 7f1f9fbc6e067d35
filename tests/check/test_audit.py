"""The audit over real HTTP on loopback: the incidents of docs/policy.md's worked examples
(torchtriton, Birsan), hash pins, tracks, alternate-locations, an index down, against three test
upstreams."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

from headwater.check import (
    Client,
    Finding,
    IndexPlan,
    IndexSpec,
    Lookup,
    Pin,
    ProjectSourceLookup,
    Report,
    Requirement,
    Risk,
    audit,
    check_over_http,
    read_requirements_txt,
)
from headwater.repository.base import SourceProject, SourceUnavailable
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import NormalizedName, normalize_name
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.check.conftest import World


def _spec(name: str, url: str, **flags: bool) -> IndexSpec:
    return IndexSpec(name=name, url=url, origin=f"test: {name}", **flags)


def _plan(*specs: IndexSpec, client: Client = Client.PIP) -> IndexPlan:
    public = next(s.url for s in specs if s.public)
    return IndexPlan(client=client, indexes=specs, public=public)


def _three(world: World, *, public_used: bool = True) -> IndexPlan:
    return _plan(
        _spec("private", world.private.simple_url),
        _spec("public", world.public.simple_url, public=True, used=public_used),
        _spec("extra", world.extra.simple_url),
    )


def _reqs(*lines: str) -> list[Requirement]:
    return [
        Requirement(name=line, project=normalize_name(line), origin=f"test:{n}")
        for n, line in enumerate(lines, start=1)
    ]


def _run(requirements: Sequence[Requirement], plan: IndexPlan) -> Report:
    return asyncio.run(check_over_http(requirements, plan, read_timeout=10))


def _by_project(report: Report) -> dict[str, Finding]:
    return {f.project: f for f in report.findings}


def test_torchtriton_public_higher_version_is_confusion_and_shadowed(world: World) -> None:
    report = _run(_reqs("torchtriton"), _three(world))
    (finding,) = report.findings
    assert finding.risk is Risk.CONFUSION
    assert finding.risks == (Risk.CONFUSION, Risk.SHADOWED)
    assert {(s.index, s.highest) for s in finding.served_by} == {
        ("private", "2.0.0"),
        ("public", "3.0.0"),
    }
    assert (
        "pip would install 3.0.0 from 'public' (pip takes the highest version of all indexes), "
        "not 2.0.0 from 'private'"
    ) in finding.message
    assert finding.installs is not None and finding.installs.indexes == ("public",)
    assert "uv" not in finding.message  # the check follows pip: it makes no claim about uv
    assert "sources = ['private']" in finding.advice
    assert report.exit_status == 1


def test_shadowing_is_not_claimed_when_the_private_copy_is_newer(world: World) -> None:
    (finding,) = _run(_reqs("newer-private"), _three(world)).findings
    assert finding.risks == (Risk.CONFUSION,)


def test_uv_is_affected_when_the_public_index_comes_first(world: World) -> None:
    plan = _plan(
        _spec("public", world.public.simple_url, public=True),
        _spec("private", world.private.simple_url),
        client=Client.UV,
    )
    (finding,) = _run(_reqs("torchtriton"), plan).findings
    assert "uv would install 3.0.0 from 'public' (uv takes the first index that has" in (
        finding.message
    )
    assert finding.risks == (Risk.CONFUSION, Risk.SHADOWED)


def test_birsan_private_only_name_is_unclaimed_in_every_spelling(world: World) -> None:
    requirements = [
        Requirement(name=n, project=normalize_name(n), origin=f"r.txt:{i}")
        for i, n in enumerate(["Foo_Bar", "foo.bar", "FOO-BAR"], start=1)
    ]
    report = _run(requirements, _three(world))
    (finding,) = report.findings
    assert finding.project == "foo-bar"
    assert finding.names == ("Foo_Bar", "foo.bar", "FOO-BAR")
    assert finding.required_by == ("r.txt:1", "r.txt:2", "r.txt:3")
    assert finding.risk is Risk.UNCLAIMED
    assert "anyone can register foo-bar there" in finding.message
    assert "register foo-bar on the public index" in finding.advice
    assert report.exit_status == 1


def test_a_name_only_on_the_extra_index_is_unclaimed_too(world: World) -> None:
    (finding,) = _run(_reqs("extra-only"), _three(world)).findings
    assert finding.risk is Risk.UNCLAIMED
    assert [s.index for s in finding.served_by] == ["extra"]


def test_the_unused_public_index_is_asked_only_about_private_names(world: World) -> None:
    before_requests = world.public.requests("/simple/requests/")
    before_foo = world.public.requests("/simple/foo-bar/")
    report = _run(_reqs("requests", "Foo_Bar"), _three(world, public_used=False))
    found = _by_project(report)
    # The client does not use the public index, so requests is served by no index it uses...
    assert found["requests"].risk is Risk.MISSING
    assert world.public.requests("/simple/requests/") == before_requests
    # ...and the private name is still looked up there, to tell that nobody holds it.
    assert found["foo-bar"].risk is Risk.UNCLAIMED
    assert world.public.requests("/simple/foo-bar/") == before_foo + 1


def test_tracks_agreement_is_ok(world: World) -> None:
    (finding,) = _run(_reqs("tracked-lib"), _three(world)).findings
    assert finding.risk is Risk.OK, finding.message
    assert "which agree" in finding.message
    assert finding.decision is not None and "merged" in finding.decision


def test_alternate_locations_that_disagree_are_confusion(world: World) -> None:
    (finding,) = _run(_reqs("alt-lib"), _three(world)).findings
    assert finding.risk is Risk.CONFUSION
    assert "their alternate-locations disagree" in finding.message


def test_public_only_and_missing(world: World) -> None:
    found = _by_project(_run(_reqs("requests", "nowhere-at-all"), _three(world)))
    # The private indexes do not serve it, and pip takes the public copy: whether requests was
    # ever meant to be private cannot be seen from outside, so it is never called ok.
    assert found["requests"].risk is Risk.EXPOSED
    assert "pip would install 2.32.3 from 'public'" in found["requests"].message
    assert "'private' does not serve it (404)" in found["requests"].message
    assert found["requests"].served_by[0].versions == 2
    assert found["requests"].served_by[0].highest == "2.32.3"
    assert found["nowhere-at-all"].risk is Risk.MISSING
    # With the public index alone, nothing private is asked: ok.
    alone = _plan(_spec("public", world.public.simple_url, public=True))
    (finding,) = _run(_reqs("requests"), alone).findings
    assert finding.risk is Risk.OK, finding


def test_an_index_failing_for_one_name_is_unavailable_never_safe(world: World) -> None:
    fault = world.public.add_fault("status", path="/simple/flaky-lib/", status=503)
    try:
        report = _run(_reqs("flaky-lib", "requests"), _three(world))
    finally:
        world.public.faults.remove(fault.id)
    found = _by_project(report)
    assert found["flaky-lib"].risk is Risk.UNAVAILABLE
    (failure,) = found["flaky-lib"].unavailable
    assert failure.index == "public" and "HTTP 503" in failure.error
    assert found["requests"].risk is Risk.EXPOSED  # public only, private indexes asked
    assert report.exit_status == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_index_that_is_down_makes_every_name_unavailable(world: World) -> None:
    down = f"http://127.0.0.1:{_closed_port()}/simple/"
    plan = _plan(
        _spec("private", down),
        _spec("public", world.public.simple_url, public=True),
    )
    report = _run(_reqs("requests", "torchtriton"), plan)
    assert {f.risk for f in report.findings} == {Risk.UNAVAILABLE}
    assert all("connection failed" in f.unavailable[0].error for f in report.findings)


def test_hash_pinned_to_one_index_is_protected(world: World, tmp_path: Path) -> None:
    digest = world.sha256(world.private, "pinned-lib")
    req = tmp_path / "r.txt"
    req.write_text(f"pinned-lib==1.0 --hash=sha256:{digest}\n")
    (finding,) = _run(read_requirements_txt(req).requirements, _three(world)).findings
    assert finding.risk is Risk.PROTECTED
    assert "match files of 'private' only" in finding.message
    assert "without the hashes: confusion" in finding.message
    req.write_text(f"pinned-lib==1.0 --hash=sha256:{'0' * 64}\n")
    (finding,) = _run(read_requirements_txt(req).requirements, _three(world)).findings
    assert finding.risk is Risk.CONFUSION
    assert "no file on any index matches its --hash values" in finding.message


def test_find_links_are_local_and_always_mergeable(world: World, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    # A private wheel of a name the public index also has, at a higher version: pip would take
    # the public one (shadowed), though PEP 708 merges local sources.
    (wheels / "torchtriton-1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    (wheels / "only_here-1.0-py3-none-any.whl").write_bytes(b"x")
    (wheels / "notes.txt").write_text("ignored")
    plan = _plan(
        _spec("wheels", str(wheels), local=True),
        _spec("public", world.public.simple_url, public=True),
    )
    found = _by_project(_run(_reqs("torchtriton", "only-here"), plan))
    assert found["torchtriton"].risks == (Risk.SHADOWED,)
    assert found["only-here"].risk is Risk.UNCLAIMED
    plan = _plan(
        _spec("wheels", str(wheels), local=True),
        _spec("private", world.private.simple_url),
        _spec("public", world.public.simple_url, public=True, used=False),
    )
    (finding,) = _run(_reqs("foo-bar"), plan).findings
    assert finding.risk is Risk.UNCLAIMED  # private + nothing local; public lacks it
    assert [s.index for s in finding.served_by] == ["private"]


def test_an_html_only_index_is_read_too(tmp_path: Path) -> None:
    corpus = Corpus(releases=1, files=1)
    corpus.add_release("legacy-lib", "1.0")
    with Upstream(corpus, json=False).running() as html_only:
        plan = _plan(_spec("legacy", html_only.simple_url, public=True))
        (finding,) = _run(_reqs("legacy-lib"), plan).findings
    assert finding.risk is Risk.OK
    assert finding.served_by[0].highest == "1.0"


def test_a_uv_pin_to_one_index_is_not_confusion(world: World) -> None:
    plan = _plan(
        _spec("private", world.private.simple_url, explicit=True),
        _spec("public", world.public.simple_url, public=True),
        client=Client.UV,
    )
    pin = Pin(index="private", origin="pyproject.toml [tool.uv.sources] torchtriton")
    requirements = [
        Requirement(
            name="torchtriton", project=NormalizedName("torchtriton"), origin="p", pins=(pin,)
        ),
        # Not pinned: the explicit index is not consulted for it, so only public serves it.
        Requirement(name="foo-bar", project=NormalizedName("foo-bar"), origin="p"),
    ]
    found = _by_project(_run(requirements, plan))
    assert found["torchtriton"].risk is Risk.OK
    assert found["torchtriton"].pinned_to == ("private",)
    assert [s.index for s in found["torchtriton"].served_by] == ["private"]
    assert found["foo-bar"].risk is Risk.MISSING
    # A lock's pin binds pip too.
    lock_pin = Pin(index="private", origin="pylock.toml", clients=(Client.PIP, Client.UV))
    pip_plan = _plan(
        _spec("private", world.private.simple_url),
        _spec("public", world.public.simple_url, public=True),
    )
    locked = [msgspec.structs.replace(requirements[0], pins=(lock_pin,))]
    (finding,) = _run(locked, pip_plan).findings
    assert (finding.risk, finding.pinned_to) == (Risk.OK, ("private",))
    assert finding.message.startswith("pinned to 'private' (pylock.toml)")
    # A uv pin means nothing to pip: it merges both indexes.
    (finding,) = _run(requirements[:1], pip_plan).findings
    assert finding.risk is Risk.CONFUSION


class _MemorySource:
    """A composed-index source kept in memory (what a hosted index or mirror tree answers)."""

    kind = "hosted"
    name = "hosted"
    local = False

    def __init__(self, pages: dict[str, ProjectPage], held: set[str], down: bool = False) -> None:
        self.pages, self.held, self.down = pages, held, down

    async def project(self, name: NormalizedName) -> SourceProject:
        if self.down:
            raise SourceUnavailable("the database is unreachable", source=self.name)
        return SourceProject(self.pages.get(name), version="1", claimed=name in self.held)


class _Fixed:
    """A source that answers from a dictionary (for the audit's own plumbing)."""

    def __init__(self, spec: IndexSpec, answers: dict[str, Lookup]) -> None:
        self.spec, self.answers = spec, answers

    async def lookup(self, project: NormalizedName) -> Lookup:
        return self.answers.get(project, Lookup(state="absent", url=f"{self.spec.url}{project}/"))


def test_a_headwater_source_is_checked_in_process(world: World) -> None:
    page = ProjectPage(
        name=NormalizedName("internal"),
        files=(File(filename="internal-1.0-py3-none-any.whl", url="x", hashes={"sha256": "0"}),),
    )
    hosted_spec = _spec("hosted", "https://headwater.example/hosted/simple/")
    public_spec = _spec("public", world.public.simple_url, public=True)
    hosted = ProjectSourceLookup(
        hosted_spec, _MemorySource({"internal": page}, {"gone", "requests"})
    )
    plan = _plan(hosted_spec, public_spec)

    async def go() -> Report:
        from headwater.check import http_sources

        async with http_sources([public_spec]) as (public,):
            return await audit(_reqs("internal", "gone", "requests"), plan, [hosted, public])

    found = _by_project(asyncio.run(go()))
    assert found["internal"].risk is Risk.UNCLAIMED
    assert found["requests"].risk is Risk.CONFUSION  # held by the hosted index: Birsan (b)
    assert "held by 'hosted'" in found["requests"].message
    assert found["gone"].risk is Risk.MISSING  # held, deleted, and nowhere else
    down = ProjectSourceLookup(hosted_spec, _MemorySource({}, set(), down=True))
    report = asyncio.run(audit(_reqs("internal"), plan, [down, _Fixed(public_spec, {})]))
    assert report.findings[0].risk is Risk.UNAVAILABLE
    assert "database is unreachable" in report.findings[0].unavailable[0].error


def test_no_index_at_all_is_an_error(world: World) -> None:
    from headwater.check import CheckError

    plan = _plan(_spec("public", world.public.simple_url, public=True, used=False))
    with pytest.raises(CheckError, match="no index to check against"):
        _run(_reqs("requests"), plan)
