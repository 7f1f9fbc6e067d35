"""Every route while the object store cannot be reached: an honest answer, never a 500.

The hosted index's storage is a real S3 client pointed at a port where nothing listens (the
connection is refused, as when the store is down), so every storage call fails the way it does
in production. Every route of ``headwater.server.routes.ROUTES`` is asked with an admin token:
pages still come from the database, and whatever needs the storage answers ``503`` with a reason
that names no endpoint, bucket or key (those are for the log and ``/health/ready``). The same
outage on a real cluster (SeaweedFS cut and restored) is tests/scaleout/test_faults.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headwater.assembly.plan import plan_from_config, prepare_database
from headwater.assembly.sources import database_url
from headwater.db import Database, NewFile
from headwater.server.factory import build_app
from headwater.server.routes import ROUTES, example_path
from headwater.storage.layout import file_key
from headwater.testing.wheels import build_wheel, wheel_filename
from tests.server.asgi import call
from tests.server.hosting import upload_form

SHA = "ab" * 32
FILENAME = "example-1.0-py3-none-any.whl"
BODIES = {
    "yank": {"version": "1.0", "reason": "broken"},
    "unyank": {"version": "1.0"},
    "status": {"status": "archived"},
    "alternate-locations": {"urls": []},
    "tracks": {"urls": []},
}


@pytest.fixture
def app_and_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[object, str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    config = tmp_path / "headwater.toml"
    config.write_text(
        "[hosted.main]\n"
        'storage = "s3://down/hosted/main"\n'
        's3 = { endpoint = "http://127.0.0.1:9", addressing_style = "path", region = "us-east-1",'
        " max_attempts = 1, connect_timeout = 1 }\n"
    )
    plan = plan_from_config(str(config), data_dir=str(tmp_path / "data"))
    prepare_database(plan)
    token = (tmp_path / "data" / "admin-token").read_text().strip()
    db = Database.connect(database_url(plan))
    db.add_file(
        "main",
        "example",
        NewFile(
            filename=FILENAME,
            version="1.0",
            sha256=SHA,
            size=10,
            upload_time=datetime.now(UTC),
            storage_key=file_key(SHA, FILENAME),
            display_name="example",
            metadata_sha256=SHA,
        ),
        uploader="admin",
    )
    db.close()
    return build_app(plan), token


def _requests(tmp_path: Path) -> list[tuple[str, str, bytes, dict[str, str]]]:
    wheel = tmp_path / wheel_filename("example", "2.0")  # type: ignore[arg-type]
    wheel.write_bytes(build_wheel("example", "example", "2.0"))  # type: ignore[arg-type]
    upload, upload_type = upload_form(wheel)
    out = []
    for route in ROUTES:
        if route.layer not in ("fast", "rest", "alias"):
            continue
        path = example_path(
            route, file=file_key(SHA, FILENAME).removeprefix("web/packages/"), filename=FILENAME
        )
        for method in sorted(route.methods):
            headers: dict[str, str] = {}
            body = b""
            if route.body == "json":
                action = path.rstrip("/").rsplit("/", 1)[-1]
                body = json.dumps(BODIES.get(action, {})).encode()
                headers["Content-Type"] = "application/json"
            elif route.body == "upload":
                body, headers["Content-Type"] = upload, upload_type
            out.append((method, path, body, headers))
    return out


def test_every_route_answers_honestly_while_the_object_store_is_down(
    app_and_token: tuple[object, str], tmp_path: Path
) -> None:
    app, token = app_and_token
    auth = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    seen: dict[str, int] = {}

    async def run() -> None:
        # The app's lifespan, as a server runs it: startup, the requests, shutdown (which
        # closes the S3 client).
        messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        sent: list[dict[str, str]] = []
        await messages.put({"type": "lifespan.startup"})

        async def send(message: dict[str, str]) -> None:
            sent.append(message)

        life = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, messages.get, send)  # type: ignore[operator]
        )
        try:
            await requests()
        finally:
            await messages.put({"type": "lifespan.shutdown"})
            await asyncio.wait_for(life, 30)

    async def requests() -> None:
        for method, path, body, headers in _requests(tmp_path):
            answer = await call(
                app,  # type: ignore[arg-type]
                method,
                path,
                headers={"Authorization": auth, **headers},
                body=body,
            )
            seen[f"{method} {path}"] = answer.status
            assert answer.status != 500, (method, path, answer.body[:300])
            # /health/ready is where the operator reads the details (docs/serve.md).
            if answer.status == 503 and method != "HEAD" and not path.startswith("/health"):
                text = answer.body.decode(errors="replace")
                assert "127.0.0.1:9" not in text and "down" not in text.split("cannot")[0], text
                assert "storage" in text or "database" in text, text

    asyncio.run(run())
    # What needs the storage said so; what does not was served.
    file_path = f"/main/packages/{file_key(SHA, FILENAME).removeprefix('web/packages/')}"
    assert seen[f"GET {file_path}"] == 503
    assert seen[f"GET {file_path}.metadata"] == 503
    assert seen["POST /main/legacy/"] == 503
    assert seen["GET /main/simple/example/"] == 200
    assert seen["GET /health/ready"] == 503


def test_every_route_placeholder_has_an_example_value() -> None:
    """example_path fills every route (a route added with a new placeholder and no example
    value would break every walker of ROUTES: this test, the fuzzer, the authorization matrix)."""
    for route in ROUTES:
        example_path(route)  # raises KeyError for a placeholder without a value
