"""The operator commands on the database: db, user, token, project, namespace (SQLite here; the
same Database API is tested on PostgreSQL in tests/db)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headwater.db import Database, NewFile
from headwater.storage.layout import file_key

HEADWATER = str(Path(sys.executable).with_name("headwater"))


def hw(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [HEADWATER, *args], capture_output=True, text=True, timeout=60, check=False
    )
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    hw("db", "upgrade", "--data-dir", str(data))
    db = Database.connect(f"sqlite:///{data / 'headwater.sqlite3'}")
    db.create_user("alice")
    sha = "ab" * 32
    key = file_key(sha, "tool-1.0-py3-none-any.whl")
    blob = data / "hosted" / "main" / key
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"wheel")
    new = NewFile(
        filename="tool-1.0-py3-none-any.whl", version="1.0", sha256=sha, size=5,
        upload_time=datetime.now(UTC), storage_key=key, display_name="Tool",
    )  # fmt: skip
    db.add_file("main", "tool", new, uploader="alice")
    db.close()
    return data


def show(data: Path) -> dict[str, object]:
    return json.loads(hw("project", "show", "main", "tool", "--data-dir", str(data)).stdout)


def test_db_check_and_upgrade_say_where_the_schema_is(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    refused = hw("db", "check", "--data-dir", str(fresh), ok=False)
    assert refused.returncode == 2 and "headwater db upgrade" in refused.stderr
    assert "-> " in hw("db", "upgrade", "--data-dir", str(fresh)).stdout
    assert "schema is current" in hw("db", "check", "--data-dir", str(fresh)).stdout


#: Commands that only read or check the database. Given a data directory where nothing was set
#: up (a typo in --data-dir), each must refuse by name and leave nothing behind: no directory, no
#: empty database that a later command would then take for a real one.
READ_ONLY = [
    ("db", "check"),
    ("audit",),
    ("token", "list"),
    ("user", "list"),
    ("gc", "--dry-run"),
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_command_that_only_reads_makes_no_database(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    missing = tmp_path / "typo" / "data"
    refused = hw(*command, "--data-dir", str(missing), ok=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"no database at {missing / 'headwater.sqlite3'}" in refused.stderr
    assert "headwater db upgrade" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "typo").exists()


def test_only_a_missing_sqlite_file_is_refused_when_not_creating(tmp_path: Path) -> None:
    from headwater.db.database import sqlite_file

    assert sqlite_file(f"sqlite:///{tmp_path}/x.sqlite3") == f"{tmp_path}/x.sqlite3"
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("postgresql://u@localhost/hw") is None
    assert sqlite_file("::not a url::") is None
    with pytest.raises(Exception, match="no database at"):
        Database.connect(f"sqlite:///{tmp_path}/x.sqlite3", create=False)
    assert not (tmp_path / "x.sqlite3").exists()


def test_tokens_are_created_listed_and_revoked(data: Path) -> None:
    made = hw(
        "token",
        "create",
        "--user",
        "bob",
        "--scope",
        "upload",
        "--index",
        "main",
        "--data-dir",
        str(data),
    )
    token = made.stdout.strip()
    assert token.startswith("hw_") and "created user bob" in made.stderr
    listed = json.loads(hw("token", "list", "--user", "bob", "--data-dir", str(data)).stdout)
    assert len(listed) == 1 and token not in json.dumps(listed)  # never the secret
    assert listed[0]["indexes"] == ["main"]
    hw("token", "revoke", listed[0]["id"], "--data-dir", str(data))
    db = Database.connect(f"sqlite:///{data / 'headwater.sqlite3'}")
    assert db.authenticate(token) is None
    db.close()
    assert hw("token", "revoke", listed[0]["id"], "--data-dir", str(data), ok=False).returncode == 1


def test_admin_token_limited_to_a_project_is_refused_naming_the_fix(data: Path) -> None:
    d = ("--data-dir", str(data))
    refused = hw(
        "token", "create", "--user", "bob", "--scope", "admin", "--project", "acme", *d, ok=False
    )
    assert refused.returncode == 2 and refused.stdout == ""  # no token printed
    assert "--scope manage" in refused.stderr and "--project acme" in refused.stderr
    listed = json.loads(hw("token", "list", *d).stdout)
    assert all("admin" not in t["scopes"] or t["projects"] is None for t in listed)
    made = hw("token", "create", "--user", "bob", "--scope", "manage", "--project", "acme", *d)
    assert made.stdout.startswith("hw_")


def test_project_yank_status_urls_owners_and_delete(data: Path) -> None:
    d = ("--data-dir", str(data))
    hw("project", "yank", "main", "tool", "--version", "1.0", "--reason", "broken", *d)
    files = show(data)["project"]["files"]  # type: ignore[index]
    assert files[0]["yanked"] == "broken"
    hw("project", "unyank", "main", "tool", "--version", "1.0", *d)
    assert show(data)["project"]["files"][0]["yanked"] is False  # type: ignore[index]
    hw("project", "status", "main", "tool", "deprecated", "--reason", "use tool2", *d)
    assert show(data)["project"]["status"] == "deprecated"  # type: ignore[index]
    bad = hw("project", "status", "main", "tool", "sleeping", *d, ok=False)
    assert bad.returncode == 2 and "invalid project status" in bad.stderr
    hw("project", "alternate-locations", "main", "tool", "https://example.org/simple/tool/", *d)
    hw("project", "tracks", "main", "tool", "https://pypi.org/simple/tool/", *d)
    shown = show(data)["project"]
    assert shown["alternate_locations"] == ["https://example.org/simple/tool/"]  # type: ignore[index]
    assert shown["tracks"] == ["https://pypi.org/simple/tool/"]  # type: ignore[index]
    hw("user", "create", "bob", *d)
    hw("project", "owner-add", "main", "tool", "bob", *d)
    assert sorted(show(data)["owners"]) == ["alice", "bob"]  # type: ignore[arg-type]
    blob = next((data / "hosted").rglob("*.whl"))
    hw("project", "delete", "main", "tool", "--file", "tool-1.0-py3-none-any.whl", *d)
    assert not blob.exists()  # the blob no file refers to any more is removed
    missing = hw("project", "yank", "main", "nope", "--version", "1", *d, ok=False)
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_namespaces_grant_list_revoke(data: Path) -> None:
    d = ("--data-dir", str(data))
    hw("namespace", "grant", "main", "Acme", "--owner", "alice", *d)
    assert [g["name"] for g in json.loads(hw("namespace", "list", "main", *d).stdout)] == ["acme"]
    overlap = hw("namespace", "grant", "main", "acme-tools", "--owner", "alice", *d, ok=False)
    assert overlap.returncode == 2  # PEP 752: grants must not overlap
    hw("namespace", "revoke", "main", "acme", *d)
    assert json.loads(hw("namespace", "list", "main", *d).stdout) == []
