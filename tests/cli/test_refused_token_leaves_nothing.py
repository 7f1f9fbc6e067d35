"""A refused ``headwater token create`` leaves the database as it was (found black-box, issue 10)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEADWATER = str(Path(sys.executable).with_name("headwater"))


def _run(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADWATER, *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "bad",
    [
        ["--scope", "admin", "--project", "alpha"],
        ["--scope", "read", "--project", "not a name!"],
        ["--scope", "read", "--index", "../x"],
    ],
)
def test_a_refused_token_creates_no_user(tmp_path: Path, bad: list[str]) -> None:
    data = tmp_path / "data"
    assert _run(data, "token", "create", "--user", "first").returncode == 0
    refused = _run(data, "token", "create", "--user", "newcomer", *bad)
    assert refused.returncode != 0, refused.stderr
    users = _run(data, "user", "list").stdout.split()
    assert "newcomer" not in users, (refused.stderr, users)
