"""docs/check.md cannot drift from the code: every JSON field is documented, the JSON example
has exactly the fields the report has, every risk is explained, and every option is listed."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from headwater.check import Client, IndexSpec, Report, Risk, report_dict
from headwater.check.findings import Failure, Finding, Serving
from headwater.cli import check as check_cli

DOC = (Path(__file__).resolve().parents[2] / "docs" / "check.md").read_text()


def _sample() -> dict[str, object]:
    finding = Finding(
        project="x",
        names=("x",),
        required_by=("r:1",),
        risk=Risk.OK,
        risks=(Risk.OK,),
        message="m",
        advice="",
        served_by=(Serving(index="a", versions=1, highest="1"),),
        unavailable=(Failure(index="b", error="e"),),
    )
    spec = IndexSpec(name="a", url="https://a.example/simple/", origin="--index-url")
    return report_dict(
        Report(
            client=Client.PIP,
            public="https://pypi.org/simple/",
            indexes=(spec,),
            findings=(finding,),
        )
    )


def test_every_json_field_is_documented() -> None:
    data = _sample()
    requirement = data["requirements"][0]  # type: ignore[index]
    index = data["indexes"][0]  # type: ignore[index]
    for key in [*data, *requirement, *index]:
        assert f"| `{key}` |" in DOC, f"docs/check.md does not document JSON field {key!r}"


def test_the_json_example_has_the_reports_fields() -> None:
    example = json.loads(re.search(r"```json\n(.*?)```", DOC, flags=re.DOTALL).group(1))  # type: ignore[union-attr]
    data = _sample()
    assert set(example) == set(data)
    assert set(example["indexes"][0]) == set(data["indexes"][0])  # type: ignore[index]
    assert set(example["requirements"][0]) == set(data["requirements"][0])  # type: ignore[index]
    assert set(example["summary"]) == set(data["summary"])  # type: ignore[arg-type]


def test_every_risk_and_option_is_documented() -> None:
    for risk in Risk:
        assert f"| `{risk}` |" in DOC, f"docs/check.md does not explain risk {risk}"
    parser = argparse.ArgumentParser()
    check_cli.register(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["check"]  # type: ignore[union-attr]
    for action in sub._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}`" in DOC, f"docs/check.md does not list {flag}"


ROOT = Path(__file__).resolve().parents[2]
# A file of the repository as the docs name it: `tests/check/x.py`, `bench/b.py`, or a relative
# Markdown link (policy.md#anchor). Globs (tests/data/policy/*.toml) must match something.
_CITED = re.compile(
    r"`((?:[\w.-]+/)+[\w.*-]+\.(?:md|py|toml|txt))`|\]\(([\w./-]+\.md)(?:#[\w-]*)?\)"
)


def test_every_file_the_doc_cites_is_in_the_repository() -> None:
    cited = [a or f"docs/{b}" for a, b in _CITED.findall(DOC)]
    assert cited, "the pattern finds nothing: it no longer matches how the doc cites files"
    for path in cited:
        if path.startswith(("reference/", "/")) or ".." in path:
            raise AssertionError(f"docs/check.md cites {path!r}, which is outside the repository")
        assert list(ROOT.glob(path)), f"docs/check.md cites {path!r}, which does not exist"


def test_the_command_help_names_every_risk() -> None:
    from headwater.check import RISKS

    parser = argparse.ArgumentParser()
    check_cli.register(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["check"]  # type: ignore[union-attr]
    for risk in RISKS:
        assert f"({risk})" in (sub.description or ""), f"`headwater check --help` omits {risk}"
