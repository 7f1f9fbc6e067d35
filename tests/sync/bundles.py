"""Helpers for bundle tests: snapshot a directory, mirror a corpus, run the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from pathlib import Path

from headwater.testing.upstream import Upstream
from tests.sync.test_engine import mirror_once

HEADWATER = str(Path(sys.executable).with_name("headwater"))
# Not content: the lock file a command holds, and bookkeeping of bundles on each side.
_BOOKKEEPING = ("state/.lock", "state/bundle", ".headwater-tmp")


def snapshot(root: Path, *, web_only: bool = False) -> dict[str, str]:
    """Every file under ``root`` -> its sha256 (empty directories as ``<dir>/``)."""
    result: dict[str, str] = {}
    if not root.exists():
        return result
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if key.startswith(_BOOKKEEPING) or (web_only and not key.startswith("web/")):
            continue
        if path.is_dir():
            if not any(path.iterdir()):
                result[key + "/"] = ""
            continue
        result[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def served(root: Path) -> dict[str, str]:
    """What a tree serves, minus the last-modified stamp (a clock reading)."""
    return {k: v for k, v in snapshot(root, web_only=True).items() if k != "web/last-modified"}


def mirror(up: Upstream, root: Path) -> None:
    summary = asyncio.run(mirror_once(up, root))
    assert summary.ok, summary.failed


def cli(
    *args: str | Path, check: bool = True, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [HEADWATER, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        input=None if stdin is None else stdin.decode("latin-1"),
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done
