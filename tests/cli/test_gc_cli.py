"""``headwater gc``: a dry run by default, ``--delete`` removes, counts and bytes reported, bad
input refused with a message naming it (SQLite and a data directory here; the collector itself
is tested on both databases in tests/db/test_collector.py, and on a cluster in tests/scaleout)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from headwater.storage.layout import file_key

HEADWATER = str(Path(sys.executable).with_name("headwater"))


def hw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADWATER, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    assert hw("db", "upgrade", "--data-dir", str(data)).returncode == 0
    return data


def _plant(data: Path, sha: str, body: bytes, age: float) -> Path:
    path = data / "hosted" / "main" / file_key(sha * 64, "p-1.0.tar.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    old = time.time() - age
    os.utime(path, (old, old))
    return path


def test_gc_reports_by_default_and_deletes_with_delete(data: Path, tmp_path: Path) -> None:
    old = _plant(data, "a", b"x" * 1500, 7200)
    young = _plant(data, "b", b"y" * 10, 10)
    dry = hw("gc", "--data-dir", str(data), "--list", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (
        "main: 2 objects (1.5 kB); 0 referenced, 0 reserved by uploads in progress, " in dry.stdout
    )
    assert "1 younger than 3600 s, 1 unreferenced (1.5 kB)" in dry.stdout
    assert "would delete 1 objects (1.5 kB); run with --delete" in dry.stdout
    assert str(old.relative_to(data / "hosted" / "main")) in dry.stdout
    assert old.exists() and young.exists()
    done = hw("gc", "--data-dir", str(data), "--delete")
    assert done.returncode == 0, done.stderr
    assert "deleted 1 objects (1.5 kB)" in done.stdout
    assert not old.exists() and young.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--index", "nope"], "not a hosted index: 'nope' (hosted: main)"),
        (["--delete", "--dry-run"], "give --delete or --dry-run, not both"),
        (["--grace", "-1"], "--grace and --pending-for must not be negative"),
    ],
)
def test_gc_refuses_bad_input_and_names_it(data: Path, args: list[str], message: str) -> None:
    done = hw("gc", "--data-dir", str(data), *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
