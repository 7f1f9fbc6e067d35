"""Who may create, see and revoke tokens on the web: the truth table of server/token_grants.py,
and the property that no token can create one wider than itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.server.token_grants import may_create, may_revoke, sees_every_token

SCOPES = ("read", "upload", "manage", "admin")


@dataclass(frozen=True)
class Tok:
    user: str
    scopes: frozenset[str]
    indexes: frozenset[str] | None = None
    projects: frozenset[str] | None = None
    minted: bool = False
    expires: datetime | None = None
    session: bool = False


ADMIN = Tok("root", frozenset({"admin"}))
LIMITED_ADMIN = Tok("ops", frozenset({"admin"}), indexes=frozenset({"main"}))
UPLOADER = Tok("alice", frozenset({"upload", "read"}))
PROJECT = Tok("bob", frozenset({"manage", "upload"}), projects=frozenset({"demo"}))
MINTED = Tok("publisher", frozenset({"upload"}), minted=True)
#: Signed in with a password (headwater.db.passwords): manage on every index; its tokens are
#: decided by session_grants (tests/server/test_session_grants.py).
PASSWORD = Tok("dave", frozenset({"manage"}), session=True)

# holder, scopes, indexes, projects, allowed
TABLE = [
    (ADMIN, {"read", "upload", "manage", "admin"}, None, None, True),
    (LIMITED_ADMIN, {"admin"}, {"main"}, None, True),
    (LIMITED_ADMIN, {"read"}, None, None, False),  # unlimited from a limited one
    (LIMITED_ADMIN, {"read"}, {"other"}, None, False),
    (UPLOADER, {"upload"}, None, None, True),
    (UPLOADER, {"upload", "read"}, {"main"}, {"x"}, True),  # narrower is fine
    (UPLOADER, {"manage"}, None, None, False),  # wider scope
    (UPLOADER, {"admin"}, None, None, False),
    (UPLOADER, set(), None, None, False),  # no scope
    (PROJECT, {"upload"}, None, {"demo"}, True),
    (PROJECT, {"upload"}, None, None, False),  # escapes the project limit
    (PROJECT, {"upload"}, None, {"demo", "other"}, False),
    (MINTED, {"upload"}, None, None, False),  # a publisher's token makes no tokens
    (PASSWORD, {"manage"}, None, None, False),  # sessions: session_grants, never this rule
    (PASSWORD, {"manage"}, {"main"}, {"x"}, False),
]


@pytest.mark.parametrize(("holder", "scopes", "indexes", "projects", "allowed"), TABLE)
def test_may_create(
    holder: Tok,
    scopes: set[str],
    indexes: set[str] | None,
    projects: set[str] | None,
    allowed: bool,
) -> None:
    problem = may_create(holder, scopes, indexes, projects)
    assert (problem is None) is allowed, problem


SOON = datetime(2030, 1, 1, tzinfo=UTC)
EXPIRING = Tok("carol", frozenset({"admin"}), expires=SOON)

# holder, expires of the new token, allowed: a token never outlives the one that creates it.
EXPIRY_TABLE = [
    (EXPIRING, None, False),  # never expires, from one that does
    (EXPIRING, SOON + timedelta(seconds=1), False),
    (EXPIRING, SOON + timedelta(days=3000), False),
    (EXPIRING, SOON, True),
    (EXPIRING, SOON - timedelta(days=1), True),
    (ADMIN, None, True),  # the holder never expires
    (ADMIN, SOON + timedelta(days=3000), True),
]


@pytest.mark.parametrize(("holder", "expires", "allowed"), EXPIRY_TABLE)
def test_a_token_never_outlives_its_creator(
    holder: Tok, expires: datetime | None, allowed: bool
) -> None:
    problem = may_create(holder, {"read"}, None, None, expires)
    assert (problem is None) is allowed, problem
    if not allowed:
        assert "2030-01-01" in (problem or "")


def test_seeing_and_revoking() -> None:
    assert sees_every_token(ADMIN)
    assert not sees_every_token(LIMITED_ADMIN) and not sees_every_token(UPLOADER)
    assert not sees_every_token(Tok("x", frozenset({"admin"}), projects=frozenset({"p"})))
    assert may_revoke(UPLOADER, "alice") and not may_revoke(UPLOADER, "bob")
    assert may_revoke(PASSWORD, "dave") and not may_revoke(PASSWORD, "alice")
    assert not sees_every_token(PASSWORD)
    assert may_revoke(ADMIN, "bob") and not may_revoke(LIMITED_ADMIN, "bob")
    assert not may_revoke(MINTED, "publisher")


names = st.frozensets(st.sampled_from(["a", "b", "c"]))


@given(
    held=st.frozensets(st.sampled_from(SCOPES), min_size=1),
    held_indexes=st.one_of(st.none(), names),
    held_projects=st.one_of(st.none(), names),
    scopes=st.frozensets(st.sampled_from(SCOPES)),
    indexes=st.one_of(st.none(), names),
    projects=st.one_of(st.none(), names),
    held_until=st.one_of(st.none(), st.integers(0, 10)),
    until=st.one_of(st.none(), st.integers(0, 10)),
)
def test_never_wider_than_the_holder(
    held: frozenset[str],
    held_indexes: frozenset[str] | None,
    held_projects: frozenset[str] | None,
    scopes: frozenset[str],
    indexes: frozenset[str] | None,
    projects: frozenset[str] | None,
    held_until: int | None,
    until: int | None,
) -> None:
    def day(n: int | None) -> datetime | None:
        return None if n is None else SOON + timedelta(days=n)

    holder = Tok("u", held, held_indexes, held_projects, expires=day(held_until))
    if may_create(holder, scopes, indexes, projects, day(until)) is None:
        assert held_until is None or (until is not None and until <= held_until)
        assert scopes and ("admin" in held or scopes <= held)
        assert held_indexes is None or (indexes is not None and indexes <= held_indexes)
        assert held_projects is None or (projects is not None and projects <= held_projects)
