"""The scenario loader: a good file becomes frozen structs; a malformed one a clear error."""

from __future__ import annotations

import pytest

from headwater.simple.model import ProjectStatus
from headwater.testing.policy_scenarios import InvalidScenario, load_scenario

SHA = "a" * 64
GOOD = f"""
description = "two sources"
now = 2024-01-01T00:00:00Z

[index]
name = "main"
policy = "pep708"
[[index.routes]]
projects = ["foo-*"]
sources = ["internal"]

[[sources]]
name = "internal"
kind = "hosted"
namespaces = ["acme"]
[[sources.projects]]
name = "Foo_Bar"
[[sources.projects.files]]
filename = "foo_bar-1.0-py3-none-any.whl"
sha256 = "{SHA}"
upload-time = 2023-01-01T00:00:00Z
[[sources.projects]]
name = "gone"
deleted = true

[[sources]]
name = "pypi"
kind = "proxy"
url = "https://pypi.org/simple/"
cooldown = 3
[[sources.projects]]
name = "held"
status = "quarantined"

[[expect]]
project = "foo.bar"
outcome = "served"
sources = ["internal"]
filenames = ["foo_bar-1.0-py3-none-any.whl"]
hashes = ["{SHA}"]
"""


def test_good_file() -> None:
    scenario = load_scenario(GOOD, name="good")
    assert scenario.policy == "pep708"
    internal, pypi = scenario.sources
    foo = internal.project(scenario.expect[0].project.replace(".", "-"))  # type: ignore[arg-type]
    assert foo is not None and foo.name == "Foo_Bar"
    built = foo.page()
    assert built is not None and built.name == "foo-bar"
    assert built.files[0].hashes == {"sha256": SHA}
    assert built.files[0].url.startswith(f"../../packages/aa/aa/{SHA[4:]}/")
    assert internal.projects[1].page() is None  # deleted: the name is held, no page
    assert pypi.projects[0].status is ProjectStatus.QUARANTINED
    assert pypi.project_url("held") == "https://pypi.org/simple/held/"  # type: ignore[arg-type]
    assert scenario.index_table() == {
        "sources": ["internal", "pypi"],
        "policy": "pep708",
        "routes": [{"projects": ["foo-*"], "sources": ["internal"]}],
        "cooldown": {"pypi": 3.0},
    }
    assert scenario.namespaces() == (("acme", "internal"),)
    assert scenario.source_urls() == {"https://pypi.org/simple/": "pypi"}
    assert scenario.file_by_sha256(SHA)[0] == "internal"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("now = 2024-01-01T00:00:00Z", "now = 2024-01-01T00:00:00"), ["'now'", "timezone"]),
        (('kind = "hosted"', 'kind = "cache"'), ["sources[0]", "'cache'"]),
        (('url = "https://pypi.org/simple/"', ""), ["sources[1]", "needs 'url'"]),
        (
            ('url = "https://pypi.org/simple/"', 'url = "https://pypi.org/simple"'),
            ["ending in '/'"],
        ),
        ((f'sha256 = "{SHA}"', 'sha256 = "abc"'), ["sha256", "'abc'"]),
        (
            ('foo_bar-1.0-py3-none-any.whl"\nsha', 'bar_foo-1.0-py3-none-any.whl"\nsha'),
            ["not a file of project 'foo-bar'"],
        ),
        (('foo_bar-1.0-py3-none-any.whl"\nsha', 'foo_bar.exe"\nsha'), ["files[0]", "foo_bar.exe"]),
        (('outcome = "served"', 'outcome = "refused"'), ["'refusal'"]),
        (('outcome = "served"', 'outcome = "ok"'), ["'outcome'", "'ok'"]),
        (('sources = ["internal"]\nfilenames', 'sources = ["nexus"]\nfilenames'), ["'nexus'"]),
        (("deleted = true", 'deleted = "yes"'), ["'deleted'", "wrong type"]),
        (('status = "quarantined"', 'status = "hidden"'), ["'status'"]),
        (('name = "gone"', 'name = "gone"\nversion = "1"'), ["'version'", "unknown key"]),
        (('namespaces = ["acme"]', ""), []),  # fine: namespaces are optional
        (("cooldown = 3", 'cooldown = 3\nnamespaces = ["acme"]'), ["only hosted"]),
        (("[index]", "[index]\nrouts = []"), ["[index]", "'routs'"]),
        (('description = "two sources"', 'description = "two sources'), ["not valid TOML"]),
    ],
)
def test_malformed_files_name_the_problem(change: tuple[str, str], words: list[str]) -> None:
    old, new = change
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    if not words:
        load_scenario(text, name="bad")
        return
    with pytest.raises(InvalidScenario) as caught:
        load_scenario(text, name="bad")
    assert str(caught.value).startswith("policy scenario bad")
    for word in words:
        assert word in str(caught.value)
