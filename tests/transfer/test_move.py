"""``headwater move``: SQLite + directory → PostgreSQL → SQLite, proven by the real server and pip."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from headwater.assembly.plan import plan_from_flags
from headwater.db import Database
from headwater.transfer import move as movelib
from tests.server.hosting import api, dists, twine
from tests.server.live import serve
from tests.transfer.conftest import Installation, fingerprints, headwater, pip_download


def _copy_source(installation: Installation, tmp_path: Path) -> Installation:
    """A private copy of the module's installation (a test may change its source)."""
    data_dir = tmp_path / "source-data"
    shutil.copytree(installation.data_dir, data_dir)
    return Installation(installation.config, data_dir, installation.token, dict(installation.files))


def test_move_to_postgresql_and_back(
    installation: Installation, pg_url: str, tmp_path: Path
) -> None:
    source = _copy_source(installation, tmp_path)
    target = tmp_path / "pg-data"
    moved = headwater(
        "move", "--config", str(source.config), "--data-dir", str(source.data_dir),
        "--to-data-dir", str(target), "--to-database", pg_url,
    )  # fmt: skip
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "the copy is whole" in moved.stdout
    assert fingerprints(pg_url) == fingerprints(source.database)

    # The moved installation serves the same files, with the same serials, to real pip; the old
    # tokens work; private stays private; new uploads continue the serials.
    with (
        serve(
            ["--config", str(source.config), "--data-dir", str(source.data_dir)], tmp_path
        ) as old,
        serve(
            ["--config", str(source.config), "--data-dir", str(target), "--database", pg_url],
            tmp_path,
        ) as new,
    ):
        for path in ("/main/simple/acme-tools/", "/secret/simple/inner-secret/"):
            before = api(old.url + path, "GET", source.token)
            after = api(new.url + path, "GET", source.token)
            assert after.status == before.status == 200
            assert after.headers["x-pypi-last-serial"] == before.headers["x-pypi-last-serial"]
        assert api(new.url + "/secret/simple/inner-secret/", "GET", None).status in (401, 404)
        got = pip_download(new.url + "/main/simple/", "acme-tools==1.1", tmp_path / "pip")
        assert set(got) <= set(source.files)
        assert len(got) == 1
        extra = dists(tmp_path / "dist", "Acme-Tools", "1.2")
        assert twine(new.url + "/main/legacy/", source.token, extra).returncode == 0
    db = Database.connect(pg_url)
    try:
        assert db.last_serial("main") > Database.connect(source.database).last_serial("main")
    finally:
        db.close()

    # And back to SQLite in a new data directory: the rows arrive unchanged.
    back = tmp_path / "back-data"
    returned = headwater(
        "move", "--config", str(source.config), "--data-dir", str(target), "--database", pg_url,
        "--to-data-dir", str(back),
    )  # fmt: skip
    assert returned.returncode == 0, returned.stdout + returned.stderr
    assert fingerprints(f"sqlite:///{back / 'headwater.sqlite3'}") == fingerprints(pg_url)
    assert (back / "admin-token").read_text() == (source.data_dir / "admin-token").read_text()


def test_move_refuses_a_destination_with_rows_unless_replace(
    installation: Installation, pg_url: str, tmp_path: Path
) -> None:
    args = [
        "move", "--config", str(installation.config), "--data-dir", str(installation.data_dir),
        "--to-data-dir", str(tmp_path / "dest"), "--to-database", pg_url,
    ]  # fmt: skip
    assert headwater(*args).returncode == 0
    again = headwater(*args)
    assert again.returncode == 2
    assert "is not empty" in again.stderr and "--replace" in again.stderr
    replaced = headwater(*args, "--replace")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert "0 objects copied" in replaced.stdout  # every object was already there
    assert fingerprints(pg_url) == fingerprints(installation.database)


def test_move_check_finds_a_damaged_or_missing_object(
    installation: Installation, tmp_path: Path
) -> None:
    target = tmp_path / "dest"
    common = ["--config", str(installation.config), "--data-dir", str(installation.data_dir),
              "--to-data-dir", str(target)]  # fmt: skip
    assert headwater("move", *common).returncode == 0
    checked = headwater("move", *common, "--check")
    assert checked.returncode == 0, checked.stdout
    wheels = sorted((target / "hosted" / "main").rglob("*.whl"))
    damaged, missing = wheels[0], wheels[-1]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    missing.unlink()
    checked = headwater("move", *common, "--check")
    assert checked.returncode == 1
    assert "DIFFERS web/packages/" in checked.stdout and damaged.name in checked.stdout
    assert "MISSING web/packages/" in checked.stdout and missing.name in checked.stdout
    assert "BROKEN ROW main/" in checked.stdout
    assert "NOT whole" in checked.stdout


def test_move_refuses_the_same_database_and_a_missing_store(
    installation: Installation, tmp_path: Path
) -> None:
    nowhere = headwater(
        "move", "--config", str(installation.config), "--data-dir", str(installation.data_dir),
        cwd=tmp_path,
    )  # fmt: skip
    assert nowhere.returncode == 2 and "say where to move to" in nowhere.stderr
    same = headwater(
        "move", "--config", str(installation.config), "--data-dir", str(installation.data_dir),
        "--to-database", installation.database, cwd=tmp_path,
    )  # fmt: skip
    assert same.returncode == 2 and "same database" in same.stderr
    assert not (tmp_path / "headwater-data").exists()
    smaller = tmp_path / "smaller.toml"
    smaller.write_text("[hosted.main]\n")
    missing = headwater(
        "move", "--config", str(installation.config), "--data-dir", str(installation.data_dir),
        "--to-config", str(smaller), "--to-data-dir", str(tmp_path / "dest"),
    )  # fmt: skip
    assert missing.returncode == 2
    assert "[hosted.secret]" in missing.stderr
    assert not (tmp_path / "dest" / "headwater.sqlite3").exists()


def test_a_source_written_during_the_move_is_reported(
    installation: Installation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _copy_source(installation, tmp_path)
    plan = plan_from_flags(str(source.config), overrides={"data_dir": str(source.data_dir)})
    dest = plan_from_flags(str(source.config), overrides={"data_dir": str(tmp_path / "dest")})
    real_copy = movelib.copy_store

    async def copy_while_a_client_yanks(*args: object, **kwargs: object) -> movelib.StoreCopy:
        db = Database.connect(source.database)  # a server writing while the move copies
        try:
            db.yank("main", "acme-tools", version="1.1", reason="written during the move")
        finally:
            db.close()
        return await real_copy(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(movelib, "copy_store", copy_while_a_client_yanks)
    report = asyncio.run(movelib.move(plan, dest))
    assert report.ok  # the copy is whole: one consistent snapshot...
    assert report.source_changed  # ...of an instant the source has moved past
    assert report.serial_after > report.serial_before
