"""File modes: a private FileStorage makes 0600 files and 0700 directories, a public one 0644 and
0755, on every write path, whatever the process umask; private_directory makes or tightens 0700;
the SQLite database with its -wal and -shm is 0600."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.db import Database
from headwater.storage.filesystem import (
    PRIVATE,
    PUBLIC,
    FileStorage,
    directory_mode,
    private_directory,
)

UMASKS = [0o022, 0o002, 0o000, 0o077]


@pytest.fixture(params=UMASKS, ids=[f"umask{u:03o}" for u in UMASKS])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """Every path below ``root`` (itself included) with its permission bits."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


async def write_every_way(storage: FileStorage) -> None:
    await storage.write_bytes("web/simple/a/index.html", b"page")
    await storage.write_bytes("web/simple/a/index.html", b"replaced")  # the replace path
    # Identical neighbours get a second name (a hard link) instead of a second file.
    await storage.write_many([("web/simple/b/index.html", b"same"), ("web/simple/b/x", b"same")])
    async with storage.writer("web/packages/aa/bb/cc/f.whl") as writer:
        await writer.write(b"wheel")
    with storage.exclusive():
        pass


@pytest.mark.parametrize("named_temps", [False, True], ids=["unnamed", "named-temps"])
@pytest.mark.parametrize("mode", [PRIVATE, PUBLIC, 0o640], ids=["private", "public", "0640"])
def test_files_and_directories_get_the_storage_mode_whatever_the_umask(
    tmp_path: Path, umask: int, mode: int, named_temps: bool
) -> None:
    root = tmp_path / "parent" / "tree"  # the root and a missing parent are made too
    storage = FileStorage(root, mode=mode)
    if named_temps:
        storage._tmpfile = False
    asyncio.run(write_every_way(storage))
    files = {p: m for p, m in modes(root).items() if (root / p).is_file()}
    dirs = {
        p: m for p, m in modes(tmp_path / "parent").items() if (tmp_path / "parent" / p).is_dir()
    }
    assert len(files) >= 5 and len(dirs) >= 8
    # The umask may only take bits away; a private storage is exact under any umask.
    assert files == dict.fromkeys(files, mode & ~umask), files
    assert dirs == dict.fromkeys(dirs, directory_mode(mode) & ~umask), dirs
    if mode == PRIVATE:
        assert set(files.values()) == {0o600} and set(dirs.values()) == {0o700}


def test_a_mode_that_is_not_a_file_mode_is_refused(tmp_path: Path) -> None:
    for bad in (0o755, 0o400, 0o1644):
        with pytest.raises(ValueError, match="file mode"):
            FileStorage(tmp_path, mode=bad)


def test_private_directory_makes_and_tightens(tmp_path: Path, umask: int) -> None:
    fresh = tmp_path / "a" / "data"
    assert private_directory(fresh) is None
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    old = tmp_path / "old"
    old.mkdir()
    old.chmod(0o755)
    assert private_directory(old) == 0o755
    assert stat.S_IMODE(old.stat().st_mode) == 0o700
    assert private_directory(old) is None  # already private: nothing to say


def test_sqlite_database_wal_and_shm_are_private(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "headwater.sqlite3"
    db = Database.connect(f"sqlite:///{path}")
    try:
        db.upgrade()
        db.create_user("alice")
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    finally:
        db.close()


def test_a_world_readable_database_from_an_older_version_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "headwater.sqlite3"
    Database.connect(f"sqlite:///{path}").close()
    path.chmod(0o644)
    db = Database.connect(f"sqlite:///{path}")
    db.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "was mode 0644: changed to 0600" in caplog.text
