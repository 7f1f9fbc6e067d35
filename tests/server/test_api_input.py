"""The management API's input: typed bodies with a size limit, and checked path parameters, on
every route of the API (taken from the app, so a new route is covered)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from starlette.routing import Route

from headwater.db import Database
from headwater.server.api_bodies import MAX_BODY
from tests.server.asgi import call
from tests.server.hosting import dists
from tests.server.test_hosted_app import Hosted, _auth, sqlite_db  # noqa: F401 (a fixture)

#: 30,000 levels: far past any recursion limit, inside the 64 KiB body limit.
DEEP = b"[" * 30_000 + b"]" * 30_000


@pytest.fixture
def hosted(tmp_path: Path, sqlite_db: Database) -> Hosted:  # noqa: F811 (the fixture above)
    hosted = Hosted(tmp_path, sqlite_db)
    wheel, _ = dists(tmp_path / "dist", "acme", "1.0")
    assert hosted.upload(wheel).status == 200
    return hosted


def _changes(hosted: Hosted) -> list[tuple[str, str]]:
    """(method, concrete path) of every management route that changes something."""
    rest = hosted.app.rest
    found = []
    for route in rest.routes:  # type: ignore[union-attr]
        assert isinstance(route, Route)
        if not route.path.startswith("/api/") or route.path.endswith("/accepted/{version}"):
            continue  # (accepting a release a mirror holds: no body, and "main" is no mirror)
        path = (
            route.path.replace("{index}", "main")
            .replace("{project}", "acme")
            .replace("{filename}", "nothing-1.0.tar.gz")
            .replace("{version}", "9.9")
            .replace("{user}", "alice")
        )
        found += [(m, path) for m in sorted(route.methods or ()) if m in ("POST", "PUT", "DELETE")]
    assert len(found) >= 10, found
    return found


BAD_BODIES = [
    (DEEP, "the body does not fit this call"),
    (b'{"urls": ' + DEEP + b"}", "the body does not fit this call"),
    (b'{"version": ' + DEEP + b"}", "the body does not fit this call"),
    (b'{"version": {"a": 1}}', "version"),
    (b'{"status": ["x"]}', "status"),
    (b'{"urls": "https://x"}', "urls"),
    (b'{"urls": [1]}', "urls"),
    (b'{"reason": 7}', "reason"),
    (b'{"versoin": "1.0"}', "versoin"),
    (b"[]", "Expected `object`, got `array`"),
    (b"NaN", "not JSON"),
    (b'{"versi', "not JSON"),
    (b'{"\xff": 1}', "not JSON"),
    (b'{"version": 1' + b"0" * 5000 + b"}", "version"),
]


@pytest.mark.parametrize(("body", "phrase"), BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_every_change_answers_400_naming_the_problem(
    hosted: Hosted, body: bytes, phrase: str
) -> None:
    for method, path in _changes(hosted):
        answer = hosted.send(method, path, hosted.admin, body)
        assert answer.status == 400, (method, path, answer.status, answer.body[:300])
        error = json.loads(answer.body)["error"]
        assert phrase in error and "give " in error, (method, path, error)


def test_a_wrong_type_names_the_field_and_the_type(hosted: Hosted) -> None:
    answer = hosted.send(
        "POST", "/api/main/projects/acme/yank", hosted.admin, b'{"version": {"a": 1}}'
    )
    error = json.loads(answer.body)["error"]
    assert "Expected `str | null`, got `object` - at `$.version`" in error
    assert '{"version": "1.0", "reason": "broken on Windows"}' in error


def test_a_body_over_the_limit_is_413_declared_or_streamed(hosted: Hosted) -> None:
    for method, path in _changes(hosted):
        for big in (b'{"reason": "' + b"x" * MAX_BODY + b'"}', b"[" * 100_000 + b"]" * 100_000):
            answer = hosted.send(method, path, hosted.admin, big)
            assert answer.status == 413, (method, path, answer.status)
            assert "64 KiB" in json.loads(answer.body)["error"]
    # A declared length over the limit is refused before anything is read.
    headers = {**_auth(hosted.admin), "Content-Length": str(200 << 20)}
    answer = asyncio.run(
        call(hosted.app, "PUT", "/api/main/projects/acme/status", headers=headers, body=b"")
    )
    assert answer.status == 413
    headers = {**_auth(hosted.admin), "Content-Length": "9" * 5000}
    answer = asyncio.run(
        call(hosted.app, "PUT", "/api/main/projects/acme/status", headers=headers, body=b"")
    )
    assert answer.status == 400


def test_bodies_of_the_right_shape_still_work(hosted: Hosted) -> None:
    url = "/api/main/projects/acme"
    assert hosted.send("POST", url + "/yank", hosted.admin, b'{"version": "1.0"}').status == 200
    assert hosted.send("POST", url + "/unyank", hosted.admin, b'{"version": "1.0"}').status == 200
    ok = hosted.send("PUT", url + "/status", hosted.admin, b'{"status": "archived"}')
    assert ok.status == 200, ok.body
    ok = hosted.send("PUT", url + "/tracks", hosted.admin, b'{"urls": ["https://x.example/"]}')
    assert ok.status == 200, ok.body
    assert hosted.send("PUT", url + "/owners/alice", hosted.admin, b"").status == 200
    assert hosted.send("PUT", url + "/owners/alice", hosted.admin, b"{}").status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/main/namespace/-"),
        ("GET", "/main/namespace/_"),
        ("GET", "/main/namespace/" + "a" * 300),
        ("GET", "/api/main/projects/-"),
        ("DELETE", "/api/main/projects/acme/files/..%2Fx"),
        ("DELETE", "/api/main/projects/acme/files/.hidden"),
        ("DELETE", "/api/main/projects/acme/files/" + "a" * 300),
        ("DELETE", "/api/main/projects/acme/releases/" + "1" * 300),
        ("DELETE", "/api/main/projects/acme/releases/1.0;x"),
        ("PUT", "/api/main/projects/acme/owners/-bob-"),
        ("DELETE", "/api/main/projects/acme/owners/" + "b" * 101),
    ],
)
def test_invalid_path_parameters_are_404_with_a_message(
    hosted: Hosted, method: str, path: str
) -> None:
    answer = hosted.send(method, path, hosted.admin)
    assert answer.status == 404, (answer.status, answer.body[:300])
    error = json.loads(answer.body)["error"]
    assert "not a valid" in error or "not a " in error or "unsafe" in error or "too long" in error


def test_a_body_cut_short_is_400(hosted: Hosted) -> None:
    """The client promised more than it sent and went away (what a server reports as a
    disconnect while the body is read)."""
    messages = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    auth = _auth(hosted.admin)["Authorization"].encode()
    scope = {
        "type": "http",
        "method": "PUT",
        "path": "/api/main/projects/acme/status",
        "raw_path": b"/api/main/projects/acme/status",
        "query_string": b"",
        "headers": [(b"authorization", auth), (b"content-length", b"10000")],
    }
    asyncio.run(hosted.app(scope, receive, send))
    assert sent[0]["status"] == 400
    assert b"connection ended before the body" in sent[1]["body"]  # type: ignore[operator]


@pytest.mark.parametrize(
    "path",
    [
        "/api/" + "i" * 20_000 + "/projects/acme",
        "/" + "i" * 20_000 + "/namespaces",
        "/main/namespace/" + "n" * 20_000,
        "/api/main/projects/" + "p" * 20_000,
    ],
)
def test_an_overlong_path_parameter_is_not_echoed_whole(hosted: Hosted, path: str) -> None:
    answer = hosted.send("GET", path, hosted.admin)
    assert answer.status == 404
    assert len(answer.body) < 500, answer.body[:200]
