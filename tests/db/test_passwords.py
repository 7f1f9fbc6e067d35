"""Interface passwords, password sessions and sign-in counters, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from headwater.db import Database, InvalidArgument, NotFound, throttle
from headwater.db import schema as t
from headwater.db._checks import now
from headwater.db.passwords import MIN_LENGTH, PARAMETERS, is_session_secret

GOOD = "correct horse battery staple"
HERE = "192.0.2.1"


def stored(db: Database, user: str) -> str | None:
    with db.engine.connect() as conn:
        return conn.execute(
            sa.select(t.users.c.password_hash).where(t.users.c.name == user)
        ).scalar()


def test_the_hash_is_argon2id_with_the_documented_parameters_never_the_password(
    db: Database,
) -> None:
    db.create_user("alice")
    assert not db.has_password("alice")
    db.set_password("alice", GOOD)
    value = stored(db, "alice")
    assert value is not None and GOOD not in value
    assert value.startswith(
        f"$argon2id$v=19$m={PARAMETERS.memory_cost},t={PARAMETERS.time_cost},"
        f"p={PARAMETERS.parallelism}$"
    )
    assert db.has_password("alice")
    assert [u.password for u in db.users()] == [True]
    assert db.check_password("alice", GOOD)
    assert not db.check_password("alice", GOOD + "!")
    # The same password twice: two salts, two hashes.
    db.set_password("alice", GOOD)
    assert stored(db, "alice") != value


@pytest.mark.parametrize("bad", ["", "x" * (MIN_LENGTH - 1), "y" * 257, "a" * MIN_LENGTH + "\x00"])
def test_bad_passwords_are_refused_and_nothing_is_stored(db: Database, bad: str) -> None:
    db.create_user("alice")
    with pytest.raises(InvalidArgument, match="password"):
        db.set_password("alice", bad)
    assert stored(db, "alice") is None


def test_no_password_for_a_missing_user(db: Database) -> None:
    with pytest.raises(NotFound, match="no user 'ghost'"):
        db.set_password("ghost", GOOD)
    with pytest.raises(NotFound):
        db.clear_password("ghost")
    assert not db.check_password("ghost", GOOD)


def test_sign_in_gives_a_session_that_only_the_interface_accepts(db: Database) -> None:
    db.create_user("alice")
    db.set_password("alice", GOOD)
    done = db.password_sign_in("alice", GOOD, HERE)
    assert done.outcome == "ok" and done.secret is not None and not done.rehashed
    assert is_session_secret(done.secret)
    info = db.authenticate_session(done.secret)
    assert info is not None and info.session and info.user == "alice"
    assert info.scopes == frozenset({"manage"}) and info.indexes is None and info.projects is None
    # Never a token: the API's check does not know it.
    assert db.authenticate(done.secret) is None
    assert (
        db.authenticate_session(done.secret[:-1] + ("A" if done.secret[-1] != "A" else "B")) is None
    )
    assert [s.id for s in db.sessions("alice")] == [info.id]
    # Signing out ends it, on every node (it is a row).
    assert db.end_session(done.secret)
    assert db.authenticate_session(done.secret) is None
    assert not db.end_session(done.secret)


def test_wrong_password_missing_user_and_no_password_get_one_answer(db: Database) -> None:
    db.create_user("alice")
    db.create_user("bob")  # no password
    db.set_password("alice", GOOD)
    answers = {
        db.password_sign_in("alice", "wrong wrong wrong wrong", HERE).outcome,
        db.password_sign_in("ghost", GOOD, HERE).outcome,
        db.password_sign_in("bob", GOOD, HERE).outcome,
        db.password_sign_in("bob", "", HERE).outcome,
    }
    assert answers == {"wrong"}


def test_changing_or_clearing_a_password_ends_every_session(db: Database) -> None:
    db.create_user("alice")
    db.set_password("alice", GOOD)
    first = db.password_sign_in("alice", GOOD, HERE).secret
    second = db.password_sign_in("alice", GOOD, "192.0.2.2").secret
    assert first and second
    db.set_password("alice", GOOD + " two")
    assert db.authenticate_session(first) is None and db.authenticate_session(second) is None
    assert db.password_sign_in("alice", GOOD, HERE).outcome == "wrong"
    third = db.password_sign_in("alice", GOOD + " two", HERE).secret
    assert third and db.clear_password("alice")
    assert db.authenticate_session(third) is None
    assert not db.clear_password("alice")
    assert db.password_sign_in("alice", GOOD + " two", HERE).outcome == "wrong"


def test_expired_sessions_are_refused(db: Database) -> None:
    db.create_user("alice")
    db.set_password("alice", GOOD)
    secret = db.password_sign_in("alice", GOOD, HERE).secret
    assert secret
    with db.engine.begin() as conn:
        conn.execute(sa.update(t.ui_sessions).values(expires=now() - timedelta(seconds=1)))
    assert db.authenticate_session(secret) is None
    assert db.sessions("alice") == []


def test_an_old_hash_is_replaced_at_sign_in(db: Database) -> None:
    db.create_user("alice")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(GOOD)
    with db.engine.begin() as conn:
        conn.execute(sa.update(t.users).values(password_hash=weak))
    done = db.password_sign_in("alice", GOOD, HERE)
    assert done.outcome == "ok" and done.rehashed
    now_stored = stored(db, "alice")
    assert now_stored != weak and f"m={PARAMETERS.memory_cost}," in (now_stored or "")
    again = db.password_sign_in("alice", GOOD, HERE)
    assert again.outcome == "ok" and not again.rehashed
    # A wrong password never rehashes.
    with db.engine.begin() as conn:
        conn.execute(sa.update(t.users).values(password_hash=weak))
    assert db.password_sign_in("alice", "not the password at all", HERE).outcome == "wrong"
    assert stored(db, "alice") == weak


def test_a_user_name_is_locked_after_five_failures_even_with_the_right_password(
    db: Database,
) -> None:
    db.create_user("alice")
    db.set_password("alice", GOOD)
    for n in range(throttle.USER_LIMIT.failures):
        # Each from another address: the user name's own counter locks.
        assert db.password_sign_in("alice", f"wrong guess number {n}", f"192.0.2.{n}").outcome == (
            "wrong"
        )
    refused = db.password_sign_in("alice", GOOD, "198.51.100.1")
    assert refused.outcome == "locked" and refused.until is not None
    # A name that does not exist is locked the same way (the answer tells nothing).
    for n in range(throttle.USER_LIMIT.failures):
        db.password_sign_in("ghost", f"wrong guess number {n}", f"203.0.113.{n}")
    assert db.password_sign_in("ghost", GOOD, "198.51.100.2").outcome == "locked"
    # When the lock has run out, the right password works and the count starts again.
    with db.engine.begin() as conn:
        conn.execute(
            sa.update(t.sign_in_throttle).values(
                since=now() - timedelta(hours=1), locked_until=now() - timedelta(minutes=1)
            )
        )
    assert db.password_sign_in("alice", GOOD, "198.51.100.1").outcome == "ok"


def test_one_address_is_locked_after_its_limit_across_user_names(db: Database) -> None:
    db.create_user("alice")
    db.set_password("alice", GOOD)
    limit = throttle.ADDRESS_LIMIT.failures
    # The address's counter, as if it had already failed all but one time.
    with db.engine.begin() as conn:
        conn.execute(
            sa.insert(t.sign_in_throttle).values(
                key=throttle.counter_key("address", HERE),
                kind="address",
                failures=limit - 1,
                since=now(),
                locked_until=None,
            )
        )
    assert db.password_sign_in("someone", GOOD, HERE).outcome == "wrong"
    assert db.password_sign_in("alice", GOOD, HERE).outcome == "locked"
    # Another address is not affected; an IPv6 neighbour in the same /64 is.
    assert db.password_sign_in("alice", GOOD, "192.0.2.99").outcome == "ok"


def test_an_ipv6_network_counts_as_one_address(db: Database) -> None:
    db.create_user("alice")
    db.set_password("alice", GOOD)
    with db.engine.begin() as conn:
        conn.execute(
            sa.insert(t.sign_in_throttle).values(
                key=throttle.counter_key("address", "2001:db8:1:2::/64"),
                kind="address",
                failures=throttle.ADDRESS_LIMIT.failures,
                since=now(),
                locked_until=now() + timedelta(minutes=5),
            )
        )
    assert db.password_sign_in("alice", GOOD, "2001:db8:1:2::99").outcome == "locked"
    assert db.password_sign_in("alice", GOOD, "2001:db8:1:3::99").outcome == "ok"


def test_concurrent_guesses_get_no_more_checks_than_the_limit(db: Database) -> None:
    """Counted before the check, in the write transaction that reads the lock: twenty guesses
    at once (as from several nodes) get at most the limit's checks."""
    db.create_user("alice")
    db.set_password("alice", GOOD)
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(
            pool.map(
                lambda n: (
                    db.password_sign_in("alice", f"guess {n:02d} is wrong", f"10.0.0.{n}").outcome
                ),
                range(20),
            )
        )
    assert outcomes.count("wrong") == throttle.USER_LIMIT.failures
    assert outcomes.count("locked") == 20 - throttle.USER_LIMIT.failures


