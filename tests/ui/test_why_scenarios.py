"""The why page and the server agree, over the policy truth table (tests/data/policy/*.toml).

Every scenario is realized as real servers (tests/server/test_index_e2e.realize: hosted, proxy,
mirror and directory sources, routes, namespaces, cooldowns, sources that are down); for every
expectation the why page's outcome (its ``#decision`` data attributes) must be what the Simple
API answers pip for the same project (status, ``X-Headwater-Sources``, ``X-Headwater-Refused``)
and what the scenario says.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from pathlib import Path

import pytest

from headwater.simple.names import normalize_name
from headwater.testing.policy_scenarios import load_scenario
from tests.server.test_index_e2e import SCENARIOS, get, realize

_DECISION = re.compile(r'<section id="decision" ([^>]*)>')
_ATTRIBUTE = re.compile(r'data-([a-z]+)="([^"]*)"')


def why(base: str, index: str, project: str) -> dict[str, str]:
    status, _, body = get(f"{base}/ui/{index}/project/{project}/why")
    assert status == 200, body[:500]
    found = _DECISION.search(body.decode())
    assert found is not None, body[:2000]
    return {k: html.unescape(v) for k, v in _ATTRIBUTE.findall(found.group(1))}


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_why_page_says_what_the_server_does(path: Path, tmp_path: Path) -> None:
    scenario = load_scenario(path.read_text(), name=path.name)
    with realize(scenario, tmp_path) as realized:
        base = realized.index_url.split(f"/{scenario.index}/simple/")[0]
        for expect in scenario.expect:
            project = normalize_name(expect.project)
            said = why(base, scenario.index, project)
            what = f"{path.name}: {project}: {said}"
            url = f"{realized.index_url}{project}/"
            status, headers, _ = get(url)
            # What the server does...
            if status == 200:
                assert said["outcome"] == "served", what
                assert said["sources"] == headers["x-headwater-sources"], what
            elif status == 404:
                assert said["outcome"] == "not-found", what
            else:
                assert status == 302, what
                final, final_headers, _ = get(urllib.parse.urljoin(url, headers["location"]))
                assert said["outcome"] == "refused", what
                assert said["refusal"] == final_headers["x-headwater-refused"], what
                assert int(said["status"]) == final, what
            # ...and what the scenario expects.
            assert said["outcome"] == expect.outcome, what
            if expect.sources and expect.outcome == "served":
                assert said["sources"].split(",") == list(expect.sources), what
            if expect.outcome == "refused":
                assert said["refusal"] == expect.refusal, what
