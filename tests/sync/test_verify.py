"""``headwater verify`` finds missing, corrupt and orphaned files and repairs them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import msgspec

from headwater.storage import FileStorage
from headwater.sync.verify import CHECKPOINT, Problem, _Checkpoint, verify_tree
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.sync.test_engine import check_tree, mirror_once

HEADWATER = str(Path(sys.executable).with_name("headwater"))


def files_of(root: Path) -> list[Path]:
    return sorted(
        p
        for p in (root / "web/packages").rglob("*")
        if p.is_file() and not p.name.endswith(".metadata")
    )


def test_verify_finds_and_repairs_everything(tmp_path: Path) -> None:
    corpus = Corpus.generate(4, releases=1, files=2, seed=21)
    with Upstream(corpus).running() as up:
        asyncio.run(mirror_once(up, tmp_path))
        clean = asyncio.run(verify_tree(FileStorage(tmp_path)))
        assert clean.ok, clean.problems
        assert clean.projects == 4 and clean.files == 8 + 4  # 8 distributions, 4 wheel .metadata

        corrupt, missing = files_of(tmp_path)[:2]
        corrupt.write_bytes(b"flipped" + corrupt.read_bytes()[7:])
        missing.unlink()
        orphan = tmp_path / "web/packages/aa/bb" / ("c" * 60) / "stray-1.0.tar.gz"
        orphan.parent.mkdir(parents=True)
        orphan.write_bytes(b"stray")
        project = corpus.project_list().projects[3].normalized
        (tmp_path / f"web/simple/{project}/index.v1_html").unlink()

        result = subprocess.run(
            [HEADWATER, "verify", "--target", str(tmp_path), "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        found = {(p["kind"], Path(p["key"]).name) for p in json.loads(result.stdout)["problems"]}
        assert ("corrupt", corrupt.name) in found
        assert ("missing", missing.name) in found
        assert ("orphan", orphan.name) in found
        assert ("missing-page", "index.v1_html") in found
        assert ("empty-dir", missing.parent.name) in found  # what the deletion left
        assert len(found) == 5

        repaired = subprocess.run(
            [HEADWATER, "verify", "--target", str(tmp_path), "--repair", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert "0 problems" in repaired.stdout
        assert not orphan.exists()
        assert len(check_tree(tmp_path)) == 4


def test_verify_resumes_from_a_checkpoint(tmp_path: Path) -> None:
    corpus = Corpus.generate(6, releases=1, files=1, seed=22)
    with Upstream(corpus).running() as up:
        asyncio.run(mirror_once(up, tmp_path))
    names = sorted(e.normalized for e in corpus.project_list().projects)
    storage = FileStorage(tmp_path)
    earlier = Problem("corrupt", "web/packages/x", names[0], "found before the interruption")
    asyncio.run(
        storage.write_bytes(CHECKPOINT, msgspec.json.encode(_Checkpoint(names[2], [earlier])))
    )
    report = asyncio.run(verify_tree(storage))
    assert report.resumed_after == names[2]
    assert report.projects == 3  # only the projects after the checkpoint were hashed
    assert report.problems == [earlier]  # problems found before the interruption are kept
    assert asyncio.run(storage.stat(CHECKPOINT)) is None  # a finished verify removes it
    assert asyncio.run(verify_tree(storage)).projects == 6
