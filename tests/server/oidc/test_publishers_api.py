"""The management API of trusted publishers and of the publishing log."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headwater.db import Database, GitHubIdentity, Grant
from tests.server.asgi import call
from tests.server.hosting import dists
from tests.server.test_hosted_app import Hosted, _auth, sqlite_db  # noqa: F401 (a fixture)

GITHUB = {"github": {"repository": "acme/tools", "workflow": "release.yml", "environment": "pypi"}}
BASE = "/api/main/projects"


def hosted_identity() -> GitHubIdentity:
    return GitHubIdentity(repository="acme/tools", workflow="release.yml")


@pytest.fixture
def hosted(tmp_path: Path, sqlite_db: Database) -> Hosted:  # noqa: F811 (the fixture above)
    hosted = Hosted(tmp_path, sqlite_db)
    wheel, _ = dists(tmp_path / "dist", "acme", "1.0")
    assert hosted.upload(wheel).status == 200  # alice (an admin) owns acme
    sqlite_db.create_user("bob")
    return hosted


def _send(
    hosted: Hosted, method: str, path: str, token: str | None, body: object = None
) -> tuple[int, object]:
    raw = b"" if body is None else json.dumps(body).encode()
    path, _, query = path.partition("?")
    headers = {"Content-Type": "application/json", **(_auth(token) if token else {})}
    answer = asyncio.run(call(hosted.app, method, path, headers=headers, query=query, body=raw))
    return answer.status, json.loads(answer.body)


def test_an_owner_adds_lists_and_removes_publishers_of_their_project(hosted: Hosted) -> None:
    _, owner = hosted.db.create_token("alice", scopes={"manage"})
    status, body = _send(hosted, "POST", f"{BASE}/acme/publishers", owner, GITHUB)
    assert status == 200, body
    added = body["result"]  # type: ignore[index]
    assert (added["status"], added["origin"], added["added_by"]) == ("active", "api", "alice")
    status, listed = _send(hosted, "GET", f"{BASE}/acme/publishers", owner)
    assert status == 200 and [p["identity"]["repository"] for p in listed] == ["acme/tools"]  # type: ignore[index,union-attr]
    status, _ = _send(hosted, "DELETE", f"{BASE}/acme/publishers/{added['id']}", owner)
    assert status == 200
    assert hosted.db.publishers("main") == []


def test_someone_who_does_not_own_the_project_cannot(hosted: Hosted) -> None:
    _, bob = hosted.db.create_token("bob", scopes={"manage"})
    status, body = _send(hosted, "POST", f"{BASE}/acme/publishers", bob, GITHUB)
    assert status == 403 and "not an owner" in body["error"]  # type: ignore[index]
    assert _send(hosted, "GET", f"{BASE}/acme/publishers", bob)[0] == 403
    assert _send(hosted, "GET", f"{BASE}/acme/publishers", None)[0] == 401


def test_only_an_admin_adds_a_pending_publisher(hosted: Hosted) -> None:
    _, bob = hosted.db.create_token("bob", scopes={"manage"})
    pending = {**GITHUB, "pending": True, "owner": "bob"}
    assert _send(hosted, "POST", f"{BASE}/new-thing/publishers", bob, pending)[0] == 403
    status, body = _send(hosted, "POST", f"{BASE}/new-thing/publishers", hosted.admin, pending)
    assert status == 200, body
    assert body["result"]["status"] == "pending"  # type: ignore[index]
    assert body["result"]["owner"] == "bob"  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({}, 400, "exactly one of github, gitlab or oidc"),
        ({**GITHUB, "gitlab": {"project_path": "a/b"}}, 400, "exactly one"),
        ({"github": {"repository": "acme/tools"}}, 400, "workflow"),
        ({"github": {"repository": "acme/tools", "workflow": "r.yml", "extra": "x"}}, 400, "extra"),
        ({"github": {"repository": "nope", "workflow": "r.yml"}}, 400, "owner/name"),
        ({"oidc": {"issuer": "http://ci.example.org", "claims": {"sub": "x"}}}, 400, "https"),
        ({**GITHUB, "pending": True}, 409, "exists"),
        ({**GITHUB, "owner": "bob"}, 400, "pending publishers only"),
    ],
)
def test_bad_publishers_are_refused_naming_the_problem(
    hosted: Hosted, body: dict[str, object], status: int, words: str
) -> None:
    got, answer = _send(hosted, "POST", f"{BASE}/acme/publishers", hosted.admin, body)
    assert got == status, answer
    assert words in answer["error"], answer  # type: ignore[index]
    assert hosted.db.publishers() == []


def test_removing_a_publisher_of_another_project_is_404(hosted: Hosted) -> None:
    other = hosted.db.add_publisher("main", "elsewhere", hosted_identity(), pending=True)
    status, body = _send(hosted, "DELETE", f"{BASE}/acme/publishers/{other.id}", hosted.admin)
    assert status == 404, body
    assert [p.id for p in hosted.db.publishers()] == [other.id]
    assert _send(hosted, "DELETE", f"{BASE}/acme/publishers/x1", hosted.admin)[0] == 404


def test_the_publishing_log_is_for_admins(hosted: Hosted) -> None:
    publisher = hosted.db.add_publisher("main", "acme", hosted_identity())
    hosted.db.mint_token(
        issuer="https://token.actions.githubusercontent.com",
        subject="repo:acme/tools:ref:refs/tags/v1",
        jti="j",
        jti_expires=datetime.now(UTC) + timedelta(minutes=5),
        claims={"repository": "acme/tools"},
        grants=[Grant("main", "acme", publisher.id)],
        lifetime=timedelta(minutes=15),
    )
    status, records = _send(hosted, "GET", "/api/main/publishing-log", hosted.admin)
    assert status == 200
    assert [r["subject"] for r in records] == ["repo:acme/tools:ref:refs/tags/v1"]  # type: ignore[index,union-attr]
    assert _send(hosted, "GET", "/api/main/publishing-log?project=other", hosted.admin)[1] == []
    assert _send(hosted, "GET", "/api/main/publishing-log?limit=x", hosted.admin)[0] == 400
    _, manager = hosted.db.create_token("alice", scopes={"manage"})
    assert _send(hosted, "GET", "/api/main/publishing-log", manager)[0] == 403