def test_a_success_takes_its_attempt_back(db: Database) -> None:
    db.create_user("alice")
    db.set_password("alice", GOOD)
    for n in range(throttle.USER_LIMIT.failures - 1):
        db.password_sign_in("alice", f"wrong guess number {n}", HERE)
    assert db.password_sign_in("alice", GOOD, HERE).outcome == "ok"
    # The user's counter is forgotten: five more failures are needed to lock it.
    for n in range(throttle.USER_LIMIT.failures - 1):
        assert db.password_sign_in("alice", f"wrong again {n}", "192.0.2.50").outcome == "wrong"
    assert db.password_sign_in("alice", GOOD, HERE).outcome == "ok"
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(t.sign_in_throttle)).all()
    # The address keeps its failures (minus the successes); the user's counter is gone.
    kinds = sorted(row.kind for row in rows)
    assert kinds == ["address", "address"]


def test_old_counters_are_pruned(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            sa.insert(t.sign_in_throttle),
            [
                {
                    "key": throttle.counter_key("user", f"old{n}"),
                    "kind": "user",
                    "failures": 1,
                    "since": now() - timedelta(days=1),
                    "locked_until": None,
                }
                for n in range(50)
            ],
        )
    db.password_sign_in("someone", "a wrong password here", HERE)
    with db.engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(t.sign_in_throttle)).scalar()
    assert left == 2  # this attempt's user and address
