"""docs/policy.md cannot drift from the code: its TOML and JSON examples are accepted by the policy's
parsers, and the refusal it quotes is the one decide() writes."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from headwater.policy import (
    Route,
    SourceKind,
    SourceSpec,
    decide,
    routes_from_mapping_file,
    rules_from_config,
)
from tests.policy.builders import NOW, dist, found, name, page, rules

DOC = Path(__file__).resolve().parents[2] / "docs" / "policy.md"
KINDS = {"internal": SourceKind.HOSTED, "pypi": SourceKind.PROXY}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_toml_examples_are_accepted() -> None:
    examples = blocks("toml")
    assert len(examples) >= 4
    for example in examples:
        for index, table in tomllib.loads(example)["index"].items():
            specs = [SourceSpec(s, KINDS.get(s, SourceKind.PROXY)) for s in table["sources"]]
            parsed = rules_from_config(index, table, specs, where="docs/policy.md")
            assert [s.name for s in parsed.sources] == table["sources"]


def test_mapping_file_example_is_accepted() -> None:
    (example,) = blocks("json")
    urls = {"https://download.pytorch.org/whl/": "pytorch", "https://pypi.org/simple/": "pypi"}
    routes = routes_from_mapping_file(example.encode(), source_urls=urls, where="docs")
    assert routes == (Route(("torch*",), ("pytorch",)), Route(("*",), ("pypi",), False))
    assert json.loads(example)["mapping"][0]["terminating"] is True


def test_quoted_refusal_is_what_decide_writes() -> None:
    project = name("foo-bar")
    r = rules("internal", "pypi", policy="pep708")
    observations = [
        found("internal", page("foo-bar", dist("foo_bar-1.0.tar.gz"))),
        found(
            "pypi",
            page("foo-bar", dist("foo_bar-9999.0.tar.gz")),
            url="https://pypi.org/simple/foo-bar/",
        ),
    ]
    decision = decide(project, observations, r, now=NOW)
    text = " ".join(DOC.read_text().split())
    assert decision.message in text  # type: ignore[union-attr]
    assert decision.fix in text  # type: ignore[union-attr]
