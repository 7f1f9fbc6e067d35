"""The authorization decision as a truth table and as properties, and the credential parser.

The routes are walked against real tokens in tests/server/test_authz_matrix.py; this file pins
down :func:`headwater.server.authz.decide` itself."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.server.auth import Authenticator, parse_authorization
from headwater.server.authz import (
    ACTIONS,
    SCOPE_OF,
    Action,
    Allowed,
    Credentials,
    Denied,
    Target,
    decide,
)


@dataclass(frozen=True)
class Tok:
    user: str = "alice"
    scopes: Collection[str] = frozenset({"read"})
    indexes: Collection[str] | None = None
    projects: Collection[str] | None = None
    id: str = "0123456789abcdef"
    minted: bool = False


def minted(**kw: object) -> Credentials:
    """A token minted for a trusted publisher: upload scope, limited to acme of main."""
    values: dict[str, object] = {
        "user": "trusted-publisher:repo:acme/acme",
        "scopes": frozenset({"upload"}),
        "indexes": frozenset({"main"}),
        "projects": frozenset({"acme"}),
        "minted": True,
        **kw,
    }
    return Credentials("token", Tok(**values))  # type: ignore[arg-type]


def token(**kw: object) -> Credentials:
    return Credentials("token", Tok(**kw))  # type: ignore[arg-type]


NONE = Credentials("none")
BAD = Credentials("invalid", problem="the token is unknown, revoked or expired")
PRIV = Target(index="main", private=True, project="acme")
PUB = Target(index="main", project="acme")

# (credentials, target, action, expected status, 0 = allowed)
TABLE: list[tuple[str, Credentials, Target, Action, int]] = [
    ("public routes need nothing", NONE, PRIV, "public", 0),
    ("a public index is read by anyone", NONE, PUB, "read", 0),
    ("even with bad credentials", BAD, PUB, "list", 0),
    ("a private index needs a token", NONE, PRIV, "read", 401),
    ("bad credentials are a 401", BAD, PRIV, "list", 401),
    ("uploads answer 403 without credentials (PyPI)", NONE, PUB, "upload", 403),
    ("and with bad ones", BAD, PUB, "upload", 403),
    ("management needs a token", NONE, PUB, "manage", 401),
    ("read scope reads", token(), PRIV, "read", 0),
    ("upload scope does not read", token(scopes={"upload"}), PRIV, "read", 403),
    ("manage scope does not read", token(scopes={"manage"}), PRIV, "read", 403),
    ("admin reads", token(scopes={"admin"}), PRIV, "read", 0),
    ("another index", token(indexes={"other"}), PRIV, "read", 403),
    ("its index", token(indexes={"main"}), PRIV, "read", 0),
    ("another project", token(projects={"other"}), PRIV, "read", 403),
    ("its project", token(projects={"acme"}), PRIV, "read", 0),
    (
        "index-wide read with a project limit",
        token(projects={"acme"}),
        Target(index="main", private=True),
        "read",
        403,
    ),
    (
        "upload to a new project",
        token(scopes={"upload"}),
        Target(index="main", project="acme", exists=False),
        "upload",
        0,
    ),
    (
        "upload to someone else's project",
        token(scopes={"upload"}),
        Target(index="main", project="acme", exists=True, owner=False),
        "upload",
        403,
    ),
    (
        "upload to one's own project",
        token(scopes={"upload"}),
        Target(index="main", project="acme", exists=True, owner=True),
        "upload",
        0,
    ),
    (
        "upload with ownership not looked up fails closed",
        token(scopes={"upload"}),
        Target(index="main", project="acme"),
        "upload",
        403,
    ),
    (
        "admins upload anywhere",
        token(scopes={"admin"}),
        Target(index="main", project="acme", exists=True, owner=False),
        "upload",
        0,
    ),
    (
        "upload before the body is read, with a project limit",
        token(scopes={"upload"}, projects={"acme"}),
        Target(index="main"),
        "upload",
        0,
    ),
    (
        "upload to another project",
        token(scopes={"upload"}, projects={"other"}),
        Target(index="main", project="acme", exists=False),
        "upload",
        403,
    ),
    # Trusted publishing: a minted token's publisher stands in for ownership, and is required.
    (
        "a minted token uploads where its publisher may publish",
        minted(),
        Target(index="main", project="acme", exists=True, owner=False, publisher=True),
        "upload",
        0,
    ),
    (
        "and creates the project of a pending publisher",
        minted(),
        Target(index="main", project="acme", exists=False, publisher=True),
        "upload",
        0,
    ),
    (
        "a minted token whose publisher was removed or went stale",
        minted(),
        Target(index="main", project="acme", exists=True, owner=False, publisher=False),
        "upload",
        403,
    ),
    (
        "even for a project that does not exist (no creation without a publisher)",
        minted(),
        Target(index="main", project="acme", exists=False, publisher=False),
        "upload",
        403,
    ),
    (
        "a minted token with the publisher not looked up fails closed",
        minted(),
        Target(index="main", project="acme", exists=False),
        "upload",
        403,
    ),
    (
        "a minted token is limited to its projects first",
        minted(),
        Target(index="main", project="other", exists=False, publisher=True),
        "upload",
        403,
    ),
    (
        "a minted token is limited to its indexes",
        minted(),
        Target(index="second", project="acme", exists=False, publisher=True),
        "upload",
        403,
    ),
    ("a minted token cannot manage", minted(), PUB, "manage", 403),
    (
        "a publisher fact means nothing to an ordinary token",
        token(scopes={"upload"}),
        Target(index="main", project="acme", exists=True, owner=False, publisher=True),
        "upload",
        403,
    ),
    ("manage needs ownership", token(scopes={"manage"}), PUB, "manage", 403),
    (
        "an owner manages",
        token(scopes={"manage"}),
        Target(index="main", project="acme", owner=True),
        "manage",
        0,
    ),
    ("an admin manages any project", token(scopes={"admin"}), PUB, "manage", 0),
    ("manage scope is not admin", token(scopes={"manage"}), PUB, "admin", 403),
    ("admin is admin", token(scopes={"admin"}), PUB, "admin", 0),
    (
        "an old admin token limited to projects: another project",
        token(scopes={"admin"}, projects={"other"}),
        PUB,
        "manage",
        403,
    ),
    (
        "an old admin token limited to projects: its project",
        token(scopes={"admin"}, projects={"acme"}),
        PUB,
        "manage",
        0,
    ),
    (
        "an old admin token limited to projects: never index-wide admin",
        token(scopes={"admin"}, projects={"acme"}),
        PUB,
        "admin",
        403,
    ),
    (
        "composed index: a limit naming its private source",
        token(indexes={"secret"}),
        Target(index="all", private=True, private_sources=frozenset({"secret"}), project="acme"),
        "read",
        0,
    ),
    (
        "composed index: a limit naming only some private sources",
        token(indexes={"secret"}),
        Target(
            index="all", private=True, private_sources=frozenset({"secret", "team"}), project="x"
        ),
        "read",
        403,
    ),
]


@pytest.mark.parametrize(
    ("credentials", "target", "action", "status"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_truth_table(credentials: Credentials, target: Target, action: Action, status: int) -> None:
    decision = decide(credentials, target, action)
    if status == 0:
        assert isinstance(decision, Allowed), decision
    else:
        assert isinstance(decision, Denied) and decision.status == status, decision
        assert (decision.challenge is not None) == (status == 401)
        assert decision.message and "\n" not in decision.message


def test_a_project_limited_token_sees_only_its_projects_in_the_list() -> None:
    decision = decide(token(projects={"acme", "beta"}), Target(index="m", private=True), "list")
    assert decision == Allowed("alice", False, only=frozenset({"acme", "beta"}))
    unlimited = decide(token(), Target(index="m", private=True), "list")
    assert isinstance(unlimited, Allowed) and unlimited.only is None


def test_denials_name_the_fix() -> None:
    other = decide(token(projects={"other"}), PRIV, "read")
    assert isinstance(other, Denied) and "--project acme" in other.message
    scope = decide(token(scopes={"upload"}), PRIV, "read")
    assert isinstance(scope, Denied) and "--scope read" in scope.message
    owner = decide(token(scopes={"manage"}), PUB, "manage")
    assert isinstance(owner, Denied) and "owner-add main acme alice" in owner.message
    admin = decide(token(scopes={"admin"}, projects={"acme"}), PUB, "admin")
    assert isinstance(admin, Denied) and "no --project" in admin.message
    bad = decide(BAD, PRIV, "read")
    assert isinstance(bad, Denied) and "revoked" in bad.message


# -- properties -------------------------------------------------------------------------------

names = st.sampled_from(["acme", "beta", "gamma", "delta"])
indexes = st.sampled_from(["main", "other", "all"])
scopes = st.frozensets(st.sampled_from(["read", "upload", "manage", "admin"]))
tokens = st.builds(
    Tok,
    user=st.sampled_from(["alice", "bob"]),
    scopes=scopes,
    indexes=st.none() | st.frozensets(indexes),
    projects=st.none() | st.frozensets(names),
)
credentials = st.one_of(st.just(NONE), st.just(BAD), tokens.map(lambda t: Credentials("token", t)))
targets = st.builds(
    Target,
    index=indexes,
    private=st.booleans(),
    private_sources=st.frozensets(indexes),
    project=st.none() | names,
    exists=st.none() | st.booleans(),
    owner=st.none() | st.booleans(),
)
actions = st.sampled_from(ACTIONS)


def _open(target: Target, action: Action) -> bool:
    """Allowed to anyone: public routes, and reads of an index that is not private."""
    return action == "public" or (action in ("list", "read") and not target.private)


@given(credentials, targets, actions)
def test_without_a_valid_token_only_open_things_are_allowed(
    who: Credentials, target: Target, action: Action
) -> None:
    decision = decide(who, target, action)
    if who.state != "token" and not _open(target, action):
        assert isinstance(decision, Denied)
        assert decision.status == (403 if action == "upload" else 401)


@given(tokens, targets, actions)
def test_a_project_limit_is_never_exceeded(tok: Tok, target: Target, action: Action) -> None:
    decision = decide(Credentials("token", tok), target, action)
    if tok.projects is None or _open(target, action) or not isinstance(decision, Allowed):
        return
    assert action != "admin"  # index-wide: never for a token limited to projects
    if action == "list":
        assert decision.only is not None and decision.only <= frozenset(tok.projects)
    elif target.project is not None:
        assert target.project in tok.projects
    else:
        assert action == "upload"  # only the check before the body names the project


@given(tokens, targets, actions)
def test_no_token_without_the_scope_is_allowed(tok: Tok, target: Target, action: Action) -> None:
    decision = decide(Credentials("token", tok), target, action)
    needed = SCOPE_OF[action]
    if needed is not None and needed not in tok.scopes and "admin" not in tok.scopes:
        assert isinstance(decision, Denied) or _open(target, action)


@given(tokens, targets, actions)
def test_an_index_limit_is_never_exceeded(tok: Tok, target: Target, action: Action) -> None:
    decision = decide(Credentials("token", tok), target, action)
    if isinstance(decision, Allowed) and not _open(target, action) and tok.indexes is not None:
        assert target.index in tok.indexes or (
            target.private_sources and target.private_sources <= frozenset(tok.indexes)
        )


@given(tokens, targets, st.sampled_from(["manage", "upload"]))
def test_changes_to_an_existing_project_need_an_owner_or_admin(
    tok: Tok, target: Target, action: Action
) -> None:
    decision = decide(Credentials("token", tok), target, action)
    existing = target.project is not None and (action == "manage" or target.exists is not False)
    if isinstance(decision, Allowed) and existing:
        assert target.owner is True or "admin" in tok.scopes


@given(tokens, targets, st.sampled_from(["list", "read"]))
def test_reads_depend_on_the_project_only_for_project_limited_tokens(
    tok: Tok, target: Target, action: Action
) -> None:
    """What lets the hot path skip parsing a filename for other tokens."""
    if tok.projects is None:
        who = Credentials("token", tok)
        without = msgspec.structs.replace(target, project=None)
        assert decide(who, target, action) == decide(who, without, action)


# -- the credential parser ----------------------------------------------------------------------


def _basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


@pytest.mark.parametrize(
    ("header", "result"),
    [
        (None, "none"),
        (_basic("__token__", "hw_x"), "hw_x"),
        (b"bearer hw_x", "hw_x"),
        (b"Bearer   hw_x  ", "hw_x"),
        (b"BASIC " + base64.b64encode(b"__token__:hw_y"), "hw_y"),
        (_basic("alice", "hw_x"), "user name must be __token__"),
        (_basic("__token__", ""), "no password"),
        (b"Basic !!!", "not valid base64"),
        (b"Basic " + base64.b64encode(b"no-colon"), "no password"),
        (b"Digest username=x", "neither Basic"),
        (b"Bearer", "malformed"),
        (b"Bearer \xff\xfe", "not a headwater token"),
        (b"Bearer " + b"x" * 10_000, "malformed"),
    ],
)
def test_authorization_header_forms(header: bytes | None, result: str) -> None:
    parsed = parse_authorization(header)
    if result == "none":
        assert parsed == Credentials("none")
    elif result.startswith("hw_"):
        assert parsed == result
    else:
        assert isinstance(parsed, Credentials) and parsed.state == "invalid"
        assert result in parsed.problem


def test_remembered_tokens_expire_on_time_and_revocations_on_the_next_change() -> None:
    """Reads remember a checked token (no token query per read); a change to the database
    (its generation: a revocation is one) is seen on the next read, anything else within the
    window, and an expiry at once."""
    now = datetime.now(UTC)

    @dataclass(frozen=True)
    class Info(Tok):
        expires: datetime | None = None

    class FakeDb:
        def __init__(self) -> None:
            self.calls = 0
            self.changes = 0
            self.answer: Info | None = Info(expires=now + timedelta(seconds=30))

        def generation(self) -> int:
            return self.changes

        def authenticate(self, secret: str) -> Info | None:
            self.calls += 1
            return self.answer

    db = FakeDb()
    auth = Authenticator(db, read_cache=1.0)
    scope = {"headers": [(b"authorization", b"Bearer hw_x")]}

    def read() -> Credentials:
        return asyncio.run(auth.credentials(scope, cached=True))

    assert read().state == "token" and read().state == "token" and db.calls == 1
    db.answer = None  # gone without a change signal: remembered within the window...
    assert read().state == "token" and db.calls == 1
    time.sleep(1.05)  # ...and refused after it
    assert read().state == "invalid" and db.calls == 2
    db.answer = Info(expires=now + timedelta(seconds=30))
    assert read().state == "token" and db.calls == 3
    db.answer, db.changes = None, 1  # revoked: the change is seen on the next read
    assert read().state == "invalid" and db.calls == 4
    db.answer = Info(expires=datetime.now(UTC) + timedelta(seconds=0.5))
    assert read().state == "token" and db.calls == 5
    time.sleep(0.55)  # expired while remembered: refused at once
    db.answer = None
    assert read().state == "invalid" and db.calls == 6
