"""``headwater publisher add/list/remove/log``: trusted publishers from the command line."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from headwater.db import Database, Grant
from tests.cli.test_admin_cli import hw
from tests.db.factories import new_file


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory whose index main has the project tool (owned by alice)."""
    folder = tmp_path / "data"
    hw("db", "upgrade", "--data-dir", str(folder))
    db = Database.connect(f"sqlite:///{folder / 'headwater.sqlite3'}")
    db.create_user("alice")
    db.add_file("main", "tool", new_file("tool-1.0-py3-none-any.whl"), uploader="alice")
    db.close()
    return folder


def _hw(data: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return hw("publisher", *args, "--data-dir", str(data), ok=ok)


def test_add_list_remove(data: Path) -> None:
    done = _hw(
        data,
        "add",
        "main",
        "tool",
        "--github",
        "acme/tool",
        "--workflow",
        "release.yml",
        "--environment",
        "pypi",
        "--repository-id",
        "42",
    )
    assert (
        "publisher 1 (active): GitHub acme/tool, workflow release.yml, environment pypi"
        in done.stdout
    )
    _hw(
        data,
        "add",
        "main",
        "new-thing",
        "--gitlab",
        "acme/group/thing",
        "--workflow",
        ".gitlab-ci.yml",
        "--pending",
        "--owner",
        "alice",
    )
    _hw(
        data,
        "add",
        "main",
        "tool",
        "--oidc-issuer",
        "https://ci.example.org",
        "--claim",
        "sub=job:tool",
    )
    listed = json.loads(_hw(data, "list", "main").stdout)
    assert [(p["project"], p["status"], p["identity"]["type"]) for p in listed] == [
        ("tool", "active", "github"),
        ("new-thing", "pending", "gitlab"),
        ("tool", "active", "oidc"),
    ]
    assert listed[0]["identity"]["repository_id"] == "42"
    assert listed[1]["owner"] == "alice"
    only = json.loads(_hw(data, "list", "main", "new-thing").stdout)
    assert [p["id"] for p in only] == [2]
    assert "removed" in _hw(data, "remove", "--id", "2").stdout
    assert [p["id"] for p in json.loads(_hw(data, "list").stdout)] == [1, 3]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["add", "main", "tool", "--github", "acme/tool"], "--workflow"),
        (["add", "main", "tool"], "exactly one of"),
        (
            ["add", "main", "tool", "--github", "a/b", "--gitlab", "c/d", "--workflow", "r.yml"],
            "exactly one of",
        ),
        (["add", "main", "nothing", "--github", "acme/tool", "--workflow", "r.yml"], "--pending"),
        (
            ["add", "main", "tool", "--github", "acme/tool", "--workflow", "r.yml", "--pending"],
            "exists",
        ),
        (["add", "main", "tool", "--github", "acme", "--workflow", "r.yml"], "owner/name"),
        (
            ["add", "main", "tool", "--oidc-issuer", "http://ci.example.org", "--claim", "sub=x"],
            "https",
        ),
        (
            ["add", "main", "tool", "--oidc-issuer", "https://ci.example.org", "--claim", "sub"],
            "NAME=VALUE",
        ),
        (["add", "main", "tool", "--oidc-issuer", "https://ci.example.org"], "at least one claim"),
        (
            ["add", "nothere", "tool", "--github", "acme/tool", "--workflow", "r.yml"],
            "no hosted index 'nothere'",
        ),
        (["remove", "--id", "99"], "no publisher 99"),
        (["remove"], "--id"),
        (["log", "--since", "yesterday"], "ISO 8601"),
    ],
)
def test_bad_input_is_refused_naming_the_fix(data: Path, args: list[str], words: str) -> None:
    done = _hw(data, *args, ok=False)
    assert done.returncode != 0
    assert words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(_hw(data, "list").stdout) == []


def test_the_log_shows_mints_and_uploads(data: Path) -> None:
    _hw(data, "add", "main", "tool", "--github", "acme/tool", "--workflow", "release.yml")
    db = Database.connect(f"sqlite:///{data / 'headwater.sqlite3'}")
    try:
        from datetime import UTC, datetime

        minted = db.mint_token(
            issuer="https://token.actions.githubusercontent.com",
            subject="repo:acme/tool:ref:refs/tags/v1",
            jti="j",
            jti_expires=datetime.now(UTC) + timedelta(minutes=5),
            claims={"repository": "acme/tool"},
            grants=[Grant("main", "tool", 1)],
            lifetime=timedelta(minutes=15),
        )
        db.record_publish(minted.id, "main", "tool", "tool-1.1.tar.gz", 1)
    finally:
        db.close()
    (record,) = json.loads(_hw(data, "log", "main").stdout)
    assert record["subject"] == "repo:acme/tool:ref:refs/tags/v1"
    assert record["grants"] == [["main", "tool", 1]]
    assert [u["filename"] for u in record["uploads"]] == ["tool-1.1.tar.gz"]
    assert json.loads(_hw(data, "log", "main", "--since", "2999-01-01").stdout) == []
