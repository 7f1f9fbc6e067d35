"""Publisher identities: specs, certificates, PEP 740 publisher objects, and matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.policy.publishers import (
    GITHUB_ISSUER,
    GITLAB_ISSUER,
    InvalidPublisher,
    PublisherIdentity,
    identity_from_certificate,
    identity_from_pep740,
    matches,
    parse_publisher_spec,
)

ISSUER, CONFIG, REPO = "1.3.6.1.4.1.57264.1.8", "1.3.6.1.4.1.57264.1.18", "1.3.6.1.4.1.57264.1.12"


def gh(
    repo: str = "o/r", workflow: str | None = "release.yml", env: str | None = None
) -> PublisherIdentity:
    return PublisherIdentity(
        kind="github", issuer=GITHUB_ISSUER, repository=repo, workflow=workflow, environment=env
    )


# (actual, expected, matches?)
TRUTH = [
    (gh(), gh(), True),
    (gh(), gh(workflow=None), True),  # expected names no workflow: any
    (gh(workflow=None), gh(), False),  # expected names one the actual lacks
    (gh(), gh(workflow="other.yml"), False),
    (gh(repo="O/R"), gh(), True),  # GitHub names are case-insensitive
    (gh(repo="o/other"), gh(), False),
    (gh(env="pypi"), gh(env="pypi"), True),
    (gh(env="pypi"), gh(env="staging"), False),
    (gh(env=None), gh(env="pypi"), True),  # certificates carry no environment
    (gh(env="pypi"), gh(env=None), True),
    (
        PublisherIdentity(
            kind="gitlab", issuer=GITLAB_ISSUER, repository="o/r", workflow="release.yml"
        ),
        gh(),
        False,
    ),
    (
        PublisherIdentity(kind="google", issuer="https://accounts.google.com", subject="A@x.iam"),
        parse_publisher_spec("google:a@x.iam"),
        True,
    ),
    (
        PublisherIdentity(kind="other", issuer="https://github.com/login/oauth", subject="a@b"),
        parse_publisher_spec("other:https://github.com/login/oauth|a@b"),
        True,
    ),
    (
        PublisherIdentity(kind="other", issuer="https://evil.example", subject="a@b"),
        parse_publisher_spec("other:https://github.com/login/oauth|a@b"),
        False,
    ),
]


@pytest.mark.parametrize(("actual", "expected", "want"), TRUTH)
def test_matching_truth_table(
    actual: PublisherIdentity, expected: PublisherIdentity, want: bool
) -> None:
    assert matches(actual, expected) is want


def test_identity_from_github_and_gitlab_certificates() -> None:
    github = identity_from_certificate(
        {
            ISSUER: GITHUB_ISSUER,
            REPO: "https://github.com/pypa/pip",
            CONFIG: "https://github.com/pypa/pip/.github/workflows/release.yml@refs/tags/24.0",
        }
    )
    assert github == gh("pypa/pip")
    gitlab = identity_from_certificate(
        {
            ISSUER: GITLAB_ISSUER,
            REPO: "https://gitlab.com/g/sub/p",
            CONFIG: "https://gitlab.com/g/sub/p//ci/release.yml@refs/heads/main",
        }
    )
    assert (gitlab.kind, gitlab.repository, gitlab.workflow) == (
        "gitlab",
        "g/sub/p",
        "ci/release.yml",
    )
    other = identity_from_certificate({ISSUER: "https://github.com/login/oauth"}, "me@example.org")
    assert other.describe() == "me@example.org (issuer https://github.com/login/oauth)"


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "github",
        "github:",
        "github:onlyowner",
        "github:a/b/c",
        "gitlab:solo",
        "nope:x/y",
        "other:not-a-url|x",
        "other:https://issuer",
    ],
)
def test_bad_specs_are_refused_with_the_forms(spec: str) -> None:
    with pytest.raises(InvalidPublisher, match="github:OWNER/REPO"):
        parse_publisher_spec(spec)


_part = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)


@given(
    kind=st.sampled_from(["github", "gitlab"]),
    owner=_part,
    repo=_part,
    workflow=st.none() | _part.map(lambda s: s + ".yml"),
    env=st.none() | _part,
)
def test_spec_round_trips_and_matches_itself(
    kind: str, owner: str, repo: str, workflow: str | None, env: str | None
) -> None:
    spec = (
        f"{kind}:{owner}/{repo}" + (f":{workflow}" if workflow else "") + (f"@{env}" if env else "")
    )
    identity = parse_publisher_spec(spec)
    assert identity.spec() == spec
    assert parse_publisher_spec(identity.spec()) == identity
    assert matches(identity, identity)
    # The PEP 740 publisher object names the same identity.
    assert identity_from_pep740(identity.to_pep740()) == identity
    assert '"' not in identity.describe() and "\n" not in identity.describe()
