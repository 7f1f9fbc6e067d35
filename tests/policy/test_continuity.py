"""The publisher-continuity guard and require-provenance: truth table and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.policy.continuity import (
    Acceptance,
    ContinuityRules,
    FileProvenance,
    decide_publishers,
)
from headwater.policy.publishers import PublisherIdentity, parse_publisher_spec

A = parse_publisher_spec("github:numpy/numpy:wheels.yml")
A_ENV = parse_publisher_spec("github:numpy/numpy:wheels.yml@pypi")
B = parse_publisher_spec("github:mallory/numpy:release.yml")
LAPTOP = parse_publisher_spec("other:https://github.com/login/oauth|maintainer@example.org")
CONTINUITY = ContinuityRules(continuity=True)


def f(version: str, *publishers: PublisherIdentity, order: float | None = None) -> FileProvenance:
    return FileProvenance(
        filename=f"numpy-{version}.tar.gz",
        version=version,
        order=float(version.split(".")[0]) if order is None else order,
        publishers=publishers,
    )


# (name, files, rules, accepted versions, held filenames -> reason)
TRUTH: list[tuple[str, list[FileProvenance], ContinuityRules, list[str], dict[str, str]]] = [
    ("no rules: all served", [f("1.0", A), f("2.0"), f("3.0", B)], ContinuityRules(), [], {}),
    ("unattested history", [f("1.0"), f("2.0")], CONTINUITY, [], {}),
    ("same publisher", [f("1.0", A), f("2.0", A)], CONTINUITY, [], {}),
    ("first attested establishes", [f("1.0"), f("2.0", A), f("3.0", A)], CONTINUITY, [], {}),
    ("environment ignored", [f("1.0", A), f("2.0", A_ENV)], CONTINUITY, [], {}),
    (
        "then unattested",
        [f("1.0", A), f("2.0")],
        CONTINUITY,
        [],
        {"numpy-2.0.tar.gz": "unattested"},
    ),
    (
        "then another publisher",
        [f("1.0", A), f("2.0", B)],
        CONTINUITY,
        [],
        {"numpy-2.0.tar.gz": "publisher-changed"},
    ),
    (
        "hijack from a laptop",
        [f("1.0", A), f("2.0", A), f("3.0", LAPTOP)],
        CONTINUITY,
        [],
        {"numpy-3.0.tar.gz": "publisher-changed"},
    ),
    ("both publishers, one known", [f("1.0", A), f("2.0", B, A)], CONTINUITY, [], {}),
    ("accepted change", [f("1.0", A), f("2.0", B), f("3.0", B)], CONTINUITY, ["2.0"], {}),
    (
        "held release establishes nothing",
        [f("1.0", A), f("2.0", B), f("3.0", B)],
        CONTINUITY,
        [],
        {"numpy-2.0.tar.gz": "publisher-changed", "numpy-3.0.tar.gz": "publisher-changed"},
    ),
    (
        "order, not listing, decides",
        [f("2.0", B, order=2), f("1.0", A, order=1)],
        CONTINUITY,
        [],
        {"numpy-2.0.tar.gz": "publisher-changed"},
    ),
    (
        "required",
        [f("1.0", A), f("2.0")],
        ContinuityRules(required=True),
        [],
        {"numpy-2.0.tar.gz": "unattested"},
    ),
    (
        "expected publisher",
        [f("1.0", A), f("2.0", B), f("3.0")],
        ContinuityRules(expected=(A,)),
        [],
        {"numpy-2.0.tar.gz": "unexpected-publisher", "numpy-3.0.tar.gz": "unattested"},
    ),
    ("expected, accepted", [f("1.0", B)], ContinuityRules(expected=(A,)), ["1.0"], {}),
]


@pytest.mark.parametrize(
    ("name", "files", "rules", "accepted", "held"), TRUTH, ids=[t[0] for t in TRUTH]
)
def test_truth_table(
    name: str,
    files: list[FileProvenance],
    rules: ContinuityRules,
    accepted: list[str],
    held: dict[str, str],
) -> None:
    decision = decide_publishers(
        "numpy", files, rules, [Acceptance(version=v) for v in accepted], index="pypi"
    )
    assert {h.filename: h.reason for h in decision.held} == held
    assert set(decision.served) == {x.filename for x in files} - set(held)


def test_the_refusal_names_both_identities_and_the_fix() -> None:
    decision = decide_publishers("numpy", [f("1.0", A), f("2.0", LAPTOP)], CONTINUITY, index="pypi")
    (held,) = decision.held
    assert "maintainer@example.org" in held.message
    assert "GitHub numpy/numpy, workflow wheels.yml" in held.message
    assert held.fix.startswith("if this publisher is legitimate, accept the release: ")
    assert "headwater provenance accept pypi numpy 2.0" in held.fix
    for text in (held.message, held.fix):
        assert '"' not in text and "\n" not in text


_identity = st.sampled_from([A, A_ENV, B, LAPTOP])
_file = st.builds(
    lambda v, order, pubs: FileProvenance(
        filename=f"numpy-{v}.tar.gz", version=f"{v}.0", order=order, publishers=tuple(pubs)
    ),
    st.integers(1, 30),
    st.floats(0, 100, allow_nan=False),
    st.lists(_identity, max_size=2, unique=True),
)
_files = st.lists(_file, max_size=12, unique_by=lambda x: x.filename)
_rules = st.builds(
    ContinuityRules,
    continuity=st.booleans(),
    required=st.booleans(),
    expected=st.sampled_from([(), (A,), (B, LAPTOP)]),
)


@given(files=_files, rules=_rules)
def test_every_file_is_served_or_held_once(
    files: list[FileProvenance], rules: ContinuityRules
) -> None:
    decision = decide_publishers("numpy", files, rules)
    held = [h.filename for h in decision.held]
    assert sorted([*decision.served, *held]) == sorted(x.filename for x in files)


@given(files=_files, rules=_rules)
def test_accepting_every_release_holds_nothing(
    files: list[FileProvenance], rules: ContinuityRules
) -> None:
    accepted = [Acceptance(version=x.version) for x in files]
    assert decide_publishers("numpy", files, rules, accepted).held == ()


@given(files=_files)
def test_one_publisher_throughout_is_never_held(files: list[FileProvenance]) -> None:
    same = [
        FileProvenance(filename=x.filename, version=x.version, order=x.order, publishers=(A,))
        for x in files
    ]
    assert (
        decide_publishers("numpy", same, ContinuityRules(continuity=True, required=True)).held == ()
    )


@given(files=_files, rules=_rules)
def test_the_listing_order_does_not_matter(
    files: list[FileProvenance], rules: ContinuityRules
) -> None:
    one = decide_publishers("numpy", files, rules)
    other = decide_publishers("numpy", list(reversed(files)), rules)
    assert sorted(one.served) == sorted(other.served)
    assert sorted(h.filename for h in one.held) == sorted(h.filename for h in other.held)


@given(files=_files)
def test_without_rules_nothing_is_held(files: list[FileProvenance]) -> None:
    assert decide_publishers("numpy", files, ContinuityRules()).held == ()
