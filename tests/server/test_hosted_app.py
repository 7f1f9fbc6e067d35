"""A hosted index in process (the whole ASGI app over a real SQLite or PostgreSQL database and a
real data directory): what quarantine hides, what a private index keeps to token holders, and what
readiness reports when the database or the storage fails."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import urljoin, urlsplit

import msgspec
import pytest

from headwater.config.settings import HostedSettings, ServePlan, ServeSettings
from headwater.db import Database
from headwater.server.app import IndexApp
from headwater.server.factory import build_app
from headwater.simple.json import parse_project_page_json
from tests.postgres import fresh_database
from tests.server.asgi import Answer, call
from tests.server.hosting import dists, upload_form

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()}


class Hosted:
    """``build_app`` over a hosted index ``main`` (private when ``read="token"``)."""

    def __init__(
        self, tmp_path: Path, db: Database, *, read: Literal["anonymous", "token"] = "anonymous"
    ) -> None:
        self.data = tmp_path / "data"
        plan = ServePlan(
            settings=ServeSettings(data_dir=str(self.data)),
            hosted={"main": HostedSettings(read=read)},
            default="main",
        )
        self.db = db
        self.app: IndexApp = build_app(plan, db=db)
        db.create_user("alice")
        _, self.admin = db.create_token("alice", scopes={"admin"})

    def get(self, path: str, token: str | None = None, **headers: str) -> Answer:
        all_headers = {**headers, **(_auth(token) if token else {})}
        return asyncio.run(call(self.app, "GET", path, headers=all_headers))

    def send(self, method: str, path: str, token: str | None, body: bytes = b"") -> Answer:
        headers = {"Content-Type": "application/json", **(_auth(token) if token else {})}
        return asyncio.run(call(self.app, method, path, headers=headers, body=body))

    def upload(self, path: Path) -> Answer:
        body, content_type = upload_form(path)
        headers = {"Content-Type": content_type, **_auth(self.admin)}
        return asyncio.run(call(self.app, "POST", "/main/legacy/", headers=headers, body=body))


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database.connect(f"sqlite:///{tmp_path / 'hw.sqlite3'}")
    db.upgrade()
    yield db
    db.close()


def test_pep792_quarantined_project_serves_no_file_and_no_metadata(
    tmp_path: Path, sqlite_db: Database
) -> None:
    hosted = Hosted(tmp_path, sqlite_db)
    wheel, _ = dists(tmp_path / "dist", "suspect", "1.0")
    assert hosted.upload(wheel).status == 200
    page = parse_project_page_json(hosted.get("/main/simple/suspect/", **JSON).body)
    (file,) = page.files
    file_url = urljoin("/main/simple/suspect/", file.url)
    metadata_url = urljoin("/main/simple/suspect/", file.metadata_url)
    assert hosted.get(file_url).body == wheel.read_bytes()
    metadata = hosted.get(metadata_url)
    assert metadata.status == 200
    assert isinstance(file.core_metadata, dict)
    assert hashlib.sha256(metadata.body).hexdigest() == file.core_metadata["sha256"]

    status = b'{"status": "quarantined", "reason": "reported as malware"}'
    assert (
        hosted.send("PUT", "/api/main/projects/suspect/status", hosted.admin, status).status == 200
    )
    quarantined = parse_project_page_json(hosted.get("/main/simple/suspect/", **JSON).body)
    assert quarantined.files == () and quarantined.status.value == "quarantined"
    # PEP 792: "MUST NOT offer any files" -- not the file, not its core metadata, even to a
    # client that kept the URLs from before.
    assert hosted.get(file_url).status == 404
    assert hosted.get(metadata_url).status == 404

    active = b'{"status": "active"}'
    assert (
        hosted.send("PUT", "/api/main/projects/suspect/status", hosted.admin, active).status == 200
    )
    assert hosted.get(file_url).status == 200
    assert hosted.get(metadata_url).status == 200


def test_private_index_api_and_namespaces_need_a_read_token(
    tmp_path: Path, sqlite_db: Database
) -> None:
    hosted = Hosted(tmp_path, sqlite_db, read="token")
    wheel, _ = dists(tmp_path / "dist", "secret-tool", "1.0")
    assert hosted.upload(wheel).status == 200
    sqlite_db.grant_namespace("main", "secret", owner="alice")
    _, reader = sqlite_db.create_token("alice", scopes={"read"})
    _, uploader = sqlite_db.create_token("alice", scopes={"upload"})
    for path in (
        "/api/main/projects/secret-tool",
        "/main/namespaces",
        "/main/namespace/secret",
        "/namespaces",  # the default index's, at the root like its /simple/
        "/namespace/secret",
    ):
        anonymous = hosted.get(path)
        assert anonymous.status == 401, (path, anonymous.body)
        assert b"secret-tool" not in anonymous.body and b"alice" not in anonymous.body
        assert anonymous.headers["www-authenticate"].startswith("Basic")
        no_read_scope = hosted.get(path, uploader)
        assert no_read_scope.status in (401, 403), path
        assert b"secret-tool" not in no_read_scope.body and b"alice" not in no_read_scope.body
        assert hosted.get(path, reader).status == 200, path


def test_public_index_api_and_namespaces_are_anonymous(tmp_path: Path, sqlite_db: Database) -> None:
    hosted = Hosted(tmp_path, sqlite_db)
    wheel, _ = dists(tmp_path / "dist", "open-tool", "1.0")
    assert hosted.upload(wheel).status == 200
    shown = hosted.get("/api/main/projects/open-tool")
    assert shown.status == 200 and msgspec.json.decode(shown.body)["owners"] == ["alice"]
    sqlite_db.grant_namespace("main", "open", owner="alice")
    listed = hosted.get("/main/namespaces")
    assert listed.status == 200 and msgspec.json.decode(listed.body) == [{"name": "open"}]
    # PEP 752's endpoints of the default index are at the root too, as its /simple/ is.
    assert hosted.get("/namespaces").body == listed.body
    detail = hosted.get("/namespace/Open")
    assert detail.status == 200 and msgspec.json.decode(detail.body)["owner"] == "alice"
    assert hosted.get("/namespace/closed").status == 404


def test_ready_fails_naming_the_index_when_its_storage_cannot_be_written(
    tmp_path: Path, sqlite_db: Database
) -> None:
    hosted = Hosted(tmp_path, sqlite_db)
    ready = hosted.get("/health/ready")
    assert ready.status == 200, ready.body
    assert msgspec.json.decode(ready.body)["checks"] == {"index:main": "ok", "database": "ok"}
    # Where the probe goes is now a file: no write can succeed under it (even as root).
    state = hosted.data / "hosted" / "main" / "state"
    for child in state.iterdir():
        child.unlink()
    state.rmdir()
    state.write_bytes(b"not a directory")
    ready = hosted.get("/health/ready")
    assert ready.status == 503
    report = msgspec.json.decode(ready.body)
    assert report["status"] == "unavailable"
    assert report["checks"]["database"] == "ok"
    assert report["checks"]["index:main"] != "ok"
    assert hosted.get("/health/live").status == 200
    metrics = hosted.get("/metrics").body.decode()
    assert 'headwater_errors_total{kind="health"} 1' in metrics
    assert 'headwater_requests_total{index="-",kind="health",status="503"} 1' in metrics


def test_ready_fails_naming_the_database_when_it_is_gone(tmp_path: Path) -> None:
    with fresh_database() as url:
        db = Database.connect(url)
        db.upgrade()
        hosted = Hosted(tmp_path, db)
        assert hosted.get("/health/ready").status == 200
    # fresh_database dropped it (ending our connections): the server must say so, not hang.
    try:
        ready = hosted.get("/health/ready")
        assert ready.status == 503
        report = msgspec.json.decode(ready.body)
        said = report["checks"]["database"]
        assert said.startswith("DatabaseUnavailable") and "does not exist" in said
        password = urlsplit(url).password
        if password:  # errors name the URL with the password masked
            assert password not in ready.body.decode() and ":***@" in said
        assert hosted.get("/health/live").status == 200
    finally:
        db.close()


def test_database_outage_is_a_503_with_a_reason_and_stores_nothing(tmp_path: Path) -> None:
    with fresh_database() as url:
        db = Database.connect(url)
        db.upgrade()
        hosted = Hosted(tmp_path, db)
        kept, _ = dists(tmp_path / "kept", "kept", "1.0")
        assert hosted.upload(kept).status == 200
        wheel, _ = dists(tmp_path / "dist", "during-outage", "1.0")
    # The database is gone (fresh_database dropped it): every answer is a 503 saying so, which
    # twine retries and pip reports; nothing half-made is left.
    try:
        before = sorted(p.name for p in (hosted.data / "hosted").rglob("*") if p.is_file())
        upload = hosted.upload(wheel)
        assert upload.status == 503, upload.body
        assert b"database" in upload.body and b"Try again" in upload.body
        after = sorted(p.name for p in (hosted.data / "hosted").rglob("*") if p.is_file())
        assert after == before
        spool = hosted.data / "run" / "uploads"
        assert not spool.exists() or not any(spool.iterdir())
        change = hosted.send(
            "POST", "/api/main/projects/kept/yank", hosted.admin, b'{"version": "1.0"}'
        )
        assert change.status == 503, change.body  # not a 409: nothing conflicted
        assert b"database" in change.body
        listing = hosted.get("/main/simple/", **JSON)
        assert listing.status == 503, listing.body
        assert listing.headers["cache-control"] == "no-store"
        assert b"database cannot be read" in listing.body
        # A project page: the refusal as every installer is shown one (pip: a 200 it will not
        # read, naming the problem; others: a redirect to a 503 carrying it).
        as_pip = hosted.get("/main/simple/kept/", **{"User-Agent": "pip/26.0"})
        assert as_pip.status == 200 and as_pip.headers["x-headwater-refused"] == "unavailable"
        assert "database cannot be read" in as_pip.headers["content-type"]
        as_uv = hosted.get("/main/simple/kept/", **{"User-Agent": "uv/0.13", **JSON})
        assert as_uv.status == 302 and as_uv.headers["cache-control"] == "no-store"
        location = as_uv.headers["location"]
        path, _, query = location.partition("?")
        followed = asyncio.run(
            call(hosted.app, "GET", path, query=query, headers={"User-Agent": "uv/0.13", **JSON})
        )
        assert followed.status == 503 and b"database cannot be read" in followed.body
        assert followed.headers["cache-control"] == "no-store"
        file_url = "/main/packages/" + "ab" * 2 + "/" + "cd" * 30 + "/kept-1.0-py3-none-any.whl"
        assert hosted.get(file_url).status == 503
    finally:
        db.close()
