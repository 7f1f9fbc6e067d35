"""The closure's I/O against the real test upstream: PEP 658 ``.metadata`` where offered, the
wheel's METADATA otherwise, an sdist's PKG-INFO and build requirements, and failures."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.sync.closure_fetch import ClosureFetchError, FetchedClosure, fetch_closure
from headwater.sync.environments import Environment
from headwater.sync.lockfiles import Inputs, Root
from headwater.testing.corpus import Corpus
from headwater.testing.graph import GRAPH_ROOTS, add_graph
from headwater.testing.upstream import Upstream

ENVS = (
    Environment(python="3.11", platform="manylinux_2_28_aarch64"),
    Environment(python="3.13", platform="win_amd64"),
)


@pytest.fixture(params=[True, False], ids=["metadata", "no-metadata"])
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    corpus = Corpus()
    add_graph(corpus)
    with Upstream(corpus, metadata=request.param).running() as up:
        yield up


def closure_of(up: Upstream, roots: tuple[str, ...], **options: object) -> FetchedClosure:
    async def run() -> FetchedClosure:
        async with client_session(connections=4) as session:
            repo = HttpRepository(f"{up.url}/simple/", session, retry=RetryPolicy(attempts=2))
            inputs = Inputs(roots=tuple(Root(r, f"line {i}") for i, r in enumerate(roots)))
            return await fetch_closure(repo, inputs, ENVS, workers=4, **options)  # type: ignore[arg-type]

    return asyncio.run(run())


def test_metadata_from_pep_658_or_from_the_wheel_gives_the_same_closure(
    upstream: Upstream,
) -> None:
    fetched = closure_of(upstream, GRAPH_ROOTS)
    assert not fetched.closure.problems
    win = fetched.closure.files["cp313-win_amd64"]
    assert "winhelper" in win and "colorshim" in win and "tzshim" not in win
    arm = fetched.closure.files["cp311-manylinux_2_28_aarch64"]
    assert "tzshim" in arm and "winhelper" not in arm
    assert arm["core"] == {
        "core-1.0-cp39-abi3-manylinux_2_28_aarch64.whl",
        "core-1.2-cp39-abi3-manylinux_2_28_aarch64.whl",
    }


def test_an_sdist_s_dependencies_and_build_requirements_are_read_from_it(
    upstream: Upstream,
) -> None:
    # base 1.1's sdist is taken with sdists = "always"; srconly has only an sdist.
    plain = closure_of(upstream, ("srconly",))
    assert plain.closure.files["cp313-win_amd64"] == {"srconly": {"srconly-1.0.tar.gz"}}
    assert not plain.closure.problems
    built = closure_of(upstream, ("srconly",), build_requirements=True)
    # The generated sdists build with flit_core, which this upstream does not have: reported
    # against the requirement that led there, in each environment.
    assert {(p.origin, p.environment, p.kind) for p in built.closure.problems} == {
        ("line 0", "cp313-win_amd64", "missing-project"),
        ("line 0", "cp311-manylinux_2_28_aarch64", "missing-project"),
    }
    assert all("flit-core" in p.detail for p in built.closure.problems)


def test_a_failing_upstream_stops_the_closure_naming_what_it_needed() -> None:
    corpus = Corpus()
    add_graph(corpus)
    with Upstream(corpus).running() as up:
        up.add_fault("status", "/simple/web/", status=503)
        with pytest.raises(ClosureFetchError, match="page of web"):
            closure_of(up, GRAPH_ROOTS)
