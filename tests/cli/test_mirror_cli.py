"""``headwater mirror`` as a user runs it: a subprocess, a config file, exit statuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from headwater.simple.json import parse_project_list_json
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.sync.test_engine import check_tree

HEADWATER = str(Path(sys.executable).with_name("headwater"))


def headwater(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADWATER, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_mirror_from_config_then_dry_run_then_failure(tmp_path: Path) -> None:
    corpus = Corpus.generate(5, releases=1, files=2, seed=4)
    with Upstream(corpus).running() as up:
        (tmp_path / "headwater.toml").write_text(
            f'[mirror.local]\nupstream = "{up.simple_url}"\ntarget = "tree"\nworkers = 4\nretries = 2\n'
        )
        done = headwater("mirror", "--quiet", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert (
            "mirror local: synced 5, unchanged 0, deleted 0, failed 0, refused 0; downloaded 10 files"
            in done.stdout
        )
        assert "event=finished" in done.stderr  # structured log lines when not on a terminal
        listing = parse_project_list_json((tmp_path / "tree/web/simple/index.v1_json").read_bytes())
        assert len(listing.projects) == 5
        diff = (tmp_path / "tree/state/last-sync.diff").read_text().splitlines()
        assert (
            "web/simple/index.v1_json" in diff
            and sum(k.startswith("web/packages/") and not k.endswith(".metadata") for k in diff)
            == 10
        )

        name = corpus.project_list().projects[0].normalized
        corpus.add_release(name, "7.0")
        plan = headwater("mirror", "--dry-run", cwd=tmp_path)
        assert plan.returncode == 0, plan.stderr
        assert f"sync   {name} (changed" in plan.stdout
        assert not list(
            (tmp_path / "tree/web/packages").glob("*/*/*/*7.0*")
        )  # dry run changed nothing

        other = corpus.project_list().projects[1].normalized
        corpus.add_release(other, "8.0")
        up.add_fault("status", f"/simple/{other}/", status=500)
        failed = headwater("mirror", "--quiet", cwd=tmp_path)
        assert failed.returncode == 1  # unlike bandersnatch, a failed project fails the run
        assert f"failed {other}: " in failed.stderr and "HTTP 500" in failed.stderr
        assert "synced 1," in failed.stdout  # the other changed project still synced


def test_config_errors_are_clear(tmp_path: Path) -> None:
    (tmp_path / "headwater.toml").write_text(
        '[mirror.x]\nupstream = "https://example/simple/"\ntarget = "t"\nwrokers = 3\n'
    )
    result = headwater("mirror", cwd=tmp_path)
    assert result.returncode == 2
    assert "[mirror.x]: Object contains unknown field `wrokers`" in result.stderr
    none = headwater("mirror", cwd=tmp_path / ".." / "..")
    assert none.returncode == 2 and "no configuration" in none.stderr


def test_dead_upstream_changes_nothing(tmp_path: Path) -> None:
    result = headwater(
        "mirror",
        "--upstream",
        "http://127.0.0.1:9/simple/",
        "--target",
        "t",
        "--quiet",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "cannot read the project list of http://127.0.0.1:9/simple/" in result.stderr
    assert "Nothing was changed" in result.stderr
    assert not (tmp_path / "t/web").exists()


def test_two_mirrors_never_write_one_tree(tmp_path: Path) -> None:
    from headwater.storage import FileStorage

    with Upstream(Corpus.generate(2, releases=1, files=1, seed=1)).running() as up:
        with FileStorage(tmp_path / "t").exclusive():
            busy = headwater(
                "mirror", "--upstream", up.simple_url, "--target", "t", "--quiet", cwd=tmp_path
            )
        assert busy.returncode == 2
        assert (
            "another headwater process (pid " in busy.stderr
            and "nothing was changed" in busy.stderr
        )
        assert not (tmp_path / "t/web").exists()
        free = headwater(
            "mirror", "--upstream", up.simple_url, "--target", "t", "--quiet", cwd=tmp_path
        )
        assert free.returncode == 0, free.stderr


def test_filters_and_changing_them(tmp_path: Path) -> None:
    corpus = Corpus.generate(6, releases=3, files=1, seed=12)
    names = [e.normalized for e in corpus.project_list().projects]
    (tmp_path / "requirements.txt").write_text(f"{names[0]}\n{names[1].upper()}>=0  # a comment\n")
    with Upstream(corpus).running() as up:
        base = f'[mirror.m]\nupstream = "{up.simple_url}"\ntarget = "tree"\n[mirror.m.filters]\n'
        config = tmp_path / "headwater.toml"
        config.write_text(
            base + f'allow_requirements = ["requirements.txt"]\nallow = ["{names[2]}"]\n'
        )
        first = headwater("mirror", "--quiet", cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        tree = check_tree(tmp_path / "tree")
        assert sorted(tree) == sorted(names[:3])
        assert all(len(files) == 3 for files in tree.values())

        # Narrow the filters: one project fewer, and only the newest release of each.
        config.write_text(base + f'allow = ["{names[0]}", "{names[2]}"]\nlatest = 1\n')
        second = headwater("mirror", "--quiet", cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert "deleted 1," in second.stdout
        tree = check_tree(tmp_path / "tree")
        assert sorted(tree) == sorted([names[0], names[2]])
        assert all(len(files) == 1 for files in tree.values())
        remaining = [
            p
            for p in (tmp_path / "tree/web/packages").rglob("*")
            if p.is_file() and p.suffix != ".metadata"
        ]
        assert len(remaining) == 2  # files the filters no longer keep are gone from disk

        unchanged = headwater("mirror", "--quiet", cwd=tmp_path)
        assert "synced 0, unchanged 2" in unchanged.stdout


def test_bad_filter_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "headwater.toml").write_text(
        '[mirror.m]\nupstream = "https://example/simple/"\ntarget = "t"\n'
        '[mirror.m.filters]\nallow_requirements = ["missing.txt"]\n'
    )
    result = headwater("mirror", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        "[mirror.m.filters]: cannot read requirements file" in result.stderr
        and "missing.txt" in result.stderr
    )
