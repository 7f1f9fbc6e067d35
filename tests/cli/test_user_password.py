"""``headwater user password``: from standard input or a terminal, never from the command line."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from headwater.db import Database

HEADWATER = str(Path(sys.executable).with_name("headwater"))
PASSWORD = "a long enough password for tests"


def hw(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADWATER, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    assert hw("db", "upgrade", "--data-dir", str(data)).returncode == 0
    db = Database.connect(f"sqlite:///{data / 'headwater.sqlite3'}")
    db.create_user("alice")
    db.close()
    return data


def open_db(data: Path) -> Database:
    return Database.connect(f"sqlite:///{data / 'headwater.sqlite3'}")


def test_set_from_stdin_then_clear(data: Path) -> None:
    done = hw("user", "password", "alice", "--data-dir", str(data), stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    db = open_db(data)
    try:
        assert db.check_password("alice", PASSWORD)
        assert "alice  (password)" in hw("user", "list", "--data-dir", str(data)).stdout
        cleared = hw("user", "password", "alice", "--clear", "--data-dir", str(data))
        assert cleared.returncode == 0 and "cleared" in cleared.stdout
        assert not db.has_password("alice")
    finally:
        db.close()


@pytest.mark.parametrize(
    ("user", "stdin", "message"),
    [
        ("alice", "short\n", "15 to 256 characters"),
        ("alice", "", "no password on standard input"),
        ("ghost", PASSWORD + "\n", "no user 'ghost'"),
    ],
)
def test_refusals_name_the_fix_and_change_nothing(
    data: Path, user: str, stdin: str, message: str
) -> None:
    done = hw("user", "password", user, "--data-dir", str(data), stdin=stdin)
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    db = open_db(data)
    try:
        assert not db.has_password("alice")
    finally:
        db.close()


def test_the_password_is_never_an_argument(data: Path) -> None:
    done = hw("user", "password", "alice", PASSWORD, "--data-dir", str(data))
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


def test_at_a_terminal_it_is_asked_twice_without_echo(data: Path) -> None:
    def run(first: str, second: str) -> tuple[int, str]:
        pid, fd = pty.fork()
        if pid == 0:  # the child: headwater on the terminal
            os.execv(HEADWATER, [HEADWATER, "user", "password", "alice", "--data-dir", str(data)])
        seen = b""
        for answer in (first, second):
            deadline = time.monotonic() + 30
            while not seen.rstrip().endswith(b":") and time.monotonic() < deadline:
                seen += os.read(fd, 1024)
            os.write(fd, answer.encode() + b"\n")
            seen += b"|"
        while True:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")

    code, out = run(PASSWORD, PASSWORD + "x")
    assert code != 0 and "differ" in out and PASSWORD not in out
    code, out = run(PASSWORD, PASSWORD)
    assert code == 0 and "set" in out and PASSWORD not in out
    db = open_db(data)
    try:
        assert db.check_password("alice", PASSWORD)
    finally:
        db.close()
