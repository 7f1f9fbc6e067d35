"""Threads and processes sharing one database: the database settles races."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter

from headwater.db import AddResult, Database
from tests.db.factories import new_file

FILENAME = "acme_tools-1.0-py3-none-any.whl"


def _url(db: Database) -> str:
    return (
        db._engine.url.render_as_string(hide_password=False)
        .replace("+psycopg", "")
        .replace("+pysqlite", "")
    )


def test_u9_threads_racing_for_one_filename_one_wins(db: Database) -> None:
    digests = ["a", "b"] * 4
    barrier = threading.Barrier(len(digests))
    results: dict[int, AddResult] = {}
    errors: list[BaseException] = []

    def upload(i: int) -> None:
        barrier.wait()
        try:
            results[i] = db.add_file("main", "acme-tools", new_file(FILENAME, digest=digests[i]))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(digests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    winners = [i for i, r in results.items() if r is AddResult.CREATED]
    assert len(winners) == 1
    won = digests[winners[0]]
    for i, result in results.items():
        if i != winners[0]:
            assert result is (AddResult.IDENTICAL if digests[i] == won else AddResult.CONFLICT)
    record = db.project("main", "acme-tools")
    assert record is not None
    assert [f.sha256 for f in record.files] == [won * 64]


def test_concurrent_writers_get_distinct_serials_in_commit_order(db: Database) -> None:
    per_thread, threads_n = 10, 6
    seen: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def work(n: int) -> None:
        barrier.wait()
        try:
            mine = []
            for k in range(per_thread):
                name = f"p{n}-{k}"
                db.add_file("main", name, new_file(f"p{n}_{k}-1.0.tar.gz"))
                mine.append(db.project_serial("main", name) or 0)
            seen[n] = mine
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    serials = [c.serial for c in db.changes_since("main", 0)]
    # Two serials per new project (create, add file), no duplicates, no gaps, in order.
    assert serials == list(range(1, 2 * per_thread * threads_n + 1))
    for mine in seen.values():
        assert mine == sorted(mine)


_RACER = """
import sys
from datetime import UTC, datetime
from headwater.db import Database, NewFile
url, digest = sys.argv[1], sys.argv[2]
db = Database.connect(url)
new = NewFile(filename=%r, version="1.0", sha256=digest * 64, size=1,
              upload_time=datetime.now(UTC), storage_key="k/" + digest)
print("ready", flush=True)
sys.stdin.readline()
print(db.add_file("main", "acme-tools", new).name, flush=True)
db.close()
"""


def test_u9_processes_racing_for_one_filename_one_wins(db: Database) -> None:
    # Several server processes share one database: the database, not a process lock, decides.
    digests = ["a", "b", "a"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER % FILENAME, _url(db), d],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for d in digests
    ]
    outcomes = []
    try:
        for proc in procs:  # every process has imported and connected...
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:  # ...then all go at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            outcomes.append(out.strip())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert Counter(outcomes)["CREATED"] == 1, outcomes
    record = db.project("main", "acme-tools")
    assert record is not None
    won = record.files[0].sha256[0]
    for digest, outcome in zip(digests, outcomes, strict=True):
        if outcome != "CREATED":
            assert outcome == ("IDENTICAL" if digest == won else "CONFLICT"), outcomes
    assert db.last_serial("main") == 2


def test_servers_starting_together_on_a_new_database_make_one_admin(db: Database) -> None:
    """Several ``headwater serve`` starting on one new database at once (scale-out machines)
    each run the first-start step; exactly one makes the admin and its token, none fails."""
    from headwater.assembly.plan import ensure_admin_token

    starters = 8
    barrier = threading.Barrier(starters)
    results: list[str | None] = []
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            results.append(ensure_admin_token(db))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(starters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    made = [token for token in results if token is not None]
    assert len(made) == 1
    assert [u.name for u in db.users()] == ["admin"]
    info = db.authenticate(made[0])
    assert info is not None and "admin" in info.scopes
    assert ensure_admin_token(db) is None  # a later start makes nothing
