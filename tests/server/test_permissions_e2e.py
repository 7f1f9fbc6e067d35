"""A real ``headwater serve`` under umask 022 keeps its data private to its user.

After it ran with a hosted index (an upload), a caching proxy (a page and a file fetched) and a
composed index, nothing under the data directory is readable, writable or searchable by group or
others: the data directory 0700, the SQLite database and its -wal/-shm, hosted files, proxy
caches, the upload spool and metrics snapshots 0600 in 0700 directories. A data directory an older
headwater made 0755, with a 0644 database, is tightened at start and the log says so.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from headwater.db import Database
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.server.hosting import dists, post_upload, request
from tests.server.live import Live, serve

JSON = "application/vnd.pypi.simple.v1+json"


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def open_to_others(root: Path) -> dict[str, str]:
    """Every path below ``root`` (and itself) that group or others may use, with its mode."""
    found: dict[str, str] = {}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found[str(path.relative_to(root))] = oct(mode)
    return found


def _exercise(live: Live, data: Path, upstream: Upstream, work: Path) -> None:
    token = (data / "admin-token").read_text().strip()
    wheel, _ = dists(work / "dist", "acme-tools", "1.0")
    assert post_upload(f"{live.url}/priv/legacy/", token, wheel).status == 200
    assert request(f"{live.url}/priv/simple/acme-tools/").status == 200
    name = upstream.corpus.project_list().projects[0].normalized
    page = request(f"{live.url}/main/simple/{name}/", headers={"Accept": JSON})
    assert page.status == 200, page.body[:300]
    url = json.loads(page.body)["files"][0]["url"]
    path = urllib.parse.urljoin(f"/main/simple/{name}/", url)
    assert request(f"{live.url}{path}").status == 200  # fetched into the proxy's cache
    assert request(f"{live.url}/metrics").status == 200


def _config(work: Path, upstream: Upstream) -> Path:
    config = work / "headwater.toml"
    config.write_text(
        "[hosted.priv]\n"
        f'[proxy.pub]\nurl = "{upstream.simple_url}"\n'
        '[index.main]\nsources = ["priv", "pub"]\n'
    )
    return config


def test_a_new_data_directory_is_private_to_the_server_user(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Upstream(Corpus.generate(2, releases=1, files=1)).running() as up:
        config = _config(tmp_path, up)
        with (
            umask(0o022),
            serve(
                ["--config", str(config), "--data-dir", str(data), "--workers", "2"], tmp_path
            ) as live,
        ):
            _exercise(live, data, up, tmp_path)
    for part in ("headwater.sqlite3", "hosted/priv", "proxy/pub/web/packages", "run"):
        assert (data / part).exists(), part
    assert open_to_others(data) == {}


def test_an_older_world_readable_data_directory_is_tightened_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    database = data / "headwater.sqlite3"
    with umask(0o022):
        db = Database(__import__("sqlalchemy").create_engine(f"sqlite:///{database}"))
        db.upgrade()
        db.close()
    database.chmod(0o644)
    with Upstream(Corpus.generate(1, releases=1, files=1)).running() as up:
        config = _config(tmp_path, up)
        with (
            umask(0o022),
            serve(["--config", str(config), "--data-dir", str(data)], tmp_path) as live,
        ):
            assert stat.S_IMODE(data.stat().st_mode) == 0o700
            assert stat.S_IMODE(database.stat().st_mode) == 0o600
            output = live.output()
    assert f"data directory {data} was mode 0755: changed to 0700" in output
    assert "was mode 0644: changed to 0600" in output
