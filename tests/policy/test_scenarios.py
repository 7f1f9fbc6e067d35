"""Every scenario in tests/data/policy/ through plan() and decide()."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.policy import NotServed, Refused, Served
from headwater.simple.names import normalize_name
from headwater.testing.policy_scenarios import Scenario, load_scenario
from tests.policy.scenario_index import ask, rules_of

DATA = Path(__file__).resolve().parents[1] / "data" / "policy"
FILES = sorted(DATA.glob("*.toml"))


def _load(path: Path) -> Scenario:
    return load_scenario(path.read_text(), name=path.stem)


def test_the_scenarios_the_issue_asks_for_exist() -> None:
    names = {path.stem for path in FILES}
    for wanted in (
        "torchtriton",
        "torchtriton-down",
        "birsan",
        "birsan-down",
        "hash-pinned",
        "mirror-tracks",
        "alternate-locations",
        "piwheels",
        "namespaces",
        "cooldown",
    ):
        assert wanted in names


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: Path) -> None:
    scenario = _load(path)
    rules = rules_of(scenario)
    for expectation in scenario.expect:
        decision = ask(scenario, rules, expectation.project)
        where = f"{scenario.name}: {expectation.project}: got {decision!r}"
        project = normalize_name(expectation.project)
        if expectation.outcome == "served":
            assert isinstance(decision, Served), where
            assert set(decision.sources) == set(expectation.sources), where
            assert decision.page.name == project
            served = [f.filename for f in decision.page.files]
            assert len(served) == len(set(served)), where
            if expectation.filenames is not None:
                assert sorted(served) == sorted(expectation.filenames), where
            hashes = {f.hashes["sha256"] for f in decision.page.files}
            for pinned in expectation.hashes:
                assert pinned in hashes, f"{where}: pinned {pinned} not served"
        elif expectation.outcome == "refused":
            assert isinstance(decision, Refused), where
            assert decision.kind == expectation.refusal, where
            assert set(decision.sources) == set(expectation.sources), where
            assert decision.status == (503 if decision.kind == "unavailable" else 409)
            for text in (decision.message, decision.fix):
                assert "\n" not in text and '"' not in text, where
            assert repr(project) in decision.message, where
            for source in expectation.sources:
                assert repr(source) in decision.message, where
        else:
            assert isinstance(decision, NotServed), where
            assert decision.project == project


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario_is_realistic(path: Path) -> None:
    # The end-to-end tests serve these through a real server to real pip and uv: remote sources
    # need a URL, files belong to their project, and a pinned hash is a file of the scenario.
    scenario = _load(path)
    assert scenario.description.strip()
    for source in scenario.sources:
        if source.kind in ("mirror", "proxy"):
            assert source.url.startswith("https://")
    for expectation in scenario.expect:
        for pinned in expectation.hashes:
            owner, _ = scenario.file_by_sha256(pinned)
            assert owner in expectation.sources
