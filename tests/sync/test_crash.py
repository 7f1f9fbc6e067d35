"""Crash safety: SIGKILL the mirror at random points; after every kill the tree is consistent
(no page points at a missing or wrong file, the root points only at existing pages), and a resumed
sync finishes clean."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from posixpath import normpath

from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.storage import FileStorage
from headwater.sync.verify import verify_tree
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.sync.test_engine import check_tree

HEADWATER = str(Path(sys.executable).with_name("headwater"))


def assert_consistent(root: Path) -> int:
    """The invariant a reader relies on at any instant; returns how many pages were checked."""
    simple = root / "web/simple"
    if not simple.exists():
        return 0
    pages = 0
    for page_file in simple.glob("*/index.v1_json"):
        page = parse_project_page_json(page_file.read_bytes())
        for fmt in ("index.html", "index.v1_html"):
            assert (page_file.parent / fmt).exists(), f"{page_file.parent.name}: {fmt} missing"
        for file in page.files:
            path = root / normpath(f"web/simple/{page.name}/{file.url}")
            assert path.exists(), f"{page.name} points at missing {file.filename}"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == file.hashes["sha256"], (
                file.filename
            )
            if isinstance(file.core_metadata, dict):
                meta = path.with_name(path.name + ".metadata")
                assert hashlib.sha256(meta.read_bytes()).hexdigest() == file.core_metadata["sha256"]
        pages += 1
    root_page = simple / "index.v1_json"
    if root_page.exists():
        for entry in parse_project_list_json(root_page.read_bytes()).projects:
            assert (simple / entry.normalized / "index.v1_json").exists(), (
                f"root lists missing {entry.name}"
            )
    return pages


def _wait_for_writes(marker: Path, since: float, proc: subprocess.Popen[bytes]) -> None:
    """Return once the run has planned and begun writing (it rewrites the in-progress marker)."""
    deadline = time.time() + 30
    while time.time() < deadline and proc.poll() is None:
        try:
            if marker.stat().st_mtime >= since:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.005)


def test_sigkill_at_random_points_never_breaks_the_tree(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    corpus = Corpus.generate(120, releases=2, files=1, seed=9)
    target = tmp_path / "tree"
    kills = 0
    with Upstream(corpus).running() as up:
        # Slow the upstream so a run lasts long enough for kills to land in every phase
        # (downloads, pages, journal, root, deletions), however fast the mirror itself gets.
        up.add_fault("delay", "/packages/*", delay=0.05, rate=0.5, seed=1)
        up.add_fault("delay", "/simple/*/", delay=0.03, rate=0.5, seed=2)
        names = [e.normalized for e in corpus.project_list().projects]
        for round_ in range(12):
            if round_:  # upstream changes between runs, so every run has work, deletions too
                victim = rng.choice(names)
                if corpus.get(victim) is not None:
                    corpus.delete_project(victim)
                for name in rng.sample(names, 25):
                    if corpus.get(name) is not None:
                        corpus.add_release(name, f"50.{round_}")
            started = time.time()
            proc = subprocess.Popen(
                [
                    HEADWATER,
                    "mirror",
                    "--upstream",
                    up.simple_url,
                    "--target",
                    str(target),
                    "--quiet",
                    "--workers",
                    "8",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if round_ % 4 == 3:
                time.sleep(rng.uniform(0.05, 0.4))  # sometimes while it is still planning
            else:
                _wait_for_writes(target / "state/in-progress", started, proc)
                time.sleep(rng.uniform(0.0, 0.4))  # somewhere in downloads, pages, root, deletions
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
            assert_consistent(target)
            # verify right after a kill: pages on disk are the truth, so the orphans it reports
            # are files no page lists, and deleting them (as --repair does) breaks no page.
            report = asyncio.run(verify_tree(FileStorage(target)))
            assert not [p for p in report.problems if p.kind in ("missing", "corrupt")], report
            if report.references_known:
                for problem in report.problems:
                    if problem.kind == "orphan":
                        (target / problem.key).unlink()
            assert_consistent(target)
        assert kills >= 9, f"only {kills} of 12 runs were killed: the kills tested too little"
        final = subprocess.run(
            [HEADWATER, "mirror", "--upstream", up.simple_url, "--target", str(target), "--quiet"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert final.returncode == 0, final.stderr[-3000:]
    assert asyncio.run(verify_tree(FileStorage(target))).ok
    tree = check_tree(target)
    expected = {
        e.normalized: sorted(f.filename for f in corpus.get(e.normalized).files())  # type: ignore[union-attr]
        for e in corpus.project_list().projects
    }
    assert tree == expected
