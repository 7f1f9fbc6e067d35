"""Which token a password session may create: the truth table of server/session_grants.py, and
the property that a granted token never reaches a pair (index, project) its user does not own,
a scope other than upload and manage, or a lifetime beyond a year."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.server.session_grants import (
    DEFAULT_DAYS,
    MAX_DAYS,
    MAX_PAIRS,
    RECHECKED_ACTIONS,
    Ask,
    Grant,
    Recheck,
    Refusal,
    decide,
    pairs,
    recheck_refusal,
)


@dataclass(frozen=True)
class Tok:
    user: str
    scopes: frozenset[str]
    indexes: frozenset[str] | None = None
    projects: frozenset[str] | None = None
    minted: bool = False
    session: bool = False


SESSION = Tok("alice", frozenset({"manage"}), session=True)
TOKEN = Tok("alice", frozenset({"admin"}))
MINTED = Tok("alice", frozenset({"upload"}), minted=True, session=True)
HOSTED = ("main", "team", "priv")
#: alice owns tools in main and in team, and docs in main only.
OWNED = {("main", "tools"), ("team", "tools"), ("main", "docs")}
OK = Recheck("ok")
UNTIL = datetime(2030, 1, 1, 12, 34, tzinfo=UTC)


def ask(
    scopes: str = "upload",
    indexes: str = "main",
    projects: str = "tools",
    days: str = "",
    description: str = "CI of tools",
) -> Ask:
    return Ask(
        scopes=frozenset(scopes.split()),
        indexes=tuple(indexes.split()),
        projects=tuple(projects.split()),
        days=days,
        description=description,
    )


# holder, ask, recheck, the reason of the refusal (None: granted), status
TABLE: list[tuple[Tok, Ask, Recheck, str | None, int]] = [
    (SESSION, ask(), OK, None, 0),
    (SESSION, ask("upload manage"), OK, None, 0),
    (SESSION, ask("manage", "main team", "tools"), OK, None, 0),  # owned in both
    (SESSION, ask("upload", "main", "tools docs"), OK, None, 0),
    (SESSION, ask(projects="Tools"), OK, None, 0),  # normalized
    (SESSION, ask(days="365"), OK, None, 0),
    (SESSION, ask(days="1"), OK, None, 0),
    # the holder
    (TOKEN, ask(), OK, "not-session", 400),  # token_grants decides for tokens
    (MINTED, ask(), OK, "not-session", 400),
    # the password typed again: before anything else, even a malformed form
    (SESSION, ask(), Recheck("wrong"), "wrong", 400),
    (SESSION, ask("admin"), Recheck("wrong"), "wrong", 400),
    (SESSION, ask(projects="someone-elses"), Recheck("wrong"), "wrong", 400),
    (SESSION, ask(), Recheck("locked", UNTIL), "locked", 429),
    # scopes
    (SESSION, ask(""), OK, "scope", 400),
    (SESSION, ask("read"), OK, "scope", 400),
    (SESSION, ask("upload read"), OK, "scope", 400),
    (SESSION, ask("admin"), OK, "scope", 400),
    (SESSION, ask("upload admin"), OK, "scope", 400),
    (SESSION, ask("delete"), OK, "scope", 400),
    # where
    (SESSION, ask(indexes=""), OK, "where", 400),  # no unlimited token
    (SESSION, ask(projects=""), OK, "where", 400),
    (SESSION, ask(indexes="elsewhere"), OK, "where", 400),
    (SESSION, ask(projects="-bad-"), OK, "where", 400),
    (
        SESSION,
        ask(indexes="main team priv", projects=" ".join(f"p{i}" for i in range(7))),
        OK,
        "where",
        400,
    ),  # 21 pairs
    # expiry
    (SESSION, ask(days="0"), OK, "expiry", 400),
    (SESSION, ask(days="366"), OK, "expiry", 400),
    (SESSION, ask(days="never"), OK, "expiry", 400),
    (SESSION, ask(days="-5"), OK, "expiry", 400),
    (SESSION, ask(days="1.5"), OK, "expiry", 400),
    # description
    (SESSION, ask(description=""), OK, "description", 400),
    (SESSION, ask(description="   "), OK, "description", 400),
    # ownership, pair by pair
    (SESSION, ask(projects="someone-elses"), OK, "owner", 403),
    (SESSION, ask("manage", projects="someone-elses"), OK, "owner", 403),
    (SESSION, ask(projects="tools someone-elses"), OK, "owner", 403),
    (SESSION, ask(indexes="team", projects="docs"), OK, "owner", 403),  # docs in main only
    (SESSION, ask(indexes="main team", projects="tools docs"), OK, "owner", 403),  # team/docs
    (SESSION, ask(indexes="priv", projects="tools"), OK, "owner", 403),
]


@pytest.mark.parametrize(("holder", "asked", "recheck", "reason", "status"), TABLE)
def test_truth_table(
    holder: Tok, asked: Ask, recheck: Recheck, reason: str | None, status: int
) -> None:
    answer = decide(holder, asked, recheck, hosted=HOSTED, owned=OWNED)
    if reason is None:
        assert isinstance(answer, Grant), answer
        assert answer.scopes == asked.scopes
        assert answer.indexes == frozenset(asked.indexes)
        assert answer.days == int(asked.days or DEFAULT_DAYS)
    else:
        assert isinstance(answer, Refusal)
        assert (answer.reason, answer.status) == (reason, status), answer.message
        assert answer.message.endswith("no token was created")


def test_the_messages_name_the_fix() -> None:
    locked = decide(SESSION, ask(), Recheck("locked", UNTIL), hosted=HOSTED, owned=OWNED)
    assert isinstance(locked, Refusal) and "12:34 UTC" in locked.message
    other = decide(SESSION, ask(projects="someone-elses"), OK, hosted=HOSTED, owned=OWNED)
    # authz's own words for a non-owner, with its fix
    assert isinstance(other, Refusal) and "owner-add main someone-elses alice" in other.message
    where = decide(SESSION, ask(indexes="elsewhere"), OK, hosted=HOSTED, owned=OWNED)
    assert isinstance(where, Refusal) and "main, priv, team" in where.message


def test_pairs_are_what_the_route_looks_up() -> None:
    assert pairs(ask(indexes="team main", projects="Tools docs"), HOSTED) == [
        ("main", "docs"), ("main", "tools"), ("team", "docs"), ("team", "tools"),
    ]  # fmt: skip
    assert pairs(ask(indexes="elsewhere"), HOSTED) == []
    assert pairs(ask(projects=""), HOSTED) == []
    assert pairs(ask(projects="-bad-"), HOSTED) == []
    many = " ".join(f"p{i}" for i in range(MAX_PAIRS + 1))
    assert pairs(ask(projects=many), HOSTED) == []


names = st.sampled_from(["main", "team", "priv", "gone"])
projects = st.sampled_from(["tools", "docs", "other", "Tools"])


@given(
    scopes=st.frozensets(st.sampled_from(["read", "upload", "manage", "admin", "x"])),
    indexes=st.lists(names, max_size=3),
    wanted=st.lists(projects, max_size=4),
    owned=st.frozensets(st.tuples(names, st.sampled_from(["tools", "docs", "other"]))),
    days=st.one_of(st.just(""), st.integers(-2, 800).map(str), st.text(max_size=3)),
    description=st.text(max_size=3),
    outcome=st.sampled_from(["ok", "wrong", "locked"]),
    session=st.booleans(),
)
def test_a_granted_token_is_never_wider_than_the_user(
    scopes: frozenset[str],
    indexes: list[str],
    wanted: list[str],
    owned: frozenset[tuple[str, str]],
    days: str,
    description: str,
    outcome: str,
    session: bool,
) -> None:
    holder = Tok("alice", frozenset({"manage"}), session=session)
    asked = Ask(
        scopes=scopes,
        indexes=tuple(indexes),
        projects=tuple(wanted),
        days=days,
        description=description,
    )
    answer = decide(holder, asked, Recheck(outcome), hosted=HOSTED, owned=owned)  # type: ignore[arg-type]
    if isinstance(answer, Grant):
        assert session and outcome == "ok" and description.strip()
        assert answer.scopes and answer.scopes <= {"upload", "manage"}
        assert answer.indexes and answer.projects
        assert {(i, p) for i in answer.indexes for p in answer.projects} <= owned
        assert 1 <= answer.days <= MAX_DAYS


@pytest.mark.parametrize(
    ("recheck", "status"),
    [(Recheck("ok"), None), (Recheck("wrong"), 400), (Recheck("locked", UNTIL), 429)],
)
def test_the_password_again_for_owners_and_publishers(recheck: Recheck, status: int | None) -> None:
    assert {"owner-add", "publisher-add"} == RECHECKED_ACTIONS  # each gives someone upload
    refused = recheck_refusal(recheck, outcome="nothing was changed")
    if status is None:
        assert refused is None
    else:
        assert refused is not None and refused.status == status
        assert refused.message.endswith("nothing was changed")
