"""Do a token's claims describe a publisher? The truth table of headwater.server.oidc.claims."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.db import GitHubIdentity, GitLabIdentity, OidcIdentity
from headwater.server.oidc.claims import matching, mismatches

GITHUB = {
    "repository": "acme/tools",
    "repository_id": "1001",
    "repository_owner_id": "2002",
    "job_workflow_ref": "acme/tools/.github/workflows/release.yml@refs/tags/v1.0",
    "environment": "pypi",
    "ref": "refs/tags/v1.0",
}
GITLAB = {
    "project_path": "acme/group/tools",
    "project_id": "77",
    "ci_config_ref_uri": "gitlab.com/acme/group/tools//.gitlab-ci.yml@refs/heads/main",
    "environment": "release",
    "ref": "main",
    "ref_type": "branch",
}
GH = GitHubIdentity(repository="acme/tools", workflow="release.yml")
GH_FULL = GitHubIdentity(
    repository="acme/tools",
    workflow="release.yml",
    environment="pypi",
    ref="refs/tags/v1.0",
    repository_id="1001",
    repository_owner_id="2002",
)
GL = GitLabIdentity(project_path="acme/group/tools", workflow=".gitlab-ci.yml")
GL_FULL = GitLabIdentity(
    project_path="acme/group/tools",
    workflow=".gitlab-ci.yml",
    environment="release",
    ref="refs/heads/main",
    project_id="77",
)


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    claims = {**base, **changes}
    return {k: v for k, v in claims.items() if v is not None}


#: (case, identity, claims, the claim named in the mismatch; None: a match)
TABLE: list[tuple[str, Any, dict[str, Any], str | None]] = [
    ("github minimal", GH, GITHUB, None),
    ("github full", GH_FULL, GITHUB, None),
    (
        "github names are case-insensitive",
        GH_FULL,
        _with(
            GITHUB,
            repository="ACME/Tools",
            environment="PyPI",
            job_workflow_ref="Acme/Tools/.github/workflows/release.yml@refs/tags/v1.0",
        ),
        None,
    ),
    (
        "github reusable workflow ref of the repository",
        GH,
        _with(GITHUB, job_workflow_ref="acme/tools/.github/workflows/release.yml@0123abcd"),
        None,
    ),
    ("github wrong repository", GH, _with(GITHUB, repository="acme/other"), "repository"),
    ("github no repository", GH, _with(GITHUB, repository=None), "repository"),
    (
        "github wrong workflow",
        GH,
        _with(GITHUB, job_workflow_ref="acme/tools/.github/workflows/ci.yml@refs/tags/v1.0"),
        "job_workflow_ref",
    ),
    (
        "github workflow case matters",
        GH,
        _with(GITHUB, job_workflow_ref="acme/tools/.github/workflows/Release.yml@refs/tags/v1.0"),
        "job_workflow_ref",
    ),
    (
        "github workflow of another repository",
        GH,
        _with(GITHUB, job_workflow_ref="evil/tools/.github/workflows/release.yml@refs/tags/v1.0"),
        "job_workflow_ref",
    ),
    (
        "github workflow in a subdirectory",
        GH,
        _with(GITHUB, job_workflow_ref="acme/tools/.github/workflows/x/release.yml@refs/tags/v1.0"),
        "job_workflow_ref",
    ),
    (
        "github workflow ref without @",
        GH,
        _with(GITHUB, job_workflow_ref="acme/tools/.github/workflows/release.yml"),
        "job_workflow_ref",
    ),
    ("github no workflow ref", GH, _with(GITHUB, job_workflow_ref=None), "job_workflow_ref"),
    ("github wrong environment", GH_FULL, _with(GITHUB, environment="staging"), "environment"),
    ("github no environment", GH_FULL, _with(GITHUB, environment=None), "environment"),
    ("github any environment when not named", GH, _with(GITHUB, environment="staging"), None),
    ("github wrong ref", GH_FULL, _with(GITHUB, ref="refs/heads/main"), "ref"),
    (
        "github resurrected repository",
        GH_FULL,
        _with(GITHUB, repository_id="9999"),
        "repository_id",
    ),
    (
        "github resurrected owner",
        GH_FULL,
        _with(GITHUB, repository_owner_id="9999"),
        "repository_owner_id",
    ),
    ("github numeric id as a number", GH_FULL, _with(GITHUB, repository_id=1001), None),
    ("github id as a bool", GH_FULL, _with(GITHUB, repository_id=True), "repository_id"),
    ("github repository as a list", GH, _with(GITHUB, repository=["acme/tools"]), "repository"),
    ("gitlab minimal", GL, GITLAB, None),
    ("gitlab full", GL_FULL, GITLAB, None),
    (
        "gitlab path case-insensitive",
        GL,
        _with(
            GITLAB,
            project_path="Acme/Group/Tools",
            ci_config_ref_uri="gitlab.com/Acme/Group/Tools//.gitlab-ci.yml@refs/heads/main",
        ),
        None,
    ),
    ("gitlab wrong project", GL, _with(GITLAB, project_path="acme/other"), "project_path"),
    (
        "gitlab wrong CI file",
        GL,
        _with(
            GITLAB, ci_config_ref_uri="gitlab.com/acme/group/tools//ci/other.yml@refs/heads/main"
        ),
        "ci_config_ref_uri",
    ),
    (
        "gitlab CI file of another project",
        GL,
        _with(GITLAB, ci_config_ref_uri="gitlab.com/evil/tools//.gitlab-ci.yml@refs/heads/main"),
        "ci_config_ref_uri",
    ),
    (
        "gitlab CI file on another host",
        GL,
        _with(
            GITLAB,
            ci_config_ref_uri="evil.example/acme/group/tools//.gitlab-ci.yml@refs/heads/main",
        ),
        "ci_config_ref_uri",
    ),
    (
        "gitlab environment is case-sensitive",
        GL_FULL,
        _with(GITLAB, environment="Release"),
        "environment",
    ),
    ("gitlab branch ref as a tag", GL_FULL, _with(GITLAB, ref_type="tag"), "ref"),
    ("gitlab other branch", GL_FULL, _with(GITLAB, ref="dev"), "ref"),
    ("gitlab project id", GL_FULL, _with(GITLAB, project_id="78"), "project_id"),
    (
        "gitlab self-managed issuer",
        GitLabIdentity(
            project_path="acme/tools", workflow="ci.yml", issuer="https://git.example.org"
        ),
        {
            "project_path": "acme/tools",
            "ci_config_ref_uri": "git.example.org/acme/tools//ci.yml@refs/heads/main",
        },
        None,
    ),
    (
        "oidc exact",
        OidcIdentity(issuer="https://i", claims={"sub": "job:1", "team": "core"}),
        {"sub": "job:1", "team": "core", "x": 1},
        None,
    ),
    (
        "oidc missing claim",
        OidcIdentity(issuer="https://i", claims={"sub": "job:1", "team": "core"}),
        {"sub": "job:1"},
        "team",
    ),
    (
        "oidc case matters",
        OidcIdentity(issuer="https://i", claims={"sub": "job:1"}),
        {"sub": "JOB:1"},
        "sub",
    ),
    (
        "oidc number claim",
        OidcIdentity(issuer="https://i", claims={"project_id": "5"}),
        {"project_id": 5},
        None,
    ),
]


@pytest.mark.parametrize(("case", "identity", "claims", "claim"), TABLE, ids=[r[0] for r in TABLE])
def test_claims_truth_table(
    case: str, identity: Any, claims: dict[str, Any], claim: str | None
) -> None:
    why = mismatches(identity, claims)
    if claim is None:
        assert why == [], case
    else:
        assert why, case
        assert any(line.startswith(f"{claim}:") for line in why), (case, why)


_FIELDS = {
    "repository": "repository",
    "environment": "environment",
    "ref": "ref",
    "repository_id": "repository_id",
    "repository_owner_id": "repository_owner_id",
}


@given(
    field=st.sampled_from(sorted(_FIELDS)),
    value=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-.", min_size=1, max_size=20),
)
def test_changing_any_claim_a_github_publisher_names_breaks_the_match(
    field: str, value: str
) -> None:
    original = GITHUB[_FIELDS[field]]
    if value.casefold() == original.casefold():
        return
    assert mismatches(GH_FULL, _with(GITHUB, **{_FIELDS[field]: value}))


@given(
    st.dictionaries(
        st.text(max_size=10),
        st.one_of(
            st.text(max_size=10), st.integers(), st.none(), st.lists(st.integers(), max_size=2)
        ),
        max_size=8,
    )
)
def test_arbitrary_claims_never_raise(claims: dict[str, Any]) -> None:
    for identity in (GH_FULL, GL_FULL, OidcIdentity(issuer="https://i", claims={"sub": "x"})):
        mismatches(identity, claims)


def test_matching_splits_publishers() -> None:
    matched, missed = matching([GH, GL], lambda i: i, GITHUB)
    assert matched == [GH]
    assert missed[0][0] == GL and missed[0][1]
