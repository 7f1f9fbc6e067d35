"""The change signal (``Database.generation``): every committed write, by any connection or
process, moves it; reads do not; on PostgreSQL a lost listener makes every call a change.

Each write is made through a *second* ``Database`` on the same database (what a CLI command or
another worker is), and the first one must see it: on SQLite at the very next call, on PostgreSQL
as soon as the notification arrives (milliseconds; the test allows 5 s).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from headwater.db import Database, generation
from headwater.db.audit import record_admin_action
from headwater.db.generation import LISTENER, PostgresSignal
from tests.db.factories import new_file

FILE = "acme_tools-1.0-py3-none-any.whl"

#: Every kind of write: (name, what to prepare, the write).
Write = Callable[[Database], object]
PASSWORD = "a password long enough"
_SESSIONS: dict[str, str] = {}


def _signed_in(db: Database) -> None:
    db.set_password("alice", PASSWORD)
    secret = db.password_sign_in("alice", PASSWORD, "192.0.2.1").secret
    assert secret is not None
    _SESSIONS["alice"] = secret


WRITES: list[tuple[str, Write, Write]] = [
    ("create user", lambda db: None, lambda db: db.create_user("bob")),
    # Ending sessions must reach every node's cached credentials at once.
    ("set password", lambda db: None, lambda db: db.set_password("alice", PASSWORD)),
    (
        "clear password",
        lambda db: db.set_password("alice", PASSWORD),
        lambda db: db.clear_password("alice"),
    ),
    ("sign out", _signed_in, lambda db: db.end_session(_SESSIONS["alice"])),
    ("create token", lambda db: None, lambda db: db.create_token("alice")),
    (
        "revoke token",
        lambda db: db.create_token("alice"),
        lambda db: db.revoke_token(db.tokens("alice")[0].id),
    ),
    ("upload", lambda db: None, lambda db: db.add_file("main", "acme-tools", new_file())),
    (
        "yank",
        lambda db: db.add_file("main", "acme-tools", new_file()),
        lambda db: db.yank("main", "acme-tools", filename=FILE, reason="broken"),
    ),
    (
        "unyank",
        lambda db: (
            db.add_file("main", "acme-tools", new_file()),
            db.yank("main", "acme-tools", filename=FILE),
        ),
        lambda db: db.unyank("main", "acme-tools", filename=FILE),
    ),
    (
        "delete file",
        lambda db: db.add_file("main", "acme-tools", new_file()),
        lambda db: db.delete_file("main", "acme-tools", FILE),
    ),
    (
        "delete release",
        lambda db: db.add_file("main", "acme-tools", new_file()),
        lambda db: db.delete_release("main", "acme-tools", "1.0"),
    ),
    (
        "delete project",
        lambda db: db.add_file("main", "acme-tools", new_file()),
        lambda db: db.delete_project("main", "acme-tools"),
    ),
    (
        "status",
        lambda db: db.add_file("main", "acme-tools", new_file()),
        lambda db: db.set_status("main", "acme-tools", "quarantined"),
    ),
    (
        "tracks",
        lambda db: db.add_file("main", "acme-tools", new_file()),
        lambda db: db.set_tracks("main", "acme-tools", ["https://pypi.org/simple/acme-tools/"]),
    ),
    (
        "alternate-locations",
        lambda db: db.add_file("main", "acme-tools", new_file()),
        lambda db: db.set_alternate_locations("main", "acme-tools", ["https://example.org/a/"]),
    ),
    (
        "add owner",
        lambda db: (db.add_file("main", "acme-tools", new_file()), db.create_user("bob")),
        lambda db: db.add_owner("main", "acme-tools", "bob"),
    ),
    (
        "remove owner",
        lambda db: (
            db.add_file("main", "acme-tools", new_file(), uploader="alice"),
            db.create_user("bob"),
            db.add_owner("main", "acme-tools", "bob"),
        ),
        lambda db: db.remove_owner("main", "acme-tools", "bob"),
    ),
    ("namespace grant", lambda db: None, lambda db: db.grant_namespace("main", "acme", "alice")),
    (
        "namespace revoke",
        lambda db: db.grant_namespace("main", "acme", "alice"),
        lambda db: db.revoke_namespace("main", "acme"),
    ),
]


@pytest.fixture
def other(db: Database) -> Iterator[Database]:
    """A second Database on the same database: another process's view."""
    url = db._engine.url.render_as_string(hide_password=False)
    second = Database.connect(url)
    yield second
    second.close()


