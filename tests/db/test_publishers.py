"""Trusted publishers, minted tokens and the publishing log, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from headwater.db import (
    AddResult,
    ConfiguredPublisher,
    Conflict,
    Database,
    GitHubIdentity,
    GitLabIdentity,
    Grant,
    InvalidArgument,
    NotFound,
    OidcIdentity,
    Replayed,
)
from tests.db.factories import new_file

GH = GitHubIdentity(repository="acme/tools", workflow="release.yml", environment="pypi")
GL = GitLabIdentity(project_path="acme/group/tools", workflow=".gitlab-ci.yml")
ANY = OidcIdentity(issuer="https://idp.example.com/", claims={"sub": "job:acme"})


def _later(minutes: int = 10) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def _mint(db: Database, *grants: Grant, jti: str = "j1", **extra: object) -> str:
    minted = db.mint_token(
        issuer=GH.issuer,
        subject="repo:acme/tools:environment:pypi",
        jti=jti,
        jti_expires=_later(),
        claims={"repository": "acme/tools", "jti": jti, "nested": {"a": [1, 2]}},
        grants=grants,
        lifetime=timedelta(minutes=15),
        **extra,  # type: ignore[arg-type]
    )
    return minted.token


# --- the publisher model ---------------------------------------------------------------------


def test_an_active_publisher_needs_the_project_and_a_pending_one_its_absence(db: Database) -> None:
    with pytest.raises(NotFound, match="--pending"):
        db.add_publisher("main", "acme-tools", GH)
    pending = db.add_publisher("main", "Acme_Tools", GH, pending=True)
    assert (pending.project, pending.status) == ("acme-tools", "pending")
    db.create_user("alice")
    db.add_file("main", "other", new_file("other-1.0.tar.gz"), uploader="alice")
    with pytest.raises(Conflict, match="exists"):
        db.add_publisher("main", "other", GL, pending=True)
    active = db.add_publisher("main", "other", GL)
    assert active.status == "active"
    assert [p.identity for p in db.publishers_for("main", "OTHER")] == [GL]
    assert [p.identity for p in db.publishers_for("main", "acme-tools")] == [GH]
    assert db.publishers_for("main", "nothing") == []
    assert db.publishers_for("other-index", "other") == []
    # The issuer is stored without a trailing slash; lookups by issuer find it.
    oidc = db.add_publisher("main", "other", ANY)
    assert oidc.identity.issuer == "https://idp.example.com"
    assert [p.id for p in db.publishers_of_issuer("https://idp.example.com")] == [oidc.id]


def test_the_same_identity_is_added_once_per_project(db: Database) -> None:
    db.add_publisher("main", "acme-tools", GH, pending=True)
    with pytest.raises(Conflict, match="already"):
        db.add_publisher("main", "acme-tools", GH, pending=True)
    db.add_publisher(
        "main",
        "acme-tools",
        GitHubIdentity(repository="acme/tools", workflow="b.yml"),
        pending=True,
    )


@pytest.mark.parametrize(
    "identity",
    [
        GitHubIdentity(repository="acme", workflow="release.yml"),
        GitHubIdentity(repository="acme/tools", workflow=".github/workflows/release.yml"),
        GitHubIdentity(repository="acme/tools", workflow="release.sh"),
        GitHubIdentity(repository="acme/tools", workflow="r.yml", repository_id="12a"),
        GitHubIdentity(repository="acme/tools", workflow="r.yml", environment=""),
        GitHubIdentity(repository="acme/tools", workflow="r.yml", environment="a\nb"),
        GitHubIdentity(repository="acme/tools", workflow="r.yml", issuer="http://evil.example"),
        GitHubIdentity(repository="acme/tools", workflow="r.yml", issuer="ftp://x"),
        GitHubIdentity(repository="acme/tools", workflow="r.yml", issuer="https://x/?q=1"),
        GitHubIdentity(repository="acme/tools", workflow="r.yml", issuer="https://u:p@x"),
        GitLabIdentity(project_path="tools"),
        GitLabIdentity(project_path="acme/tools", project_id="x"),
        OidcIdentity(issuer="https://idp.example.com", claims={}),
        OidcIdentity(issuer="https://idp.example.com", claims={"aud": "x", "iss": "y"}),
        OidcIdentity(issuer="https://idp.example.com", claims={"bad name": "x"}),
        OidcIdentity(issuer="https://idp.example.com", claims={"sub": "x" * 300}),
        OidcIdentity(issuer="", claims={"sub": "x"}),
    ],
)
def test_identities_that_could_match_more_than_meant_are_refused(
    db: Database, identity: GitHubIdentity | GitLabIdentity | OidcIdentity
) -> None:
    with pytest.raises(InvalidArgument, match="invalid"):
        db.add_publisher("main", "acme-tools", identity, pending=True)
    assert db.publishers() == []


def test_a_loopback_issuer_may_be_http(db: Database) -> None:
    identity = OidcIdentity(issuer="http://127.0.0.1:8123", claims={"sub": "x"})
    assert db.add_publisher("main", "p", identity, pending=True).identity == identity


def test_a_pending_publisher_creates_the_project_binds_and_its_owner_owns_it(
    db: Database,
) -> None:
    db.create_user("alice")
    pending = db.add_publisher("main", "acme-tools", GH, pending=True, owner="alice")
    result = db.add_file(
        "main", "acme-tools", new_file(), uploader="trusted-publisher:x", publisher=pending.id
    )
    assert result is AddResult.CREATED
    (bound,) = db.publishers("main", "acme-tools")
    assert bound.status == "active"
    assert db.owners("main", "acme-tools") == ["alice"]
    record = db.project("main", "acme-tools")
    assert record is not None and record.files[0].uploader == "trusted-publisher:x"
    # Deleting the project deletes its bound publishers, as on PyPI.
    db.delete_project("main", "acme-tools", actor="alice")
    assert db.publishers() == []


def test_a_pending_publisher_goes_stale_when_someone_else_creates_the_project(
    db: Database,
) -> None:
    db.create_user("mallory")
    pending = db.add_publisher("main", "acme-tools", GH, pending=True)
    db.add_file("main", "acme-tools", new_file(), uploader="mallory")
    (stale,) = db.publishers("main", "acme-tools")
    assert stale.status == "stale"
    assert db.publishers_for("main", "acme-tools") == []
    # It can no longer add files to mallory's project.
    result = db.add_file(
        "main",
        "acme-tools",
        new_file("acme_tools-2.0-py3-none-any.whl", version="2.0", digest="b"),
        uploader="trusted-publisher:x",
        publisher=pending.id,
    )
    assert result is AddResult.NOT_OWNER


def test_a_publisher_adds_only_to_its_own_project(db: Database) -> None:
    db.create_user("alice")
    db.add_file("main", "acme-tools", new_file(), uploader="alice")
    db.add_file("main", "other", new_file("other-1.0.tar.gz", digest="c"), uploader="alice")
    mine = db.add_publisher("main", "acme-tools", GH)
    result = db.add_file(
        "main", "other", new_file("other-2.0.tar.gz", version="2.0", digest="d"), publisher=mine.id
    )
    assert result is AddResult.NOT_OWNER
    result = db.add_file(
        "main",
        "acme-tools",
        new_file("acme_tools-2.0-py3-none-any.whl", version="2.0", digest="b"),
        uploader="trusted-publisher:x",
        publisher=mine.id,
    )
    assert result is AddResult.CREATED
    assert db.owners("main", "acme-tools") == ["alice"]


def test_remove_publisher(db: Database) -> None:
    added = db.add_publisher("main", "acme-tools", GH, pending=True)
    with pytest.raises(NotFound):
        db.remove_publisher(added.id, index="other")
    assert db.remove_publisher(added.id).id == added.id
    with pytest.raises(NotFound, match="no publisher"):
        db.remove_publisher(added.id)


def test_sync_publishers_makes_the_configured_set_exact_and_leaves_others(db: Database) -> None:
    db.create_user("alice")
    cli = db.add_publisher("main", "cli-project", GL, pending=True)
    configured = [
        ConfiguredPublisher(project="acme-tools", identity=GH, owner="alice"),
        ConfiguredPublisher(project="acme-tools", identity=ANY),
    ]
    assert db.sync_publishers("main", configured) == (2, 0)
    assert db.sync_publishers("main", configured) == (0, 0)
    assert db.sync_publishers("main", configured[:1]) == (0, 1)
    found = db.publishers("main")
    assert [(p.project, p.origin, p.status) for p in found] == [
        ("cli-project", "cli", "pending"),
        ("acme-tools", "config", "pending"),
    ]
    assert found[0].id == cli.id
    with pytest.raises(NotFound):
        db.sync_publishers("main", [ConfiguredPublisher(project="x", identity=GH, owner="nobody")])


# --- minted tokens -----------------------------------------------------------------------------


def test_a_minted_token_authenticates_as_an_upload_token_for_its_grants(db: Database) -> None:
    publisher = db.add_publisher("main", "acme-tools", GH, pending=True)
    token = _mint(db, Grant("main", "acme-tools", publisher.id))
    info = db.authenticate(token)
    assert info is not None and info.minted
    assert info.scopes == {"upload"}
    assert (info.indexes, info.projects) == ({"main"}, {"acme-tools"})
    assert info.expires is not None and info.expires - info.created == timedelta(minutes=15)
    assert db.publisher_grant(info.id, "main", "acme-tools") == publisher.id
    assert db.publisher_grant(info.id, "main", "other") is None
    assert db.publisher_grant(info.id, "other", "acme-tools") is None
    # A token of another kind, or a wrong secret, is not a minted token.
    assert db.authenticate(token[:-2] + ("AA" if token[-2:] != "AA" else "BB")) is None
    db.remove_publisher(publisher.id)
    assert db.publisher_grant(info.id, "main", "acme-tools") is None


def test_a_used_jti_is_refused_until_purged_after_it_expires(db: Database) -> None:
    publisher = db.add_publisher("main", "acme-tools", GH, pending=True)
    grant = Grant("main", "acme-tools", publisher.id)
    _mint(db, grant, jti="same")
    with pytest.raises(Replayed, match="exchanged before"):
        _mint(db, grant, jti="same")
    # The same jti of another issuer is another token.
    db.mint_token(
        issuer="https://other",
        subject="s",
        jti="same",
        jti_expires=_later(),
        claims={},
        grants=[grant],
        lifetime=timedelta(minutes=15),
    )
    assert db.purge_jtis() == 0
    db.mint_token(
        issuer="https://third",
        subject="s",
        jti="old",
        jti_expires=datetime.now(UTC) - timedelta(seconds=1),
        claims={},
        grants=[grant],
        lifetime=timedelta(minutes=15),
    )
    assert db.purge_jtis() == 1


def test_expired_and_revoked_minted_tokens_do_not_authenticate(db: Database) -> None:
    publisher = db.add_publisher("main", "acme-tools", GH, pending=True)
    grant = Grant("main", "acme-tools", publisher.id)
    short = db.mint_token(
        issuer=GH.issuer,
        subject="s",
        jti="short",
        jti_expires=_later(),
        claims={},
        grants=[grant],
        lifetime=timedelta(microseconds=1),
    )
    assert db.authenticate(short.token) is None
    revoked = _mint(db, grant, jti="r")
    info = db.authenticate(revoked)
    assert info is not None
    assert db.revoke_minted(info.id)
    assert db.authenticate(revoked) is None


def test_a_single_use_token_is_used_once(db: Database) -> None:
    publisher = db.add_publisher("main", "acme-tools", GH, pending=True)
    token = _mint(db, Grant("main", "acme-tools", publisher.id), single_use=True)
    info = db.authenticate(token)
    assert info is not None and db.is_single_use(info.id)
    assert db.use_single_use(info.id)
    assert not db.use_single_use(info.id)
    assert db.authenticate(token) is None


def test_the_publishing_log_says_who_minted_what_and_what_was_uploaded(db: Database) -> None:
    publisher = db.add_publisher("main", "acme-tools", GH, pending=True)
    other = db.add_publisher("second", "other", GL, pending=True)
    token = _mint(db, Grant("main", "acme-tools", publisher.id), jti="a")
    _mint(db, Grant("second", "other", other.id), jti="b")
    info = db.authenticate(token)
    assert info is not None
    db.record_publish(info.id, "main", "acme-tools", "acme_tools-1.0.tar.gz", publisher.id)
    everything = db.publishing_log()
    assert len(everything) == 2
    (mine,) = db.publishing_log(index="main")
    assert mine.token_id == info.id
    assert mine.subject == "repo:acme/tools:environment:pypi"
    assert mine.claims["repository"] == "acme/tools"
    assert mine.claims["nested"] == '{"a":[1,2]}'
    assert mine.grants == (Grant("main", "acme-tools", publisher.id),)
    assert [u.filename for u in mine.uploads] == ["acme_tools-1.0.tar.gz"]
    assert [r.grants[0].project for r in db.publishing_log(project="other")] == ["other"]
    assert db.publishing_log(since=_later()) == []
    with pytest.raises(InvalidArgument):
        db.publishing_log(limit=0)
