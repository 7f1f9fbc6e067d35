"""Hosted indexes on PostgreSQL (a real server, started by scripts/postgres) with several worker
processes, and private indexes that need a read token: real twine, pip and uv."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.simple.json import parse_project_page_json
from tests.clients import installed_version, pip_install
from tests.postgres import fresh_database
from tests.server.hosting import cli, dists, request, twine
from tests.server.live import serve

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


@pytest.mark.slow
def test_postgresql_backed_server_with_two_workers(tmp_path: Path) -> None:
    with fresh_database() as url:
        data = tmp_path / "data"
        args = ["--workers", "2", "--data-dir", str(data), "--database", url]
        with serve(args, tmp_path) as live:
            token = (data / "admin-token").read_text().strip()
            assert not (data / "headwater.sqlite3").exists()  # the state is in PostgreSQL
            files = dists(tmp_path / "dist", "pg-project", "3.1")
            done = twine(live.url + "/legacy/", token, files)
            assert done.returncode == 0, done.stdout + done.stderr
            page = parse_project_page_json(
                request(live.url + "/main/simple/pg-project/", headers=JSON).body
            )
            assert len(page.files) == 2
            health = request(live.url + "/health/ready")
            assert health.status == 200 and b'"database":"ok"' in health.body
            python = pip_install(live.url + "/simple/", "pg-project", tmp_path / "pip")
            assert installed_version(python, "pg_project") == "3.1"
        # A second server on the same database sees everything the first one stored.
        with serve(["--data-dir", str(data), "--database", url], tmp_path) as again:
            assert request(again.url + "/main/simple/pg-project/").status == 200


@pytest.mark.slow
def test_private_index_needs_a_read_token(tmp_path: Path) -> None:
    (tmp_path / "headwater.toml").write_text('[hosted.private]\nread = "token"\n')
    data = tmp_path / "data"
    with serve(["--data-dir", str(data)], tmp_path) as live:
        admin = (data / "admin-token").read_text().strip()
        files = dists(tmp_path / "dist", "secret-sauce", "1.0")
        assert twine(live.url + "/private/legacy/", admin, files).returncode == 0
        anonymous = request(live.url + "/private/simple/secret-sauce/")
        assert anonymous.status == 401
        assert anonymous.headers["www-authenticate"].startswith("Basic")
        # An upload-only token cannot read; a read token can.
        assert (
            request(
                live.url + "/private/simple/",
                token=cli(
                    "token", "create", "--data-dir", str(data), "--user", "ci", "--scope", "upload"
                ).stdout.strip(),
            ).status
            == 401
        )
        reader = cli(
            "token", "create", "--data-dir", str(data), "--user", "ci", "--scope", "read"
        ).stdout.strip()
        assert request(live.url + "/private/simple/secret-sauce/", token=reader).status == 200
        # pip without credentials fails; with the token in the URL it installs.
        url = live.url + "/private/simple/"
        with pytest.raises(AssertionError, match="401"):
            pip_install(url, "secret-sauce", tmp_path / "anonymous")
        authed = url.replace("http://", f"http://__token__:{reader}@")
        python = pip_install(authed, "secret-sauce", tmp_path / "reader")
        assert installed_version(python, "secret_sauce") == "1.0"
