"""Text people type that reaches a page (yank and status reasons, a file's version, Requires-Python
and display name, a token's description) is refused when a page could not
carry it, by every route to the database: the Database API, the management API (400 naming the
character) and ``headwater project`` (exit 2, same message). Nothing is changed by a refusal, and
what is accepted renders as valid HTML5."""

from __future__ import annotations

import json
from pathlib import Path

import html5lib
import pytest

from headwater.db import Database, InvalidArgument
from tests.cli.test_admin_cli import data, hw, show  # noqa: F401  (the `data` fixture)
from tests.db.factories import new_file
from tests.server.hosting import dists
from tests.server.test_hosted_app import Hosted, sqlite_db  # noqa: F401  (fixture)

# Every kind HTML5 refuses (headwater.simple.text), and the line breaks a one-line text may not hold.
BAD = ["\x00", "\x07", "\x1b[31m", "\t", "\n", "\r", "\x0c", "\x7f", "\x85", "\ufdd0", "\U0001fffe"]
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
HTML = {"Accept": "text/html"}


@pytest.mark.parametrize("bad", BAD, ids=[f"U+{ord(b[0]):04X}" for b in BAD])
def test_api_refuses_control_characters_in_reasons(
    tmp_path: Path,
    sqlite_db: Database,  # noqa: F811
    bad: str,
) -> None:
    hosted = Hosted(tmp_path, sqlite_db)
    wheel, _ = dists(tmp_path / "dist", "tool", "1.0")
    assert hosted.upload(wheel).status == 200
    before = hosted.get("/main/simple/tool/", **JSON).body
    for method, path, body in (
        ("POST", "/api/main/projects/tool/yank", {"version": "1.0", "reason": f"bad{bad}x"}),
        ("PUT", "/api/main/projects/tool/status", {"status": "archived", "reason": f"a{bad}b"}),
    ):
        answer = hosted.send(method, path, hosted.admin, json.dumps(body).encode())
        assert answer.status == 400, (path, answer.body)
        error = json.loads(answer.body)["error"]
        assert f"U+{ord(bad[0]):04X}" in error and "Nothing was changed" in error
    assert hosted.get("/main/simple/tool/", **JSON).body == before


def test_accepted_reasons_render_valid_html5(tmp_path: Path, sqlite_db: Database) -> None:  # noqa: F811
    hosted = Hosted(tmp_path, sqlite_db)
    wheel, _ = dists(tmp_path / "dist", "tool", "1.0")
    assert hosted.upload(wheel).status == 200
    reason = json.dumps({"version": "1.0", "reason": '<"broken"> & caf\u00e9 \u2603'}).encode()
    assert hosted.send("POST", "/api/main/projects/tool/yank", hosted.admin, reason).status == 200
    page = hosted.get("/main/simple/tool/", **HTML).body
    html5lib.HTMLParser(strict=True).parse(page.decode())
    assert 'data-yanked="&lt;&quot;broken&quot;&gt; &amp; caf\u00e9 \u2603"' in page.decode()


@pytest.mark.parametrize("bad", BAD)
def test_database_refuses_them_for_every_caller(tmp_path: Path, bad: str) -> None:
    db = Database.connect(f"sqlite:///{tmp_path / 'hw.sqlite3'}")
    db.upgrade()
    try:
        with pytest.raises(InvalidArgument, match=f"U\\+{ord(bad[0]):04X}"):
            db.yank("main", "tool", version="1.0", reason=f"x{bad}", actor=None)
        with pytest.raises(InvalidArgument, match=f"U\\+{ord(bad[0]):04X}"):
            db.set_status("main", "tool", "archived", f"x{bad}", actor=None)
        # Every other text a page, a header or a listing shows: the fields of an uploaded file
        # (a version, Requires-Python, the display name) and a token's description.
        db.create_user("alice")
        for field in ("version", "requires_python", "display_name"):
            with pytest.raises(InvalidArgument, match=f"U\\+{ord(bad[0]):04X}"):
                db.add_file("main", "tool", new_file(**{field: f"1{bad}"}), uploader="alice")
        assert db.project("main", "tool") is None
        with pytest.raises(InvalidArgument, match=f"U\\+{ord(bad[0]):04X}"):
            db.create_token("alice", description=f"ci{bad}")
        assert db.tokens() == []
    finally:
        db.close()


def test_cli_refuses_them_and_changes_nothing(data: Path) -> None:  # noqa: F811
    d = ("--data-dir", str(data))
    before = show(data)
    for args in (
        ("project", "yank", "main", "tool", "--version", "1.0", "--reason", "evil\x1b[2J"),
        ("project", "status", "main", "tool", "archived", "--reason", "two\nlines"),
    ):
        done = hw(*args, *d, ok=False)
        assert done.returncode != 0
        assert "U+001B" in done.stderr or "U+000A" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert show(data) == before
