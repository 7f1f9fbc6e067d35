"""rules_from_config() reads the [index.NAME] table; routes_from_mapping_file() PEP 708's shape."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest

from headwater.policy import (
    PolicyError,
    Route,
    SourceKind,
    SourceSpec,
    plan,
    routes_from_mapping_file,
    rules_from_config,
)
from tests.policy.builders import name

SOURCES = (
    SourceSpec("internal", SourceKind.HOSTED),
    SourceSpec("pytorch", SourceKind.PROXY),
    SourceSpec("pypi", SourceKind.PROXY),
)
URLS = {"https://download.pytorch.org/whl": "pytorch", "https://pypi.org/simple/": "pypi"}

# The example of PEP 708, "Rejected Ideas: Only recommend that installers offer explicit
# configuration", with its URLs filled in.
PEP708_MAPPING = {
    "repositories": {
        "PyTorch": ["https://download.pytorch.org/whl/"],
        "PyPI": ["https://pypi.org/simple/"],
    },
    "mapping": [
        {"paths": ["torch*"], "repositories": ["PyTorch"], "terminating": True},
        {"paths": ["*"], "repositories": ["PyPI"]},
    ],
}

FULL = """
policy = "pep708"
routes-file = "routes.json"
cooldown = { pypi = 7, pytorch = 0.5 }

[[routes]]
projects = ["Acme_*", "torchtriton"]
sources = ["internal"]

[[routes]]
projects = ["requests"]
sources = ["pypi"]
terminating = false
"""


def parse(text: str, **kwargs: Any) -> Any:
    return rules_from_config("main", tomllib.loads(text), SOURCES, where="headwater.toml", **kwargs)


def test_defaults() -> None:
    rules = rules_from_config("main", {}, SOURCES, where="headwater.toml")
    assert rules.policy == "priority"
    assert rules.routes == ()
    assert rules.sources == SOURCES


def test_full_table() -> None:
    files = {"routes.json": json.dumps(PEP708_MAPPING).encode()}
    rules = parse(
        FULL,
        read_file=files.__getitem__,
        source_urls=URLS,
        namespaces=[("acme", "internal")],
    )
    assert rules.policy == "pep708"
    assert rules.routes == (
        Route(("acme-*", "torchtriton"), ("internal",)),
        Route(("requests",), ("pypi",), terminating=False),
        Route(("torch*",), ("pytorch",)),
        Route(("*",), ("pypi",), terminating=False),
    )
    assert [s.cooldown_days for s in rules.sources] == [None, 0.5, 7.0]
    assert rules.namespaces == (("acme", "internal"),)
    # Table routes come first: torchtriton goes to internal, other torch* to pytorch.
    assert plan(name("torchtriton"), rules).sources == ("internal",)
    assert plan(name("torchvision"), rules).sources == ("pytorch",)
    assert plan(name("numpy"), rules).sources == ("pypi", "internal", "pytorch")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("polcy = 'pep708'", ["headwater.toml [index.main]", "'polcy'", "known keys"]),
        ("policy = 'union'", ["'union'", "union-unsafe", "full name"]),
        ("routes = 'x'", ["'routes'", "[[index.main.routes]]"]),
        ("[[routes]]\nproject = ['x']\nsources = ['pypi']", ["routes[0]", "'project'"]),
        ("[[routes]]\nprojects = ['x']", ["routes[0]", "needs 'sources'"]),
        (
            "[[routes]]\nprojects = ['x']\nsources = ['nexus']",
            ["'nexus'", "internal, pytorch, pypi"],
        ),
        (
            "[[routes]]\nprojects = ['x']\nsources = ['pypi']\nterminating = 'yes'",
            ["'terminating'"],
        ),
        ("[[routes]]\nprojects = [1]\nsources = ['pypi']", ["routes[0] 'projects'", "strings"]),
        ("cooldown = 7", ["'cooldown'", "days per source"]),
        ("cooldown = { nexus = 7 }", ["'nexus'", "not one of"]),
        ("cooldown = { pypi = 'week' }", ["'cooldown.pypi'", "'week'"]),
        ("cooldown = { pypi = -1 }", ["'cooldown'", "-1"]),
        ("sources = ['pypi']", ["'sources'", "expected"]),
        ("routes-file = 'routes.json'", ["'routes-file'", "cannot be read"]),
        ("routes-file = 3", ["'routes-file'", "file name"]),
    ],
)
def test_bad_tables_are_refused_naming_the_key(text: str, words: list[str]) -> None:
    with pytest.raises(PolicyError) as caught:
        parse(text)
    for word in words:
        assert word in str(caught.value)


def test_routes_file_needs_the_source_urls() -> None:
    with pytest.raises(PolicyError, match=r"'routes-file' cannot be used here.*source_urls"):
        parse("routes-file = 'routes.json'", read_file=lambda path: b"{}")


def test_unreadable_routes_file_names_the_file() -> None:
    def missing(path: str) -> bytes:
        raise FileNotFoundError(2, "No such file or directory", path)

    with pytest.raises(PolicyError, match=r"cannot read 'routes\.json' \(No such file"):
        parse("routes-file = 'routes.json'", read_file=missing, source_urls=URLS)


def test_mapping_file_of_pep708() -> None:
    routes = routes_from_mapping_file(
        json.dumps(PEP708_MAPPING).encode(), source_urls=URLS, where="routes.json"
    )
    assert routes == (
        Route(("torch*",), ("pytorch",), terminating=True),
        Route(("*",), ("pypi",), terminating=False),
    )


def test_mapping_file_repository_with_several_urls() -> None:
    doc = {
        "repositories": {"Both": ["https://pypi.org/simple", "https://download.pytorch.org/whl/"]},
        "mapping": [{"paths": ["Foo_Bar"], "repositories": ["Both"], "terminating": True}],
    }
    routes = routes_from_mapping_file(json.dumps(doc).encode(), source_urls=URLS, where="m")
    assert routes == (Route(("foo-bar",), ("pypi", "pytorch")),)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"{not json", ["routes.json", "not valid JSON"]),
        (b"[]", ["JSON object"]),
        (b'{"repositories": {}, "mapping": [], "extra": 1}', ["'extra'"]),
        (b'{"repositories": [], "mapping": []}', ["'repositories' must be an object"]),
        (
            b'{"repositories": {"Evil": ["https://evil.example/simple/"]}, "mapping": []}',
            ["'Evil'", "'https://evil.example/simple/'", "not the URL of any source"],
        ),
        (
            b'{"repositories": {}, "mapping": [{"paths": ["x"], "repositories": ["PyPI"]}]}',
            ["mapping[0]", "'PyPI'"],
        ),
        (
            b'{"repositories": {"P": ["https://pypi.org/simple/"]}, "mapping": [{"paths": ["x"], "repositories": ["P"], "terminating": "yes"}]}',
            ["mapping[0]", "'terminating'"],
        ),
        (
            b'{"repositories": {"P": ["https://pypi.org/simple/"]}, "mapping": [{"paths": "x y", "repositories": ["P"]}]}',
            ["mapping[0]", "'x y'"],
        ),
    ],
)
def test_bad_mapping_files_are_refused(data: bytes, words: list[str]) -> None:
    with pytest.raises(PolicyError) as caught:
        routes_from_mapping_file(data, source_urls=URLS, where="routes.json")
    for word in words:
        assert word in str(caught.value)