def _listening(db: Database) -> None:
    """Wait until the PostgreSQL listener of ``db`` is connected (a no-op on SQLite)."""
    db.generation()
    signal = db._signal
    if isinstance(signal, PostgresSignal):
        deadline = time.monotonic() + 10
        while not signal.listening:
            assert time.monotonic() < deadline, "the change listener did not connect in 10 s"
            time.sleep(0.01)


def _changes(db: Database, before: int) -> bool:
    """Whether ``db``'s generation moves from ``before``: at once on SQLite, within 5 s on
    PostgreSQL (a notification travels)."""
    if db.generation() != before:
        return True
    if db._engine.dialect.name == "sqlite":
        return False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.005)
        if db.generation() != before:
            return True
    return False


def _stable(db: Database) -> int:
    """The generation once it stopped moving (earlier writes may still be arriving)."""
    _listening(db)
    value = db.generation()
    for _ in range(100):
        time.sleep(0.02)
        again = db.generation()
        if again == value:
            return value
        value = again
    raise AssertionError("the generation never settled")


@pytest.mark.parametrize(("what", "prepare", "write"), WRITES, ids=[w[0] for w in WRITES])
def test_every_write_by_another_connection_moves_the_generation(
    db: Database, other: Database, alice: str, what: str, prepare: Write, write: Write
) -> None:
    prepare(other)
    before = _stable(db)
    write(other)
    assert _changes(db, before), f"{what} by another connection left the generation unchanged"


@pytest.mark.parametrize(("what", "prepare", "write"), WRITES, ids=[w[0] for w in WRITES])
def test_every_write_by_the_same_database_moves_the_generation(
    db: Database, alice: str, what: str, prepare: Write, write: Write
) -> None:
    prepare(db)
    before = _stable(db)
    write(db)
    assert _changes(db, before), f"{what} by this process left the generation unchanged"


#: Writes no cache is made from, which anyone may cause: they must leave the signal alone, or a
#: flood of wrong passwords would make every server drop its cached pages.
QUIET: list[tuple[str, Write, Write]] = [
    (
        "wrong password",
        lambda db: db.set_password("alice", PASSWORD),
        lambda db: db.password_sign_in("alice", "not the password at all", "192.0.2.7"),
    ),
    (
        "unknown user",
        lambda db: None,
        lambda db: db.password_sign_in("nobody", "not the password at all", "192.0.2.7"),
    ),
    (
        "locked name",
        lambda db: [
            db.password_sign_in("nobody", f"wrong password {n}", "192.0.2.8") for n in range(5)
        ],
        lambda db: db.password_sign_in("nobody", PASSWORD, "192.0.2.9"),
    ),
    (
        "sign in",
        lambda db: db.set_password("alice", PASSWORD),
        lambda db: db.password_sign_in("alice", PASSWORD, "192.0.2.7"),
    ),
    (
        "audit entry",
        lambda db: None,
        lambda db: record_admin_action(
            db.engine, actor="-", action="refused sign-in", detail="x", origin="192.0.2.7"
        ),
    ),
]


@pytest.mark.parametrize(("what", "prepare", "write"), QUIET, ids=[w[0] for w in QUIET])
def test_quiet_writes_leave_the_generation_alone(
    db: Database, other: Database, alice: str, what: str, prepare: Write, write: Write
) -> None:
    prepare(other)
    before = _stable(db)
    mine = _stable(other)
    write(other)
    assert not _changes(db, before), f"{what} by another connection moved the generation"
    assert not _changes(other, mine), f"{what} by this process moved the generation"
    # ... and a loud write after it is still seen.
    other.grant_namespace("main", "acme", "alice")
    assert _changes(db, before)


