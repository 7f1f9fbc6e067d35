"""Every admin change that alters a decision is applied at the very next request, on every worker.

One real ``headwater serve --workers 2`` with a hosted index ``priv``, a caching proxy ``pub`` of
a test upstream that has the same project names, and two composed indexes over them: ``main``
(``priority``) and ``strict`` (``pep708``). Each change is made while both workers have the old
answer cached (several requests first), either through the HTTP management API (answered by one
worker) or through the CLI (another process writing the same SQLite database); then every one of
several requests (on new connections, spread over both workers) must show the new answer. A
PostgreSQL variant runs the namespace grant against a real PostgreSQL.

PEP 752 grants and revokes have no HTTP API (they are operator decisions): CLI only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headwater.db import Database, NewFile
from headwater.storage.layout import file_key
from headwater.testing import wheels
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.postgres import fresh_database
from tests.server.live import HEADWATER, Live, serve

JSON = "application/vnd.pypi.simple.v1+json"
#: Requests after a change: each a new connection, so both workers answer some of them.
TRIES = 8
MODES = ["api", "cli"]


@dataclass
class Site:
    live: Live
    upstream: str  # the upstream's /simple/ URL
    config: Path
    data: Path
    database: str
    token: str

    def get(self, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": JSON}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.live.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, _lower(answer.headers.items()), answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, _lower(exc.headers.items()), exc.read()

    def api(self, method: str, path: str, body: object | None = None) -> None:
        auth = base64.b64encode(f"__token__:{self.token}".encode()).decode()
        request = urllib.request.Request(
            f"{self.live.url}/api/priv/projects/{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200, answer.read()

    def cli(self, *args: str, config: bool = True) -> None:
        options = ["--config", str(self.config), "--database", self.database] if config else []
        done = subprocess.run(
            [HEADWATER, *args, *options],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def _wheel(project: str, version: str) -> tuple[str, bytes]:
    filename = wheels.wheel_filename(project, version)
    metadata = wheels.core_metadata(project, version, summary="private build")
    return filename, wheels.build_wheel(project, project, version, metadata=metadata)


def _upload(db: Database, data: Path, project: str, version: str) -> str:
    filename, body = _wheel(project, version)
    sha = hashlib.sha256(body).hexdigest()
    key = file_key(sha, filename)
    target = data / "hosted" / "priv" / key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    db.add_file(
        "priv",
        project,
        NewFile(
            filename=filename,
            version=version,
            sha256=sha,
            size=len(body),
            upload_time=datetime(2025, 1, 1, tzinfo=UTC),
            storage_key=key,
        ),
        uploader="admin",
    )
    return filename


#: Private projects (with their versions) and public ones, per mode.
PRIVATE = {
    "del": ["2.0"],
    "delfile": ["2.0", "2.1"],
    "quar": ["2.0"],
    "arch": ["2.0"],
    "tracks": ["2.0"],
    "alt": ["2.0"],
    "yank": ["2.0"],
}
PUBLIC = ["ns", "del", "tracks"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    corpus = Corpus(files=1)
    for mode in MODES:
        for stem in PUBLIC:
            corpus.add_release(f"{stem}-{mode}", "1.0")
    with Upstream(corpus).running() as up:
        yield up


def _site(tmp: Path, upstream: Upstream, database: str) -> Iterator[Site]:
    data = tmp / "data"
    data.mkdir()
    db = Database.connect(database)
    db.upgrade()
    db.create_user("admin")
    _, token = db.create_token("admin", scopes=["admin"])
    for mode in MODES:
        for stem, versions in PRIVATE.items():
            for version in versions:
                _upload(db, data, f"{stem}-{mode}", version)
    db.close()
    config = tmp / "headwater.toml"
    config.write_text(
        "[hosted.priv]\n"
        '[hosted.secret]\nread = "token"\n'
        f'[proxy.pub]\nurl = "{upstream.simple_url}"\nttl = 0\n'
        '[index.main]\nsources = ["priv", "pub"]\npolicy = "priority"\n'
        '[index.strict]\nsources = ["priv", "pub"]\npolicy = "pep708"\n'
    )
    args = ["--config", str(config), "--data-dir", str(data), "--database", database]
    with serve([*args, "--workers", "2"], tmp) as live:
        yield Site(live, upstream.simple_url, config, data, database, token)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("admin-changes")
    yield from _site(tmp, upstream, f"sqlite:///{tmp / 'data' / 'headwater.sqlite3'}")


def _page(site: Site, index: str, project: str) -> tuple[int, dict[str, str], dict[str, object]]:
    status, headers, body = site.get(f"/{index}/simple/{project}/")
    return status, headers, json.loads(body) if status == 200 else {}


def _every_time(site: Site, check: Callable[[], object], what: str) -> None:
    """``check`` holds on each of TRIES requests (new connections: both workers answer)."""
    for attempt in range(TRIES):
        try:
            check()
        except AssertionError as exc:
            raise AssertionError(f"{what}, request {attempt + 1} of {TRIES}: {exc}") from exc


def _served_from(site: Site, index: str, project: str, sources: str) -> None:
    status, headers, _ = _page(site, index, project)
    assert status == 200, status
    assert headers.get("x-headwater-sources") == sources, headers.get("x-headwater-sources")


def _refused(site: Site, index: str, project: str, status: int = 409) -> None:
    got, headers, _ = site.get(f"/{index}/simple/{project}/")
    assert got == status, (got, headers)


def _filenames(site: Site, index: str, project: str) -> list[str]:
    status, _, page = _page(site, index, project)
    assert status == 200, status
    files = page["files"]
    assert isinstance(files, list)
    return [f["filename"] for f in files]


def _field(site: Site, index: str, project: str, key: str) -> object:
    status, _, page = _page(site, index, project)
    assert status == 200, status
    return page.get(key)


@pytest.mark.parametrize("mode", MODES)
def test_delete_project(site: Site, mode: str) -> None:
    name = f"del-{mode}"
    _every_time(site, lambda: _served_from(site, "main", name, "priv"), "before")
    if mode == "api":
        site.api("DELETE", name)
    else:
        site.cli("project", "delete", "priv", name)
    # The deleted name stays held by the hosted index: never handed to the public proxy.
    _every_time(site, lambda: _refused(site, "main", name), "after the deletion")
    _every_time(site, lambda: _refused(site, "priv", name, 404), "the hosted index alone")


@pytest.mark.parametrize("mode", MODES)
def test_delete_file(site: Site, mode: str) -> None:
    name = f"delfile-{mode}"
    gone = wheels.wheel_filename(name, "2.0")
    kept = wheels.wheel_filename(name, "2.1")
    _every_time(site, lambda: _filenames(site, "main", name) == [gone, kept] or _fail(), "before")
    _, _, page = _page(site, "main", name)
    url = next(f["url"] for f in page["files"] if f["filename"] == gone)  # type: ignore[union-attr, index]
    file_path = urllib.parse.urljoin(f"/main/simple/{name}/", str(url))
    assert site.get(file_path)[0] == 200
    if mode == "api":
        site.api("DELETE", f"{name}/files/{gone}")
    else:
        site.cli("project", "delete", "priv", name, "--file", gone)

    def after() -> None:
        assert _filenames(site, "main", name) == [kept]
        assert site.get(file_path)[0] == 404

    _every_time(site, after, "after the file's deletion")


def _fail() -> None:
    raise AssertionError("unexpected page")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", ["quarantined", "archived"])
def test_status(site: Site, mode: str, status: str) -> None:
    name = f"{status[:4]}-{mode}"
    filename = wheels.wheel_filename(name, "2.0")
    _every_time(site, lambda: _filenames(site, "main", name) == [filename] or _fail(), "before")
    if mode == "api":
        site.api("PUT", f"{name}/status", {"status": status, "reason": "test"})
    else:
        site.cli("project", "status", "priv", name, status, "--reason", "test")

    def after() -> None:
        for index in ("main", "priv"):
            status_field = _field(site, index, name, "project-status")
            assert isinstance(status_field, dict), status_field
            assert status_field.get("status") == status, status_field
            # PEP 792: a quarantined project offers no files; an archived one keeps them.
            expected = [] if status == "quarantined" else [filename]
            assert _filenames(site, index, name) == expected

    _every_time(site, after, f"after status {status}")


@pytest.mark.parametrize("mode", MODES)
def test_tracks(site: Site, mode: str) -> None:
    """Under pep708 the private and public pages conflict until the private one tracks the
    public project: the decision goes from a refusal to a merge."""
    name = f"tracks-{mode}"
    _every_time(site, lambda: _refused(site, "strict", name), "before")
    url = f"{site.upstream}{name}/"
    if mode == "api":
        site.api("PUT", f"{name}/tracks", {"urls": [url]})
    else:
        site.cli("project", "tracks", "priv", name, url)
    _every_time(site, lambda: _served_from(site, "strict", name, "priv,pub"), "after tracks")


@pytest.mark.parametrize("mode", MODES)
def test_alternate_locations(site: Site, mode: str) -> None:
    name = f"alt-{mode}"
    _every_time(
        site,
        lambda: _field(site, "main", name, "alternate-locations") in (None, []) or _fail(),
        "before",
    )
    url = "https://example.org/simple/alt/"
    if mode == "api":
        site.api("PUT", f"{name}/alternate-locations", {"urls": [url]})
    else:
        site.cli("project", "alternate-locations", "priv", name, url)

    def after() -> None:
        locations = _field(site, "main", name, "alternate-locations")
        assert isinstance(locations, list) and url in locations, locations

    _every_time(site, after, "after alternate-locations")


@pytest.mark.parametrize("mode", MODES)
def test_yank(site: Site, mode: str) -> None:
    name = f"yank-{mode}"
    filename = wheels.wheel_filename(name, "2.0")

    def yanked() -> object:
        status, _, page = _page(site, "main", name)
        assert status == 200
        return next(f.get("yanked", False) for f in page["files"])  # type: ignore[union-attr, attr-defined]

    _every_time(site, lambda: yanked() is False or _fail(), "before")
    if mode == "api":
        site.api("POST", f"{name}/yank", {"filename": filename, "reason": "broken"})
    else:
        site.cli("project", "yank", "priv", name, "--file", filename, "--reason", "broken")
    _every_time(site, lambda: yanked() == "broken" or _fail(), "after the yank")


def test_namespace_grant_and_revoke(site: Site) -> None:
    """The finding: a name the composed index served from the public proxy kept being served
    after ``headwater namespace grant``; it must be refused at the next request."""
    _grant_and_revoke(site, "ns-cli")


def _grant_and_revoke(site: Site, name: str) -> None:
    _every_time(site, lambda: _served_from(site, "main", name, "pub"), "before the grant")
    site.cli("namespace", "grant", "priv", name, "--owner", "admin")
    # The hosted index holds the namespace and has no such project: refused, not public.
    _every_time(site, lambda: _refused(site, "main", name), "after the grant")
    _every_time(site, lambda: _refused(site, "strict", name), "after the grant (pep708)")
    site.cli("namespace", "revoke", "priv", name)
    _every_time(site, lambda: _served_from(site, "main", name, "pub"), "after the revoke")


def test_token_revocation(site: Site) -> None:
    """A revoked token stops reading a private index at the next request (reads cache a
    successful check; the cache keys on the database's change signal)."""
    db = Database.connect(site.database)
    try:
        token_id, token = db.create_token("admin", scopes=["read"])
    finally:
        db.close()

    def answers(status: int) -> Callable[[], None]:
        def check() -> None:
            got = site.get("/secret/simple/", token)[0]
            assert got == status, got

        return check

    _every_time(site, answers(200), "before the revocation")
    site.cli("token", "revoke", token_id, "--database", site.database, config=False)
    _every_time(site, answers(401), "after the revocation")


def test_namespace_grant_on_postgresql(tmp_path: Path, upstream: Upstream) -> None:
    """The same through PostgreSQL: the CLI's write reaches every worker's listener."""
    with fresh_database() as url:
        for site in _site(tmp_path, upstream, url):
            _grant_and_revoke(site, "ns-api")
