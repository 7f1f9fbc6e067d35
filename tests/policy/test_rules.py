"""Rules are validated on construction, and plan() follows routes, namespaces and the policy."""

from __future__ import annotations

import pytest

from headwater.policy import PolicyError, Route, Rules, SourceKind, SourceSpec, plan
from tests.policy.builders import name, rules


def test_source_kinds_and_locality() -> None:
    assert SourceSpec("wheelhouse", SourceKind.DIRECTORY).local
    for kind in ("hosted", "mirror", "proxy"):
        spec = SourceSpec("s", kind)  # type: ignore[arg-type]
        assert spec.kind is SourceKind(kind)
        assert not spec.local and spec.remote


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: SourceSpec("pypi", "cache"), ["'cache'", "hosted"]),  # type: ignore[arg-type]
        (lambda: SourceSpec('py"pi', SourceKind.PROXY), ["source name"]),
        (lambda: SourceSpec("pypi", SourceKind.PROXY, -1), ["cooldown", "-1"]),
        (lambda: SourceSpec("pypi", SourceKind.PROXY, float("nan")), ["cooldown"]),
        (lambda: Route((), ("pypi",)), ["projects"]),
        (lambda: Route(("foo",), ()), ["'foo'", "sources"]),
        (lambda: Route(("foo/bar",), ("pypi",)), ["'foo/bar'", "glob"]),
        (lambda: Route(("foo",), ("pypi", "pypi")), ["twice"]),
        (lambda: Rules("main", ()), ["'main'", "no sources"]),
        (lambda: rules("pypi", "pypi"), ["'pypi'", "twice"]),
        (lambda: rules("pypi", policy="union"), ["'union'", "union-unsafe"]),
        (
            lambda: rules("pypi", routes=(Route(("foo",), ("internal",)),)),
            ["'foo'", "'internal'", "pypi"],
        ),
        (lambda: rules("pypi", namespaces=(("acme", "pypi"),)), ["'acme'", "proxy", "hosted"]),
        (lambda: rules("pypi", namespaces=(("acme", "internal"),)), ["'internal'", "not one"]),
        (lambda: rules("internal", namespaces=(("acme!", "internal"),)), ["'acme!'"]),
        (
            lambda: rules(
                "internal", "team", namespaces=(("acme", "internal"), ("Acme.ML", "team"))
            ),
            ["'acme-ml'", "'acme'", "overlap"],
        ),
        (
            lambda: rules(
                "internal",
                "pypi",
                namespaces=(("acme", "internal"),),
                routes=(Route(("acme-x",), ("pypi",), terminating=False),),
            ),
            ["'acme-x'", "terminating = true", "namespace 'acme'"],
        ),
    ],
)
def test_invalid_rules_are_refused_with_a_clear_message(build: object, words: list[str]) -> None:
    with pytest.raises(PolicyError) as caught:
        build()  # type: ignore[operator]
    for word in words:
        assert word in str(caught.value)


def test_patterns_and_namespaces_are_normalized() -> None:
    route = Route(("Foo_Bar*", "Torch.Triton"), ("pypi",))
    assert route.patterns == ("foo-bar*", "torch-triton")
    assert route.match(name("foo-bar-baz")) == "foo-bar*"
    assert route.match(name("foo_bar")) == "foo-bar*"
    assert route.match(name("torch_triton")) == "torch-triton"
    assert route.match(name("foobar")) is None
    r = rules("internal", namespaces=(("ACME_Corp", "internal"),))
    assert r.namespaces == (("acme-corp", "internal"),)


@pytest.mark.parametrize(
    ("project", "sources", "why"),
    [
        ("acme", ("internal",), "namespace 'acme' of internal"),
        ("acme-billing", ("internal",), "namespace 'acme' of internal"),
        ("acmefoo", ("internal", "mirror", "pypi"), "priority"),
        ("torchtriton", ("mirror",), "route 'torch*' -> mirror"),
        ("requests", ("pypi", "internal", "mirror"), "route 'requests' -> pypi first"),
        (
            "acme-legacy",
            ("pypi",),
            "route 'acme-legacy' -> pypi (overrides namespace 'acme' of internal)",
        ),
        ("acme-glob", ("internal",), "namespace 'acme' of internal"),
    ],
)
def test_plan_precedence(project: str, sources: tuple[str, ...], why: str) -> None:
    r = rules(
        "internal",
        "mirror",
        "pypi",
        namespaces=(("acme", "internal"),),
        routes=(
            Route(("torch*",), ("mirror",)),
            Route(("requests",), ("pypi",), terminating=False),
            Route(("acme-legacy",), ("pypi",)),
            # A non-terminating glob never takes a namespaced name elsewhere.
            Route(("acme-g*",), ("pypi",), terminating=False),
        ),
    )
    the_plan = plan(name(project), r)
    assert the_plan.sources == sources
    assert the_plan.why == why
    assert the_plan.mode == "first"


def test_plan_mode_follows_the_policy() -> None:
    assert plan(name("x"), rules("pypi", "mirror", policy="pep708")).mode == "all"
    assert plan(name("x"), rules("pypi", "mirror", policy="union-unsafe")).mode == "all"
    assert plan(name("x"), rules("pypi", "mirror")).mode == "first"


def test_first_matching_route_wins() -> None:
    r = rules(
        "internal",
        "pypi",
        routes=(Route(("foo-*",), ("internal",)), Route(("foo-bar",), ("pypi",))),
    )
    assert plan(name("Foo.Bar"), r).sources == ("internal",)
    assert plan(name("Foo.Bar"), r).claims