def test_reads_leave_the_generation_alone(db: Database, other: Database, alice: str) -> None:
    other.add_file("main", "acme-tools", new_file())
    before = _stable(db)
    for reader in (db, other):
        reader.project("main", "acme-tools")
        reader.projects("main")
        reader.last_serial("main")
        reader.namespaces("main")
        reader.tokens()
    assert db.generation() == before
    assert db.generation() == before


def test_a_write_by_another_process_is_seen_at_the_next_call(db: Database, alice: str) -> None:
    """A CLI command is another process with its own connections."""
    before = _stable(db)
    url = db._engine.url.render_as_string(hide_password=False)
    code = (
        "from headwater.db import Database\n"
        f"db = Database.connect({url!r})\n"
        "db.grant_namespace('main', 'acme', 'alice')\n"
        "db.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert _changes(db, before)


def test_a_rolled_back_write_may_leave_it_but_a_failed_check_never_hides_a_commit(
    db: Database, other: Database, alice: str
) -> None:
    """A refused write (a namespace conflict) commits nothing; the next real write is seen."""
    other.grant_namespace("main", "acme", "alice")
    before = _stable(db)
    with pytest.raises(Exception, match="acme"):
        other.grant_namespace("main", "acme-tools", "alice")
    other.revoke_namespace("main", "acme")
    assert _changes(db, before)


def test_postgresql_without_a_listener_trusts_no_cache(db: Database) -> None:
    """While the listener is down, every call is a change; once it is back, calls agree again."""
    if db._engine.dialect.name != "postgresql":
        pytest.skip("the listener is PostgreSQL's")
    _stable(db)
    signal = db._signal
    assert isinstance(signal, PostgresSignal)
    with db._engine.begin() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": LISTENER},
        ).scalar()
    assert killed
    deadline = time.monotonic() + 10
    while signal.listening:  # noticed at the next poll at the latest
        assert time.monotonic() < deadline, "the lost listener was not noticed"
        time.sleep(0.01)
    assert db.generation() != db.generation()
    _stable(db)  # it connects again by itself
    assert db.generation() == db.generation()


def test_sqlite_settled_wal_answers_from_one_stat_and_still_sees_every_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path (an unchanged, settled WAL: no statement) never hides a commit: commits
    made at random moments, some right after a look, some after the WAL settled, are each seen
    at the next call."""
    monkeypatch.setattr(generation, "SETTLE_SECONDS", 0.02)  # > the kernel's clock tick
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    reader, writer = Database.connect(url), Database.connect(url)
    reader.upgrade()
    writer.create_user("alice")
    rng = random.Random(7)
    fast = 0
    try:
        for round_ in range(150):
            time.sleep(rng.choice([0, 0, 0.001, 0.005, 0.03]))
            before = reader.generation()
            signal = reader._signal
            assert isinstance(signal, generation.SqliteSignal)
            fast += signal._last[0] is not None
            assert reader.generation() == before, "no commit, yet the generation moved"
            writer.grant_namespace("main", f"ns{round_}", "alice")
            assert reader.generation() != before, f"commit {round_} went unseen"
    finally:
        reader.close()
        writer.close()
    assert fast > 10, "the settled fast path was never taken"


def test_a_forked_worker_makes_its_own_signal_and_sees_commits(tmp_path: Path) -> None:
    """Server workers are forked after the database may have been used: the child must not
    reuse the parent's SQLite connection, and must see commits like any process."""
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db, writer = Database.connect(url), Database.connect(url)
    db.upgrade()
    writer.create_user("alice")
    db.generation()
    parent_signal = db._signal
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        ok = False
        try:
            before = db.generation()
            fresh = db._signal is not None and db._signal is not parent_signal
            writer.grant_namespace("main", "acme", "alice")
            ok = fresh and db.generation() != before and db.generation() == db.generation()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert db._signal is parent_signal  # the parent keeps its own
    writer.close()
    db.close()
