"""``headwater verify`` and ``--repair`` as a user runs them, against a real upstream on loopback:
the repair writes what the configuration wants (filters, tracks), every page on disk counts
(listed by the root or not), every format of every page must parse completely and agree, a repair
that cannot reach the upstream says what it did and what is left, and ``mirror --project`` obeys
the filters and names what it could not sync."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from headwater.simple.json import parse_project_list_json, render_project_list_json
from headwater.simple.model import ProjectList
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.sync.test_engine import check_tree

HEADWATER = str(Path(sys.executable).with_name("headwater"))


def headwater(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADWATER, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def problems(result: subprocess.CompletedProcess[str]) -> set[tuple[str, str]]:
    """(kind, key) of every problem in a ``--format json`` report."""
    return {(p["kind"], p["key"]) for p in json.loads(result.stdout)["problems"]}


def dist_files(tree: Path) -> list[Path]:
    return [
        p for p in (tree / "web/packages").rglob("*") if p.is_file() and p.suffix != ".metadata"
    ]


def page(tree: Path, name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((tree / f"web/simple/{name}/index.v1_json").read_text())
    return data


# --- the repair writes what the configuration wants -----------------------------------------------


@pytest.mark.parametrize("how", ["config", "target"])
def test_repair_keeps_the_filters_and_the_tracks_policy(tmp_path: Path, how: str) -> None:
    corpus = Corpus.generate(4, releases=3, files=1, seed=61)
    names = [e.normalized for e in corpus.project_list().projects]
    with Upstream(corpus).running() as up:
        (tmp_path / "headwater.toml").write_text(
            f'[mirror.m]\nupstream = "{up.simple_url}"\ntarget = "tree"\ntracks = false\n'
            f'[mirror.m.filters]\nlatest = 1\nblock = ["{names[3]}"]\n'
        )
        tree = tmp_path / "tree"
        assert headwater("mirror", "--quiet", cwd=tmp_path).returncode == 0
        assert sorted(check_tree(tree)) == sorted(names[:3])
        victim = dist_files(tree)[0]
        victim.unlink()  # something for the repair to fetch

        selection = ["--config", "headwater.toml"] if how == "config" else ["--target", "tree"]
        repaired = headwater("verify", *selection, "--repair", "--quiet", cwd=tmp_path)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert victim.exists()
        after = check_tree(tree)
        assert sorted(after) == sorted(names[:3])  # the blocked project was not brought in
        assert all(len(files) == 1 for files in after.values())  # latest = 1 still holds
        assert all("tracks" not in page(tree, n)["meta"] for n in after)  # type: ignore[operator]
        assert len(dist_files(tree)) == 3

        again = headwater("mirror", "--quiet", cwd=tmp_path)
        assert again.returncode == 0 and "synced 0, unchanged 3" in again.stdout
        clean = headwater("verify", "--config", "headwater.toml", cwd=tmp_path)
        assert clean.returncode == 0 and "0 problems" in clean.stdout, clean.stdout


def test_verify_reports_pages_the_configuration_does_not_want(tmp_path: Path) -> None:
    corpus = Corpus.generate(3, releases=2, files=1, seed=62)
    names = [e.normalized for e in corpus.project_list().projects]
    with Upstream(corpus).running() as up:
        config = tmp_path / "headwater.toml"
        base = f'[mirror.m]\nupstream = "{up.simple_url}"\ntarget = "tree"\n'
        config.write_text(base)
        assert headwater("mirror", "--quiet", cwd=tmp_path).returncode == 0
        # The configuration changes; before the next mirror, verify sees the difference.
        config.write_text(base + f'tracks = false\n[mirror.m.filters]\nblock = ["{names[0]}"]\n')
        found = headwater("verify", "--format", "json", cwd=tmp_path)
        assert found.returncode == 1
        details = {
            (p["project"], p["detail"].split(",")[0])
            for p in json.loads(found.stdout)["problems"]
            if p["kind"] == "unwanted"
        }
        assert (names[0], "the filters do not want this project (allow/block/requirements)") in (
            details
        )
        assert {p for p, d in details if d.startswith("has tracks")} == set(names[1:])
        repaired = headwater("verify", "--repair", "--quiet", cwd=tmp_path)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert sorted(check_tree(tmp_path / "tree")) == sorted(names[1:])
        assert not (tmp_path / f"tree/web/simple/{names[0]}").exists()


# --- mirror --project obeys the filters and names what it could not do -----------------------------


@pytest.mark.parametrize(
    ("filters", "pick", "expected"),
    [
        ('block = ["{0}"]', 0, "the mirror's filters do not want it"),
        ('allow = ["{1}"]', 0, "the mirror's filters do not want it"),
        ("", None, "the upstream's project list does not have it"),
        ('allow = ["{0}"]', 0, None),
    ],
    ids=["blocked", "not-allowed", "unknown-upstream", "allowed"],
)
def test_project_option_obeys_the_filters(
    tmp_path: Path, filters: str, pick: int | None, expected: str | None
) -> None:
    corpus = Corpus.generate(3, releases=1, files=1, seed=63)
    names = [e.normalized for e in corpus.project_list().projects]
    asked = names[pick] if pick is not None else "no-such-project"
    with Upstream(corpus).running() as up:
        (tmp_path / "headwater.toml").write_text(
            f'[mirror.m]\nupstream = "{up.simple_url}"\ntarget = "tree"\n'
            f"[mirror.m.filters]\n{filters.format(*names)}\n"
        )
        dry = headwater("mirror", "--dry-run", "--project", asked, cwd=tmp_path)
        result = headwater("mirror", "--quiet", "--project", asked, cwd=tmp_path)
    published = (tmp_path / f"tree/web/simple/{asked}/index.v1_json").exists()
    if expected is None:
        assert result.returncode == 0 and dry.returncode == 0, result.stderr
        assert published
    else:
        assert (dry.returncode, result.returncode) == (1, 1), result.stdout + result.stderr
        assert f"not synced {asked}: {expected}" in result.stderr
        assert f"not synced {asked}: {expected}" in dry.stdout
        assert not published


def test_project_option_removes_a_project_the_filters_now_block(tmp_path: Path) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=64)
    names = [e.normalized for e in corpus.project_list().projects]
    with Upstream(corpus).running() as up:
        config = tmp_path / "headwater.toml"
        base = f'[mirror.m]\nupstream = "{up.simple_url}"\ntarget = "tree"\n'
        config.write_text(base)
        assert headwater("mirror", "--quiet", cwd=tmp_path).returncode == 0
        config.write_text(base + f'[mirror.m.filters]\nblock = ["{names[0]}"]\n')
        result = headwater("mirror", "--quiet", "--project", names[0], cwd=tmp_path)
    assert result.returncode == 1
    assert "removed from the tree" in result.stderr
    assert sorted(check_tree(tmp_path / "tree")) == [names[1]]
    assert len(dist_files(tmp_path / "tree")) == 1


# --- pages that exist are the truth ---------------------------------------------------------------


@pytest.mark.parametrize("state", ["kept", "removed"], ids=["killed-sync", "adopted-tree"])
def test_a_page_the_root_does_not_list_keeps_its_files(tmp_path: Path, state: str) -> None:
    corpus = Corpus.generate(3, releases=1, files=2, seed=65)
    names = sorted(e.normalized for e in corpus.project_list().projects)
    tree = tmp_path / "tree"
    with Upstream(corpus).running() as up:
        assert (
            headwater(
                "mirror", "--upstream", up.simple_url, "--target", "tree", "--quiet", cwd=tmp_path
            ).returncode
            == 0
        )
        root = parse_project_list_json((tree / "web/simple/index.v1_json").read_bytes())
        without = ProjectList(projects=tuple(e for e in root.projects if e.normalized != names[0]))
        (tree / "web/simple/index.v1_json").write_bytes(render_project_list_json(without))
        if state == "removed":
            for path in (tree / "state").rglob("*"):
                if path.is_file():
                    path.unlink()
        before = sorted(p.name for p in dist_files(tree))

        found = headwater("verify", "--target", "tree", "--format", "json", cwd=tmp_path)
        assert found.returncode == 1
        kinds = {kind for kind, _ in problems(found)}
        assert ("unlisted", f"web/simple/{names[0]}/index.v1_json") in problems(found)
        assert "orphan" not in kinds  # its files are referenced by its page

        args = ["--upstream", up.simple_url] if state == "removed" else []
        repaired = headwater(
            "verify", "--target", "tree", *args, "--repair", "--quiet", cwd=tmp_path
        )
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert sorted(p.name for p in dist_files(tree)) == before  # nothing was deleted
        assert sorted(check_tree(tree)) == names  # and the root lists it again


# --- every format of every page parses completely and agrees ---------------------------------------


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def _drop_anchor(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    anchors = [i for i, line in enumerate(lines) if line.startswith("<a ")]
    del lines[anchors[-1]]
    path.write_text("".join(lines))


def _differ(path: Path) -> None:
    data = path.read_bytes()
    path.unlink()  # the two HTML names are one file (a hard link): make this one its own
    path.write_bytes(data.replace(b"<h1>", b"<h1>x"))


DAMAGE: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("json-cut", "{p}/index.v1_json", _cut, "bad-page"),
    ("html-cut", "{p}/index.v1_html", _cut, "bad-page"),
    ("plain-html-cut", "{p}/index.html", _cut, "bad-page"),
    ("html-lacks-a-file", "{p}/index.v1_html", _drop_anchor, "bad-page"),
    ("html-formats-differ", "{p}/index.html", _differ, "bad-page"),
    ("root-html-cut", "index.v1_html", _cut, "bad-root"),
    ("root-plain-html-cut", "index.html", _cut, "bad-root"),
    ("root-json-cut", "index.v1_json", _cut, "missing-root"),
]


@pytest.mark.parametrize(
    ("where", "damage", "kind"), [pytest.param(w, d, k, id=i) for i, w, d, k in DAMAGE]
)
def test_every_page_format_is_checked(
    tmp_path: Path, where: str, damage: Callable[[Path], None], kind: str
) -> None:
    corpus = Corpus.generate(3, releases=2, files=1, seed=66)
    name = sorted(e.normalized for e in corpus.project_list().projects)[1]
    tree = tmp_path / "tree"
    with Upstream(corpus).running() as up:
        assert (
            headwater(
                "mirror", "--upstream", up.simple_url, "--target", "tree", "--quiet", cwd=tmp_path
            ).returncode
            == 0
        )
        key = f"web/simple/{where.format(p=name)}"
        damage(tree / key)
        found = headwater("verify", "--target", "tree", "--format", "json", cwd=tmp_path)
        assert found.returncode == 1
        assert (kind, key) in problems(found), found.stdout
        assert not any(k == "orphan" for k, _ in problems(found))
        repaired = headwater("verify", "--target", "tree", "--repair", "--quiet", cwd=tmp_path)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert len(check_tree(tree)) == 3


# --- a repair that cannot reach the upstream ------------------------------------------------------


def test_repair_with_the_upstream_down_says_what_it_did_and_what_is_left(tmp_path: Path) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=67)
    tree = tmp_path / "tree"
    with Upstream(corpus).running() as up:
        args = ["mirror", "--upstream", up.simple_url, "--target", "tree", "--quiet"]
        assert headwater(*args, cwd=tmp_path).returncode == 0
    # The upstream is gone now (its port is closed).
    corrupt = dist_files(tree)[0]
    corrupt.write_bytes(b"flipped" + corrupt.read_bytes()[7:])
    result = headwater("verify", "--target", "tree", "--repair", "--quiet", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "repaired: deleted 1 corrupt files" in result.stdout
    assert f"not repaired: could not fetch from {up.simple_url}" in result.stdout
    assert "Nothing was changed" not in result.stdout + result.stderr
    assert "missing      web/packages/" in result.stdout and corrupt.name in result.stdout
    assert not corrupt.exists()  # bytes that fail verification are never served


def test_repair_refuses_another_upstream_before_changing_anything(tmp_path: Path) -> None:
    corpus = Corpus.generate(1, releases=1, files=1, seed=69)
    tree = tmp_path / "tree"
    with Upstream(corpus).running() as up:
        args = ["mirror", "--upstream", up.simple_url, "--target", "tree", "--quiet"]
        assert headwater(*args, cwd=tmp_path).returncode == 0
    corrupt = dist_files(tree)[0]
    corrupt.write_bytes(b"flipped" + corrupt.read_bytes()[7:])
    other = "http://127.0.0.1:9/simple/"
    result = headwater(
        "verify", "--target", "tree", "--upstream", other, "--repair", "--quiet", cwd=tmp_path
    )
    assert result.returncode == 2
    assert f"this tree was mirrored from {up.simple_url}" in result.stderr
    assert "nothing was changed" in result.stderr
    assert corrupt.exists()


# --- deletions leave no empty directories ---------------------------------------------------------


def test_deletions_leave_no_empty_directories(tmp_path: Path) -> None:
    corpus = Corpus.generate(3, releases=2, files=1, seed=68)
    names = [e.normalized for e in corpus.project_list().projects]
    tree = tmp_path / "tree"
    with Upstream(corpus).running() as up:
        args = ["mirror", "--upstream", up.simple_url, "--target", "tree", "--quiet"]
        assert headwater(*args, cwd=tmp_path).returncode == 0
        corpus.delete_project(names[0])
        project = corpus.get(names[1])
        assert project is not None
        corpus.delete_file(names[1], next(iter(project.files())).filename)
        assert headwater(*args, cwd=tmp_path).returncode == 0
    assert not (tree / f"web/simple/{names[0]}").exists()
    empty = [
        p
        for top in ("web/simple", "web/packages")
        for p in (tree / top).rglob("*")
        if p.is_dir() and not any(p.iterdir())
    ]
    assert empty == []
    clean = headwater("verify", "--target", "tree", cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout


# --- files of a failed sync are kept for the next one, not orphans --------------------------------


def test_files_of_a_failed_sync_are_reused_and_not_orphans(tmp_path: Path) -> None:
    corpus = Corpus.generate(3, releases=1, files=2, seed=70)
    names = [e.normalized for e in corpus.project_list().projects]
    project = corpus.get(names[0])
    assert project is not None
    bad = sorted(project.files(), key=lambda f: f.filename)[0]
    tree = tmp_path / "tree"
    with Upstream(corpus).running() as up:
        args = ["mirror", "--upstream", up.simple_url, "--target", "tree", "--quiet"]
        up.add_fault("corrupt", bad.path)  # every attempt fails its hash check
        first = headwater(*args, cwd=tmp_path)
        assert first.returncode == 1 and f"failed {names[0]}" in first.stderr
        assert not (tree / f"web/simple/{names[0]}").exists()

        found = headwater("verify", "--target", "tree", "--format", "json", cwd=tmp_path)
        report = json.loads(found.stdout)
        assert found.returncode == 0, report["problems"]  # the kept file is not an orphan
        assert report["held"] >= 1  # the good file of the failed project (and its .metadata)

        up.faults.clear()
        second = headwater(*args, cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert "synced 1," in second.stdout
        assert "downloaded 1 files" in second.stdout and "1 already present" in second.stdout
        assert sorted(check_tree(tree)) == sorted(names)
        clean = headwater("verify", "--target", "tree", "--format", "json", cwd=tmp_path)
        assert clean.returncode == 0 and json.loads(clean.stdout)["held"] == 0


def test_files_held_for_a_project_that_goes_away_are_removed(tmp_path: Path) -> None:
    corpus = Corpus.generate(2, releases=1, files=2, seed=71)
    names = [e.normalized for e in corpus.project_list().projects]
    project = corpus.get(names[0])
    assert project is not None
    bad = sorted(project.files(), key=lambda f: f.filename)[0]
    tree = tmp_path / "tree"
    with Upstream(corpus).running() as up:
        args = ["mirror", "--upstream", up.simple_url, "--target", "tree", "--quiet"]
        up.add_fault("corrupt", bad.path)
        assert headwater(*args, cwd=tmp_path).returncode == 1
        corpus.delete_project(names[0])
        assert headwater(*args, cwd=tmp_path).returncode == 0
    assert len(dist_files(tree)) == 2  # only the other project's files are left
    clean = headwater("verify", "--target", "tree", "--format", "json", cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout
    assert json.loads(clean.stdout)["held"] == 0
