"""Hosted indexes on PostgreSQL (a real server, started by scripts/postgres) with several worker
processes, and private indexes that need a read token: real twine, pip and uv."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from headwater.simple.json import parse_project_page_json
from tests.clients import clean_env, installed_version, make_venv, pip_install
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
        # An upload-only token cannot read (valid credentials, not enough: 403); a read token can.
        assert (
            request(
                live.url + "/private/simple/",
                token=cli(
                    "token", "create", "--data-dir", str(data), "--user", "ci", "--scope", "upload"
                ).stdout.strip(),
            ).status
            == 403
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


@pytest.mark.slow
def test_a_read_token_limited_to_one_project_reads_only_it(tmp_path: Path, uv: Path) -> None:
    """pip and uv with a token limited to one project of a private index; a 403 for the others
    stops uv from taking the name from another index (a 404 would send it there)."""
    (tmp_path / "headwater.toml").write_text(
        '[hosted.private]\nread = "token"\n\n[hosted.public]\n'
    )
    data = tmp_path / "data"
    with serve(["--data-dir", str(data)], tmp_path) as live:
        admin = (data / "admin-token").read_text().strip()
        private, public = live.url + "/private/", live.url + "/public/"
        assert (
            twine(private + "legacy/", admin, dists(tmp_path / "a", "team-app", "1.0")).returncode
            == 0
        )
        secret = dists(tmp_path / "s", "team-secret", "1.0")
        assert twine(private + "legacy/", admin, secret).returncode == 0
        # The bait: the same name, a higher version, on the public index.
        assert (
            twine(public + "legacy/", admin, dists(tmp_path / "p", "team-secret", "9.0")).returncode
            == 0
        )
        limited = cli(
            "token", "create", "--data-dir", str(data), "--user", "ci", "--scope", "read",
            "--index", "private", "--project", "team-app",
        ).stdout.strip()  # fmt: skip
        page = parse_project_page_json(
            request(private + "simple/team-secret/", token=admin, headers=JSON).body
        )
        file_url = page.files[0].url.replace("../../", private)
        for url in (
            private + "simple/team-secret/",
            private + "simple/no-such-project/",  # the same answer: existence is not revealed
            file_url,
            file_url + ".metadata",
            private + "pypi/team-secret/json",
            live.url + "/api/private/projects/team-secret",
            private + "namespaces",  # index-wide
        ):
            refused = request(url, token=limited)
            assert refused.status == 403, (url, refused.status, refused.text)
            assert b"team_secret-1.0" not in refused.body
        listing = request(private + "simple/", token=limited, headers=JSON)
        assert b"team-app" in listing.body and b"team-secret" not in listing.body
        assert "private" in listing.headers["cache-control"]
        authed = private.replace("http://", f"http://__token__:{limited}@") + "simple/"
        python = pip_install(authed, "team-app", tmp_path / "pip")
        assert installed_version(python, "team_app") == "1.0"
        # uv consults --extra-index-url before --index-url and, by default, stops at the first
        # index that answers for a name; a 403 ends the search there.
        venv = make_venv(tmp_path / "uv-venv", pip=False)
        done = subprocess.run(
            [
                str(uv), "pip", "install", "--no-config", "--no-cache",
                "--index-url", public + "simple/", "--extra-index-url", authed,
                "--python", str(venv), "team-secret",
            ],
            env=clean_env(tmp_path / "uv-home"), capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip
        assert done.returncode != 0, done.stdout + done.stderr
        assert "403" in done.stderr
        assert not list((tmp_path / "uv-venv").glob("lib/*/site-packages/team_secret*"))
