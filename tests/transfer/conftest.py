"""An installation with something in every table and every store, made through the real server
(twine uploads) and the database's own operations, for the move and backup tests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from headwater.db import Database, GitHubIdentity, Grant
from headwater.db.audit import record_admin_action
from headwater.transfer import rows as rowlib
from tests.clients import clean_env
from tests.postgres import fresh_database
from tests.server.hosting import dists, twine
from tests.server.live import serve

HEADWATER = str(Path(sys.executable).with_name("headwater"))

CONFIG = """
[hosted.main]

[hosted.secret]
read = "token"

[index.all]
sources = ["main", "secret"]
"""


@dataclass
class Installation:
    config: Path
    data_dir: Path
    token: str
    #: filename -> sha256 of every file uploaded (and not deleted)
    files: dict[str, str]

    @property
    def database(self) -> str:
        return f"sqlite:///{self.data_dir / 'headwater.sqlite3'}"


def headwater(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``headwater`` command line (``env`` added to this process's environment)."""
    return subprocess.run(
        [HEADWATER, *args], capture_output=True, text=True, timeout=300, check=False, cwd=cwd,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def fingerprints(url: str) -> dict[str, rowlib.Fingerprint]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return rowlib.fingerprints(conn)
    finally:
        engine.dispose()


def pip_download(index: str, requirement: str, home: Path) -> list[str]:
    """``pip download --no-deps`` from ``index`` with no configuration from this machine; returns
    the names of the files pip fetched."""
    target = home / "downloaded"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir", "--no-deps",
         "--index-url", index, "-d", str(target), requirement],
        env=clean_env(home), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return sorted(os.listdir(target))


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """A SQLite + directory installation with rows in every table and files in both indexes."""
    work = tmp_path_factory.mktemp("source")
    config = work / "headwater.toml"
    config.write_text(CONFIG)
    data_dir = work / "data"
    uploaded: dict[str, str] = {}
    with serve(["--config", str(config), "--data-dir", str(data_dir)], work) as live:
        token = (data_dir / "admin-token").read_text().strip()
        for index, display, version in [
            ("main", "Acme-Tools", "1.0"),
            ("main", "Acme-Tools", "1.1"),
            ("main", "other-lib", "0.3"),
            ("secret", "inner-secret", "2.0"),
        ]:
            files = dists(work / "dist" / f"{display}-{version}", display, version)
            done = twine(f"{live.url}/{index}/legacy/", token, files)
            assert done.returncode == 0, done.stdout + done.stderr
            for path in files:
                uploaded[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    db = Database.connect(f"sqlite:///{data_dir / 'headwater.sqlite3'}")
    try:
        db.create_user("alice")
        db.create_token("alice", scopes={"upload"}, projects=["other-lib"], description="ünïcode ✓")
        revoked, _ = db.create_token("alice", scopes={"read"}, description="revoked")
        db.revoke_token(revoked)
        db.add_owner("main", "other-lib", "alice")
        # An interface password (its hash travels), a password session, and a counter of failed
        # sign-ins (from another address than the session's, so it stays).
        db.set_password("alice", "alice's password, moved along")
        assert db.password_sign_in("alice", "a wrong password here", "192.0.2.1").outcome == "wrong"
        assert db.password_sign_in("alice", "alice's password, moved along", "192.0.2.2").secret
        db.grant_namespace("main", "acme", "alice")
        db.yank("main", "acme-tools", version="1.0", reason="broken: see #12")
        db.set_status("main", "other-lib", "deprecated", "use acme-tools")
        gone = next(
            name for name in uploaded if name.startswith("other_lib") and name.endswith(".whl")
        )
        db.delete_file("main", "other-lib", gone)
        del uploaded[gone]
        # Trusted publishing: a publisher, a token it minted (its jti), an upload in its log.
        publisher = db.add_publisher(
            "main", "acme-tools", GitHubIdentity(repository="acme/tools", workflow="release.yml")
        )
        minted = db.mint_token(
            issuer=publisher.identity.issuer,
            subject="repo:acme/tools:ref:refs/heads/main",
            jti="jti-1",
            jti_expires=datetime.now(UTC) + timedelta(minutes=5),
            claims={
                "repository": "acme/tools",
                "workflow_ref": "acme/tools/.github/workflows/release.yml@refs/heads/main",
            },
            grants=[Grant("main", "acme-tools", publisher.id)],
            lifetime=timedelta(minutes=15),
        )
        db.record_publish(minted.id, "main", "acme-tools", "acme_tools-1.1.tar.gz", publisher.id)
        # An upload in flight (its reservation) and the administration audit log.
        db.reserve_blob("main", "web/packages/00/00/in-flight/acme_tools-9.9.tar.gz")
        record_admin_action(
            db.engine, actor="admin", action="yank", detail="acme-tools 1.0", origin="127.0.0.1",
            index="main", project="acme-tools",
        )  # fmt: skip
    finally:
        db.close()
    installation = Installation(config, data_dir, token, uploaded)
    # Every table has rows, so every table's copy is really tested (a new table must be given
    # rows here, or this fails).
    counts = {name: fp.rows for name, fp in fingerprints(installation.database).items()}
    empty = [name for name, count in counts.items() if count == 0]
    assert not empty, f"tables without rows in the test installation: {empty}"
    return installation


@pytest.fixture
def pg_url() -> object:
    with fresh_database() as url:
        yield url
