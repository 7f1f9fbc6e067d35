"""Users, tokens, owners and PEP 752 namespaces, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from headwater.db import (
    AddResult,
    Conflict,
    Database,
    InvalidArgument,
    NotFound,
    parse_token,
)
from headwater.db import schema as t
from tests.db.factories import new_file

# --- users -----------------------------------------------------------------------------------


def test_users_are_created_once_and_listed(db: Database) -> None:
    db.create_user("bob")
    db.create_user("alice")
    assert [u.name for u in db.users()] == ["alice", "bob"]
    assert db.users()[0].created.tzinfo is UTC
    with pytest.raises(Conflict, match="'alice' exists"):
        db.create_user("alice")


@pytest.mark.parametrize(
    "hostile", ["", "__token__", "a b", "alice\n", "al/ice", "x" * 101, "ålice", "-alice"]
)
def test_hostile_user_names_are_refused(db: Database, hostile: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid user name"):
        db.create_user(hostile)
    assert db.users() == []


# --- tokens ----------------------------------------------------------------------------------


def test_token_format_is_greppable_and_only_its_hash_is_stored(db: Database, alice: str) -> None:
    token_id, token = db.create_token(alice, description="laptop")
    assert token.startswith(f"hw_{token_id}_")
    assert parse_token(token) == token_id
    with db._engine.connect() as conn:
        stored = conn.execute(sa.select(t.tokens)).one()
    assert token not in str(tuple(stored))
    assert token.split("_", 2)[2] not in str(tuple(stored))
    assert stored.secret_sha256 == hashlib.sha256(token.encode()).hexdigest()
    info = db.authenticate(token)
    assert info is not None
    assert (info.id, info.user, info.scopes, info.description) == (
        token_id,
        alice,
        frozenset({"upload"}),
        "laptop",
    )
    assert (info.indexes, info.projects, info.expires, info.revoked) == (None, None, None, None)


def test_wrong_or_malformed_tokens_authenticate_nobody(db: Database, alice: str) -> None:
    _, token = db.create_token(alice)
    wrong_secret = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    other_id = "hw_" + "0" * 16 + token[19:]
    for attempt in (wrong_secret, other_id, "", "hw_", token + "x", token.upper(), "pypi-" + token):
        assert db.authenticate(attempt) is None, attempt
    assert db.authenticate(token) is not None


def test_revoked_token_is_refused(db: Database, alice: str) -> None:
    token_id, token = db.create_token(alice)
    assert db.revoke_token(token_id) is True
    assert db.authenticate(token) is None
    assert db.revoke_token(token_id) is False
    (info,) = db.tokens(alice)
    assert info.revoked is not None
    with pytest.raises(NotFound):
        db.revoke_token("0123456789abcdef")


def test_expired_token_is_refused(db: Database, alice: str) -> None:
    _, token = db.create_token(alice, expires=datetime.now(UTC) + timedelta(hours=1))
    assert db.authenticate(token) is not None
    with db._engine.begin() as conn:
        conn.execute(sa.update(t.tokens).values(expires=datetime.now(UTC) - timedelta(seconds=1)))
    assert db.authenticate(token) is None
    with pytest.raises(InvalidArgument, match="future"):
        db.create_token(alice, expires=datetime.now(UTC) - timedelta(seconds=1))


def test_scoped_tokens_carry_their_scopes_indexes_and_projects(db: Database, alice: str) -> None:
    _, token = db.create_token(
        alice, scopes={"upload", "manage"}, indexes=["main"], projects=["Acme_Tools", "acme.tools"]
    )
    info = db.authenticate(token)
    assert info is not None
    assert info.scopes == frozenset({"upload", "manage"})
    assert info.indexes == frozenset({"main"})
    assert info.projects == frozenset({"acme-tools"})
    with pytest.raises(InvalidArgument, match="scopes"):
        db.create_token(alice, scopes={"root"})
    with pytest.raises(InvalidArgument, match="scopes"):
        db.create_token(alice, scopes=set())
    with pytest.raises(NotFound):
        db.create_token("mallory")


@pytest.mark.parametrize("projects", [["acme-tools"], ["a", "b"], []])
def test_admin_tokens_limited_to_projects_are_refused(
    db: Database, alice: str, projects: list[str]
) -> None:
    # Admin changes are index-wide: a project limit on them would be meaningless or ignored.
    with pytest.raises(InvalidArgument, match="Use --scope manage") as refused:
        db.create_token(alice, scopes={"admin", "upload"}, projects=projects)
    assert "--project" in str(refused.value)
    assert db.tokens() == []
    # The same limit with the scopes that can be limited, and admin without a limit, are fine.
    db.create_token(alice, scopes={"manage", "upload", "read"}, projects=projects)
    db.create_token(alice, scopes={"admin"}, indexes=["main"])


def test_tokens_lists_without_secrets(db: Database, alice: str) -> None:
    db.create_user("bob")
    a_id, a_token = db.create_token(alice)
    b_id, _ = db.create_token("bob", scopes={"admin"})
    assert [i.id for i in db.tokens()] == [a_id, b_id]
    assert [i.id for i in db.tokens("bob")] == [b_id]
    assert a_token not in repr(db.tokens())


# --- owners ----------------------------------------------------------------------------------


def test_owners_only_is_decided_in_the_write_transaction(db: Database, alice: str) -> None:
    """Two first uploads of one name at once: whoever's insert comes second finds the project
    created by the other and gets NOT_OWNER, never a file in someone else's project; identical
    content is not a way around it, owners and ``owners_only=False`` (admins) are let in."""
    db.create_user("bob")
    assert (
        db.add_file("main", "race", new_file("race-1.0.tar.gz"), uploader=alice, owners_only=True)
        is AddResult.CREATED
    )
    for filename, digest in (("race-2.0.tar.gz", "b"), ("race-1.0.tar.gz", "a")):
        result = db.add_file(
            "main", "race", new_file(filename, digest=digest), uploader="bob", owners_only=True
        )
        assert result is AddResult.NOT_OWNER, filename
    record = db.project("main", "race")
    assert record is not None and [f.filename for f in record.files] == ["race-1.0.tar.gz"]
    assert (
        db.add_file(
            "main",
            "race",
            new_file("race-2.0.tar.gz", digest="b"),
            uploader=alice,
            owners_only=True,
        )
        is AddResult.CREATED
    )
    assert (
        db.add_file("main", "race", new_file("race-3.0.tar.gz", digest="c"), uploader="bob")
        is AddResult.CREATED
    )


def test_first_uploader_owns_and_owners_can_be_changed(db: Database, alice: str) -> None:
    db.create_user("bob")
    db.add_file("main", "acme", new_file("acme-1.0.tar.gz"), uploader=alice)
    db.add_file(
        "main", "acme", new_file("acme-2.0.tar.gz", version="2.0", digest="b"), uploader="bob"
    )
    assert db.owners("main", "ACME") == [alice]
    assert db.add_owner("main", "acme", "bob") is True
    assert db.add_owner("main", "acme", "bob") is False
    assert db.owners("main", "acme") == [alice, "bob"]
    assert db.remove_owner("main", "acme", alice) is True
    assert db.remove_owner("main", "acme", alice) is False
    assert db.owners("main", "acme") == ["bob"]
    with pytest.raises(NotFound):
        db.add_owner("main", "acme", "mallory")
    with pytest.raises(NotFound):
        db.add_owner("main", "nope", "bob")
    assert db.owners("other", "acme") == []


# --- namespaces (PEP 752) --------------------------------------------------------------------


def test_pep_752_grant_covers_the_name_and_its_dash_children(db: Database, alice: str) -> None:
    grant = db.grant_namespace("main", "Acme", alice)
    assert (grant.name, grant.owner, grant.open) == ("acme", alice, False)
    for covered in ("acme", "ACME", "acme-foo", "acme_foo.bar", "acme-foo-bar"):
        found = db.namespace_covering("main", covered)
        assert found is not None and found.name == "acme", covered
    for outside in ("acmefoo", "foo-acme", "acm", "a"):
        assert db.namespace_covering("main", outside) is None, outside
    # Grants are per index.
    assert db.namespace_covering("other", "acme-foo") is None


@pytest.mark.parametrize("second", ["acme", "acme-foo", "acme-foo-bar", "ACME_Foo"])
def test_pep_752_grants_must_not_overlap(db: Database, alice: str, second: str) -> None:
    db.grant_namespace("main", "acme-foo", alice)
    with pytest.raises(Conflict, match="overlaps 'acme-foo'"):
        db.grant_namespace("main", second, alice)


def test_pep_752_non_overlapping_grants_and_revocation(db: Database, alice: str) -> None:
    db.create_user("bob")
    db.grant_namespace("main", "acme-foo", alice)
    db.grant_namespace("main", "acme-bar", "bob", open=True)
    db.grant_namespace("main", "acmefoo", "bob")
    db.grant_namespace("other", "acme", "bob")
    assert [(g.name, g.owner, g.open) for g in db.namespaces("main")] == [
        ("acme-bar", "bob", True),
        ("acme-foo", alice, False),
        ("acmefoo", "bob", False),
    ]
    covering = db.namespace_covering("main", "acme-bar-baz")
    assert covering is not None and covering.open
    assert db.revoke_namespace("main", "acme-foo") is True
    assert db.revoke_namespace("main", "acme-foo") is False
    # The revoked grant no longer blocks names inside it.
    db.grant_namespace("main", "acme-foo-baz", "bob")
    assert [g.name for g in db.namespaces("main")] == ["acme-bar", "acme-foo-baz", "acmefoo"]


def test_pep_752_grant_overlapping_a_child_is_refused(db: Database, alice: str) -> None:
    db.grant_namespace("main", "acme-bar", alice)
    with pytest.raises(Conflict):
        db.grant_namespace("main", "acme", alice)
    with pytest.raises(NotFound):
        db.grant_namespace("main", "zeta", "mallory")


def test_pep_752_caller_can_exempt_projects_older_than_the_grant(db: Database, alice: str) -> None:
    db.add_file("main", "acme-old", new_file("acme_old-1.0.tar.gz"))
    grant = db.grant_namespace("main", "acme", alice)
    changes = db.changes_since("main", 0)
    created = next(c for c in changes if c.project == "acme-old" and c.action == "create")
    assert created.time <= grant.created
